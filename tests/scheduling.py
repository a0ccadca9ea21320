"""The order the suite's tests are handed out in, so that side-by-side workers finish together.

pytest-xdist's `load` scheduler gives each worker one run of consecutive tests first (a
quarter of its share: `len(items) // workers // 4`) and the rest one by one as workers
free up. Sorting the longest tests first put them all in the first worker's run: one
worker ran every issue-scale test in a row (513 s) while the other three were done at
~400 s. Here the long tests are dealt over the first runs, the heaviest to the lightest
run, and each run is topped up with the rest in their own order.

With TEST_PIN=1 (`scripts/test.sh` sets it, with four workers) each worker also keeps to
one core (`core_for`), it and everything it starts. On this 2-core KVM machine Chromium
spends about a quarter less CPU on a capture when its processes share one core than when
they are spread over two (0.50 against 0.65 CPU-s, docs/BENCHMARKS.md "The test suite's
time"); the whole run's CPU fell from 885 to 718 CPU-s, its time from 475 s (three
unpinned) to 370-380 s. Two workers on one core cannot borrow the other, so no test may
lean on the machine having time to spare: the session's shared capturers give pages
20 s (tests/conftest.py), where 8 s failed two of seven pinned fresh-clone runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def core_for(worker: str, cores: Iterable[int], workers: int) -> int | None:
    """The core xdist's `worker` ("gw0", "gw1", ...) of `workers` keeps to: round robin
    over `cores` (those this process may use). None with fewer than two cores, where there
    is no choice, or fewer workers than cores, which would leave a core unused."""
    ordered = sorted(cores)
    if len(ordered) < 2 or workers < len(ordered):
        return None
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return None
    return ordered[int(worker[2:]) % len(ordered)]


def spread(items: Sequence[T], weight: Callable[[T], float], workers: int) -> list[T]:
    """`items` in the order that balances xdist's first runs by `weight` (0: a short test)."""
    long = sorted((item for item in items if weight(item) > 0), key=weight, reverse=True)
    rest = [item for item in items if weight(item) <= 0]
    if workers < 2 or len(items) < 2 * workers:
        return long + rest
    size = max(2, len(items) // workers // 4)
    runs: list[list[T]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    left: list[T] = []
    for item in long:
        open_runs = [k for k in range(workers) if len(runs[k]) < size]
        if not open_runs:
            left.append(item)
            continue
        k = min(open_runs, key=loads.__getitem__)
        runs[k].append(item)
        loads[k] += weight(item)
    queue = left + rest
    for run in runs:
        take = size - len(run)
        run.extend(queue[:take])
        queue = queue[take:]
    return [item for run in runs for item in run] + queue
