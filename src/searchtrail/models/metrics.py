"""Search-quality metrics: the parameters they are asked with and the answers.

docs/metrics.md defines every number; ``searchtrail.metrics.definitions`` computes them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from searchtrail.models._validation import Timestamp

__all__ = [
    "GroupBy",
    "Interleaving",
    "MetricComparison",
    "MetricValues",
    "MetricsGroup",
    "MetricsGroups",
    "MetricsQuery",
    "MetricsSummary",
    "QueryLists",
    "QueryMetrics",
    "QuerySession",
    "RankerComparison",
    "ResultOutcome",
    "TimeToFirstInteraction",
]

GroupBy = Literal["day", "hour", "query", "ranker", "batch"]


class MetricsQuery(BaseModel):
    """Which sessions: ``created_at`` in ``[since, until)``; irrelevant ones only if asked."""

    model_config = ConfigDict(extra="forbid")

    since: Annotated[Timestamp, Field(description="Sessions created at or after this.")] = None
    until: Annotated[Timestamp, Field(description="Sessions created before this.")] = None
    include_irrelevant: bool = Field(False, description="Count sessions marked irrelevant.")


class TimeToFirstInteraction(BaseModel):
    median: float | None = Field(description="Median over sessions with an interaction, ms.")
    p90: float | None = Field(description="90th percentile (linear interpolation), ms.")


class MetricValues(BaseModel):
    """Every metric of one set of sessions; a ratio is ``null`` where its denominator is 0."""

    sessions: int
    sessions_with_results: int
    sessions_with_interaction: int
    sessions_with_purchase: int
    zero_result_rate: float | None = Field(description="1 - sessions_with_results / sessions")
    ctr: float | None = Field(description="sessions_with_interaction / sessions_with_results")
    conversion_rate: float | None = Field(
        description="sessions_with_purchase / sessions_with_results"
    )
    mrr: float | None = Field(
        description="mean over sessions_with_results of 1 / the first position interacted with"
    )
    mean_click_position: float | None = Field(
        description="mean position over interactions of type click"
    )
    clicks: int
    interactions: int
    unshown_events: int = Field(description="events on objects the session never showed")
    ctr_at_position: list[float | None] = Field(
        description="positions 1..20: sessions with an interaction at k / sessions showing k"
    )
    time_to_first_interaction_ms: TimeToFirstInteraction


class MetricsSummary(MetricValues):
    since: str | None
    until: str | None
    include_irrelevant: bool


class MetricsGroup(MetricValues):
    key: str | int | None = Field(
        description="day: YYYY-MM-DD; hour: YYYY-MM-DDTHH:00Z (UTC); query: the normalized "
        "query; ranker: its value (null: none); batch: the batch id"
    )


class MetricsGroups(BaseModel):
    by: GroupBy
    since: str | None
    until: str | None
    include_irrelevant: bool
    groups: list[MetricsGroup]


class QueryMetrics(MetricValues):
    query: str


class QueryLists(BaseModel):
    since: str | None
    until: str | None
    include_irrelevant: bool
    top: list[QueryMetrics] = Field(description="the queries with the most sessions")
    zero_results: list[QueryMetrics] = Field(
        description="the queries with the most sessions that showed no result"
    )
    no_interaction: list[QueryMetrics] = Field(
        description="the queries with the most sessions that showed results and got no interaction"
    )


class MetricComparison(BaseModel):
    metric: Literal["ctr", "conversion_rate", "mrr", "zero_result_rate"]
    a: float | None
    b: float | None
    difference: float | None = Field(description="b - a")
    ci95: list[float] | None = Field(description="95% interval of the difference")
    verdict: Literal["better", "worse", "no significant difference", "not enough data"] = Field(
        description="B against A (for zero_result_rate, lower is better)"
    )


class Interleaving(BaseModel):
    sessions: int = Field(description="interleaved sessions with an interaction on A or B")
    wins_a: int
    wins_b: int
    ties: int
    preference_b: float = Field(description="(wins_b + ties / 2) / sessions - 0.5")
    ci95: list[float]
    verdict: Literal["better", "worse", "no significant difference", "not enough data"]


class RankerComparison(BaseModel):
    a: str
    b: str
    since: str | None
    until: str | None
    include_irrelevant: bool
    sessions_a: int
    sessions_b: int
    method: str
    resamples: int
    seed: int
    metrics: list[MetricComparison]
    interleaving: Interleaving | None


class ResultOutcome(BaseModel):
    position: int
    object_id: str
    interactions: list[str] = Field(description="event types on this result, in time order")


class QuerySession(BaseModel):
    session_id: str
    created_at: str
    is_irrelevant: bool
    query: str
    results: list[ResultOutcome]
    unshown_events: int
