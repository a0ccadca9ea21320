"""How much memory this process and the processes it started hold (Linux /proc).

PSS (proportional set size), not RSS: Chromium's processes share most of their pages,
and RSS would count those once per process. Where /proc has no smaps_rollup (another
OS, a locked-down container) RSS from statm stands in, and with no /proc at all, 0.
"""

from __future__ import annotations

import ctypes
import gc
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Memory:
    """Bytes held by the process itself and by its descendants (its browser)."""

    own: int
    children: int

    @property
    def total(self) -> int:
        return self.own + self.children


def process_memory(pid: int | None = None) -> Memory:
    """This process (or `pid`) and everything it started, in PSS bytes."""
    pid = os.getpid() if pid is None else pid
    descendants = _descendants(pid)
    return Memory(own=pss(pid), children=sum(pss(child) for child in descendants))


def tree_pss(pid: int) -> int:
    """PSS of `pid` and all its descendants, in bytes."""
    return process_memory(pid).total


def pss(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = list(PROC.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def give_back() -> bool:
    """Return the C heap's free pages to the system (glibc's `malloc_trim`).

    After a burst, parsing multi-megabyte pages leaves the allocator holding memory
    the process no longer uses (measured: the bot's PSS stayed at ~260 MiB after 30
    real pages, ~80 MiB at start). Called when the browser closes for idleness; False
    where there is no glibc.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
