"""The store: the only code that speaks SQL.

One class over SQLAlchemy Core serves SQLite and PostgreSQL with the same statements;
the few dialect differences (the upsert spelling, SQLite's connection pragmas and its
write lock) are set up once in ``_make_engine`` and ``_insert``.

Every write runs in one transaction that is committed before the method returns, so a
caller that got an answer holds a durable fact. On SQLite, writers take the database
lock up front (``BEGIN IMMEDIATE``) and, within a process, go through one lock: all
writes have one owner, and two processes wait on each other through the busy timeout
instead of failing on a lock upgrade.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import pydantic_core
from sqlalchemy import Connection, Engine, Row, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from searchtrail.errors import SessionNotFound, Unavailable
from searchtrail.models import Session, ShownResult, StoredEvent
from searchtrail.schema import batches, events, metadata, sessions

__all__ = ["BatchState", "Store", "normalize_database_url"]

T = TypeVar("T")


class BatchState:
    COLLECTING = "collecting"
    RELEASED = "released"
    FINE_TUNING = "fine_tuning"
    ARCHIVING = "archiving"
    ARCHIVED = "archived"
    ALL = (COLLECTING, RELEASED, FINE_TUNING, ARCHIVING, ARCHIVED)


def normalize_database_url(url: str) -> str:
    """Let operators write ``postgresql://`` and still get psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def _json_dumps(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _make_engine(url: str, *, busy_timeout_ms: int, synchronous: str, pool_size: int) -> Engine:
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            json_serializer=_json_dumps,
            json_deserializer=pydantic_core.from_json,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Transactions are begun by hand below, so pysqlite must not begin its own.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("searchtrail_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        json_deserializer=pydantic_core.from_json,
    )


@contextmanager
def _unavailable_on_db_outage() -> Iterator[None]:
    """A locked or unreachable database is a 503 the client may retry, never a 500."""
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        cause = getattr(exc, "orig", None) or exc
        raise Unavailable(f"the database is unavailable ({type(cause).__name__})") from exc


class Store:
    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 30_000,
        synchronous: str = "FULL",
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.engine = _make_engine(
            url, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, pool_size=pool_size
        )
        self.dialect = self.engine.dialect.name
        self._write_lock: AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )

    # -- plumbing -------------------------------------------------------------

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _unavailable_on_db_outage(), self.engine.connect() as conn, conn.begin():
            yield conn

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one committed write transaction, retrying a lost uniqueness race."""
        for attempt in range(5):
            try:
                with (
                    _unavailable_on_db_outage(),
                    self._write_lock,
                    self.engine.connect().execution_options(searchtrail_write=True) as conn,
                    conn.begin(),
                ):
                    return fn(conn)
            except IntegrityError:
                # Another process inserted the same unique key first; re-reading sees it.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _insert(self, table: Any) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING`` on both."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- batches ----------------------------------------------------------------

    def _collecting_batch_id(self, conn: Connection, now: int) -> int:
        """The collecting batch, opened if none is; shared-locked so a release waits for us."""
        query = select(batches.c.batch_id).where(batches.c.collecting == 1)
        batch_id = conn.execute(query.with_for_update(read=True)).scalar()
        if batch_id is not None:
            return int(batch_id)
        opened = conn.execute(
            self._insert(batches)
            .values(
                state=BatchState.COLLECTING,
                collecting=1,
                created_at_ms=now,
                updated_at_ms=now,
            )
            .on_conflict_do_nothing()
            .returning(batches.c.batch_id)
        ).scalar()
        if opened is None:
            batch_id = conn.execute(query.with_for_update(read=True)).scalar_one()
            return int(batch_id)
        return int(opened)

    # -- sessions ---------------------------------------------------------------

    def create_session(self, row: dict[str, Any], now: int) -> tuple[Session, bool, bool]:
        """Insert a session unless its id exists.

        Answers the stored session, whether this call created it, and whether its
        ``created_at`` was given by the client (a replay is judged on that).
        """

        def work(conn: Connection) -> tuple[Session, bool, bool]:
            existing = conn.execute(
                select(sessions).where(sessions.c.session_id == row["session_id"])
            ).first()
            if existing is not None:
                return self._session(existing, []), False, bool(existing.created_at_given)
            batch_id = self._collecting_batch_id(conn, now)
            number = conn.execute(
                sessions.insert()
                .values(**row, batch_id=batch_id, registered_at_ms=now)
                .returning(sessions.c.session_number)
            ).scalar_one()
            stored = conn.execute(select(sessions).where(sessions.c.session_number == number)).one()
            return self._session(stored, []), True, bool(stored.created_at_given)

        return self._write(work)

    def get_session(self, session_id: str, events_limit: int | None = None) -> Session:
        with self._read() as conn:
            row = conn.execute(select(sessions).where(sessions.c.session_id == session_id)).first()
            if row is None:
                raise SessionNotFound(session_id)
            return self._session(
                row, self._events(conn, [row.session_number], events_limit)[row.session_number]
            )

    def mark_irrelevant(self, session_id: str) -> None:
        def work(conn: Connection) -> None:
            result = conn.execute(
                update(sessions)
                .where(sessions.c.session_id == session_id)
                .values(is_irrelevant=True)
            )
            if result.rowcount == 0:
                raise SessionNotFound(session_id)

        self._write(work)

    # -- events -----------------------------------------------------------------

    def insert_events(self, session_id: str, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Store a push in one transaction and one bulk statement: (stored, duplicates)."""

        def work(conn: Connection) -> tuple[int, int]:
            number = conn.execute(
                select(sessions.c.session_number).where(sessions.c.session_id == session_id)
            ).scalar()
            if number is None:
                raise SessionNotFound(session_id)
            if not rows:
                return 0, 0
            params = [{**r, "session_number": number} for r in rows]
            result = conn.execute(
                self._insert(events)
                .on_conflict_do_nothing(index_elements=["session_number", "event_id"])
                .returning(events.c.id),
                params,
            )
            stored = len(result.all())
            return stored, len(rows) - stored

        return self._write(work)

    def _events(
        self, conn: Connection, numbers: Sequence[int], limit: int | None
    ) -> dict[int, list[StoredEvent]]:
        out: dict[int, list[StoredEvent]] = {n: [] for n in numbers}
        if not numbers:
            return out
        query = (
            select(events)
            .where(events.c.session_number.in_(numbers))
            .order_by(events.c.session_number, events.c.created_at_ms, events.c.id)
        )
        if limit is not None and len(numbers) == 1:
            query = query.limit(limit)
        for r in conn.execute(query):
            bucket = out[r.session_number]
            if limit is None or len(bucket) < limit:
                bucket.append(
                    StoredEvent(
                        event_id=r.event_id,
                        object_id=r.object_id,
                        event_type=r.event_type,
                        created_at=r.created_at_ms // 1000,
                        created_at_ms=r.created_at_ms,
                        meta=r.meta,
                    )
                )
        return out

    @staticmethod
    def _session(row: Row[Any], evs: list[StoredEvent]) -> Session:
        return Session(
            session_id=row.session_id,
            search_query=row.search_query,
            search_results=[ShownResult(**r) for r in row.search_results],
            search_meta=row.search_meta,
            payload_filter=row.payload_filter,
            sort_by=row.sort_by,
            user_id=row.user_id,
            created_at=row.created_at_ms // 1000,
            created_at_ms=row.created_at_ms,
            is_irrelevant=bool(row.is_irrelevant),
            batch_id=row.batch_id,
            session_number=row.session_number,
            events=evs,
        )

    def count(self, table_name: str) -> int:
        table = metadata.tables[table_name]
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
