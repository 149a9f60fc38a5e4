"""searchtrail: record how people search, and turn it into metrics and training data."""

__version__ = "0.1.0"

from searchtrail.client import AsyncClient, AsyncTracker, Client, Tracker
from searchtrail.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SearchtrailError,
    SessionConflict,
    SessionFull,
    SessionNotFound,
    TimestampOutOfWindow,
)
from searchtrail.limits import Limits
from searchtrail.models import (
    NewSessionEvent,
    PushResult,
    SearchResultItem,
    Session,
    SessionAddEventsRequest,
    SessionCreateRequest,
    StoredEvent,
)
from searchtrail.service import Clickstream
from searchtrail.settings import Settings

__all__ = [
    "AsyncClient",
    "AsyncTracker",
    "Clickstream",
    "Client",
    "Conflict",
    "InvalidInput",
    "Limits",
    "NewSessionEvent",
    "NotFound",
    "PushResult",
    "SearchResultItem",
    "SearchtrailError",
    "Session",
    "SessionAddEventsRequest",
    "SessionConflict",
    "SessionCreateRequest",
    "SessionFull",
    "SessionNotFound",
    "Settings",
    "StoredEvent",
    "TimestampOutOfWindow",
    "Tracker",
    "__version__",
]
