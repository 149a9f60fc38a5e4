"""Batches (internal): release, states and pages of a batch's sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from searchtrail.errors import BadRequest
from searchtrail.models import (
    BatchInfo,
    BatchSessionsPage,
    BatchSessionsQuery,
    BatchStateName,
    BatchStateRequest,
    ReleaseRequest,
    ReleaseResult,
    Session,
    parse,
)
from searchtrail.service._base import ServiceBase
from searchtrail.storage import BatchSizes, BatchState
from searchtrail.timestamps import now_ms

__all__ = ["BATCH_TRANSITIONS", "BatchOperations"]

# Where a batch may go from each state by set_batch_state: forward (skipping allowed), and
# fine_tuning back to released when a run failed. collecting leaves only by release_batch.
BATCH_TRANSITIONS: dict[str, tuple[str, ...]] = {
    BatchState.COLLECTING: (),
    BatchState.RELEASED: (BatchState.FINE_TUNING, BatchState.ARCHIVING, BatchState.ARCHIVED),
    BatchState.FINE_TUNING: (BatchState.RELEASED, BatchState.ARCHIVING, BatchState.ARCHIVED),
    BatchState.ARCHIVING: (BatchState.ARCHIVED,),
    BatchState.ARCHIVED: (),
}


def _check_transition(batch_id: int, target: str) -> Callable[[str], None]:
    def check(current: str) -> None:
        if current == target or target in BATCH_TRANSITIONS[current]:
            return
        if target == BatchState.RELEASED and current == BatchState.COLLECTING:
            raise BadRequest(
                f"Batch {batch_id} is collecting; release it with POST /batch/release "
                "(release_batch), which takes an idempotency key"
            )
        allowed = ", ".join(BATCH_TRANSITIONS[current]) or "no other state"
        raise BadRequest(
            f"Batch {batch_id} cannot go from {current} to {target}; from {current} it can go "
            f"to {allowed}"
        )

    return check


class BatchOperations(ServiceBase):
    def release_batch(self, request: ReleaseRequest | Mapping[str, Any] | str) -> ReleaseResult:
        """Close the collecting batch; the same ``release_id`` again answers the same batch."""
        data = {"release_id": request} if isinstance(request, str) else request
        req = parse(ReleaseRequest, data, self.limits)
        return self.storage.batches.release(req.release_id, now_ms())

    def batch_sizes(self) -> BatchSizes:
        """Batches by state and the collecting batch's sessions: cheap, for /metrics."""
        return self.storage.batches.sizes()

    def list_batches(self, state: BatchStateName | None = None) -> list[BatchInfo]:
        """Every batch, oldest first, with its session and event counts."""
        return self.storage.batches.list(state)

    def get_batch(self, batch_id: int) -> BatchInfo:
        return self.storage.batches.get(self._batch_id(batch_id))

    def set_batch_state(self, batch_id: int, state: BatchStateName) -> BatchInfo:
        """Move a batch along its life (see ``BATCH_TRANSITIONS``); the same state is a no-op."""
        req = parse(BatchStateRequest, {"batch_id": batch_id, "state": state}, self.limits)
        return self.storage.batches.set_state(
            req.batch_id, req.state, _check_transition(req.batch_id, req.state), now_ms()
        )

    def batch_sessions(
        self,
        batch_id: int,
        after_number: int = 0,
        limit: int | None = None,
        events_limit: int | None = None,
    ) -> BatchSessionsPage:
        """One page of a batch's sessions after ``after_number``, in ``session_number`` order.

        ``limit`` defaults to 10 and ``events_limit`` to 100, as the contract says, or to
        the configured maximum when that is lower.
        """
        req = parse(
            BatchSessionsQuery,
            {
                "batch_id": batch_id,
                "after_number": after_number,
                "limit": limit,
                "events_limit": events_limit,
            },
            self.limits,
        )
        # The validators fill both defaults; the asserts tell mypy.
        assert req.limit is not None
        assert req.events_limit is not None
        return self.storage.batches.sessions_page(
            req.batch_id, req.after_number, req.limit, req.events_limit
        )

    def iter_batch_sessions(
        self, batch_id: int, page_size: int | None = None, events_limit: int | None = None
    ) -> Iterator[Session]:
        """Every session of a batch, page by page, so memory holds one page at a time."""
        after = 0
        size = self.limits.max_page_size if page_size is None else page_size
        while True:
            page = self.batch_sessions(batch_id, after, size, events_limit)
            if page.last_number is None:
                return
            yield from page.sessions
            after = page.last_number
