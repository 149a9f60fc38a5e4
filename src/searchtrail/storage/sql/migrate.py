"""Schema revisions: create, upgrade and check a database with Alembic, from code.

Alembic is configured here (the script directory ships inside the package), so
``searchtrail db upgrade`` works from any directory with no alembic.ini.

What a process does with the database it opens (``ensure_schema``):

- at the head revision with every table of schema.py present: nothing, two reads;
- at the head revision with tables missing (dropped by hand, a partial restore): refuses
  with ``SchemaOutdated``, naming them; ``alembic_version`` alone is not trusted, or the
  server would start and then fail every request;
- empty (no searchtrail table): builds schema.py's tables and stamps them at head, so
  the SQLite default still starts with one command on a fresh machine;
- anything else (behind, made before migrations, or newer than this code): refuses
  with ``SchemaOutdated``, naming ``searchtrail db upgrade``. A server never alters an
  existing schema on its own: with several processes or hosts, one operator step does.

Schema changes take a lock first (on PostgreSQL a transaction-scoped advisory lock,
on SQLite the write lock of ``BEGIN IMMEDIATE``), so processes starting together on an
empty database create it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.types import TypeEngine

from searchtrail.errors import SchemaOutdated
from searchtrail.storage.sql.dialects import dialect_class, dialect_for
from searchtrail.storage.sql.schema import created_on, metadata
from searchtrail.timestamps import now_ms

__all__ = [
    "SchemaStatus",
    "ensure_schema",
    "head_revision",
    "schema_differences",
    "schema_status",
    "upgrade",
]

_INITIAL = "0001"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("searchtrail.storage.sql") / "migrations"))
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: its revision (None when unversioned), whether it is empty,
    and which of schema.py's tables it lacks (a revision row says nothing about them)."""

    current: str | None
    head: str
    empty: bool
    missing: tuple[str, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def usable(self) -> bool:
        """At head with every table there: the only state a server starts on as it is."""
        return self.up_to_date and not self.missing

    @property
    def known(self) -> bool:
        return self.current is None or self.current in _known_revisions()

    def problem(self) -> str | None:
        """What an operator must do before a server may use this database, if anything."""
        if self.up_to_date:
            return self._missing_problem() if self.missing else None
        if self.current is None and self.empty:
            return None
        if not self.known:
            return (
                f"The database schema is at revision {self.current}, which this searchtrail "
                f"does not know (its newest is {self.head}): the database was upgraded by a "
                "newer searchtrail; run that version"
            )
        found = "has no schema revision" if self.current is None else f"is at {self.current}"
        return (
            f"The database schema {found}, this searchtrail needs revision {self.head}: "
            "run `searchtrail db upgrade` (same SEARCHTRAIL_DATABASE_URL), then start again"
        )

    def _missing_problem(self) -> str:
        return (
            f"The database says it is at revision {self.current}, but the searchtrail "
            f"table(s) {', '.join(self.missing)} are missing: restore them from a backup, "
            "or, to start over with no data, drop the remaining searchtrail tables and the "
            "alembic_version table so that the next start creates an empty database"
        )


@cache
def _known_revisions() -> frozenset[str]:
    return frozenset(s.revision for s in _scripts().walk_revisions())


def _status(conn: Connection) -> SchemaStatus:
    heads = MigrationContext.configure(conn).get_current_heads()
    current = heads[0] if heads else None
    present = set(inspect(conn).get_table_names())
    empty = current is None and not present & set(metadata.tables)
    missing = tuple(sorted(set(metadata.tables) - present))
    return SchemaStatus(current=current, head=head_revision(), empty=empty, missing=missing)


def schema_status(engine: Engine) -> SchemaStatus:
    with engine.connect() as conn:
        return _status(conn)


@contextmanager
def _locked(engine: Engine, *, rebuilds: bool = False) -> Iterator[Connection]:
    """One transaction that no other schema change (or creation) runs alongside.

    ``rebuilds``: a revision may rebuild a SQLite table, its only way to change a column,
    and the old table is dropped while other tables still point at it. Foreign keys are
    then off for the transaction (SQLite's own recipe); the caller checks them before it
    commits (``Dialect.check_foreign_keys``).
    """
    with engine.connect().execution_options(searchtrail_write=True) as conn:
        dialect = dialect_class(conn.dialect.name)
        keys_off = rebuilds and dialect.rebuilds_tables
        if keys_off:  # a no-op inside a transaction, so before it begins
            dialect.foreign_keys(conn, on=False)
        try:
            with conn.begin():
                dialect.lock_schema(conn)
                yield conn
        finally:
            if keys_off:
                dialect.foreign_keys(conn, on=True)


def create_session_stats_triggers(conn: Connection) -> None:
    """The triggers that keep ``session_stats`` beside ``sessions`` (the dialect's)."""
    for ddl in dialect_class(conn.dialect.name).session_stats_triggers:
        conn.exec_driver_sql(ddl)


def ensure_schema(engine: Engine) -> None:
    """Let a process use the database: create it when empty, refuse it when behind or
    when tables are missing (it would start, then fail every request)."""
    if schema_status(engine).usable:
        return
    with _locked(engine) as conn:
        status = _status(conn)
        if status.current is None and status.empty:
            metadata.create_all(conn)
            dialect_class(conn.dialect.name).maintain(conn, now_ms())
            create_session_stats_triggers(conn)
            MigrationContext.configure(conn).stamp(_scripts(), "head")
            return
    problem = status.problem()
    if problem is not None:
        raise SchemaOutdated(problem)


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> tuple[str | None, str]:
    """Bring a database to ``revision``; answers (revision before, revision after).

    A database made before migrations existed holds exactly the initial revision's
    tables: it is stamped with that revision first, then upgraded like any other. One
    at head with tables missing is refused (``SchemaOutdated``), changing nothing.
    """
    engine, owned = _engine(engine_or_url)
    try:
        with _locked(engine, rebuilds=True) as conn:
            before = _status(conn)
            cfg = _config()
            cfg.attributes["connection"] = conn
            if before.current is None and not before.empty:
                command.stamp(cfg, _INITIAL)
            command.upgrade(cfg, revision)
            after = _status(conn)
            if after.usable:  # the coming months' partitions, after a long stop too
                dialect_class(conn.dialect.name).maintain(conn, now_ms())
            if after.current != before.current:
                dialect_class(conn.dialect.name).check_foreign_keys(conn)
            problem = after.problem()
            if after.up_to_date and problem is not None:
                # Tables missing at head: no revision recreates them, and "already at
                # head" would send the operator back to a server that refuses.
                raise SchemaOutdated(problem)
        assert after.current is not None
        return before.current, after.current
    finally:
        if owned:
            engine.dispose()


def compare_type(
    context: MigrationContext,
    _inspected_column: object,
    _metadata_column: object,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """Alembic's type comparison, except that SQLite reads ``JSON TEXT`` back as TEXT."""
    return dialect_class(context.dialect.name).stored_type_differs(inspected_type, metadata_type)


def schema_differences(engine: Engine) -> list[object]:
    """How the database's tables differ from schema.py (empty when they match)."""
    with engine.connect() as conn:
        # A partition is its table's (PostgreSQL): not a table schema.py should name.
        parts = dialect_class(conn.dialect.name).partition_names(conn)

        def include_name(name: str | None, kind: str, parent: Any) -> bool:
            table = name if kind == "table" else parent.get("table_name")
            return table not in parts

        def include_object(item: Any, _name: Any, kind: str, reflected: bool, _to: Any) -> bool:
            # A constraint of schema.py that this dialect goes without (its ddl_if).
            if kind == "foreign_key_constraint" and not reflected:
                return created_on(item, conn.dialect.name)
            return True

        opts = {
            "compare_type": compare_type,
            "include_name": include_name,
            "include_object": include_object,
        }
        ctx = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(ctx, metadata))


def _engine(engine_or_url: Engine | str) -> tuple[Engine, bool]:
    if isinstance(engine_or_url, Engine):
        return engine_or_url, False
    dialect = dialect_for(engine_or_url, busy_timeout_ms=30_000, synchronous="FULL", pool_size=1)
    return dialect.engine(), True
