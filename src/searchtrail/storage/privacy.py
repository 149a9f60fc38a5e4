"""The ``Privacy`` protocol (erase a user, export a user's data, prune old sessions) and
the values it answers; ``searchtrail.storage.api`` re-exports them beside the other
protocols. Nothing here knows SQL: ``searchtrail.storage.sql.privacy`` implements it.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from searchtrail.models import Session

__all__ = ["Privacy", "PruneResult", "Removed", "UserRecord"]


@dataclass(frozen=True, slots=True)
class Removed:
    """What an erase or a prune removed (or, dry, would remove)."""

    sessions: int = 0
    events: int = 0
    queue_entries: int = 0

    def __add__(self, other: Removed) -> Removed:
        return Removed(
            self.sessions + other.sessions,
            self.events + other.events,
            self.queue_entries + other.queue_entries,
        )


@dataclass(frozen=True, slots=True)
class PruneResult:
    """A prune's outcome: what went (``dry_run``: what would go), in how many
    transactions (``chunks``), and whether it stopped at ``max_chunks`` with more to go."""

    cutoff_ms: int
    removed: Removed
    dry_run: bool
    chunks: int = 0
    more: bool = False


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A session of a user with every event, and its queue entries as stored."""

    session: Session
    queue_entries: builtins.list[dict[str, Any]]


class Privacy(Protocol):
    """Erasing a user and pruning old sessions, with their events, queue entries and
    derived stats (metrics stay exact of what remains). ``path`` (``http``, ``cli``,
    ``library``, ``background``) goes to the audit row; a user id never does."""

    def erase(self, user_ids: Sequence[str], path: str, now_ms: int) -> Removed:
        """Remove every session whose stored ``user_id`` is one of ``user_ids`` (a raw id
        and its pseudonyms), in one transaction."""

    def user_sessions(
        self, user_ids: Sequence[str], after_number: int, limit: int
    ) -> builtins.list[tuple[int, UserRecord]]:
        """A keyset page of the sessions of ``user_ids`` after ``after_number``, all events."""

    def prune(
        self,
        cutoff_ms: int,
        keep_unarchived: bool,
        dry_run: bool,
        path: str,
        now_ms: int,
        max_chunks: int | None = None,
    ) -> PruneResult:
        """Remove the sessions created before ``cutoff_ms`` (with ``keep_unarchived``, only
        those of batches in state ``archived``), in bounded transactions (at most
        ``max_chunks`` of them); ``dry_run``: count them and change nothing. Safe to run
        in several processes at once."""
