"""searchtrail's own full dump: every table, every column, ids included; and its reader.

A dump is a directory::

    manifest.json            format, version, schema revision, row counts, written at
    batches.FORMAT           one file per table (FORMAT: jsonl or parquet)
    sessions.FORMAT
    events.FORMAT            every column of events, plus its session's session_id
    improvement_queue.FORMAT
    api_keys.FORMAT          key hashes only: keys never exist in clear in a database

The columns are read from ``searchtrail.storage.sql.schema``'s tables, so a column added there is
dumped without a change here. JSONL holds one row per line, JSON columns as JSON values;
Parquet holds JSON columns as JSON text (a column of any JSON value has no Parquet type).
Each event carries ``session_id`` because an event must find its session in any target
database, where its ``session_number`` may belong to another session.

Tables are read in pages by primary key, in one snapshot (``Store.dump_reader``), and
each file is written under ``NAME.partial`` and renamed when complete; the manifest is
written last, so a directory with a manifest holds a whole dump.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pydantic_core
from pydantic import BaseModel, Field
from sqlalchemy import JSON, BigInteger, Boolean, Integer, Table
from tqdm import tqdm

from searchtrail.errors import BadRequest
from searchtrail.storage.api import Transfer as Store
from searchtrail.storage.sql.schema import api_keys, batches, events, improvement_queue, sessions
from searchtrail.transfer.records import (
    BatchRecord,
    EventRecord,
    ImportOptions,
    KeyRecord,
    QueueRecord,
    Reject,
    SessionRecord,
)

__all__ = [
    "DUMP_FORMAT",
    "DUMP_VERSION",
    "TABLES",
    "DumpFormat",
    "DumpSource",
    "DumpSummary",
    "export_all",
    "open_source",
    "read_versioned",
]

DumpFormat = Literal["jsonl", "parquet"]
DUMP_FORMAT = "searchtrail-dump"
DUMP_VERSION = 1
# In the order an import needs them: a session's batch before it, an event's session too.
TABLES: tuple[Table, ...] = (batches, sessions, events, improvement_queue, api_keys)
PAGE_SIZE = 5000
ROW_GROUP_SIZE = 50_000
# Beside each event: its session's natural key (see the module docstring).
EVENT_SESSION_ID = "session_id"


class DumpSummary(BaseModel):
    """What ``export --all`` wrote; the same counts are in ``manifest.json``."""

    out: str
    format: DumpFormat
    schema_revision: str
    rows: dict[str, int] = Field(description="Rows written per table.")
    files: dict[str, str] = Field(description="The file of each table.")


def _columns(table: Table) -> list[str]:
    names = [c.name for c in table.c]
    return [*names, EVENT_SESSION_ID] if table is events else names


def _json_columns(table: Table) -> set[str]:
    return {c.name for c in table.c if isinstance(c.type, JSON)}


def _arrow_schema(table: Table) -> pa.Schema:
    fields = []
    for c in table.c:
        if isinstance(c.type, JSON):
            kind = pa.string()  # JSON text
        elif isinstance(c.type, Boolean):
            kind = pa.bool_()
        elif isinstance(c.type, BigInteger | Integer):
            kind = pa.int64()
        else:
            kind = pa.string()
        fields.append(pa.field(c.name, kind, nullable=bool(c.nullable)))
    if table is events:
        fields.append(pa.field(EVENT_SESSION_ID, pa.string(), nullable=False))
    return pa.schema(fields)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class _TableWriter:
    """One table's file, under ``partial`` (``NAME.partial``) until ``close`` renames it."""

    def __init__(
        self, path: Path, table: Table, format: DumpFormat, partial: Path | None = None
    ) -> None:
        self.path = path
        self.partial = _partial(path) if partial is None else partial
        self.rows = 0
        self._json = _json_columns(table)
        self._file = None
        self._writer: pq.ParquetWriter | None = None
        self._schema = _arrow_schema(table)
        self._buffer: dict[str, list[Any]] = {n: [] for n in self._schema.names}
        if format == "jsonl":
            self._file = self.partial.open("wb")
        else:
            self._writer = pq.ParquetWriter(self.partial, self._schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self._file is not None:
            self._file.write(b"".join(pydantic_core.to_json(r) + b"\n" for r in rows))
        else:
            for r in rows:
                for name, values in self._buffer.items():
                    value = r[name]
                    if name in self._json and value is not None:
                        value = pydantic_core.to_json(value).decode()
                    values.append(value)
            if len(self._buffer[self._schema.names[0]]) >= ROW_GROUP_SIZE:
                self._flush()
        self.rows += len(rows)

    def _flush(self) -> None:
        if self._writer is not None and self._buffer[self._schema.names[0]]:
            self._writer.write_table(pa.Table.from_pydict(self._buffer, schema=self._schema))
            for values in self._buffer.values():
                values.clear()

    def finish(self) -> None:
        """Complete the file under its ``partial`` name."""
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._flush()
            self._writer.close()

    def close(self) -> None:
        self.finish()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
        self.partial.unlink(missing_ok=True)


def export_all(
    store: Store,
    out: str | Path,
    *,
    format: DumpFormat = "jsonl",
    progress: bool | None = None,
) -> DumpSummary:
    """Dump every table into the directory ``out`` (created; existing dump files replaced)."""
    from searchtrail.storage.sql.migrate import head_revision

    if format not in ("jsonl", "parquet"):
        raise BadRequest(f"format must be jsonl or parquet, got {format!r}")
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise BadRequest(f"{directory} is a file; export --all writes a directory")
    directory.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    files = {t.name: directory / f"{t.name}.{format}" for t in TABLES}
    writers: list[_TableWriter] = []
    rows: dict[str, int] = {}
    try:
        with store.dump_reader() as page:
            for table in TABLES:
                writer = _TableWriter(files[table.name], table, format)
                writers.append(writer)
                (key,) = table.primary_key.columns
                with tqdm(unit="row", desc=table.name, disable=not show, file=sys.stderr) as bar:
                    after = 0
                    while found := page(table, after, PAGE_SIZE):
                        writer.write(found)
                        after = found[-1][key.name]
                        bar.update(len(found))
                rows[table.name] = writer.rows
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.close()
    manifest = {
        "format": DUMP_FORMAT,
        "version": DUMP_VERSION,
        "file_format": format,
        "schema_revision": head_revision(),
        "written_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tables": {
            t.name: {
                "file": files[t.name].name,
                "rows": rows[t.name],
                "columns": _columns(t),
                "json_columns": sorted(_json_columns(t)),
            }
            for t in TABLES
        },
    }
    path = directory / "manifest.json"
    _partial(path).write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(_partial(path), path)
    return DumpSummary(
        out=str(directory),
        format=format,
        schema_revision=str(manifest["schema_revision"]),
        rows=rows,
        files={name: str(p) for name, p in files.items()},
    )


# -- reading a dump -------------------------------------------------------------------


def read_versioned(path: Path, format: str, version: int, kind: str) -> dict[str, Any]:
    """A JSON object of ``format`` and ``version`` (a dump's manifest, a lake's state)."""
    try:
        found = json.loads(path.read_text())
    except ValueError as exc:
        raise BadRequest(f"{path} is not JSON: {exc}") from None
    if not isinstance(found, dict) or found.get("format") != format:
        raise BadRequest(f"{path}: format is not {format!r}")
    if found.get("version") != version:
        raise BadRequest(
            f"{path}: {kind} version {found.get('version')!r}, this searchtrail reads "
            f"version {version}"
        )
    return found


class DumpSource:
    """A dump directory as an ``ImportSource``: ids kept, rows as written.

    A column the manifest lists but this searchtrail does not know is refused row by row
    by the importer (as an unknown field); a column this searchtrail has and the dump
    lacks is taken as NULL (a dump of an older schema).
    """

    name = "searchtrail"

    def __init__(self, path: Path) -> None:
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise BadRequest(f"{path} is not a searchtrail dump: it has no manifest.json")
        manifest = read_versioned(manifest_path, DUMP_FORMAT, DUMP_VERSION, "dump")
        self.path = path
        self.manifest = manifest
        self.file_format = str(manifest.get("file_format", "jsonl"))
        tables = manifest.get("tables") or {}
        self.counts: dict[str, int] = {
            name: int(info.get("rows", 0)) for name, info in tables.items()
        }
        self._files = {name: path / str(info["file"]) for name, info in tables.items()}

    def close(self) -> None:
        pass

    def _rows(self, table: Table) -> Iterator[tuple[int, dict[str, Any]] | Reject]:
        """(line, row) of a table's file; line 1 is the first row (Parquet: the row's place).

        A row with a column this searchtrail does not have is refused, naming it: dropped,
        its values would be lost without a word.
        """
        known = set(_columns(table))
        for item in self._read(table):
            yield self._known(table, known, item)

    def _known(
        self, table: Table, known: set[str], item: tuple[int, dict[str, Any]] | Reject
    ) -> tuple[int, dict[str, Any]] | Reject:
        if not isinstance(item, Reject) and (unknown := item[1].keys() - known):
            line, row = item
            name = sorted(unknown)[0]
            return Reject(
                self._name(table), line, f"{name}: not a column of {table.name} here", row
            )
        return item

    def _read(self, table: Table) -> Iterator[tuple[int, dict[str, Any]] | Reject]:
        path = self._files.get(table.name)
        if path is None:
            return
        if not path.is_file():
            raise BadRequest(f"{path}: the manifest lists it, but it is missing")
        if self.file_format == "parquet":
            json_cols = _json_columns(table)
            line = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=PAGE_SIZE):
                for row in batch.to_pylist():
                    line += 1
                    try:
                        for name in json_cols & row.keys():
                            if row[name] is not None:
                                row[name] = pydantic_core.from_json(row[name])
                    except ValueError as exc:
                        yield Reject(path.name, line, f"{name}: not JSON text ({exc})", row)
                        continue
                    yield line, row
            return
        with path.open("rb") as f:
            for line, raw in enumerate(f, start=1):
                if raw.strip():
                    yield _parse_line(path.name, line, raw)

    # -- the JSONL fast path: lines as read, for the importer to validate a chunk at once --

    def jsonl_file(self, table: Table) -> Path | None:
        """The table's JSONL file, for the importer's fast path; None for Parquet (records
        only) or a table the manifest does not list. ``records_of`` turns its lines
        into exactly what ``batches()``, ``sessions()`` etc. yield for them."""
        path = self._files.get(table.name)
        if self.file_format != "jsonl" or path is None:
            return None
        if not path.is_file():
            raise BadRequest(f"{path}: the manifest lists it, but it is missing")
        return path

    def records_of(self, table: Table, lines: list[tuple[int, bytes]]) -> list[Any]:
        """The records (or rejects) the record iterators yield for these lines."""
        name = self._name(table)
        known = set(_columns(table))
        build = _RECORDS[table.name]
        out: list[Any] = []
        for line, raw in lines:
            item = self._known(table, known, _parse_line(name, line, raw))
            out.append(item if isinstance(item, Reject) else build(name, *item))
        return out

    def batches(self) -> Iterator[BatchRecord | Reject]:
        name = self._name(batches)
        for item in self._rows(batches):
            yield item if isinstance(item, Reject) else _batches_record(name, *item)

    def sessions(self) -> Iterator[SessionRecord | Reject]:
        name = self._name(sessions)
        for item in self._rows(sessions):
            yield item if isinstance(item, Reject) else _sessions_record(name, *item)

    def events(self) -> Iterator[EventRecord | Reject]:
        name = self._name(events)
        for item in self._rows(events):
            yield item if isinstance(item, Reject) else _events_record(name, *item)

    def queue(self) -> Iterator[QueueRecord | Reject]:
        name = self._name(improvement_queue)
        for item in self._rows(improvement_queue):
            yield item if isinstance(item, Reject) else _queue_record(name, *item)

    def keys(self) -> Iterator[KeyRecord | Reject]:
        name = self._name(api_keys)
        for item in self._rows(api_keys):
            yield item if isinstance(item, Reject) else _keys_record(name, *item)

    def rejects(self) -> Iterator[Reject]:
        return iter(())

    def _name(self, table: Table) -> str:
        path = self._files.get(table.name)
        return path.name if path is not None else table.name


def open_source(path: Path, options: ImportOptions) -> DumpSource:
    """The ``--format searchtrail`` hook: a directory written by ``export --all``."""
    del options  # a dump's layout is fixed by its manifest
    return DumpSource(Path(path))


def _batches_record(name: str, line: int, r: dict[str, Any]) -> BatchRecord:
    return BatchRecord(
        key=r.get("batch_id"),  # type: ignore[arg-type]
        state=r.get("state"),
        release_id=r.get("release_id"),
        created_at_ms=r.get("created_at_ms"),
        released_at_ms=r.get("released_at_ms"),
        updated_at_ms=r.get("updated_at_ms"),
        batch_id=r.get("batch_id"),
        file=name,
        line=line,
        raw=r,
    )


def _sessions_record(name: str, line: int, r: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        session_id=r.get("session_id"),
        batch_key=r.get("batch_id"),
        search_query=r.get("search_query"),
        search_results=r.get("search_results"),
        search_meta=r.get("search_meta"),
        payload_filter=r.get("payload_filter"),
        sort_by=r.get("sort_by"),
        user_id=r.get("user_id"),
        created_at_ms=r.get("created_at_ms"),
        created_at_given=r.get("created_at_given", True),
        is_irrelevant=r.get("is_irrelevant", False),
        registered_at_ms=r.get("registered_at_ms"),
        extra=r.get("extra"),
        session_number=r.get("session_number"),
        file=name,
        line=line,
        raw=r,
    )


def _events_record(name: str, line: int, r: dict[str, Any]) -> EventRecord:
    return EventRecord(
        event_id=r.get("event_id"),
        event_type=r.get("event_type"),
        object_id=r.get("object_id"),
        created_at_ms=r.get("created_at_ms"),
        meta=r.get("meta"),
        extra=r.get("extra"),
        session_id=r.get(EVENT_SESSION_ID),
        id=r.get("id"),
        file=name,
        line=line,
        raw=r,
    )


def _queue_record(name: str, line: int, r: dict[str, Any]) -> QueueRecord:
    return QueueRecord(
        session_id=r.get("session_id"),
        state=r.get("state"),
        attempts=r.get("attempts", 0),
        enqueued_at_ms=r.get("enqueued_at_ms"),
        claimed_at_ms=r.get("claimed_at_ms"),
        claimed_by=r.get("claimed_by"),
        finished_at_ms=r.get("finished_at_ms"),
        error=r.get("error"),
        entry_id=r.get("entry_id"),
        file=name,
        line=line,
        raw=r,
    )


def _keys_record(name: str, line: int, r: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        name=r.get("name"),
        prefix=r.get("prefix"),
        key_hash=r.get("key_hash"),
        scopes=r.get("scopes"),
        created_at_ms=r.get("created_at_ms"),
        revoked_at_ms=r.get("revoked_at_ms"),
        key_id=r.get("key_id"),
        file=name,
        line=line,
        raw=r,
    )


def _parse_line(name: str, line: int, raw: bytes) -> tuple[int, dict[str, Any]] | Reject:
    try:
        row = pydantic_core.from_json(raw)
    except ValueError as exc:
        return Reject(name, line, f"not JSON: {exc}", raw.decode(errors="replace").rstrip("\r\n"))
    if not isinstance(row, dict):
        return Reject(name, line, "a row must be a JSON object", row)
    return line, row


_RECORDS: dict[str, Callable[[str, int, dict[str, Any]], Any]] = {
    "batches": _batches_record,
    "sessions": _sessions_record,
    "events": _events_record,
    "improvement_queue": _queue_record,
    "api_keys": _keys_record,
}
