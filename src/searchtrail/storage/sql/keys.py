"""API keys as stored: the hash, never the key (``searchtrail.keys`` mints and checks)."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import Connection, Row, select, update

from searchtrail.errors import NotFound
from searchtrail.keyinfo import ApiKeyInfo, scopes_of
from searchtrail.storage.sql._database import _Database
from searchtrail.storage.sql.schema import api_keys

__all__ = ["SqlApiKeys"]


def _info(row: Row[Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        name=row.name,
        prefix=row.prefix,
        scopes=scopes_of(row.scopes),
        created_at_ms=row.created_at_ms,
        revoked_at_ms=row.revoked_at_ms,
    )


class SqlApiKeys:
    def __init__(self, db: _Database) -> None:
        self._db = db

    def create(self, *, name: str, prefix: str, key_hash: str, scopes: str, now: int) -> ApiKeyInfo:
        row = {"name": name, "prefix": prefix, "key_hash": key_hash, "scopes": scopes}

        def work(conn: Connection) -> ApiKeyInfo:
            conn.execute(api_keys.insert().values(**row, created_at_ms=now))
            return _info(conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).one())

        return self._db.write(work)

    def by_prefix(self, prefix: str) -> tuple[ApiKeyInfo, str] | None:
        """The key's record and stored hash, for the caller to compare in constant time."""
        with self._db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
        return None if row is None else (_info(row), row.key_hash)

    def exist(self) -> bool:
        with self._db.read() as conn:
            return conn.execute(select(api_keys.c.key_id).limit(1)).first() is not None

    def list(self) -> builtins.list[ApiKeyInfo]:
        with self._db.read() as conn:
            return [_info(r) for r in conn.execute(select(api_keys).order_by(api_keys.c.key_id))]

    def revoke(self, key: int | str, now: int) -> ApiKeyInfo:
        """Revoke by key_id or prefix; an already revoked key keeps its first revocation."""
        where = api_keys.c.key_id == key if isinstance(key, int) else api_keys.c.prefix == key

        def work(conn: Connection) -> ApiKeyInfo:
            row = conn.execute(select(api_keys).where(where)).first()
            if row is None:
                raise NotFound(f"API key {key} not found")
            if row.revoked_at_ms is None:
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.key_id == row.key_id)
                    .values(revoked_at_ms=now)
                )
                row = conn.execute(select(api_keys).where(api_keys.c.key_id == row.key_id)).one()
            return _info(row)

        return self._db.write(work)
