"""Read an import file in a child process: one user's file never holds up the bot.

Parsing is CPU work in pure Python (HTMLParser, csv, json): in the bot's own process it
would stop the event loop, and every other user's updates, for as long as it takes. So
`read` hands the bytes to `python -m bot.library.import_reader` on stdin, bounded in wall time
(`READ_SECONDS`; past it the child is killed by its PID), CPU time and address space
(set by the child on itself), and takes back one JSON line per bookmark, decoded a
slice at a time between turns of the loop. What a file may hold (entries, tags per link,
depth) is bounded by bot/library/bookmarks.py.

    stdout: {"kind": …, "invalid": n, "repeats": n, "capped": n}   or   {"refused": …}
            {"url": …, "title": …, "tags": […], "note": …, "created_at": …, "extra": {…}}
            …
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.library.bookmarks import (
    BadEncoding,
    Bookmark,
    ImportRefused,
    Malformed,
    NoLinks,
    Parsed,
    TooDeep,
    TooMany,
    UnknownFormat,
    parse,
)

log = logging.getLogger(__name__)

READ_SECONDS = 60.0
MEMORY_BYTES = 2**30  # address space of the child (a 20 MB file needs a few hundred MB)
READERS = 2  # children at once in one process; more files wait their turn
_SLICE = 500  # bookmarks decoded between two turns of the event loop
_readers = asyncio.Semaphore(READERS)
_ROOT = Path(__file__).resolve().parents[2]


class TooSlow(ImportRefused):
    """Reading took longer than READ_SECONDS: the child was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"not read within {seconds:.0f} s")
        self.seconds = seconds


class TooCostly(ImportRefused):
    """The reader ran out of CPU time or memory (its limits), or failed some other way."""


def command() -> Sequence[str]:
    """How the child is started (a test may hold it at the door)."""
    return [sys.executable, "-s", "-m", "bot.library.import_reader"]


async def read(data: bytes, *, seconds: float = READ_SECONDS) -> Parsed:
    """The file's bookmarks; ImportRefused (a subclass saying why) when none can be used.
    At most READERS files are read at once (each child may take MEMORY_BYTES)."""
    async with _readers:
        out = await _child(data, seconds)
    lines = out.splitlines()
    if not lines:
        raise TooCostly("reader said nothing")
    return await _parsed(json.loads(lines[0]), lines[1:])


async def _child(data: bytes, seconds: float) -> bytes:
    """The child's output, once it has ended by itself."""
    proc = await asyncio.create_subprocess_exec(
        *command(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={
            "PYTHONPATH": str(_ROOT),
            "READ_SECONDS": str(seconds),
            "READ_MEMORY": str(MEMORY_BYTES),
        },
        cwd=_ROOT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), seconds)
    except TimeoutError:
        raise TooSlow(seconds) from None
    finally:
        if proc.returncode is None:  # timed out, or the bot is stopping: ours to end
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        log.warning("import reader ended with %s", proc.returncode)
        raise TooCostly(f"reader ended with {proc.returncode}")
    return out


async def _parsed(head: dict[str, Any], lines: list[bytes]) -> Parsed:
    refused = head.get("refused")
    if refused is not None:
        raise _refusal(str(refused), str(head.get("kind", "")), str(head.get("detail", "")))
    marks: list[Bookmark] = []
    for start in range(0, len(lines), _SLICE):
        marks += [_bookmark(json.loads(line)) for line in lines[start : start + _SLICE]]
        await asyncio.sleep(0)  # other users' updates between slices
    return Parsed(
        str(head["kind"]), marks, int(head["invalid"]), int(head["repeats"]), int(head["capped"])
    )


def _refusal(refused: str, kind: str, detail: str) -> ImportRefused:
    match refused:
        case "encoding":
            return BadEncoding(detail)
        case "malformed":
            return Malformed(kind, detail)
        case "deep":
            return TooDeep(kind)
        case "many":
            return TooMany(int(detail))
        case "empty":
            return NoLinks(kind)
    return UnknownFormat(detail)


def _bookmark(raw: dict[str, Any]) -> Bookmark:
    when = raw.get("created_at")
    return Bookmark(
        url=raw["url"],
        title=raw.get("title"),
        tags=list(raw.get("tags") or []),
        note=raw.get("note") or "",
        created_at=datetime.fromisoformat(when) if when else None,
        extra=dict(raw.get("extra") or {}),
    )


# --- the child -----------------------------------------------------------------------


def _limit_self(seconds: float, memory: int) -> None:
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(seconds) + 1
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _head(exc: ImportRefused) -> dict[str, Any]:
    if isinstance(exc, BadEncoding):
        return {"refused": "encoding", "detail": exc.detail}
    if isinstance(exc, Malformed):
        return {"refused": "malformed", "kind": exc.kind, "detail": exc.detail}
    if isinstance(exc, TooDeep):
        return {"refused": "deep", "kind": str(exc)}
    if isinstance(exc, TooMany):
        return {"refused": "many", "detail": str(exc.limit)}
    if isinstance(exc, NoLinks):
        return {"refused": "empty", "kind": str(exc)}
    return {"refused": "unknown", "detail": str(exc)}


def _line(mark: Bookmark) -> str:
    raw = {
        "url": mark.url,
        "title": mark.title,
        "tags": mark.tags,
        "note": mark.note,
        "created_at": mark.created_at.isoformat() if mark.created_at else None,
        "extra": mark.extra,
    }
    return json.dumps(raw, ensure_ascii=False)


def _write(out: Any, line: str) -> None:
    out.write(line.encode("utf-8", "replace") + b"\n")


def main() -> None:
    seconds = float(os.environ.get("READ_SECONDS", READ_SECONDS))
    _limit_self(seconds, int(os.environ.get("READ_MEMORY", MEMORY_BYTES)))
    data = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    try:
        parsed = parse(data)
    except ImportRefused as exc:
        _write(out, json.dumps(_head(exc)))
        return
    head = {
        "kind": parsed.kind,
        "invalid": parsed.invalid,
        "repeats": parsed.repeats,
        "capped": parsed.capped,
    }
    _write(out, json.dumps(head))
    for mark in parsed.bookmarks:
        _write(out, _line(mark))
    out.flush()


if __name__ == "__main__":
    main()
