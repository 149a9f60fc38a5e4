"""Importing Embedding Studio's clickstream from a ``mongoexport`` dump.

The dump is built here from the document shapes Embedding Studio's MongoClickstreamDao
stores (``models/clickstream/*.py`` through ``MongoDao.model_to_bson``: ``exclude_none``,
batch ids are the batch's ObjectId, ``session_number`` counts per batch, times are int
epoch seconds), serialized with ``bson.json_util`` in the two modes ``mongoexport``
writes (relaxed and canonical Extended JSON), one document a line or as a JSON array.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bson import json_util
from bson.int64 import Int64
from bson.objectid import ObjectId

from searchtrail import Clickstream
from searchtrail.transfer import _extended_json as extended_json
from searchtrail.transfer import embedding_studio as es
from searchtrail.transfer.records import (
    BatchRecord,
    EventRecord,
    ImportOptions,
    Reject,
    SessionRecord,
)

T = TypeVar("T")
DAY = 86_400
# Months-old history: far outside the API's 12-hour window, which an import ignores.
BASE = int(time.time()) - 150 * DAY

B_RELEASED = ObjectId("65844a671089823652b83d43")
B_ARCHIVED = ObjectId("65944a671089823652b83d44")
B_COLLECTING = ObjectId("65a44a671089823652b83d45")
B_BROKEN = ObjectId("65b44a671089823652b83d46")

LAYOUTS = ["lines", "array", "pretty", "pretty-array"]
MODES = ["relaxed", "canonical"]


@dataclass
class Dump:
    """What was written, to compare the source's records with."""

    directory: Path
    batches: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _batch_docs() -> list[dict[str, Any]]:
    # Written out of creation order: the source must order them.
    return [
        {
            "_id": B_ARCHIVED,
            "session_counter": 2,
            "created_at": BASE + 30 * DAY,
            "status": "archived",
            "release_id": "rel-2",
            "released_at": BASE + 60 * DAY,
        },
        {
            "_id": B_COLLECTING,
            "session_counter": 2,
            "created_at": BASE + 60 * DAY,
            "status": "collecting",
        },
        {
            "_id": B_RELEASED,
            "session_counter": 3,
            "created_at": BASE,
            "status": "released",
            "release_id": "rel-1",
            "released_at": Int64(BASE + 30 * DAY),
        },
    ]


def _result(object_id: str, rank: float | None = None, **more: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"object_id": object_id}
    if rank is not None:
        doc["rank"] = rank
    doc.update(more)
    return doc


def _session_docs() -> list[dict[str, Any]]:
    def session(
        sid: str, batch: ObjectId, number: int, created: int, **more: Any
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "session_id": sid,
            "search_query": f"query of {sid}",
            "created_at": created,
            "search_results": [_result(f"{sid}-o1", 0.91), _result(f"{sid}-o2", 0.5)],
            "is_irrelevant": False,
            "batch_id": str(batch),
            "session_number": number,
        }
        doc.update(more)
        return doc

    docs = [
        session("s-2b", B_ARCHIVED, 2, BASE + 40 * DAY),
        session(
            "s-1c",
            B_RELEASED,
            3,
            BASE + 3 * DAY,
            search_query={"text": "red shoes", "filters": {"size": 42}},
            search_results=[
                _result("sku-1", 0.987, meta={"title": "Red shoe"}, item_info={"price": 10.5}),
                _result("sku-2", 0.25, item_info={}),
                _result("sku-3"),
            ],
            search_meta={"engine": "v2", "latency_ms": 12.5},
            user_id="u-7",
            ab_bucket="B",
            is_payload_search=False,
        ),
        session("s-3a", B_COLLECTING, 1, BASE + 61 * DAY),
        session("s-1a", B_RELEASED, 1, BASE + 1 * DAY),
        session("s-2a", B_ARCHIVED, 1, BASE + 31 * DAY, is_irrelevant=True),
        session("s-3b", B_COLLECTING, 2, BASE + 62 * DAY, is_irrelevant=True),
        session("s-1b", B_RELEASED, 2, BASE + 2 * DAY, is_irrelevant=True),
    ]
    return docs


def _event_docs(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    docs = []
    for s in sessions:
        for i, result in enumerate(s["search_results"][:2]):
            docs.append(
                {
                    "_id": ObjectId(),
                    "event_id": str(uuid.uuid4()),
                    "session_id": s["session_id"],
                    "object_id": result["object_id"],
                    "event_type": "click" if i == 0 else "add_to_cart",
                    "created_at": s["created_at"] + 5 + i,
                    "meta": {"position": i, "dwell_ms": 1200.5},
                }
            )
    docs[0]["item_info"] = {"seen": True}  # the tutorial's unknown key
    return docs


# One broken document per collection, each a different way of being unmappable.
BROKEN_BATCH = {"_id": B_BROKEN, "session_counter": 1, "created_at": BASE}  # no status
BROKEN_SESSION = {
    "session_id": "s-broken",
    "search_query": "q",
    "created_at": BASE,
    "search_results": [],
    "batch_id": str(B_RELEASED),
    "session_number": "seven",
}
BROKEN_EVENT = {
    "event_id": "e-broken",
    "session_id": "s-1a",
    "object_id": "o",
    "event_type": "click",
    "created_at": "last tuesday",
}


def _dumps(doc: Any, mode: str, pretty: bool) -> str:
    options = (
        json_util.CANONICAL_JSON_OPTIONS if mode == "canonical" else json_util.RELAXED_JSON_OPTIONS
    )
    if pretty:
        return json_util.dumps(doc, json_options=options, indent="\t")
    return json_util.dumps(doc, json_options=options)


def _write(path: Path, docs: list[Any], layout: str, mode: str) -> None:
    pretty = layout.startswith("pretty")
    texts = [_dumps(d, mode, pretty) for d in docs]
    if layout.endswith("array"):
        body = "[" + (",\n" if pretty else ",").join(texts) + "]"
    else:
        body = "\n".join(texts) + "\n"
    path.write_text(body, encoding="utf-8")


def build_dump(directory: Path, layout: str = "lines", mode: str = "relaxed") -> Dump:
    directory.mkdir(parents=True, exist_ok=True)
    dump = Dump(directory, _batch_docs(), _session_docs())
    dump.events = _event_docs(dump.sessions)
    batches = [*dump.batches[:2], BROKEN_BATCH, *dump.batches[2:]]
    sessions = [*dump.sessions[:3], BROKEN_SESSION, *dump.sessions[3:]]
    events = [*dump.events[:4], BROKEN_EVENT, *dump.events[4:]]
    _write(directory / "session_batches.json", batches, layout, mode)
    _write(directory / "sessions.json", sessions, layout, mode)
    _write(directory / "session_events.json", events, layout, mode)
    return dump


@dataclass
class Read:
    batches: list[BatchRecord]
    sessions: list[SessionRecord]
    events: list[EventRecord]
    rejects: list[Reject]


def _split(stream: Iterable[T | Reject], rejects: list[Reject]) -> list[T]:
    records: list[T] = []
    for item in stream:
        if isinstance(item, Reject):
            rejects.append(item)
        else:
            records.append(item)
    return records


def read(directory: Path) -> Read:
    """Every record and reject, calling the iterators as the importer does."""
    source = es.open_source(directory, ImportOptions())
    rejects: list[Reject] = []
    try:
        batches = _split(source.batches(), rejects)
        sessions = _split(source.sessions(), rejects)
        events = _split(source.events(), rejects)
        assert list(source.queue()) == []
        assert list(source.keys()) == []
        rejects.extend(source.rejects())
        return Read(batches, sessions, events, rejects)
    finally:
        source.close()


@pytest.fixture(params=[(layout, mode) for layout in LAYOUTS for mode in MODES])
def dump(request: pytest.FixtureRequest, tmp_path: Path) -> Dump:
    layout, mode = request.param
    return build_dump(tmp_path / "dump", layout, mode)


# -- the source on its own ----------------------------------------------------------------


def test_batches_oldest_first_with_state_and_release(dump: Dump) -> None:
    got = read(dump.directory)
    assert [(b.key, b.state, b.release_id) for b in got.batches] == [
        (str(B_RELEASED), "released", "rel-1"),
        (str(B_ARCHIVED), "archived", "rel-2"),
        (str(B_COLLECTING), "collecting", None),
    ]
    released = got.batches[0]
    assert released.created_at_ms == BASE * 1000
    assert released.released_at_ms == (BASE + 30 * DAY) * 1000
    assert got.batches[2].released_at_ms is None
    assert all(b.batch_id is None for b in got.batches)  # the importer assigns ids


def test_sessions_in_batch_then_number_order(dump: Dump) -> None:
    got = read(dump.directory)
    assert [(s.session_id, s.batch_key) for s in got.sessions] == [
        ("s-1a", str(B_RELEASED)),
        ("s-1b", str(B_RELEASED)),
        ("s-1c", str(B_RELEASED)),
        ("s-2a", str(B_ARCHIVED)),
        ("s-2b", str(B_ARCHIVED)),
        ("s-3a", str(B_COLLECTING)),
        ("s-3b", str(B_COLLECTING)),
    ]
    assert {s.session_id for s in got.sessions if s.is_irrelevant is True} == {
        "s-1b",
        "s-2a",
        "s-3b",
    }
    by_id = {d["session_id"]: d for d in dump.sessions}
    for s in got.sessions:
        assert s.created_at_ms == by_id[str(s.session_id)]["created_at"] * 1000
        assert s.created_at_given is True
        assert s.session_number is None  # searchtrail numbers sessions itself


def test_session_fields_and_unknown_keys(dump: Dump) -> None:
    got = read(dump.directory)
    s = next(s for s in got.sessions if s.session_id == "s-1c")
    assert s.search_query == {"text": "red shoes", "filters": {"size": 42}}
    assert s.search_meta == {"engine": "v2", "latency_ms": 12.5}
    assert s.user_id == "u-7"
    assert s.payload_filter is None
    assert s.sort_by is None
    # Results as a client sends them: unknown keys flat (stored under the result's extra).
    assert s.search_results == [
        {
            "object_id": "sku-1",
            "rank": 0.987,
            "meta": {"title": "Red shoe"},
            "item_info": {"price": 10.5},
        },
        {"object_id": "sku-2", "rank": 0.25, "item_info": {}},
        {"object_id": "sku-3"},
    ]
    assert isinstance(s.search_results[0]["rank"], float)
    # Keys the original's model has no searchtrail field for are kept, not dropped;
    # Mongo's _id is a storage id and is not.
    assert s.extra is not None
    assert s.extra["ab_bucket"] == "B"
    assert "is_payload_search" not in s.extra  # False is the original's default
    assert "_id" not in s.extra
    assert "search_results" not in s.extra
    plain = next(s for s in got.sessions if s.session_id == "s-1a")
    assert plain.extra is None
    assert json.loads(str(plain.raw))["session_id"] == "s-1a"


def test_events_mapped_and_storage_ids_dropped(dump: Dump) -> None:
    got = read(dump.directory)
    assert len(got.events) == len(dump.events)
    expected = {d["event_id"]: d for d in dump.events}
    for e in got.events:
        d = expected[str(e.event_id)]
        assert (e.session_id, e.object_id, e.event_type) == (
            d["session_id"],
            d["object_id"],
            d["event_type"],
        )
        assert e.created_at_ms == d["created_at"] * 1000
        assert e.meta == {"position": d["meta"]["position"], "dwell_ms": 1200.5}
        assert e.id is None  # the importer assigns ids
        uuid.UUID(str(e.event_id))
    first = next(e for e in got.events if e.event_id == dump.events[0]["event_id"])
    assert first.extra == {"item_info": {"seen": True}}
    assert all(e.extra is None for e in got.events if e is not first)


def test_one_reject_per_broken_document_naming_file_place_and_field(dump: Dump) -> None:
    got = read(dump.directory)
    in_array = dump.directory.joinpath("sessions.json").read_text().startswith("[")
    by_file = {Path(r.source).name: r for r in got.rejects}
    assert sorted(by_file) == ["session_batches.json", "session_events.json", "sessions.json"]
    assert len(got.rejects) == 3
    assert "status: missing" in by_file["session_batches.json"].reason
    assert "session_number: must be an integer" in by_file["sessions.json"].reason
    assert "created_at:" in by_file["session_events.json"].reason
    assert "last tuesday" in by_file["session_events.json"].reason
    assert json.loads(by_file["sessions.json"].raw)["session_id"] == "s-broken"
    # The broken documents are the 3rd, 4th and 5th of their files.
    assert by_file["session_batches.json"].line == 3 if in_array else True
    assert by_file["sessions.json"].line == 4 if in_array else True
    assert by_file["session_events.json"].line == 5 if in_array else True
    if in_array:
        assert by_file["sessions.json"].reason.startswith("JSON array element 4: ")


def test_reject_lines_are_file_lines(tmp_path: Path) -> None:
    build_dump(tmp_path, "lines")
    got = read(tmp_path)
    assert sorted((Path(r.source).name, r.line) for r in got.rejects) == [
        ("session_batches.json", 3),
        ("session_events.json", 5),
        ("sessions.json", 4),
    ]


def test_pretty_documents_report_their_first_line(tmp_path: Path) -> None:
    docs = [{"session_id": "a", "n": 1}, {"session_id": "b", "n": 2}]
    (tmp_path / "session_events.json").write_text(
        "\n".join(json.dumps(d, indent="\t") for d in docs) + "\n"
    )
    got = read(tmp_path)
    # Both lack event_id: rejected, at the line where each document starts.
    assert [(r.line, r.reason.split(":")[0]) for r in got.rejects] == [
        (1, "event_id"),
        (5, "event_id"),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_json_array_read_in_small_chunks(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Element boundaries, strings with brackets and escapes across chunk edges."""
    build_dump(tmp_path / "a", "array", "canonical")
    events = tmp_path / "a" / "session_events.json"
    tricky = {
        "event_id": 'e-"]},[{\\',
        "session_id": "s-1a",
        "object_id": "o\u00e9\u4e2d\U0001f600",
        "event_type": "click",
        "created_at": BASE,
        "meta": {"s": "[[{{", "nested": [[1, [2]], {"x": "}"}]},
    }
    text = events.read_text()
    events.write_text(text[:-1] + " ,\n\t" + json.dumps(tricky, ensure_ascii=False) + " ] \n")
    expected = read(tmp_path / "a")
    monkeypatch.setattr(extended_json, "_CHUNK", chunk)
    got = read(tmp_path / "a")
    assert [e.event_id for e in got.events] == [e.event_id for e in expected.events]
    assert got.events[-1].event_id == tricky["event_id"]
    assert got.events[-1].object_id == tricky["object_id"]
    assert got.events[-1].meta == tricky["meta"]
    assert [s.session_id for s in got.sessions] == [s.session_id for s in expected.sessions]
    assert [(r.source, r.line, r.reason) for r in got.rejects] == [
        (r.source, r.line, r.reason) for r in expected.rejects
    ]


def _event(event_id: str, **more: Any) -> dict[str, Any]:
    doc = {
        "event_id": event_id,
        "session_id": "s",
        "object_id": "o",
        "event_type": "click",
        "created_at": BASE,
    }
    doc.update(more)
    return doc


@pytest.mark.parametrize(
    ("body", "kept", "reasons"),
    [
        pytest.param(
            '[{"event_id": "a"}, 42, "text", null, [1]]',
            [],
            [
                (1, "session_id: missing"),
                (2, "document: must be a JSON object, got a number"),
                (3, "document: must be a JSON object, got a string"),
                (4, "document: must be a JSON object, got null"),
                (5, "document: must be a JSON object, got an array"),
            ],
            id="not-objects",
        ),
        pytest.param(
            "["
            + json.dumps(_event("a"))
            + ', {"event_id": oops}, '
            + json.dumps(_event("c"))
            + "]",
            ["a", "c"],
            [(2, "document: not valid (Extended) JSON")],
            id="malformed-element-skipped",
        ),
        pytest.param(
            "[" + json.dumps(_event("a")) + ', {"event_id": "b", "meta": {',
            ["a"],
            [(2, "document: the element is not closed before the file ends")],
            id="truncated",
        ),
        pytest.param(
            "[" + json.dumps(_event("a")) + " " + json.dumps(_event("b")) + "]",
            ["a"],
            [(2, "document: expected ',' or ']' after element 1")],
            id="missing-comma",
        ),
        pytest.param(
            "[" + json.dumps(_event("a")) + "] trailing",
            ["a"],
            [(2, "document: data after the end of the JSON array")],
            id="trailing-data",
        ),
        pytest.param(
            "[" + json.dumps(_event("a")) + ",,]",
            ["a"],
            [(2, "document: an element is missing")],
            id="empty-element",
        ),
        pytest.param("[]", [], [], id="empty-array"),
        pytest.param("  \n", [], [], id="empty-file"),
    ],
)
def test_broken_json_arrays_are_rejects_not_errors(
    body: str, kept: list[str], reasons: list[tuple[int, str]], tmp_path: Path
) -> None:
    (tmp_path / "session_events.json").write_text(body)
    got = read(tmp_path)
    assert [e.event_id for e in got.events] == kept
    assert len(got.rejects) == len(reasons)
    for reject, (position, reason) in zip(got.rejects, reasons, strict=True):
        assert reject.line == position
        assert reject.reason.startswith(f"JSON array element {position}: {reason}"), reject


def test_broken_lines_are_rejects_and_reading_goes_on(tmp_path: Path) -> None:
    lines = [
        json.dumps(_event("a")),
        '{"event_id": "b", ',
        "",
        "not json at all",
        json.dumps(_event("c", created_at={"$date": "not a date"})),
        json.dumps(_event("d", session_id=7)),
        json.dumps({k: v for k, v in _event("e").items() if k != "object_id"}),
        json.dumps(_event("f")),
    ]
    (tmp_path / "session_events.json").write_text("\n".join(lines))
    got = read(tmp_path)
    assert [e.event_id for e in got.events] == ["a", "f"]
    assert [(r.line, r.reason.split(":")[0]) for r in got.rejects] == [
        (2, "document"),
        (4, "document"),
        (5, "document"),
        (6, "session_id"),
        (7, "object_id"),
    ]
    assert got.rejects[0].raw == '{"event_id": "b",'


def test_extended_json_values(tmp_path: Path) -> None:
    lines = [
        # canonical $date with milliseconds, and a relaxed one
        json.dumps(_event("a", created_at={"$date": {"$numberLong": "1704164645678"}})),
        json.dumps(_event("b", created_at={"$date": "2024-01-02T03:04:05.678Z"})),
        json.dumps(_event("c", created_at={"$numberLong": str(BASE)})),
        json.dumps(_event("d", created_at={"$numberDouble": str(BASE + 0.25)})),
        # BSON values JSON has no word for keep their relaxed Extended JSON form
        json.dumps(
            _event(
                "e",
                meta={
                    "oid": {"$oid": "65844a671089823652b83d43"},
                    "when": {"$date": "2024-01-02T03:04:05.678Z"},
                    "price": {"$numberDecimal": "10.25"},
                    "nan": {"$numberDouble": "NaN"},
                    "big": {"$numberLong": "9007199254740993"},
                },
            )
        ),
        json.dumps(_event("f", created_at={"$date": {"$numberLong": "-5"}})),
        json.dumps(_event("g", created_at=True)),
    ]
    (tmp_path / "session_events.json").write_text("\n".join(lines) + "\n")
    got = read(tmp_path)
    ms = {e.event_id: e.created_at_ms for e in got.events}
    assert ms == {
        "a": 1704164645678,
        "b": 1704164645678,
        "c": BASE * 1000,
        "d": BASE * 1000 + 250,
        "e": BASE * 1000,
    }
    meta = next(e.meta for e in got.events if e.event_id == "e")
    assert meta == {
        "oid": {"$oid": "65844a671089823652b83d43"},
        "when": {"$date": "2024-01-02T03:04:05.678Z"},
        "price": {"$numberDecimal": "10.25"},
        "nan": {"$numberDouble": "NaN"},
        "big": 9007199254740993,
    }
    assert type(meta["big"]) is int
    assert [(r.line, r.reason.split(":")[0]) for r in got.rejects] == [
        (6, "created_at"),
        (7, "created_at"),
    ]


def test_batch_ids_and_release_keys(tmp_path: Path) -> None:
    oid = ObjectId()
    docs = [
        # status set by update_batch_status while collecting: no release_id
        {"_id": {"$oid": str(oid)}, "status": "fine_tuning", "created_at": BASE},
        {"_id": "text-id", "status": "released", "created_at": BASE + 1, "release_id": "r"},
        {"_id": 5, "status": "released", "created_at": BASE + 2},
        {"status": "released", "created_at": BASE + 3},
        {"_id": {"$oid": str(ObjectId())}, "status": "released", "created_at": BASE + 4,
         "released_at": "soon"},
    ]  # fmt: skip
    (tmp_path / "session_batches.json").write_text("\n".join(json.dumps(d) for d in docs))
    got = read(tmp_path)
    assert [(b.key, b.release_id) for b in got.batches] == [
        (str(oid), f"embedding-studio-{oid}"),
        ("text-id", "r"),
    ]
    assert [(r.line, r.reason.split(":")[0]) for r in got.rejects] == [
        (3, "_id"),
        (4, "_id"),
        (5, "released_at"),
    ]


def test_sessions_of_unknown_batches_come_last_and_are_passed_on(tmp_path: Path) -> None:
    build_dump(tmp_path)
    with (tmp_path / "sessions.json").open("a") as fh:
        orphan = {
            "session_id": "s-orphan",
            "search_query": "q",
            "created_at": BASE,
            "search_results": [],
            "batch_id": str(B_BROKEN),  # its batch document was rejected
            "session_number": 1,
        }
        fh.write(json.dumps(orphan) + "\n")
    got = read(tmp_path)
    assert got.sessions[-1].session_id == "s-orphan"
    assert got.sessions[-1].batch_key == str(B_BROKEN)  # the importer refuses it


def test_session_id_stored_as_mongo_id(tmp_path: Path) -> None:
    """A model version aliases session_id to _id; such a document is read too."""
    doc = {
        "_id": "s-alias",
        "search_query": "q",
        "created_at": BASE,
        "search_results": [],
        "batch_id": str(B_RELEASED),
        "session_number": 1,
        "payload_filter": {"must": [{"key": "color", "match_value": "red"}]},
        "sort_by": {"field": "price", "order": "asc"},
        "is_payload_search": True,
    }
    (tmp_path / "sessions.json").write_text(json.dumps(doc))
    (s,) = read(tmp_path).sessions
    assert s.session_id == "s-alias"
    assert s.payload_filter == doc["payload_filter"]
    assert s.sort_by == doc["sort_by"]
    assert s.is_irrelevant is False
    assert s.extra == {"is_payload_search": True}


def test_many_sessions_sorted_on_disk(tmp_path: Path) -> None:
    """More sessions than one insert chunk, written shuffled, come out in order."""
    batches = [ObjectId() for _ in range(3)]
    (tmp_path / "session_batches.json").write_text(
        "\n".join(
            json.dumps({"_id": {"$oid": str(b)}, "status": "released", "created_at": BASE + i,
                        "release_id": f"r{i}"})
            for i, b in enumerate(batches)
        )
    )  # fmt: skip
    wanted = [(bi, n) for bi in range(3) for n in range(1, 8001)]
    shuffled = wanted[:]
    random.Random(7).shuffle(shuffled)
    with (tmp_path / "sessions.json").open("w") as fh:
        for bi, n in shuffled:
            doc = {
                "session_id": f"s{bi}-{n}",
                "search_query": "q",
                "created_at": BASE,
                "search_results": [],
                "batch_id": str(batches[bi]),
                "session_number": n,
            }
            fh.write(json.dumps(doc) + "\n")
    source = es.open_source(tmp_path, ImportOptions())
    try:
        list(source.batches())
        sessions = source.sessions()
        assert isinstance(sessions, Iterator)
        got = [s.session_id for s in sessions if isinstance(s, SessionRecord)]
    finally:
        source.close()
    assert got == [f"s{bi}-{n}" for bi, n in wanted]


def test_missing_files_are_empty_collections(tmp_path: Path) -> None:
    (tmp_path / "sessions.json").write_text("")
    got = read(tmp_path)
    assert (got.batches, got.sessions, got.events, got.rejects) == ([], [], [], [])


def test_a_directory_without_the_collections_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"sessions\.json"):
        es.open_source(tmp_path, ImportOptions())
    with pytest.raises(FileNotFoundError, match="not a directory"):
        es.open_source(tmp_path / "nope", ImportOptions())


def test_registered_under_its_format_name(tmp_path: Path) -> None:
    from searchtrail.transfer import open_source

    build_dump(tmp_path)
    source = open_source(tmp_path, "embedding-studio", ImportOptions(json_array=True))
    try:
        assert source.name == "embedding-studio"
        assert isinstance(source, es.EmbeddingStudioSource)
    finally:
        source.close()


# -- end to end: the dump imported into a database, on both dialects ----------------------


def _has_import_command() -> bool:
    from searchtrail.cli import main

    return "import" in main.commands


@pytest.mark.skipif(
    not _has_import_command(),
    reason="waits for `searchtrail import DIR --format embedding-studio` (cli.py, "
    "transfer/importer.py) to be committed",
)
@pytest.mark.parametrize("layout", ["lines", "array"])
def test_import_end_to_end_and_rerun(
    layout: str, database_url: str, cs: Clickstream, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from searchtrail.cli import main

    dump = build_dump(tmp_path / "dump", layout, "canonical" if layout == "array" else "relaxed")
    imported = dump.sessions
    events = dump.events
    rejected = 3  # the three broken documents

    rejects = tmp_path / "rejects.jsonl"
    args = [
        "import",
        str(dump.directory),
        "--format",
        "embedding-studio",
        "--database-url",
        database_url,
        "--rejects",
        str(rejects),
    ]
    first = CliRunner().invoke(main, args)
    summary = json.loads(first.stdout)
    assert first.exit_code == 3, first.output  # rows were rejected; the rest is imported
    assert (summary["rejected"], summary["conflicts"]) == (rejected, 0), first.output
    assert summary["new"] == 3 + len(imported) + len(events)

    refused = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(refused) == rejected
    broken = {(Path(r["source"]).name, r["line"]) for r in refused}
    # The broken documents' lines, or places in the array: the same in both layouts.
    assert {
        ("session_batches.json", 3),
        ("sessions.json", 4),
        ("session_events.json", 5),
    } <= broken
    assert all(r["reason"] and r["raw"] for r in refused)

    batches = cs.list_batches()
    assert [(b.state, b.release_id) for b in batches] == [
        ("released", "rel-1"),
        ("archived", "rel-2"),
        ("collecting", None),
    ]
    assert batches[0].created_at_ms == BASE * 1000
    assert batches[0].released_at_ms == (BASE + 30 * DAY) * 1000
    assert batches[1].released_at_ms == (BASE + 60 * DAY) * 1000
    expected_order = [["s-1a", "s-1b", "s-1c"], ["s-2a", "s-2b"], ["s-3a", "s-3b"]]
    irrelevant = {"s-1b", "s-2a", "s-3b"}
    numbers: list[int] = []
    for batch, ids in zip(batches, expected_order, strict=True):
        wanted = ids
        page = cs.batch_sessions(batch.batch_id, limit=100)
        assert [s.session_id for s in page.sessions] == wanted
        assert {s.session_id for s in page.sessions if s.is_irrelevant} == irrelevant & set(wanted)
        numbers += [s.session_number for s in page.sessions if s.session_number is not None]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(imported)

    for doc in imported:
        stored = cs.get_session(doc["session_id"])
        assert stored.created_at == doc["created_at"]
        assert stored.created_at_ms == doc["created_at"] * 1000
        assert stored.search_query == doc["search_query"]
        assert [(r.object_id, r.rank) for r in stored.search_results] == [
            (r["object_id"], r.get("rank")) for r in doc["search_results"]
        ]
        own = {e["event_id"]: e for e in events if e["session_id"] == doc["session_id"]}
        assert {e.event_id for e in stored.events} == set(own)
        for e in stored.events:
            assert e.created_at == own[e.event_id]["created_at"]
            assert (e.object_id, e.event_type) == (
                own[e.event_id]["object_id"],
                own[e.event_id]["event_type"],
            )
            assert e.meta == own[e.event_id]["meta"]
    rich = cs.get_session("s-1c")
    assert rich.search_query == {"text": "red shoes", "filters": {"size": 42}}
    assert rich.search_meta == {"engine": "v2", "latency_ms": 12.5}
    assert rich.user_id == "u-7"
    assert rich.search_results[0].meta == {"title": "Red shoe"}
    assert rich.search_results[0].extra == {"item_info": {"price": 10.5}}
    assert rich.extra is not None and rich.extra["ab_bucket"] == "B"

    again = CliRunner().invoke(main, args)
    summary = json.loads(again.stdout)
    assert (summary["new"], summary["conflicts"]) == (0, 0), again.output
    assert summary["rejected"] == rejected
    tables = summary["tables"]
    # The collecting batch joins the target's collecting batch (the one the first run
    # made), counted as merged; released batches are found by their release_id.
    assert (tables["batches"]["already_there"], tables["batches"]["merged"]) == (2, 1)
    assert tables["sessions"]["already_there"] == len(imported)
    assert tables["events"]["already_there"] == len(events)
    assert [(b.batch_id, b.state, b.sessions, b.events) for b in cs.list_batches()] == [
        (b.batch_id, b.state, b.sessions, b.events) for b in batches
    ]
