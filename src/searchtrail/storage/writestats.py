"""What the write path reports as it works: group sizes and writes waiting.

The storage knows nothing of Prometheus: the HTTP layer installs a ``WriteObserver``
(``watch_writes``) and the write paths call it once per group, never per write. The
observer is process-wide, as the one write path of a ``serve`` worker is; with no
observer installed (the library, the CLI) a report costs one attribute read.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["WriteObserver", "current", "watch_writes"]


class WriteObserver(Protocol):
    def group(self, path: str, size: int) -> None:
        """``size`` writes go to the database together (``path``: which write path)."""

    def depth(self, path: str, writes: int) -> None:
        """``writes`` accepted by ``path`` and not yet answered."""


_observer: WriteObserver | None = None


def watch_writes(observer: WriteObserver | None) -> None:
    global _observer
    _observer = observer


def current() -> WriteObserver | None:
    return _observer
