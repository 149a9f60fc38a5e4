"""What the service tells an observer of the outcomes of registrations and pushes.

The HTTP layer installs one that counts for /metrics (``searchtrail.http.telemetry``); the
default observes nothing. Outcomes are reported where the service decides them, once
per request: a push's events are either stored, duplicates, or refused whole with one
reason, so ``stored + duplicate + refused`` is every event sent in a readable push.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from searchtrail.errors import (
    InvalidInput,
    SearchtrailError,
    SessionFull,
    SessionNotFound,
    TimestampOutOfWindow,
)

__all__ = ["Observer", "RefusalReason", "events_sent", "refusal_reason"]

RefusalReason = Literal["invalid", "unknown_session", "over_cap", "timestamp_window"]


class Observer:
    """Observes nothing; the HTTP layer's subclass counts."""

    def registered(self, created: bool, unknown_fields: int) -> None:
        """A registration answered: a new session (``created``) or a replay of one."""

    def pushed(self, stored: int, duplicates: int, unknown_fields: int) -> None:
        """A push answered: ``stored`` new events, ``duplicates`` already held."""

    def refused(self, reason: RefusalReason, events: int) -> None:
        """A push refused whole, for ``reason``: none of its ``events`` was stored."""


_REFUSALS: tuple[tuple[type[SearchtrailError], RefusalReason], ...] = (
    (TimestampOutOfWindow, "timestamp_window"),
    (SessionFull, "over_cap"),
    (SessionNotFound, "unknown_session"),
    (InvalidInput, "invalid"),
)


def refusal_reason(exc: SearchtrailError) -> RefusalReason | None:
    """Why a push was refused, or None for an error that is no refusal (a 503)."""
    return next((reason for cls, reason in _REFUSALS if isinstance(exc, cls)), None)


def events_sent(body: Any) -> int:
    """How many events a push that failed validation carried: the length of its
    ``events`` list when the body (JSON text, or the mapping given) has one, else 0.

    Read only on that error path, so valid pushes never parse twice.
    """
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            return 0
    events = body.get("events") if isinstance(body, dict) else getattr(body, "events", None)
    return len(events) if isinstance(events, list) else 0
