"""Click models' answers: a fit's propensities and quality, labels, a comparison.

docs/clickmodels.md defines every field; ``searchtrail.clickfit`` computes them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ClickModelComparison",
    "ClickModelCounts",
    "ClickModelFit",
    "ClickModelLabels",
    "ClickModelQuality",
    "ClickModelScope",
    "ModelQuality",
    "PairLabel",
]


class ClickModelScope(BaseModel):
    since: str | None = Field(description="Sessions created at or after this (ISO 8601).")
    until: str | None = Field(description="Sessions created before this.")
    include_irrelevant: bool
    batch_id: int | None
    click_types: list[str] = Field(description="The event types that count as a click.")
    max_position: int = Field(description="Positions modelled: 1..max_position.")


class ClickModelCounts(BaseModel):
    sessions: int = Field(description="Sessions of the scope (those without results too).")
    pairs: int = Field(description="Distinct (query, object) pairs shown.")
    clicks: int = Field(description="Clicked shown results (one per object and session).")


class ClickModelQuality(BaseModel):
    """The model fitted on the earliest 90% of sessions, scored on the latest 10%."""

    train_sessions: int
    test_sessions: int
    log_likelihood: float | None = Field(
        description="Mean over test sessions of the summed log P(click as observed | the "
        "clicks above); natural log, higher is better."
    )
    perplexity: float | None = Field(description="Mean of perplexity_by_position; 1 is perfect.")
    perplexity_by_position: list[float | None] = Field(
        description="2 ** -(mean log2 P(click as observed)) per position; null where the "
        "test sessions showed nothing."
    )


class ClickModelFit(BaseModel):
    model: str
    examination: list[float | None] = Field(
        description="P(examined) by position relative to position 1 (1.0 there)."
    )
    examination_raw: list[float | None] = Field(description="P(examined) by position.")
    params: dict[str, Any] = Field(description="The model's fitted raw values.")
    fit: ClickModelQuality
    counts: ClickModelCounts
    scope: ClickModelScope


class PairLabel(BaseModel):
    query: str = Field(description="The normalized query, as the metrics name it.")
    object_id: str
    impressions: int
    clicks: int
    attractiveness: float | None
    satisfaction: float | None = Field(description="null where the model has none.")
    relevance: float | None = Field(
        description="attractiveness * satisfaction, or attractiveness alone."
    )
    grade: int = Field(ge=0, le=3, description="0..3 (docs/clickmodels.md, grades).")


class ClickModelLabels(BaseModel):
    model: str
    query: str | None = Field(description="The query asked for; null: the top pairs.")
    labels: list[PairLabel]
    counts: ClickModelCounts
    scope: ClickModelScope


class ModelQuality(ClickModelQuality):
    model: str


class ClickModelComparison(BaseModel):
    """Every model fitted on the same train part and scored on the same test part."""

    models: list[ModelQuality]
    counts: ClickModelCounts
    scope: ClickModelScope
