"""A small file system that really runs out of space: tmpfs, mounted by the test (root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["resize", "small_disk"]


@contextmanager
def small_disk(where: Path, size: str, *, options: str = "") -> Iterator[Path]:
    """``where`` with a tmpfs of ``size`` (e.g. ``"3m"``) mounted on it, until exit.

    Mounting needs root (the tests run as root here and in CI); without it this fails,
    with mount's reason, rather than skip.
    """
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"could not mount a small tmpfs (root needed): {done.stderr}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def resize(where: Path, size: str) -> None:
    """Give the tmpfs at ``where`` room (or take it): what freeing disk space does."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)
