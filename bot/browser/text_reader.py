"""Pages' main text, read in a process of its own at a lower priority.

Reading a page's text takes 0.1-1 s of CPU (seconds on a big page). In a thread of the
bot it held the interpreter's lock against the event loop that relays every request of
the pages being opened (bot/guard/egress.py) and drives the browser: in a burst of 30
real pages a photo came 5.1 s after its link (p50) instead of 1.3 s, the last at 14.8 s
instead of 10.3 s (docs/BENCHMARKS.md). In a child process
(bot/browser/text_child.py, niced) the pages render first and the text takes the CPU
they leave.

One child, started with the first page's text and closed with the browser when idle;
pages queue for it in turn. A child that dies, or takes longer than TEXT_TIMEOUT on
one page, is ended (it is ours) and the page keeps its screenshot without text; the next
page starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bot.browser.text_child import FIELDS, LENGTH, frame

log = logging.getLogger(__name__)

TEXT_TIMEOUT = 60.0  # seconds for one page's text, however busy the machine
# -P: the script's own folder (bot/browser, with a types.py) must not shadow the stdlib.
CHILD = [sys.executable, "-P", str(Path(__file__).with_name("text_child.py"))]
# All the child needs of the bot's environment (where its packages are): none of its
# secrets.
_ENV_KEPT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


@dataclass(frozen=True)
class PageText:
    """What trafilatura found in a page; None where it found nothing."""

    text: str | None = None
    title: str | None = None
    description: str | None = None
    site_name: str | None = None
    lang: str | None = None


class TextReader:
    """Sends pages to the text child, one at a time, and starts it again when needed."""

    def __init__(self, command: list[str] | None = None, timeout: float = TEXT_TIMEOUT) -> None:
        self._command = command or CHILD
        self.timeout = timeout
        self._child: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()  # one page in the child at a time
        self.started = 0  # children started so far

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    async def read(self, html: str, url: str | None) -> PageText | None:
        """The page's text, or None when it could not be read (logged)."""
        async with self._turn:
            child = await self._running()
            try:
                async with asyncio.timeout(self.timeout):
                    answer = await _exchange(child, {"html": html, "url": url})
            except TimeoutError:
                log.warning("reading a page's text took over %.0f s: stopped", self.timeout)
                await self._end()
                return None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                log.warning("the text reader stopped (%s); the next page starts it again", exc)
                await self._end()
                return None
            except BaseException:  # cancelled mid-page: its answer would go to the next one
                await self._end()
                raise
        if "error" in answer:
            log.warning("text extraction failed for a page: %s", answer["error"])
            return None
        return PageText(**{field: _text(answer.get(field)) for field in FIELDS})

    async def close(self) -> None:
        """End the child once the page in it is read (a new one starts when needed)."""
        async with self._turn:
            child, self._child = self._child, None
            if child is None:
                return
            assert child.stdin is not None
            child.stdin.close()  # the child ends at the end of its input
            try:
                async with asyncio.timeout(5):
                    await child.wait()
            except TimeoutError:
                await _kill(child)

    async def _running(self) -> asyncio.subprocess.Process:
        if self._child is None or self._child.returncode is not None:
            self._child = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={key: os.environ[key] for key in _ENV_KEPT if key in os.environ},
            )
            self.started += 1
        return self._child

    async def _end(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            await asyncio.shield(_kill(child))


async def _exchange(
    child: asyncio.subprocess.Process, request: dict[str, object]
) -> dict[str, object]:
    assert child.stdin is not None and child.stdout is not None
    body = json.dumps(request).encode()
    child.stdin.write(frame(body))
    await child.stdin.drain()
    (length,) = LENGTH.unpack(await child.stdout.readexactly(LENGTH.size))
    answer = json.loads(await child.stdout.readexactly(length))
    if not isinstance(answer, dict):
        raise ValueError("the text reader answered out of turn")
    return answer


async def _kill(child: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.kill()  # our own child, by its PID
    await child.wait()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
