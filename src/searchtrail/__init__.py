"""searchtrail: record how people search, and turn it into metrics and training data.

The names below are imported on first use (PEP 562), so that ``from searchtrail import
Tracker`` loads the client alone: no web framework, database toolkit or Parquet library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
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

# Each exported name and the module that defines it; kept equal to the imports above
# (tests/test_package_surface.py checks both against __all__).
_SOURCES = {
    "AsyncClient": "searchtrail.client",
    "AsyncTracker": "searchtrail.client",
    "Client": "searchtrail.client",
    "Tracker": "searchtrail.client",
    "Conflict": "searchtrail.errors",
    "InvalidInput": "searchtrail.errors",
    "NotFound": "searchtrail.errors",
    "SearchtrailError": "searchtrail.errors",
    "SessionConflict": "searchtrail.errors",
    "SessionFull": "searchtrail.errors",
    "SessionNotFound": "searchtrail.errors",
    "TimestampOutOfWindow": "searchtrail.errors",
    "Limits": "searchtrail.limits",
    "NewSessionEvent": "searchtrail.models",
    "PushResult": "searchtrail.models",
    "SearchResultItem": "searchtrail.models",
    "Session": "searchtrail.models",
    "SessionAddEventsRequest": "searchtrail.models",
    "SessionCreateRequest": "searchtrail.models",
    "StoredEvent": "searchtrail.models",
    "Clickstream": "searchtrail.service",
    "Settings": "searchtrail.settings",
}

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


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups find it without calling here again
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
