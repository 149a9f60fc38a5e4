"""The improvement queue: sessions handed to workers, claimed under a lease, acknowledged."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from searchtrail.models._validation import PositiveInt64, _check_id, _check_no_nul, _limits, _Strict

__all__ = [
    "AckRequest",
    "ClaimRequest",
    "ClaimResult",
    "QueueCounts",
    "QueueEntry",
    "QueueStateName",
]


QueueStateName = Literal["pending", "claimed", "done", "failed"]


class QueueEntry(BaseModel):
    """A session queued for the improvement worker."""

    entry_id: int
    session_id: str
    state: QueueStateName
    attempts: int = Field(description="Claims so far; pass it back as `attempt` to acknowledge.")
    enqueued_at_ms: int
    claimed_at_ms: int | None = None
    claimed_by: str | None = None
    lease_expires_at_ms: int | None = Field(
        None, description="While claimed: after this the entry is handed out again."
    )
    finished_at_ms: int | None = None
    error: str | None = None


class ClaimRequest(_Strict):
    worker: str | None = Field(None, description="Who claims, recorded as claimed_by.")
    limit: int = Field(10, ge=1, description="Most entries to hand out.")

    @field_validator("worker")
    @classmethod
    def _worker(cls, v: str | None, info: ValidationInfo) -> str | None:
        # claimed_by is 256 characters wide, enforced on PostgreSQL whatever max_id_chars says.
        limit = min(_limits(info).max_id_chars, 256)
        return None if v is None else _check_id(v, limit, "a worker name")

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int, info: ValidationInfo) -> int:
        limit = _limits(info).max_page_size
        if v > limit:
            raise ValueError(f"limit must be at most {limit} (max_page_size), got {v}")
        return v


class ClaimResult(BaseModel):
    entries: list[QueueEntry]


class AckRequest(_Strict):
    entry_id: PositiveInt64
    attempt: PositiveInt64 = Field(description="The entry's `attempts` as the claim answered it.")
    status: Literal["done", "failed"]
    error: str | None = Field(None, description="Why it failed, kept for the operator.")

    @field_validator("error")
    @classmethod
    def _error(cls, v: str | None, info: ValidationInfo) -> str | None:
        limit = _limits(info).max_meta_bytes
        if v is not None and len(v) > limit:
            raise ValueError(f"error must be at most {limit} characters, got {len(v)}")
        if v is not None:
            _check_no_nul(v, "error")
        return v


class QueueCounts(BaseModel):
    pending: int = 0
    claimed: int = 0
    done: int = 0
    failed: int = 0
