"""Run ``searchtrail`` and write the process's peak RSS (kB) to a file at exit.

``python -m tests.peak_rss OUT_FILE ARGS...``. The peak comes from ``VmHWM`` in
/proc/self/status, which belongs to this program's own address space. ``ru_maxrss``
(``getrusage`` of self or children, ``wait4``) would not do: Linux carries the parent's
peak across fork and exec into it, so a child of a big test process reports the
parent's size.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path

from searchtrail.cli import main


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    atexit.register(lambda: out.write_text(str(_peak_kb())))
    main(sys.argv[2:], prog_name="searchtrail")
