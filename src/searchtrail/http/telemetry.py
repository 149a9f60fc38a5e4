"""Prometheus metrics: what the service counts, and the scrape that answers ``/metrics``.

Counters and histograms are module-level: one set per process, whatever number of apps
it builds. Under ``searchtrail serve`` each process writes them to files in
``PROMETHEUS_MULTIPROC_DIR`` (``serve`` makes a fresh directory before any worker
starts; prometheus_client picks its file-backed values when it is first imported, so the
variable must be set before that), and a scrape of any worker sums every worker's
files: the numbers add up across workers. Gauges read from the database at scrape time
(batches, the improvement queue) are read by the scraping worker alone, never summed.
docs/operating.md lists the series.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from searchtrail.errors import SearchtrailError
from searchtrail.service import Clickstream
from searchtrail.service.observer import Observer, RefusalReason
from searchtrail.storage import BatchState, writestats

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_ENV",
    "PrometheusObserver",
    "count_database_error",
    "forget_process",
    "observe_request",
    "scrape",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# What generate_latest writes: the classic text format, which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Files only if prometheus_client chose its file-backed values when first imported (the
# variable set before that, as serve does): otherwise this process counts in memory, and
# a scrape reading the directory would find nothing of it.
_MULTIPROC_DIR = (
    os.environ.get(MULTIPROC_ENV) if values.ValueClass is not values.MutexValue else None
)

# The process's own metrics, apart from prometheus_client's default registry (which
# would add process and GC series that mean nothing summed across workers).
_OWN = CollectorRegistry(auto_describe=False)

REQUESTS = Counter(
    "searchtrail_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=_OWN,
)
LATENCY = Histogram(
    "searchtrail_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=_OWN,
)
SESSIONS_REGISTERED = Counter(
    "searchtrail_sessions_registered", "Sessions registered (new ones).", registry=_OWN
)
SESSIONS_REPLAYED = Counter(
    "searchtrail_sessions_replayed",
    "Registrations of a session already stored, answered with the stored one.",
    registry=_OWN,
)
EVENTS_STORED = Counter("searchtrail_events_stored", "Events stored by pushes.", registry=_OWN)
EVENTS_REFUSED = Counter(
    "searchtrail_events_refused",
    "Events of pushes not stored, by reason: duplicate (the session held it already), or "
    "the whole push refused as invalid, to an unknown session, over the session's cap, or "
    "with a timestamp outside the window.",
    ["reason"],
    registry=_OWN,
)
UNKNOWN_FIELDS = Counter(
    "searchtrail_unknown_fields",
    "Field paths the contract does not name, accepted and listed in answers' unknown_fields.",
    ["operation"],
    registry=_OWN,
)
WRITE_GROUP = Histogram(
    "searchtrail_write_group_size",
    "Writes sent to the database together: one transaction (path group_commit), or one "
    "group handed to the writer process (path writer_process).",
    ["path"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=_OWN,
)
WRITE_QUEUE = Gauge(
    "searchtrail_write_queue_depth",
    "Writes accepted and not yet answered, by write path; summed over live workers.",
    ["path"],
    multiprocess_mode="livesum",
    registry=_OWN,
)
DATABASE_ERRORS = Counter(
    "searchtrail_database_errors",
    "Answers 503 or 507 (the database unavailable, locked, outdated, its disk full), by "
    "the error's code.",
    ["kind"],
    registry=_OWN,
)

_REASONS = ("duplicate", "invalid", "unknown_session", "over_cap", "timestamp_window")
_PATHS = ("group_commit", "writer_process")
_DATABASE_STATUSES = (503, 507)


def _database_error_codes() -> set[str]:
    """The codes of every error class answered 503 or 507, known at import."""
    found: set[str] = set()
    todo: list[type[SearchtrailError]] = [SearchtrailError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.status in _DATABASE_STATUSES:
            found.add(cls.code)
    return found


def _zeros() -> None:
    """Every label value known up front starts at 0, so that its series exists (and a
    rate() over it is 0, not absent) before the first occurrence."""
    for reason in _REASONS:
        EVENTS_REFUSED.labels(reason)
    for operation in ("create_session", "push_events"):
        UNKNOWN_FIELDS.labels(operation)
    for code in _database_error_codes():
        DATABASE_ERRORS.labels(code)
    for path in _PATHS:
        WRITE_GROUP.labels(path)
        WRITE_QUEUE.labels(path)


_zeros()

# Label children by label values: .labels() builds a key and takes a lock on every call.
_refused = {reason: EVENTS_REFUSED.labels(reason) for reason in _REASONS}
_unknown_created = UNKNOWN_FIELDS.labels("create_session")
_unknown_pushed = UNKNOWN_FIELDS.labels("push_events")
_groups = {path: WRITE_GROUP.labels(path) for path in _PATHS}
_queues = {path: WRITE_QUEUE.labels(path) for path in _PATHS}
_requests: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request. ``route`` and ``method`` come from bounded sets (the app's
    route templates, a few methods): a label from the raw path would grow without end."""
    key = (route, method, status)
    children = _requests.get(key)
    if children is None:
        children = (REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method))
        _requests[key] = children
    children[0].inc()
    children[1].observe(seconds)


def count_database_error(exc: SearchtrailError) -> None:
    if exc.status in _DATABASE_STATUSES:
        DATABASE_ERRORS.labels(exc.code).inc()


class PrometheusObserver(Observer):
    """Counts the service's outcomes (service/observer.py) and the write path's groups
    (storage/writestats.py)."""

    def registered(self, created: bool, unknown_fields: int) -> None:
        (SESSIONS_REGISTERED if created else SESSIONS_REPLAYED).inc()
        if unknown_fields:
            _unknown_created.inc(unknown_fields)

    def pushed(self, stored: int, duplicates: int, unknown_fields: int) -> None:
        if stored:
            EVENTS_STORED.inc(stored)
        if duplicates:
            _refused["duplicate"].inc(duplicates)
        if unknown_fields:
            _unknown_pushed.inc(unknown_fields)

    def refused(self, reason: RefusalReason, events: int) -> None:
        _refused[reason].inc(events)

    def group(self, path: str, size: int) -> None:
        _groups[path].observe(size)

    def depth(self, path: str, writes: int) -> None:
        _queues[path].set(writes)


OBSERVER = PrometheusObserver()


def install(cs: Clickstream) -> None:
    """Count ``cs``'s outcomes and this process's write path."""
    cs.observer = OBSERVER
    writestats.watch_writes(OBSERVER)


class _StorageGauges(Collector):
    """Batches and the improvement queue, read from the database at scrape time."""

    def __init__(self, cs: Clickstream) -> None:
        self._cs = cs

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "searchtrail_database_up",
            "1 when the scrape's reads of batches and the improvement queue answered, else 0.",
        )
        try:
            sizes = self._cs.batch_sizes()
            queue = self._cs.improvement_counts()
        except SearchtrailError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        batches = GaugeMetricFamily(
            "searchtrail_batches", "Batches in each state.", labels=["state"]
        )
        for state in BatchState:
            batches.add_metric([state.value], sizes.batches.get(state.value, 0))
        yield batches
        yield GaugeMetricFamily(
            "searchtrail_collecting_batch_sessions",
            "Sessions in the collecting batch (the next release's size).",
            value=sizes.collecting_sessions,
        )
        entries = GaugeMetricFamily(
            "searchtrail_improvement_queue_entries",
            "Improvement queue entries in each state.",
            labels=["state"],
        )
        for name, n in queue.model_dump().items():
            entries.add_metric([name], n)
        yield entries


class _Scrape(Collector):
    def __init__(self, *parts: Collector) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()


def scrape(cs: Clickstream) -> bytes:
    """The text exposition: this process's metrics, or every worker's under ``serve``,
    then the storage gauges. Blocking (files, the database): run it off the event loop."""
    if _MULTIPROC_DIR is None:
        counted: Collector = _OWN
    else:
        _forget_dead_workers(_MULTIPROC_DIR)
        counted = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(counted, _MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(_Scrape(counted, _StorageGauges(cs)))


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_workers(path: str) -> None:
    """A worker that died without ``forget_process`` (killed, crashed) leaves its live
    gauges' file, which would keep its queue depth in the sum: drop those of dead pids.
    Counters of dead workers stay: what they counted happened."""
    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        found = _LIVE_FILE.search(name)
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, someone else's


def forget_process() -> None:
    """At a worker's shutdown: its live gauges leave the sum."""
    if _MULTIPROC_DIR is not None:
        multiprocess.mark_process_dead(os.getpid(), _MULTIPROC_DIR)  # type: ignore[no-untyped-call]
