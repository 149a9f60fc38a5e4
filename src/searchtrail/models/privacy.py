"""Erasing a user and pruning old sessions: the requests and answers."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from searchtrail.models._validation import _check_id, _limits, _Strict

__all__ = ["PruneSummary", "UserDeletion", "UserIdRequest"]


class UserIdRequest(_Strict):
    user_id: str = Field(description="The user id as the client sent it (not its pseudonym).")

    @field_validator("user_id")
    @classmethod
    def _uid(cls, v: str, info: ValidationInfo) -> str:
        return _check_id(v, _limits(info).max_id_chars)


class UserDeletion(BaseModel):
    """What an erase removed: the user's sessions, their events and queue entries."""

    user_id: str
    sessions: int
    events: int
    queue_entries: int


class PruneSummary(BaseModel):
    """What a prune removed, or with ``dry_run`` would remove."""

    dry_run: bool
    retention_days: float
    cutoff_ms: int
    sessions: int
    events: int
    queue_entries: int
    chunks: int
    more: bool = Field(
        False, description="Stopped after the chunks it was allowed; old sessions remain."
    )
