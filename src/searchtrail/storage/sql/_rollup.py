"""``session_stats_hourly``: the sums of ``session_stats`` per hour, kept by triggers.

A row of ``session_stats`` counts in its hour (``created_at_ms / 3600000``, under its
``is_irrelevant``) once it has been computed (``computed > 0``), with exactly what the
metrics' sums take of it (``CONTRIBUTIONS``). Triggers on ``session_stats`` keep that
true in the transaction of every change: a refresh's write (it sets ``computed``) takes
the row's old part out and puts its new part in; an ``is_irrelevant`` change moves it;
a delete takes it out. A push only bumps ``version`` and fires none of them, and a new
session's row (``computed`` 0) has no part yet: writes cost what they did.

``counts`` then reads whole hours here and the rest from ``session_stats``: the partial
hours at the range's ends and the rows never computed (few: a metrics call refreshes
first), through the stale rows' index.
"""

from __future__ import annotations

from searchtrail.metrics.definitions import MAX_POSITION

__all__ = [
    "CONTRIBUTIONS",
    "HOUR_MS",
    "ROLLUP_COLUMNS",
    "postgres_drop",
    "postgres_triggers",
    "sqlite_drop",
    "sqlite_triggers",
]

HOUR_MS = 3_600_000
TABLE = "session_stats_hourly"

# Each sum's column and what one session_stats row ``{r}`` adds to it: the same as the
# aggregate counts() runs over session_stats (a NULL adds nothing, as SUM skips it).
CONTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("sessions", "1"),
    ("with_results", "CASE WHEN {r}.results > 0 THEN 1 ELSE 0 END"),
    ("interacted", "CASE WHEN {r}.first_position IS NOT NULL THEN 1 ELSE 0 END"),
    ("purchased", "CASE WHEN {r}.purchased THEN 1 ELSE 0 END"),
    ("reciprocal_ranks", "COALESCE(CAST(1.0 AS DOUBLE PRECISION) / {r}.first_position, 0.0)"),
    ("clicks", "COALESCE({r}.clicks, 0)"),
    ("click_positions", "COALESCE({r}.click_positions, 0)"),
    ("interactions", "COALESCE({r}.interactions, 0)"),
    ("unshown_events", "COALESCE({r}.unshown_events, 0)"),
    *(
        (f"shown_at_{k}", f"CASE WHEN {{r}}.results >= {k} THEN 1 ELSE 0 END")
        for k in range(1, MAX_POSITION + 1)
    ),
    *(
        (
            f"interacted_at_{k}",
            f"CASE WHEN ({{r}}.positions_mask & {1 << (k - 1)}) <> 0 THEN 1 ELSE 0 END",
        )
        for k in range(1, MAX_POSITION + 1)
    ),
)
ROLLUP_COLUMNS = tuple(name for name, _ in CONTRIBUTIONS)


def _upsert(row: str, sign: str) -> str:
    """Add (``sign`` ``+``) or take out (``-``) the part of ``row`` (NEW or OLD)."""
    names = ", ".join(ROLLUP_COLUMNS)
    parts = ", ".join(f"{sign}({expr.format(r=row)})" for _, expr in CONTRIBUTIONS)
    sets = ", ".join(f"{c} = {TABLE}.{c} + excluded.{c}" for c in ROLLUP_COLUMNS)
    return (
        f"INSERT INTO {TABLE} (hour, is_irrelevant, {names}) "
        f"SELECT {row}.created_at_ms / {HOUR_MS}, {row}.is_irrelevant, {parts} "
        f"WHERE {row}.computed > 0 "
        f"ON CONFLICT (hour, is_irrelevant) DO UPDATE SET {sets}"
    )


def sqlite_triggers() -> tuple[str, ...]:
    return (
        "CREATE TRIGGER session_stats_hourly_update "
        "AFTER UPDATE OF computed, is_irrelevant ON session_stats BEGIN "
        f"{_upsert('OLD', '-')}; {_upsert('NEW', '')}; END",
        "CREATE TRIGGER session_stats_hourly_delete AFTER DELETE ON session_stats BEGIN "
        f"{_upsert('OLD', '-')}; END",
    )


def sqlite_drop() -> tuple[str, ...]:
    return ("DROP TRIGGER session_stats_hourly_update", "DROP TRIGGER session_stats_hourly_delete")


def postgres_triggers() -> tuple[str, ...]:
    # Row triggers: a column list (UPDATE OF) rules out transition tables, and without it
    # every push's version bump would run the function.
    return (
        "CREATE OR REPLACE FUNCTION session_stats_hourly() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"{_upsert('OLD', '-')}; "
        f"IF TG_OP = 'UPDATE' THEN {_upsert('NEW', '')}; END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER session_stats_hourly_update "
        "AFTER UPDATE OF computed, is_irrelevant ON session_stats "
        "FOR EACH ROW EXECUTE FUNCTION session_stats_hourly()",
        "CREATE TRIGGER session_stats_hourly_delete AFTER DELETE ON session_stats "
        "FOR EACH ROW EXECUTE FUNCTION session_stats_hourly()",
    )


def postgres_drop() -> tuple[str, ...]:
    return (
        "DROP TRIGGER session_stats_hourly_update ON session_stats",
        "DROP TRIGGER session_stats_hourly_delete ON session_stats",
        "DROP FUNCTION session_stats_hourly()",
    )
