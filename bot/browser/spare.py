"""One browser page made ready before a capture needs it.

A context's first page starts a renderer process: about 150 ms of the ~400 ms that a
bare Playwright shot of a light page takes on the project's machine (docs/BENCHMARKS.md).
The capturer keeps one page ready (its own context, proxy session and consent
script, nothing loaded) and makes the next once a capture has finished, so a link
sent on its own starts on a page that already exists; when a capture slot has already
claimed its next link, sooner, while the page before is shot (`Capturer.spare_ahead`).

A spare serves one capture and is closed with it: no cookie, storage or cache of one
link's page reaches another. It is made for one locale (the context's language cannot
change later); a capture in another language makes its own page as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page

from bot.futures import retrieved
from bot.guard.egress import EgressSession

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A context with one blank page, behind its own proxy session."""

    browser: Browser
    locale: str
    context: BrowserContext
    page: Page
    session: EgressSession


Make = Callable[[Browser, str], Coroutine[Any, Any, Prepared]]
Discard = Callable[[Prepared], Awaitable[None]]


class SparePage:
    """At most one prepared page, waiting for the next capture."""

    def __init__(self, make: Make, discard: Discard) -> None:
        self._make = make
        self._discard = discard
        self._next: asyncio.Task[Prepared] | None = None
        self._closed = False
        self._discarding: set[asyncio.Task[None]] = set()

    async def take(self, browser: Browser, locale: str) -> Prepared | None:
        """The spare, if it suits (same browser, still alive, this locale); one still
        being made is awaited, being further along than a new one. Each spare is given
        out once."""
        task, self._next = self._next, None
        if task is None:
            return None
        try:
            prepared = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._discard_later)  # a cancelled capture: not lost
            raise
        except Exception as exc:
            log.info("the spare page could not be made: %s", exc)
            return None
        if (
            prepared.browser is browser
            and browser.is_connected()
            and prepared.locale == locale
            and not prepared.page.is_closed()
        ):
            return prepared
        await self._discard(prepared)
        return None

    def refill(self, browser: Browser, locale: str) -> None:
        """Make the next spare (for `locale`) unless one exists or is being made."""
        if self._closed or self._next is not None or not browser.is_connected():
            return
        self._next = asyncio.create_task(self._make(browser, locale))
        # A spare that failed is only reported when taken.
        self._next.add_done_callback(retrieved)

    async def close(self) -> None:
        self._closed = True
        await self.drop()

    async def drop(self) -> None:
        """Discard the spare (made or being made); `refill` makes the next one."""
        task, self._next = self._next, None
        if task is None:
            return
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if isinstance(outcome, Prepared):
            await self._discard(outcome)

    def _discard_later(self, task: asyncio.Task[Prepared]) -> None:
        if not task.cancelled() and task.exception() is None:
            closing = asyncio.ensure_future(self._discard(task.result()))
            self._discarding.add(closing)
            closing.add_done_callback(self._discarding.discard)
