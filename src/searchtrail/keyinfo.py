"""What is known of an API key: its scopes and its public record.

A leaf module, so that the storage protocols (which answer these records) and the key
ring (``searchtrail.keys``, which re-exports them) can both name them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from searchtrail.errors import BadRequest

__all__ = ["ApiKeyInfo", "Scope", "scopes_of"]


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"
    METRICS = "metrics"  # /metrics alone (read and admin keys may scrape it too)


class ApiKeyInfo(BaseModel):
    """What may be shown about a key: never the key, never its hash."""

    key_id: int
    name: str
    prefix: str = Field(description="The key's public part: it starts with st_<prefix>_.")
    scopes: list[Scope]
    created_at_ms: int
    revoked_at_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None


def scopes_of(text: str) -> list[Scope]:
    try:
        return [Scope(s) for s in text.split()]
    except ValueError as exc:  # a row written by something else than KeyRing
        raise BadRequest(f"stored key has an unknown scope: {exc}") from None
