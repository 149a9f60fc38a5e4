"""``ClickLog``: sessions as arrays, the input of every click model.

Row ``s`` is one session; column ``k`` is position ``k + 1`` of the shown order, up to
``max_position``. ``pair[s, k]`` indexes the (query, object) shown there (``-1``: the
session showed fewer results); ``click[s, k]`` is whether that object was clicked. An
object shown twice counts at its first position only (as the metrics count it); its
later copies are ``-1``. Queries are grouped as the metrics group them
(``metrics.definitions.query_key``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from searchtrail.metrics.definitions import query_key
from searchtrail.storage import MetricsScope, Reads

__all__ = ["DEFAULT_CLICK_TYPES", "ClickLog", "read_click_log"]

DEFAULT_CLICK_TYPES = ("click", "add_to_cart", "purchase")
_PAGE = 20_000


@dataclass(frozen=True)
class ClickLog:
    pair: np.ndarray  # (sessions, max_position) int32, -1 where nothing was shown
    click: np.ndarray  # (sessions, max_position) bool
    query: np.ndarray  # (sessions,) int32, index into ``queries``
    time_ms: np.ndarray  # (sessions,) int64, the session's created_at
    queries: list[str]  # query keys
    pair_query: np.ndarray  # (pairs,) int32: the query of each pair
    pair_object: list[str]  # (pairs,): the object of each pair

    @property
    def sessions(self) -> int:
        return int(self.pair.shape[0])

    @property
    def max_position(self) -> int:
        return int(self.pair.shape[1])

    @property
    def pairs(self) -> int:
        return len(self.pair_object)

    @property
    def shown(self) -> np.ndarray:
        """(sessions, max_position) bool: a result was shown there."""
        return self.pair >= 0

    def take(self, rows: np.ndarray) -> ClickLog:
        """The sessions ``rows`` (indices or a mask), with the same pairs and queries."""
        return ClickLog(
            self.pair[rows],
            self.click[rows],
            self.query[rows],
            self.time_ms[rows],
            self.queries,
            self.pair_query,
            self.pair_object,
        )

    def split(self, test_fraction: float = 0.1) -> tuple[ClickLog, ClickLog]:
        """(train, test): the test set is the latest ``test_fraction`` of sessions by time."""
        order = np.argsort(self.time_ms, kind="stable")
        cut = self.sessions - round(self.sessions * test_fraction)
        return self.take(np.sort(order[:cut])), self.take(np.sort(order[cut:]))


class _Builder:
    """Sessions added a page at a time; ``log()`` numbers the pairs once at the end.

    Objects are numbered as first seen, each page's results go into an (rows,
    max_position) array of object numbers at once, and the pairs are the distinct
    (query, object) numbers over all pages (``np.unique``): numbered by query, then by
    object, as first seen.
    """

    def __init__(self, max_position: int) -> None:
        self.m = max_position
        self.queries: dict[str, int] = {}
        self.objects: dict[str, int] = {}
        self.known: dict[str, int] = {}  # a query as given (a string) to its number
        self.shown: list[np.ndarray] = []
        self.clicks: list[np.ndarray] = []
        self.query: list[int] = []
        self.time_ms: list[int] = []

    def add(self, rows: Iterable[tuple[int, object, Sequence[str], set[str]]]) -> None:
        m, objects, queries, known = self.m, self.objects, self.queries, self.known
        lengths: list[int] = []
        flat: list[int] = []
        clicked_at: list[int] = []  # flat indices (into ``flat``) of the clicked results
        for created, search_query, result_ids, clicked in rows:
            if isinstance(search_query, str):
                q = known.get(search_query)
                if q is None:
                    q = known[search_query] = queries.setdefault(
                        query_key(search_query), len(queries)
                    )
            else:
                q = queries.setdefault(query_key(search_query), len(queries))
            self.query.append(q)
            self.time_ms.append(created)
            ids = result_ids[:m]
            lengths.append(len(ids))
            if clicked:
                at = len(flat)
                clicked_at.extend(at + k for k, o in enumerate(ids) if o in clicked)
            try:
                flat.extend([objects[o] for o in ids])
            except KeyError:
                flat.extend([objects.setdefault(o, len(objects)) for o in ids])
        shown = np.arange(m) < np.array(lengths, dtype=np.int64)[:, None]
        obj = np.full(shown.shape, -1, dtype=np.int32)
        obj[shown] = flat
        flat_click = np.zeros(len(flat), dtype=bool)
        flat_click[clicked_at] = True
        click = np.zeros(shown.shape, dtype=bool)
        click[shown] = flat_click
        # An object shown again counts at its first position only.
        for k in range(1, m):
            again = (obj[:, k : k + 1] == obj[:, :k]).any(axis=1) & (obj[:, k] >= 0)
            obj[again, k] = -1
            click[again, k] = False
        self.shown.append(obj)
        self.clicks.append(click)

    def log(self) -> ClickLog:
        m = self.m
        obj = np.concatenate(self.shown) if self.shown else np.zeros((0, m), dtype=np.int32)
        click = np.concatenate(self.clicks) if self.clicks else np.zeros((0, m), dtype=bool)
        query = np.array(self.query, dtype=np.int32)
        shown = obj >= 0
        n_objects = max(len(self.objects), 1)
        key = query.astype(np.int64)[:, None] * n_objects + obj
        keys, inverse = np.unique(key[shown], return_inverse=True)
        pair = np.full(obj.shape, -1, dtype=np.int32)
        pair[shown] = inverse.reshape(-1)
        names = list(self.objects)
        return ClickLog(
            pair,
            click,
            query,
            np.array(self.time_ms, dtype=np.int64),
            list(self.queries),
            (keys // n_objects).astype(np.int32),
            [names[i] for i in (keys % n_objects).tolist()],
        )


def build_click_log(
    rows: Iterable[tuple[int, object, Sequence[str], set[str]]], max_position: int
) -> ClickLog:
    """A log from ``(created_at_ms, search_query, result_ids, clicked)`` per session."""
    builder = _Builder(max_position)
    builder.add(rows)
    return builder.log()


def read_click_log(
    reads: Reads,
    scope: MetricsScope,
    *,
    click_types: Sequence[str] = DEFAULT_CLICK_TYPES,
    max_position: int = 10,
) -> ClickLog:
    """The sessions of ``scope`` as a ``ClickLog``, read and added a page at a time."""
    builder = _Builder(max_position)
    after = 0
    while page := reads.click_rows(scope, click_types, after, _PAGE):
        builder.add((r.created_at_ms, r.search_query, r.result_ids, r.clicked) for r in page)
        after = page[-1].session_number
    return builder.log()
