"""The Parquet lake: sessions and events as hive-partitioned Parquet, exported incrementally.

Layout (docs/lake.md)::

    LAKE/_searchtrail_lake.json                        format, watermark, pending range, counts
    LAKE/sessions/date=YYYY-MM-DD/part-FROM-TO.parquet  by the session's created_at_ms (UTC)
    LAKE/events/date=YYYY-MM-DD/part-FROM-TO.parquet    by the event's created_at_ms (UTC)
    LAKE/batches/part.parquet                           the whole batches table, rewritten

Columns and types are the full dump's (``dump._arrow_schema``): every column of the
table, JSON as JSON text, events with their session's ``session_id``. ``FROM-TO`` is the
id range (session_number, event id) of the step that wrote the file, zero-padded.

A run fixes a horizon (``Transfer.settled_top``: no row at or below it can commit later),
then exports the ids above the watermark up to it (a *step*), read in time order so one
date's file is written at a time. A step writes every file under a ``_``-prefixed
temporary name (readers skip those), records its ranges and files as *pending* in the
lake's JSON, renames the files, then moves the watermark and clears *pending*. A run
that finds a step pending completes it first: renames what is left, or writes the same
ranges again under the same names when a file is missing. So a crash anywhere leaves no
half file visible, and the rerun no duplicate row.

Test hook: ``SEARCHTRAIL_LAKE_TEST_PAUSE_S`` (seconds, default none) sleeps after each
rename, so a test can kill the process between two renames (tests/test_lake.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import BaseModel, Field
from sqlalchemy import Table
from tqdm import tqdm

from searchtrail.errors import BadRequest
from searchtrail.storage.api import Transfer as Store
from searchtrail.storage.sql.schema import batches, events, sessions
from searchtrail.transfer.dump import PAGE_SIZE, _columns, _TableWriter, read_versioned

__all__ = ["LAKE_FORMAT", "LAKE_VERSION", "STATE_FILE", "LakeSummary", "export_lake"]

LAKE_FORMAT = "searchtrail-lake"
LAKE_VERSION = 1
STATE_FILE = "_searchtrail_lake.json"
LOCK_FILE = "_searchtrail_lake.lock"
PAUSE_ENV = "SEARCHTRAIL_LAKE_TEST_PAUSE_S"
ID_WIDTH = 12  # digits of FROM and TO; larger ids are written whole
DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)
# Each table's id column in the watermark; events are settled first (see _horizon).
WATERMARK = {"events": "event_id", "sessions": "session_number"}
PARTITIONED: tuple[Table, ...] = (sessions, events)


class LakeSummary(BaseModel):
    """What one ``export --lake`` run wrote."""

    lake: str
    files: int = Field(description="Parquet files made visible (batches' included).")
    sessions: int
    events: int
    batches: int = Field(description="Rows of batches/part.parquet when it was rewritten.")
    watermark: dict[str, int]
    completed_pending: bool = Field(description="A crashed run's step was completed first.")
    message: str


class _Run:
    """One run over one lake directory: its state file, and what the run has done."""

    def __init__(self, store: Store, lake: Path, progress: bool) -> None:
        from searchtrail.storage.sql.migrate import head_revision

        self.store = store
        self.lake = lake
        self.progress = progress
        self.files = 0
        self.rows = {"sessions": 0, "events": 0}
        self.revision = head_revision()
        self.columns = {t.name: _columns(t) for t in (*PARTITIONED, batches)}
        self.pause = float(os.environ.get(PAUSE_ENV) or 0)
        self.state = self._load()

    # -- the state file ----------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        path = self.lake / STATE_FILE
        if not path.exists():
            return {
                "format": LAKE_FORMAT,
                "version": LAKE_VERSION,
                "schema_revision": self.revision,
                "columns": self.columns,
                "watermark": dict.fromkeys(WATERMARK.values(), 0),
                "pending": None,
                "runs": 0,
                "files": 0,
                "rows": {"sessions": 0, "events": 0},
            }
        state = read_versioned(path, LAKE_FORMAT, LAKE_VERSION, "lake")
        # Files of other columns in one dataset would not read as one table: refused, not
        # mixed (a schema revision that adds a column needs a new lake, docs/lake.md).
        if state.get("columns") != self.columns:
            raise BadRequest(
                f"{path}: the lake holds other columns than this searchtrail writes "
                f"(lake schema revision {state.get('schema_revision')!r}, here "
                f"{self.revision!r}); export into a new lake directory"
            )
        return state

    def save(self) -> None:
        """Write the state whole: a crash leaves the old file or the new one."""
        self.state["updated_at"] = _iso_now()
        path = self.lake / STATE_FILE
        temporary = self.lake / f".{STATE_FILE}.tmp"
        with temporary.open("w") as f:
            f.write(json.dumps(self.state, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)

    @property
    def watermark(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.state["watermark"].items()}

    # -- a step: write, record as pending, rename, advance -----------------------------

    def step(self, top: dict[str, int]) -> bool:
        """Export the ids above the watermark up to ``top`` (a table's own); False when
        nothing was above."""
        mark = self.watermark
        ranges: dict[str, list[int]] = {}
        renames: list[list[str]] = []
        counts: dict[str, int] = {}
        for table in PARTITIONED:
            low, high = mark[WATERMARK[table.name]], top[table.name]
            if high <= low:
                continue
            written, rows = self._write_range(table, low + 1, high)
            ranges[table.name] = [low + 1, high]
            renames += written
            counts[table.name] = rows
        if not ranges:
            return False
        self.state["pending"] = {"ranges": ranges, "rows": counts, "files": renames}
        self.save()
        self._finish_pending()
        return True

    def _finish_pending(self) -> None:
        """Rename the pending step's files and move the watermark past its ranges."""
        pending = self.state["pending"]
        for temporary, final in pending["files"]:
            os.replace(self.lake / temporary, self.lake / final)
            self.after_rename()
        for name, (_, to) in pending["ranges"].items():
            self.state["watermark"][WATERMARK[name]] = to
        for name, rows in pending["rows"].items():
            self.rows[name] += rows
            self.state["rows"][name] += rows
        self.files += len(pending["files"])
        self.state["files"] += len(pending["files"])
        self.state["pending"] = None
        self.save()

    def after_rename(self) -> None:
        """The test hook's pause (``PAUSE_ENV``), between two renames of a step."""
        if self.pause:
            time.sleep(self.pause)

    def complete_pending(self) -> bool:
        """Complete a crashed run's step: the same ranges, into the same file names."""
        pending = self.state.get("pending")
        if not pending:
            return False
        if not all(
            (self.lake / temporary).is_file() or (self.lake / final).is_file()
            for temporary, final in pending["files"]
        ):
            # A file is gone under both names: write the step's ranges again (the same
            # names, so a file already renamed is overwritten, never doubled).
            pending["files"] = []
            for name, (low, to) in pending["ranges"].items():
                table = sessions if name == "sessions" else events
                written, pending["rows"][name] = self._write_range(table, low, to)
                pending["files"] += written
            self.save()
        else:
            pending["files"] = [
                [t, f] for t, f in pending["files"] if (self.lake / t).is_file()
            ] + [[f, f] for t, f in pending["files"] if not (self.lake / t).is_file()]
        self._finish_pending()
        return True

    def _write_range(self, table: Table, low: int, high: int) -> tuple[list[list[str]], int]:
        """Write ``table``'s rows with ids ``low``..``high`` into temporary files, one per
        date: ``([temporary, final] names, rows)``.

        The rows come in time order (``Transfer.rows_by_time``), so each date's rows come
        together: one file is open at a time, holding at most a row group, however many
        dates the range spans and whatever order their ids are in.
        """
        done: list[_TableWriter] = []
        writer: _TableWriter | None = None
        day = None
        rows = 0
        try:
            with (
                self.store.rows_by_time(table, low, high) as pages,
                tqdm(
                    unit="row", desc=table.name, disable=not self.progress, file=sys.stderr
                ) as bar,
            ):
                for page in pages:
                    start = 0
                    for i, row in enumerate(page):
                        if row["created_at_ms"] // DAY_MS != day:
                            if writer is not None:
                                writer.write(page[start:i])
                                writer.finish()
                                done.append(writer)
                            start = i
                            day = row["created_at_ms"] // DAY_MS
                            name = (_EPOCH + timedelta(days=day)).isoformat()
                            writer = self._writer(table, name, low)
                    if writer is not None:
                        writer.write(page[start:])
                    rows += len(page)
                    bar.update(len(page))
            if writer is not None:
                writer.finish()
                done.append(writer)
        except BaseException:
            for w in [*done, *([writer] if writer is not None else [])]:
                w.abort()
            raise
        renames = [
            [self._relative(w.partial), self._relative(w.partial.with_name(_part(low, high)))]
            for w in done
        ]
        if len({r[1] for r in renames}) != len(renames):  # a date twice: a file overwritten
            raise RuntimeError(f"{table.name} {low}-{high}: rows came out of time order")
        return renames, rows

    def _writer(self, table: Table, day: str, low: int) -> _TableWriter:
        directory = self.lake / table.name / f"date={day}"
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f"_part-{low:0{ID_WIDTH}d}.parquet.tmp"
        return _TableWriter(temporary, table, "parquet", partial=temporary)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.lake).as_posix()

    # -- batches, and what earlier crashes left -----------------------------------------

    def batches(self) -> int | None:
        """Rewrite batches/part.parquet when the table differs from it: its rows, or None."""
        directory = self.lake / "batches"
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / "part.parquet"
        temporary = directory / "_part.parquet.tmp"
        writer = _TableWriter(temporary, batches, "parquet", partial=temporary)
        try:
            with self.store.dump_reader() as page:
                after = 0
                while found := page(batches, after, PAGE_SIZE):
                    writer.write(found)
                    after = found[-1]["batch_id"]
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        if final.is_file() and pq.read_table(final).equals(pq.read_table(temporary)):
            temporary.unlink()
            return None
        os.replace(temporary, final)
        self.files += 1
        return writer.rows

    def sweep(self) -> None:
        """Remove temporary files no pending step lists: a run that died before recording
        its step left them, and the step will be written again."""
        pending = self.state.get("pending") or {}
        listed = {t for t, _ in pending.get("files", [])}
        for path in _temporaries(self.lake):
            if self._relative(path) not in listed:
                path.unlink(missing_ok=True)


def export_lake(store: Store, lake: str | Path, *, progress: bool | None = None) -> LakeSummary:
    """Export the sessions and events above the lake's watermark into ``lake`` (created)."""
    directory = Path(lake)
    if directory.exists() and not directory.is_dir():
        raise BadRequest(f"{directory} is a file; export --lake writes a directory")
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory):
        return _export(store, directory, sys.stderr.isatty() if progress is None else progress)


@contextmanager
def _exclusive(lake: Path) -> Iterator[None]:
    """One run at a time in a lake: two would write the same temporary names and each
    move the watermark past the other's step. The lock ends with the process."""
    with (lake / LOCK_FILE).open("a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadRequest(f"{lake}: another export --lake is running into it") from None
        yield


def _export(store: Store, directory: Path, progress: bool) -> LakeSummary:
    run = _Run(store, directory, progress)
    run.sweep()
    completed = run.complete_pending()
    top = _horizon(store)
    run.step(top)
    batch_rows = run.batches()
    if not run.files:
        message = "nothing new: the lake is up to date, no file written"
    else:
        run.state["runs"] += 1
        run.save()
        message = (
            f"{run.files} files: {run.rows['sessions']} sessions, {run.rows['events']} events"
            + (", batches rewritten" if batch_rows is not None else "")
            + (" (a crashed run's step completed first)" if completed else "")
        )
    return LakeSummary(
        lake=str(directory),
        files=run.files,
        sessions=run.rows["sessions"],
        events=run.rows["events"],
        batches=batch_rows or 0,
        watermark=run.watermark,
        completed_pending=completed,
        message=message,
    )


def _horizon(store: Store) -> dict[str, int]:
    """Each table's settled top, events first: every event at or below its top committed
    before sessions' top was read, and its session before it, so every exported event's
    session is exported by the same run. The other order could export an event whose
    session registered between the two reads, and the session only a run later."""
    top = {"events": store.settled_top(events)}
    top["sessions"] = store.settled_top(sessions)
    return top


def _part(low: int, to: int) -> str:
    return f"part-{low:0{ID_WIDTH}d}-{to:0{ID_WIDTH}d}.parquet"


def _temporaries(lake: Path) -> Iterator[Path]:
    for name in (*(t.name for t in PARTITIONED), "batches"):
        top = lake / name
        if top.is_dir():
            yield from (p for p in top.rglob("_part*.tmp") if p.is_file())


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
