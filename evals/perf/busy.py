"""Other programs on the CPU: `busy_cores(n)` runs n processes that burn a core each (a tight loop, as a build or
a backup would) for as long as it is entered, and stops them on exit whatever happens. The runtime benchmarks run
once quiet and once busy with it (`--busy-cores`), so the figures show what a customer gets on a shared machine."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_BURN = "while True:\n    pass\n"


@contextmanager
def busy_cores(n: int) -> Iterator[list[int]]:
    """n CPU-burning processes while entered; their pids."""
    procs = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(max(0, n))]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)
