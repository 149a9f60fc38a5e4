"""The improvement queue (internal): sessions queued for the improvement worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from searchtrail.models import AckRequest, ClaimRequest, QueueCounts, QueueEntry, parse
from searchtrail.service._base import ServiceBase
from searchtrail.timestamps import now_ms

__all__ = ["QueueOperations"]


class QueueOperations(ServiceBase):
    @property
    def _lease_ms(self) -> int:
        return self.settings.improvement_lease_sec * 1000

    def use_for_improvement(self, session_id: str) -> QueueEntry:
        """Queue a session for the improvement worker; queued already, the open entry answers."""
        sid = self._session_id(session_id)
        return self.storage.queue.enqueue(sid, now_ms(), self._lease_ms)

    def claim_improvements(
        self, request: ClaimRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> list[QueueEntry]:
        """Hand pending entries to one worker; each is handed out once per lease."""
        req = parse(ClaimRequest, request if request is not None else fields, self.limits)
        return self.storage.queue.claim(
            req.worker,
            req.limit,
            now_ms(),
            self._lease_ms,
            self.settings.improvement_max_attempts,
        )

    def ack_improvement(
        self, request: AckRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> QueueEntry:
        """Mark a claimed entry done or failed; ``attempt`` proves the claim is still ours."""
        req = parse(AckRequest, request if request is not None else fields, self.limits)
        return self.storage.queue.finish(
            req.entry_id, req.attempt, req.status, req.error, now_ms(), self._lease_ms
        )

    def improvement_counts(self) -> QueueCounts:
        return self.storage.queue.counts()
