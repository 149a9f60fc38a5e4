"""Erasing a user, answering an access request, retention, and pseudonymous user ids.

The user ids a session stores pass through ``pseudonyms`` (``searchtrail.pseudonyms``):
with ``user_id_key`` set they are stored as keyed pseudonyms, and an erase or export by
raw id looks for every value that id may be stored as (docs/privacy.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pydantic_core

from searchtrail.errors import FieldError, InvalidInput
from searchtrail.models import PruneSummary, UserDeletion, UserIdRequest, parse
from searchtrail.pseudonyms import Pseudonymiser
from searchtrail.service._base import ServiceBase
from searchtrail.timestamps import now_ms

__all__ = ["DAY_MS", "PrivacyOperations", "pseudonymiser"]

DAY_MS = 86_400_000
# Sessions of a user read per page of an export.
_EXPORT_PAGE = 100
# What a session's line of an export leaves out: paging fields of a GET (every event is
# in the line) and what only an answer to a create carries.
_NOT_EXPORTED = {"has_more_events", "events_cursor", "unknown_fields"}


def pseudonymiser(key: Any, previous: Sequence[Any]) -> Pseudonymiser:
    """The pseudonymiser of the settings' ``user_id_key`` and ``user_id_previous_keys``
    (``SecretStr``s)."""
    return Pseudonymiser(
        None if key is None else key.get_secret_value(),
        [k.get_secret_value() for k in previous],
    )


class PrivacyOperations(ServiceBase):
    def _user_id(self, user_id: str) -> str:
        return parse(UserIdRequest, {"user_id": user_id}, self.limits).user_id

    def delete_user(self, user_id: str, *, path: str = "library") -> UserDeletion:
        """Erase a user: every session stored under their id (raw, or a pseudonym under
        the current or a previous key), its events and queue entries, in one transaction.
        An audit row records when, ``path`` and the counts, never the id. Again: zeros."""
        uid = self._user_id(user_id)
        removed = self.storage.privacy.erase(self.pseudonyms.candidates(uid), path, now_ms())
        return UserDeletion(
            user_id=uid,
            sessions=removed.sessions,
            events=removed.events,
            queue_entries=removed.queue_entries,
        )

    def iter_user(self, user_id: str) -> Iterator[dict[str, Any]]:
        """Everything held about a user: each session (as GET /session answers it, with
        every event) and its improvement-queue entries, oldest session first."""
        candidates = self.pseudonyms.candidates(self._user_id(user_id))
        after = 0
        while True:
            page = self.storage.privacy.user_sessions(candidates, after, _EXPORT_PAGE)
            for _, record in page:
                line = record.session.model_dump(mode="json", exclude=_NOT_EXPORTED)
                line["queue_entries"] = record.queue_entries
                yield line
            if len(page) < _EXPORT_PAGE:
                return
            after = page[-1][0]

    def export_user(self, user_id: str, out: str | Path | IO[str] | None = None) -> int:
        """Write ``iter_user`` as JSON Lines to ``out`` (a path, an open text file, or
        standard output); a path is written whole or not at all. Answers the sessions."""
        if out is None or not isinstance(out, str | Path):
            return _write_lines(self.iter_user(user_id), out or sys.stdout)
        path = Path(out)
        partial = path.with_name(path.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8") as f:
                written = _write_lines(self.iter_user(user_id), f)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return written

    def prune(
        self,
        *,
        dry_run: bool = False,
        retention_days: float | None = None,
        path: str = "library",
        max_chunks: int | None = None,
    ) -> PruneSummary:
        """Remove the sessions older than ``retention_days`` (default: the setting) with
        their events, queue entries and stats, keeping unarchived batches' sessions under
        ``retention_keep_unarchived``; ``dry_run``: count what would go."""
        days = self.settings.retention_days if retention_days is None else retention_days
        if days is None or days <= 0:
            raise InvalidInput(
                [FieldError(("retention_days",), "set retention_days (days, above 0) to prune")]
            )
        now = now_ms()
        cutoff = now - int(days * DAY_MS)
        keep = self.settings.retention_keep_unarchived
        result = self.storage.privacy.prune(cutoff, keep, dry_run, path, now, max_chunks)
        return PruneSummary(
            dry_run=dry_run,
            retention_days=days,
            cutoff_ms=cutoff,
            sessions=result.removed.sessions,
            events=result.removed.events,
            queue_entries=result.removed.queue_entries,
            chunks=result.chunks,
            more=result.more,
        )

    def bulk_register(
        self, rows: Sequence[Mapping[str, Any]], event_rows: Sequence[dict[str, Any]]
    ) -> None:
        """Load sessions (``Sessions.bulk_register`` rows) and their events unchecked, in one
        transaction, with their user ids stored as every other path stores them."""
        stored = [{**r, "user_id": self.pseudonyms.stored(r.get("user_id"))} for r in rows]
        self.storage.sessions.bulk_register(stored, event_rows, now_ms())


def _write_lines(lines: Iterator[dict[str, Any]], out: IO[str]) -> int:
    n = 0
    for line in lines:
        out.write(pydantic_core.to_json(line).decode() + "\n")
        n += 1
    out.flush()
    return n
