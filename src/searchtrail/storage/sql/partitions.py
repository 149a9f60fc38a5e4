"""PostgreSQL's monthly partitions of ``events`` and ``session_stats`` (docs/postgresql.md).

Both are partitioned by RANGE(session_number); ``sessions`` stays a plain table, so its
``session_id`` stays unique across the whole database (a partitioned table's unique keys
must hold the partition key). Calendar month ``m`` (months since 1970-01) owns the
session numbers ``[m << 40, (m + 1) << 40)``: ``ensure_partitions`` creates the partitions
of the current and coming months and moves the sessions' number sequence forward to the
current month's base, never back, so a session registered this month lands in this
month's partition (give or take the maintenance lag: until it runs, new sessions go on
filling the previous month's, which exists). Numbers stay below 2**53 (JSON-safe) until
month 8192, the year 2652. ``<table>_initial`` holds everything below the first month's
base: rows a migrated database had, and numbers an import or the tests' reset give.

``drop_expired_partitions`` drops a month whose sessions are all older than the cutoff:
its events and stats go with DROP TABLE, its sessions and queue entries by range. DROP
fires no trigger, so the hourly sums (``_rollup``) lose the dropped stats set-based in
the same transaction; without that, metrics would go on counting pruned sessions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from searchtrail.storage.api import BatchState
from searchtrail.storage.sql._rollup import CONTRIBUTIONS, HOUR_MS, ROLLUP_COLUMNS

__all__ = [
    "MONTH_BITS",
    "PARTITIONED",
    "SCHEMA_LOCK_KEY",
    "Partition",
    "add_to_hourly",
    "drop_expired_partitions",
    "ensure_partitions",
    "month_base",
    "month_of",
    "month_start_ms",
    "partitions",
]

PARTITIONED = ("events", "session_stats")
MONTH_BITS = 40
# A partitioned table takes no storage parameters: each partition of session_stats gets
# the fill factor that lets a push's version bump stay a HOT update (schema.session_stats).
_WITH = {"session_stats": " WITH (fillfactor = 80)"}
_BOUND = re.compile(r"FROM \(([^)]*)\) TO \(([^)]*)\)")
# pg_advisory_xact_lock key of "searchtrail schema" (PostgresDialect.lock_schema takes it
# too): partition DDL and schema revisions never run side by side, nor two upkeep jobs.
SCHEMA_LOCK_KEY = 0x5EA2C47A11


def month_of(ms: int) -> int:
    """Months since 1970-01 (UTC) of a time in milliseconds."""
    day = datetime.fromtimestamp(ms / 1000, UTC)
    return (day.year - 1970) * 12 + day.month - 1


def month_base(month: int) -> int:
    return month << MONTH_BITS


def month_start_ms(month: int) -> int:
    year, index = divmod(month, 12)
    return int(datetime(1970 + year, index + 1, 1, tzinfo=UTC).timestamp() * 1000)


def _name(table: str, month: int) -> str:
    year, index = divmod(month, 12)
    return f"{table}_y{1970 + year}m{index + 1:02d}"


@dataclass(frozen=True)
class Partition:
    name: str
    low: int | None  # None: MINVALUE
    high: int


def _bound(value: str) -> int | None:
    value = value.strip().strip("'")
    return None if value.upper() == "MINVALUE" else int(value)


def partitions(conn: Connection, table: str = "events") -> list[Partition]:
    """The partitions of ``table``, lowest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:
            continue
        low, high = (_bound(v) for v in match.groups())
        if high is not None:
            found.append(Partition(str(name), low, high))
    return sorted(found, key=lambda p: p.high)


def _lock(conn: Connection) -> None:
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")


def _sequence(conn: Connection) -> str:
    seq = conn.execute(text("SELECT pg_get_serial_sequence('sessions', 'session_number')"))
    return str(seq.scalar_one())


def _next_number(conn: Connection, seq: str) -> int:
    # The name comes from pg_get_serial_sequence, quoted as an identifier already.
    last, called = conn.exec_driver_sql(f"SELECT last_value, is_called FROM {seq}").one()
    return int(last) + 1 if called else int(last)


def ensure_partitions(conn: Connection, now_ms: int, months_ahead: int = 1) -> list[str]:
    """Create the partitions up to ``months_ahead`` months after ``now_ms``'s (and any
    month between, after a long stop), and move the number sequence to ``now_ms``'s
    month; answers the partitions created. Run in the caller's transaction."""
    _lock(conn)
    current = month_of(now_ms)
    created: list[str] = []
    for table in PARTITIONED:
        existing = partitions(conn, table)
        if existing:
            top = existing[-1].high
        else:
            top = month_base(current)
            created.append(_create(conn, table, f"{table}_initial", None, top))
        month = top >> MONTH_BITS
        while month <= current + months_ahead:
            low, high = max(top, month_base(month)), month_base(month + 1)
            if high > top:
                created.append(_create(conn, table, _name(table, month), low, high))
            month += 1
    seq = _sequence(conn)
    if _next_number(conn, seq) < month_base(current):
        conn.execute(text("SELECT setval(:s, :v, false)"), {"s": seq, "v": month_base(current)})
    return created


def _create(conn: Connection, table: str, name: str, low: int | None, high: int) -> str:
    start = "MINVALUE" if low is None else str(low)
    conn.exec_driver_sql(
        f"CREATE TABLE {name} PARTITION OF {table} "
        f"FOR VALUES FROM ({start}) TO ({high}){_WITH.get(table, '')}"
    )
    return name


def _range(p: Partition) -> str:
    low = "" if p.low is None else f"session_number >= {p.low} AND "
    return f"{low}session_number < {p.high}"


def _newest(conn: Connection, p: Partition) -> int | None:
    """The newest created_at of ``p``'s sessions, None when it has none: there is a stats
    row per session, with its created_at, whose index answers this at once."""
    stats = p.name.replace("events_", "session_stats_", 1)
    newest = conn.exec_driver_sql(f"SELECT max(created_at_ms) FROM {stats}").scalar()
    return None if newest is None else int(newest)


def _unarchived(conn: Connection, p: Partition) -> bool:
    """A session of ``p`` is in a batch not yet archived (few batches: one probe each)."""
    held = conn.execute(
        text(
            "SELECT 1 FROM batches b WHERE b.state <> :archived AND EXISTS (SELECT 1 FROM "
            f"sessions s WHERE s.batch_id = b.batch_id AND {_range(p)}) LIMIT 1"
        ),
        {"archived": BatchState.ARCHIVED.value},
    ).first()
    return held is not None


def add_to_hourly(conn: Connection, relation: str, sign: str = "") -> None:
    """Add (``sign`` "") or take out ("-") the computed rows of ``relation`` (session_stats
    or a partition) in the hourly sums, set-based: what the row triggers do one by one."""
    names = ", ".join(ROLLUP_COLUMNS)
    parts = ", ".join(f"{sign}SUM({expr.format(r='r')})" for _, expr in CONTRIBUTIONS)
    sets = ", ".join(f"{c} = session_stats_hourly.{c} + excluded.{c}" for c in ROLLUP_COLUMNS)
    conn.exec_driver_sql(
        f"INSERT INTO session_stats_hourly (hour, is_irrelevant, {names}) "
        f"SELECT r.created_at_ms / {HOUR_MS}, r.is_irrelevant, {parts} FROM {relation} r "
        f"WHERE r.computed > 0 GROUP BY 1, 2 "
        f"ON CONFLICT (hour, is_irrelevant) DO UPDATE SET {sets}"
    )


def _expired(conn: Connection, cutoff_ms: int, keep_unarchived: bool) -> list[Partition]:
    """The months to drop, oldest first, up to the first one kept: what is dropped is a
    prefix of the number range, which an empty initial partition then covers again.
    Only months below the number sequence: no registration lands there any more."""
    below = _next_number(conn, _sequence(conn))
    found = []
    for p in partitions(conn, "events"):
        if p.high > below:
            break
        newest = _newest(conn, p)
        if newest is None and p.low is None:
            continue  # the floor, empty: nothing to drop
        if (newest is not None and newest >= cutoff_ms) or (
            keep_unarchived and _unarchived(conn, p)
        ):
            break
        found.append(p)
    return found


def drop_expired_partitions(
    conn: Connection, cutoff_ms: int, *, keep_unarchived: bool, dry_run: bool
) -> tuple[int, int, int, int]:
    """Drop the months whose sessions are all older than ``cutoff_ms``; answers
    (partitions, sessions, events, queue entries) dropped, or that would be with
    ``dry_run`` (queue entries then uncounted: 0).

    Sessions a month left behind (a newer one in it, or one in an unarchived batch) are
    the row-by-row prune's. Run in the caller's transaction. A DROP holds its parent's
    ACCESS EXCLUSIVE lock until the commit, so the reads and the hourly sums go first;
    the stats' lock (pushes wait on it) is held while sessions are deleted, the events'
    (gets wait on it) only at the end.
    """
    _lock(conn)
    months = _expired(conn, cutoff_ms, keep_unarchived)
    events = sum(
        int(conn.exec_driver_sql(f"SELECT count(*) FROM {p.name}").scalar_one()) for p in months
    )
    stats = [p.name.replace("events_", "session_stats_", 1) for p in months]
    if dry_run:
        counted = (
            conn.exec_driver_sql(f"SELECT count(*) FROM sessions WHERE {_range(p)}").scalar_one()
            for p in months
        )
        return len(months), sum(int(n) for n in counted), events, 0
    for name in stats:
        add_to_hourly(conn, name, "-")
    sessions = queued = 0
    for name, p in zip(stats, months, strict=True):
        # Before the sessions: their delete trigger would take each stats row out alone.
        conn.exec_driver_sql(f"DROP TABLE {name}")
        queued += conn.exec_driver_sql(
            "DELETE FROM improvement_queue WHERE session_id IN "
            f"(SELECT session_id FROM sessions WHERE {_range(p)})"
        ).rowcount
        sessions += conn.exec_driver_sql(f"DELETE FROM sessions WHERE {_range(p)}").rowcount
    for p in months:
        conn.exec_driver_sql(f"DROP TABLE {p.name}")
    if months:
        _cover_below(conn)
    return len(months), sessions, events, queued


def _cover_below(conn: Connection) -> None:
    """One empty ``<table>_initial`` from MINVALUE up to the lowest month left: a number
    below it (an import's, kept from its dump) must still find a partition, or its
    insert fails. The floor is empty here: were it not, nothing above it was dropped."""
    for table in PARTITIONED:
        left = partitions(conn, table)
        lows = [p.low for p in left if p.low is not None]
        floor = left[0] if left and left[0].low is None else None
        if not lows or (floor is not None and floor.high == lows[0]):
            continue
        if floor is not None:
            conn.exec_driver_sql(f"DROP TABLE {floor.name}")
        _create(conn, table, f"{table}_initial", None, lows[0])
