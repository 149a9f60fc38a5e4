"""What every part of ``Clickstream`` shares: its settings, its storage, its id checks."""

from __future__ import annotations

from searchtrail.limits import Limits
from searchtrail.models import BatchIdRequest, SessionIdRequest, parse
from searchtrail.pseudonyms import Pseudonymiser
from searchtrail.settings import Settings
from searchtrail.storage import Storage
from searchtrail.timestamps import TimeWindow

__all__ = ["ServiceBase"]


class ServiceBase:
    settings: Settings
    limits: Limits
    window: TimeWindow
    storage: Storage
    pseudonyms: Pseudonymiser

    def _session_id(self, session_id: str) -> str:
        return parse(SessionIdRequest, {"session_id": session_id}, self.limits).session_id

    def _batch_id(self, batch_id: int) -> int:
        return parse(BatchIdRequest, {"batch_id": batch_id}, self.limits).batch_id
