"""What ``/health/ready`` asks of the database: a committed write, and room on its disk."""

from __future__ import annotations

import os
from collections.abc import Callable

from sqlalchemy import Connection, and_, delete

from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql.schema import health_checks

__all__ = ["SqlHealth"]

# A row whose process has not checked for this long is gone: the next check deletes it.
_GONE_AFTER_MS = 86_400_000


class SqlHealth:
    def __init__(self, db: _Database) -> None:
        self._db = db
        self._path = db.dialect.database_file()

    def check_write(self, process: str, now_ms: int) -> Callable[[Connection], None]:
        """The write of a check (a named write of the registry, as a push is): ``process``'s
        row upserted, and the rows of processes gone a day deleted."""
        insert = self._db.dialect.insert(health_checks)
        upsert = insert.values(process=process, checked_at_ms=now_ms).on_conflict_do_update(
            index_elements=[health_checks.c.process],
            set_={"checked_at_ms": insert.excluded.checked_at_ms},
        )
        prune = delete(health_checks).where(
            and_(
                health_checks.c.checked_at_ms < now_ms - _GONE_AFTER_MS,
                health_checks.c.process != process,
            )
        )

        def work(conn: Connection) -> None:
            conn.execute(upsert)
            conn.execute(prune)

        return work

    def write(self, process: str, now_ms: int) -> None:
        self._db.write(self.check_write(process, now_ms))

    async def write_async(self, process: str, now_ms: int) -> None:
        await self._db.write_async("health_check", process, now_ms)

    def free_bytes(self) -> int | None:
        """Bytes an unprivileged writer may still use on the SQLite file's file system;
        None where it cannot be known from here (PostgreSQL, an in-memory database)."""
        if self._path is None:
            return None
        stat = os.statvfs(self._path.parent)
        return stat.f_bavail * stat.f_frsize
