"""Plain pydantic models with the fields and types of a push and a registration, and none
of searchtrail's own checks: what pydantic itself costs, the yardstick of the lean ceiling
(``bench.ceiling:create_lean_app``) and of the validation micro-benchmark."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, JsonValue

__all__ = ["PlainCreate", "PlainEvent", "PlainPush", "PlainResult"]

JsonObject = dict[str, JsonValue]


class PlainEvent(BaseModel):
    event_id: str
    object_id: str | None = None
    event_type: str = Field(default="click", validation_alias=AliasChoices("event_type", "name"))
    created_at: int | None = None
    meta: JsonObject | None = None


class PlainPush(BaseModel):
    session_id: str
    events: list[PlainEvent]


class PlainResult(BaseModel):
    object_id: str
    rank: float | None = None
    meta: JsonObject | None = None


class PlainCreate(BaseModel):
    session_id: str | None = None
    search_query: JsonValue = None
    search_results: list[PlainResult] = Field(default_factory=list)
    search_meta: JsonObject | None = None
    payload_filter: JsonObject | None = None
    sort_by: JsonObject | None = None
    user_id: str | None = None
    created_at: int | None = None
