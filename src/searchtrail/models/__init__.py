"""The request and response models of the contract, shared by the service, HTTP layer and client.

Size limits are configurable, so they are read from the validation context
(``{"limits": Limits(...)}``) rather than fixed in the field types; without a
context the defaults apply. A request is validated in one place, here.

Keys the contract does not name, on a session, a result or an event, are accepted as
the original's models accept them, and kept: ``extra`` holds them (under the size and
NUL rules of ``meta``), and ``unknown_fields`` lists their paths so that a typo shows in
the answer. ``Limits.strict_fields`` refuses them instead (422 ``extra_forbidden``).

Every name is importable from ``searchtrail.models``; the submodules are its layout:
``_validation`` (limits context, field checks, base classes, ``parse``), ``_fast``
(``parse_json``), ``sessions``,
``batches``, ``queue``, ``metrics`` and ``privacy``.
"""

from __future__ import annotations

from searchtrail.models._fast import parse_json

# The shared checks and bases are re-exported for models defined elsewhere (the importer's
# rows), which must validate exactly as the API's requests do.
from searchtrail.models._validation import INT64_MAX as INT64_MAX
from searchtrail.models._validation import INT64_MIN as INT64_MIN
from searchtrail.models._validation import JsonObject as JsonObject
from searchtrail.models._validation import NonNegativeInt64, PositiveInt64, parse
from searchtrail.models._validation import Timestamp as Timestamp
from searchtrail.models._validation import _check_id as _check_id
from searchtrail.models._validation import _check_json_size as _check_json_size
from searchtrail.models._validation import _check_no_nul as _check_no_nul
from searchtrail.models._validation import _epoch_ms_or_none as _epoch_ms_or_none
from searchtrail.models._validation import _has_nul as _has_nul
from searchtrail.models._validation import _limits as _limits
from searchtrail.models._validation import _Open as _Open
from searchtrail.models._validation import _Strict as _Strict
from searchtrail.models.batches import (
    BatchIdRequest,
    BatchInfo,
    BatchList,
    BatchSessionsPage,
    BatchSessionsQuery,
    BatchStateName,
    BatchStateRequest,
    ReleaseRequest,
    ReleaseResult,
)
from searchtrail.models.metrics import (
    GroupBy,
    Interleaving,
    MetricComparison,
    MetricsGroup,
    MetricsGroups,
    MetricsQuery,
    MetricsSummary,
    MetricValues,
    QueryLists,
    QueryMetrics,
    QuerySession,
    RankerComparison,
    ResultOutcome,
    TimeToFirstInteraction,
)
from searchtrail.models.privacy import PruneSummary, UserDeletion, UserIdRequest
from searchtrail.models.queue import (
    AckRequest,
    ClaimRequest,
    ClaimResult,
    QueueCounts,
    QueueEntry,
    QueueStateName,
)
from searchtrail.models.sessions import (
    NewSessionEvent,
    PushResult,
    SearchResultItem,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    SessionGetQuery,
    SessionIdRequest,
    ShownResult,
    StoredEvent,
    decode_events_cursor,
    encode_events_cursor,
)

__all__ = [
    "AckRequest",
    "BatchIdRequest",
    "BatchInfo",
    "BatchList",
    "BatchSessionsPage",
    "BatchSessionsQuery",
    "BatchStateName",
    "BatchStateRequest",
    "ClaimRequest",
    "ClaimResult",
    "GroupBy",
    "Interleaving",
    "MetricComparison",
    "MetricValues",
    "MetricsGroup",
    "MetricsGroups",
    "MetricsQuery",
    "MetricsSummary",
    "NewSessionEvent",
    "NonNegativeInt64",
    "PositiveInt64",
    "PruneSummary",
    "PushResult",
    "QueryLists",
    "QueryMetrics",
    "QuerySession",
    "QueueCounts",
    "QueueEntry",
    "QueueStateName",
    "RankerComparison",
    "ReleaseRequest",
    "ReleaseResult",
    "ResultOutcome",
    "SearchResultItem",
    "Session",
    "SessionAddEventsRequest",
    "SessionCreateRequest",
    "SessionGetQuery",
    "SessionIdRequest",
    "ShownResult",
    "StoredEvent",
    "TimeToFirstInteraction",
    "UserDeletion",
    "UserIdRequest",
    "decode_events_cursor",
    "encode_events_cursor",
    "parse",
    "parse_json",
]
