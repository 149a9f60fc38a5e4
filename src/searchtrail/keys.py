"""API keys: minted once, stored as a hash, verified in constant time, revocable.

A key reads ``st_<prefix>_<secret>``. The prefix is public (it names the key in
``keys list`` and finds its row through a unique index); the whole key is hashed
with SHA-256, which is enough for a 256-bit random secret (no password stretching
is needed when nothing can be guessed). Only the hash is stored.

Verified keys are cached in-process for ``auth_cache_sec`` seconds, so a busy
ingest path does not read the key table on every request. A revoke made through the
same process takes effect at once; one made elsewhere (the CLI, another worker)
within ``auth_cache_sec``.

Authentication is required once any key has ever been created; revoking every key
does not reopen the service.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from pydantic import BaseModel, Field, field_validator

from searchtrail.keyinfo import ApiKeyInfo, Scope, scopes_of
from searchtrail.models import INT64_MAX, parse
from searchtrail.storage.api import ApiKeys
from searchtrail.timestamps import now_ms

__all__ = [
    "ApiKeyCreateRequest",
    "ApiKeyInfo",
    "ApiKeyList",
    "ApiKeyRevokeRequest",
    "KeyRing",
    "NewApiKey",
    "Scope",
    "hash_key",
    "scopes_of",
    "split_key",
]

_MARK = "st_"
_PREFIX_CHARS = 12


class NewApiKey(ApiKeyInfo):
    key: str = Field(description="Shown this once; only its hash is stored.")


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]


class ApiKeyCreateRequest(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=256)
    scopes: list[Scope] = Field(min_length=1)


class ApiKeyRevokeRequest(BaseModel):
    model_config = {"extra": "forbid"}

    key_id: int | str = Field(description="The key's id, or its prefix.")

    @field_validator("key_id")
    @classmethod
    def _id_or_prefix(cls, v: int | str) -> int | str:
        if isinstance(v, str) and not v:
            raise ValueError("a key id or prefix is expected")
        if isinstance(v, str) and v.isdigit() and len(v) != _PREFIX_CHARS:
            v = int(v)  # an id; a prefix is 12 hex digits, which may all be digits
        if isinstance(v, int) and not 1 <= v <= INT64_MAX:
            raise ValueError(f"a key id is 1 to {INT64_MAX}, got {v}")
        return v


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> str | None:
    """The public prefix of a well-formed key, or None."""
    if not key.startswith(_MARK) or len(key) < len(_MARK) + _PREFIX_CHARS + 2:
        return None
    prefix = key[len(_MARK) : len(_MARK) + _PREFIX_CHARS]
    if key[len(_MARK) + _PREFIX_CHARS] != "_":
        return None
    return prefix


def _mint() -> tuple[str, str]:
    prefix = secrets.token_hex(_PREFIX_CHARS // 2)
    return f"{_MARK}{prefix}_{secrets.token_urlsafe(32)}", prefix


class KeyRing:
    """Key management and verification over the key storage, with a short in-process cache."""

    def __init__(self, store: ApiKeys, cache_sec: float = 5.0) -> None:
        self.store = store
        self.cache_sec = cache_sec
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[float, ApiKeyInfo]] = {}
        self._required: tuple[float, bool] | None = None

    # -- management ---------------------------------------------------------------

    def create(self, name: str, scopes: list[Scope] | list[str]) -> NewApiKey:
        req = parse(ApiKeyCreateRequest, {"name": name, "scopes": scopes})
        key, prefix = _mint()
        info = self.store.create(
            name=req.name,
            prefix=prefix,
            key_hash=hash_key(key),
            scopes=" ".join(sorted(set(req.scopes))),
            now=now_ms(),
        )
        with self._lock:
            self._required = (float("inf"), True)
        return NewApiKey(**info.model_dump(), key=key)

    def list(self) -> list[ApiKeyInfo]:
        return self.store.list()

    def revoke(self, key_id: int | str) -> ApiKeyInfo:
        """Revoke by id or prefix; revoking twice keeps the first revocation time."""
        key_id = parse(ApiKeyRevokeRequest, {"key_id": key_id}).key_id
        info = self.store.revoke(key_id, now_ms())
        with self._lock:
            self._verified = {h: v for h, v in self._verified.items() if v[1].key_id != info.key_id}
        return info

    # -- verification -------------------------------------------------------------

    def required_cached(self) -> bool | None:
        """Whether keys are required, if known without the database."""
        with self._lock:
            if self._required is not None and self._required[0] > time.monotonic():
                return self._required[1]
        return None

    def required(self) -> bool:
        known = self.required_cached()
        if known is not None:
            return known
        exists = self.store.exist()
        # Keys are never deleted, so "required" never goes back to False.
        expires = float("inf") if exists else time.monotonic() + self.cache_sec
        with self._lock:
            self._required = (expires, exists)
        return exists

    def verify_cached(self, key: str) -> ApiKeyInfo | None:
        digest = hash_key(key)
        with self._lock:
            hit = self._verified.get(digest)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        return None

    def verify(self, key: str) -> ApiKeyInfo | None:
        """The key's record if it is valid and not revoked; None otherwise."""
        cached = self.verify_cached(key)
        if cached is not None:
            return cached
        prefix = split_key(key)
        if prefix is None:
            return None
        found = self.store.by_prefix(prefix)
        if found is None:
            return None
        info, stored_hash = found
        if not hmac.compare_digest(hash_key(key), stored_hash) or info.revoked:
            return None
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[hash_key(key)] = (time.monotonic() + self.cache_sec, info)
        return info
