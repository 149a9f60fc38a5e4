"""Batches: releasing the collecting one, reading them, and moving them through their states."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from searchtrail.models._validation import (
    NonNegativeInt64,
    PositiveInt64,
    _check_id,
    _limits,
    _Strict,
)
from searchtrail.models.sessions import Session

__all__ = [
    "BatchIdRequest",
    "BatchInfo",
    "BatchList",
    "BatchSessionsPage",
    "BatchSessionsQuery",
    "BatchStateName",
    "BatchStateRequest",
    "ReleaseRequest",
    "ReleaseResult",
]


class ReleaseRequest(_Strict):
    release_id: str

    @field_validator("release_id")
    @classmethod
    def _rid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)


class ReleaseResult(BaseModel):
    release_id: str
    batch_id: int
    released_at: int
    released_at_ms: int


BatchStateName = Literal["collecting", "released", "fine_tuning", "archiving", "archived"]


class BatchInfo(BaseModel):
    batch_id: int
    state: BatchStateName
    release_id: str | None = None
    created_at_ms: int
    released_at_ms: int | None = None
    updated_at_ms: int
    sessions: int = Field(0, description="Sessions registered in the batch.")
    events: int = Field(0, description="Events stored in those sessions.")


class BatchList(BaseModel):
    batches: list[BatchInfo]


class BatchIdRequest(_Strict):
    batch_id: PositiveInt64


class BatchStateRequest(BatchIdRequest):
    state: BatchStateName


class BatchSessionsQuery(BatchIdRequest):
    """One page of a batch: keyset on ``session_number``, so any depth costs the same."""

    after_number: NonNegativeInt64 = Field(0, description="Answer sessions with a larger number.")
    limit: int | None = Field(
        None, ge=1, description="Sessions in the page; default 10 (at most max_page_size)."
    )
    events_limit: int | None = Field(
        None,
        ge=0,
        description="Events per session, oldest first; default 100 (at most max_events_limit).",
    )

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: int | None, info: ValidationInfo) -> int:
        limit = _limits(info).max_page_size
        if v is None:
            return min(10, limit)
        if v > limit:
            raise ValueError(f"limit must be at most {limit} (max_page_size), got {v}")
        return v

    @field_validator("events_limit")
    @classmethod
    def _events_limit(cls, v: int | None, info: ValidationInfo) -> int:
        limit = _limits(info).max_events_limit
        if v is None:
            return min(100, limit)
        if v > limit:
            raise ValueError(f"events_limit must be at most {limit} (max_events_limit), got {v}")
        return v


class BatchSessionsPage(BaseModel):
    batch_id: int
    last_number: int | None = Field(description="Pass as after_number for the next page.")
    sessions: list[Session]
