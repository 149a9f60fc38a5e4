"""Storage: the protocols the service talks to (``api``) and the factory that opens one.

``open_storage`` is the only way the service gets a storage; ``searchtrail.storage.sql``
is the backend it opens. See docs/architecture.md.
"""

from __future__ import annotations

from searchtrail.storage.api import (
    ApiKeys,
    Batches,
    BatchSizes,
    BatchState,
    ClickRow,
    EventRow,
    ImportWriter,
    ImprovementQueue,
    Metrics,
    MetricsScope,
    Outcome,
    Privacy,
    PruneResult,
    QueueState,
    Reads,
    Registration,
    Removed,
    SessionActions,
    SessionRow,
    Sessions,
    Storage,
    StorageOptions,
    Transfer,
    UserRecord,
)

__all__ = [
    "ApiKeys",
    "BatchSizes",
    "BatchState",
    "Batches",
    "ClickRow",
    "EventRow",
    "ImportWriter",
    "ImprovementQueue",
    "Metrics",
    "MetricsScope",
    "Outcome",
    "Privacy",
    "PruneResult",
    "QueueState",
    "Reads",
    "Registration",
    "Removed",
    "SessionActions",
    "SessionRow",
    "Sessions",
    "Storage",
    "StorageOptions",
    "Transfer",
    "UserRecord",
    "open_storage",
]


def open_storage(options: StorageOptions) -> Storage:
    """Open the storage ``options.url`` names (SQLite or PostgreSQL)."""
    from searchtrail.storage.sql.backend import SqlStorage

    return SqlStorage(
        options.url,
        busy_timeout_ms=options.busy_timeout_ms,
        synchronous=options.synchronous,
        pool_size=options.pool_size,
        writer_process=options.writer_process,
        max_events_per_session=options.max_events_per_session,
    )
