"""Batches, improvement-queue entries and API keys: the import's small tables.

Batches: a kept ``batch_id`` is the same batch when its creation time is; an id-less
source's batch is matched by its release id (or, never released, its creation time and
state). Exactly one batch collects: an imported collecting batch becomes the target's
when it has none, else its sessions join the target's (``merged``). Queue entries and
keys are matched by their kept id, else by a natural key; a taken key with different
content is a conflict, never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from pydantic import TypeAdapter

from searchtrail.storage.api import BatchState, ImportWriter
from searchtrail.storage.sql.schema import api_keys, batches, improvement_queue
from searchtrail.transfer._run import OTHER_CHUNK, RunState, chunks, ms
from searchtrail.transfer._validation import BATCHES, KEYS, QUEUE, _BatchIn, validate
from searchtrail.transfer.records import BatchRecord

__all__ = ["OtherTables"]


class OtherTables(RunState):
    # -- batches -----------------------------------------------------------------------

    def batches(self) -> None:
        for chunk in chunks(self.source.batches(), OTHER_CHUNK):
            records: list[BatchRecord] = self.split("batches", chunk)
            data = [
                {
                    "batch_id": r.batch_id,
                    "state": r.state,
                    "release_id": r.release_id,
                    "created_at": r.created_at_ms,
                    "released_at": r.released_at_ms,
                    "updated_at": r.updated_at_ms,
                }
                for r in records
            ]
            valid, bad = validate(BATCHES, data, self.limits)
            for i, why in bad.items():
                self._refuse("batches", records[i], why)
                self.batch_refused[records[i].key] = f"batch {records[i].key!r} was rejected"
            good = [r for i, r in enumerate(records) if i not in bad]
            outcome = self.store.import_transaction(partial(self._batch_chunk, valid=valid))
            for record, (kind, target, why) in zip(good, outcome, strict=True):
                counts = self.counts["batches"]
                if kind == "conflict":
                    self._refuse("batches", record, why, conflict=True)
                    self.batch_refused[record.key] = f"batch {record.key!r} is in conflict"
                    continue
                setattr(counts, kind, getattr(counts, kind) + 1)
                self.batch_map[record.key] = target

    def _batch_chunk(self, w: ImportWriter, valid: list[_BatchIn]) -> list[tuple[str, int, str]]:
        """Each batch's fate: (new | already_there | merged | conflict, target id, why)."""
        out: list[tuple[str, int, str]] = []
        for b in valid:
            created = ms(b.created_at, self.now)
            collecting = b.state == BatchState.COLLECTING.value
            row: dict[str, Any] = {
                "state": b.state,
                "collecting": 1 if collecting else None,
                "release_id": b.release_id,
                "created_at_ms": created,
                "released_at_ms": b.released_at,
                "updated_at_ms": ms(b.updated_at, created),
            }
            if b.batch_id is not None:
                row = {"batch_id": b.batch_id, **row}
            out.append(self._one_batch(w, b, row, collecting, created))
        w.reset_sequence(batches)
        return out

    def _one_batch(
        self, w: ImportWriter, b: _BatchIn, row: dict[str, Any], collecting: bool, created: int
    ) -> tuple[str, int, str]:
        if b.batch_id is not None:
            found = w.rows_where(batches, "batch_id", [b.batch_id])
            if found:
                if found[0]["created_at_ms"] == created:
                    return "already_there", b.batch_id, ""
                return "conflict", 0, f"batch_id: {b.batch_id} is taken by another batch"
        else:
            same = w.batch_without_id(b.release_id, created, b.state)
            if same is not None and not collecting:
                return "already_there", same, ""
        if collecting:
            current = w.collecting_batch()
            if current is not None:
                return "merged", current, ""
        if inserted := w.insert(batches, [row], ("batch_id",)):
            ((batch_id,),) = inserted
            return "new", int(batch_id), ""
        if collecting and (current := w.collecting_batch()) is not None:
            return "merged", current, ""  # one opened meanwhile
        taken = w.rows_where(batches, "release_id", [b.release_id]) if b.release_id else []
        if taken:
            return "conflict", 0, f"release_id: {b.release_id!r} is taken by another batch"
        return "conflict", 0, "batch_id: taken by another batch"

    # -- the improvement queue and API keys --------------------------------------------

    def queue(self) -> None:
        self._by_id(
            "improvement_queue",
            self.source.queue(),
            QUEUE,
            lambda r: {
                "entry_id": r.entry_id,
                "session_id": r.session_id,
                "state": r.state,
                "attempts": r.attempts,
                "enqueued_at": r.enqueued_at_ms,
                "claimed_at": r.claimed_at_ms,
                "claimed_by": r.claimed_by,
                "finished_at": r.finished_at_ms,
                "error": r.error,
            },
            lambda q: {
                "entry_id": q.entry_id,
                "session_id": q.session_id,
                "state": q.state,
                "attempts": q.attempts,
                "enqueued_at_ms": ms(q.enqueued_at, self.now),
                "claimed_at_ms": q.claimed_at,
                "claimed_by": q.claimed_by,
                "finished_at_ms": q.finished_at,
                "error": q.error,
            },
            natural=("session_id", "enqueued_at_ms"),
        )

    def keys(self) -> None:
        self._by_id(
            "api_keys",
            self.source.keys(),
            KEYS,
            lambda r: {
                "key_id": r.key_id,
                "name": r.name,
                "prefix": r.prefix,
                "key_hash": r.key_hash,
                "scopes": r.scopes,
                "created_at": r.created_at_ms,
                "revoked_at": r.revoked_at_ms,
            },
            lambda k: {
                "key_id": k.key_id,
                "name": k.name,
                "prefix": k.prefix,
                "key_hash": k.key_hash,
                "scopes": k.scopes,
                "created_at_ms": ms(k.created_at, self.now),
                "revoked_at_ms": k.revoked_at,
            },
            natural=("prefix",),
        )

    def _by_id(
        self,
        name: str,
        items: Iterable[Any],
        adapter: TypeAdapter[list[Any]],
        to_input: Callable[[Any], dict[str, Any]],
        to_row: Callable[[Any], dict[str, Any]],
        natural: tuple[str, ...],
    ) -> None:
        """Queue entries and keys: matched by their kept id, else by a natural key."""
        table = improvement_queue if name == "improvement_queue" else api_keys
        (pk,) = table.primary_key.columns
        for chunk in chunks(items, OTHER_CHUNK):
            records = self.split(name, chunk)
            valid, bad = validate(adapter, [to_input(r) for r in records], self.limits)
            for i, why in bad.items():
                self._refuse(name, records[i], why)
            good = [r for i, r in enumerate(records) if i not in bad]
            rows = []
            for v in valid:
                row = to_row(v)
                if row[pk.name] is None:
                    del row[pk.name]
                rows.append(row)

            def work(w: ImportWriter, rows: list[dict[str, Any]] = rows) -> list[tuple[str, str]]:
                out: list[tuple[str, str]] = []
                for row in rows:
                    if pk.name in row:
                        found = w.rows_where(table, pk.name, [row[pk.name]])
                    else:
                        found = [
                            s
                            for s in w.rows_where(table, natural[0], [row[natural[0]]])
                            if all(s[c] == row[c] for c in natural)
                        ]
                    if found:
                        differ = [c for c in row if found[0][c] != row[c]]
                        if differ:
                            what = f"{pk.name} {found[0][pk.name]}"
                            out.append(
                                (
                                    "conflict",
                                    f"{differ[0]}: {what} is stored with different "
                                    f"{', '.join(differ)}; the stored row is kept",
                                )
                            )
                        else:
                            out.append(("already_there", ""))
                    elif w.insert(table, [row], (pk.name,)):
                        out.append(("new", ""))
                    else:
                        out.append(("conflict", f"{natural[0]}: {row[natural[0]]!r} is taken"))
                w.reset_sequence(table)
                return out

            outcome = self.store.import_transaction(work)
            counts = self.counts[name]
            for record, (kind, why) in zip(good, outcome, strict=True):
                if kind == "conflict":
                    self._refuse(name, record, why, conflict=True)
                elif kind == "new":
                    counts.new += 1
                else:
                    counts.already_there += 1
