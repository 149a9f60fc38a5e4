"""Known traffic for the /metrics tests, and what a scrape must show after it.

``send_known_traffic`` makes registrations and pushes whose every outcome is known (stored,
duplicate, each refusal reason, unknown keys); ``EXPECTED`` is what each one adds to the
series. The server must run with ``max_events_per_session=CAP``.
"""

from __future__ import annotations

from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

CAP = 10

Sample = tuple[str, tuple[tuple[str, str], ...]]


def _requests(route: str, status: int, method: str = "POST") -> Sample:
    labels = (("method", method), ("route", route), ("status", str(status)))
    return "searchtrail_http_requests_total", labels


def _refused(reason: str) -> Sample:
    return "searchtrail_events_refused_total", (("reason", reason),)


EXPECTED: dict[Sample, float] = {
    ("searchtrail_sessions_registered_total", ()): 4,
    ("searchtrail_sessions_replayed_total", ()): 1,
    ("searchtrail_events_stored_total", ()): 6,
    _refused("duplicate"): 2,
    _refused("unknown_session"): 2,
    _refused("invalid"): 3,
    _refused("timestamp_window"): 2,
    _refused("over_cap"): CAP + 1,
    ("searchtrail_unknown_fields_total", (("operation", "create_session"),)): 1,
    ("searchtrail_unknown_fields_total", (("operation", "push_events"),)): 2,
    _requests("/session", 200): 5,
    _requests("/session/events", 200): 1,
    _requests("/api/v1/clickstream/session/events", 200): 2,
    _requests("/session/events", 404): 1,
    _requests("/session/events", 422): 2,
    _requests("/session/events", 400): 1,
    _requests("/session/events", 409): 1,
    # Every registration and every push that reached storage: one write each.
    ("searchtrail_write_group_size_sum", (("path", "WRITE_PATH"),)): 10,
}
SESSIONS = 4  # new sessions per run: all in the collecting batch


def expected(write_path: str, runs: int = 1) -> dict[Sample, float]:
    out = {}
    for (name, labels), value in EXPECTED.items():
        labels = tuple((k, write_path if v == "WRITE_PATH" else v) for k, v in labels)
        out[name, labels] = value * runs
    return out


def send_known_traffic(http: httpx.Client, tag: str) -> None:
    """One run; ``tag`` keeps the session ids of concurrent runs apart."""
    s1, s2, s3, s4 = (f"{tag}-s{i}" for i in range(1, 5))

    def ok(r: httpx.Response) -> httpx.Response:
        assert r.status_code == 200, r.text
        return r

    for sid in (s1, s2, s3):
        ok(http.post("/session", json={"session_id": sid, "search_query": "q"}))
    ok(http.post("/session", json={"session_id": s1, "search_query": "q"}))  # a replay
    ok(http.post("/session", json={"session_id": s4, "zz_unknown": 1}))  # one unknown key

    def push(path: str, sid: str, events: list[dict[str, object]]) -> httpx.Response:
        return http.post(path, json={"session_id": sid, "events": events})

    first = push("/session/events", s1, [{"event_id": e} for e in ("e1", "e2", "e3")])
    assert ok(first).json()["stored"] == 3
    # Prefixed path, counted under its own template: one stored, two duplicates.
    again = push(
        "/api/v1/clickstream/session/events", s1, [{"event_id": e} for e in ["e1", "e2", "e4"]]
    )
    answer = ok(again).json()
    assert (answer["stored"], answer["duplicates"]) == (1, 2), answer
    extra = [{"event_id": "e5", "zz_x": 1}, {"event_id": "e6", "zz_x": 2}]
    unknown = ok(push("/api/v1/clickstream/session/events", s1, extra)).json()
    assert unknown["stored"] == 2 and len(unknown["unknown_fields"]) == 2
    assert (
        push("/session/events", f"{tag}-nobody", [{"event_id": "a"}, {"event_id": "b"}]).status_code
        == 404
    )
    bad_time = [{"event_id": "x", "created_at": "not a time"}, {"event_id": "y"}, {"event_id": "z"}]
    assert push("/session/events", s2, bad_time).status_code == 422
    assert http.post("/session/events", content=b"{not json").status_code == 422  # 0 events
    old = [{"event_id": "o1", "created_at": 1}, {"event_id": "o2"}]
    assert push("/session/events", s2, old).status_code == 400
    full = push("/session/events", s3, [{"event_id": f"f{i}"} for i in range(CAP + 1)])
    assert full.status_code == 409 and full.json()["code"] == "session_full"


def samples(text: str) -> Counter[Sample]:
    """Every sample of a scrape, by name and sorted labels (the parser checks the format)."""
    out: Counter[Sample] = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] += s.value
    return out


def delta(
    before: Counter[Sample], after: Counter[Sample], keys: list[Sample]
) -> dict[Sample, float]:
    return {k: after[k] - before[k] for k in keys}
