"""``ClickLog``: sessions as arrays, the input of every click model.

Row ``s`` is one session; column ``k`` is position ``k + 1`` of the shown order, up to
``max_position``. ``pair[s, k]`` indexes the (query, object) shown there (``-1``: the
session showed fewer results); ``click[s, k]`` is whether that object was clicked. An
object shown twice counts at its first position only (as the metrics count it); its
later copies are ``-1``. Queries are grouped as the metrics group them
(``metrics.definitions.query_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
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


def build_click_log(
    rows: Sequence[tuple[int, object, Sequence[str], set[str]]], max_position: int
) -> ClickLog:
    """A log from ``(created_at_ms, search_query, result_ids, clicked)`` per session."""
    n = len(rows)
    pair = np.full((n, max_position), -1, dtype=np.int32)
    click = np.zeros((n, max_position), dtype=bool)
    query = np.zeros(n, dtype=np.int32)
    time_ms = np.zeros(n, dtype=np.int64)
    query_ids: dict[str, int] = {}
    pair_ids: dict[tuple[int, str], int] = {}
    pair_query: list[int] = []
    pair_object: list[str] = []
    for s, (created, search_query, result_ids, clicked) in enumerate(rows):
        key = query_key(search_query)
        q = query_ids.setdefault(key, len(query_ids))
        query[s] = q
        time_ms[s] = created
        seen: set[str] = set()
        for k, object_id in enumerate(result_ids[:max_position]):
            if object_id in seen:
                continue
            seen.add(object_id)
            p = pair_ids.get((q, object_id))
            if p is None:
                p = pair_ids[(q, object_id)] = len(pair_object)
                pair_query.append(q)
                pair_object.append(object_id)
            pair[s, k] = p
            click[s, k] = object_id in clicked
    return ClickLog(
        pair,
        click,
        query,
        time_ms,
        list(query_ids),
        np.array(pair_query, dtype=np.int32),
        pair_object,
    )


def read_click_log(
    reads: Reads,
    scope: MetricsScope,
    *,
    click_types: Sequence[str] = DEFAULT_CLICK_TYPES,
    max_position: int = 10,
) -> ClickLog:
    """The sessions of ``scope`` as a ``ClickLog``, read a page at a time."""
    rows: list[tuple[int, object, Sequence[str], set[str]]] = []
    after = 0
    while page := reads.click_rows(scope, click_types, after, _PAGE):
        rows.extend((r.created_at_ms, r.search_query, r.result_ids, r.clicked) for r in page)
        after = page[-1].session_number
    return build_click_log(rows, max_position)
