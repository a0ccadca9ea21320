"""Pages opened while their link is being queued: a head start for a lone new link.

A link is written before any slow work starts (its record and work entry), then queued
(its turn) and claimed (its lease): 15-50 ms of writes, the upper end while the previous
link's capture is being stored, that stood between the record and the browser. When a
capture slot is idle, nothing waits for the browser, so once the link is written its
page is opened and shot while it is queued and claimed; the stage that claims it takes
the shot instead of opening the page again. Nothing reaches the user before the link is
claimed: the head start only moves the browser's work earlier. A link saved before, or
sent while the database is away, opens nothing.

A shot nobody takes (the link waits for its pace, another process claimed it, the
database went away while it was queued) is dropped when the handler knows so, or after
KEEP seconds. At most as many run or wait as capture slots are idle, so a burst of
messages never puts head starts ahead of links already queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.browser.types import Snapshot
from bot.futures import retrieved

KEEP = 30.0  # seconds a shot waits to be taken; past that it is dropped

Shot = tuple[Snapshot, str]  # the snapshot and the page's HTML (Capturer.shoot)
Shoot = Callable[[str, str], Awaitable[Shot]]  # (url, locale)


@dataclass(frozen=True)
class Ahead:
    """A shot of `url` in `locale`, started before its link was claimed."""

    url: str
    locale: str
    shot: asyncio.Task[Shot]


class ShotsAhead:
    """Head starts by URL; `start` when a capture slot is idle, `take` when claimed."""

    def __init__(self, shoot: Shoot, keep: float = KEEP) -> None:
        self._shoot = shoot
        self._keep = keep
        self._ahead: dict[str, Ahead] = {}

    def start(self, url: str, locale: str, room: int) -> bool:
        """Open `url` now, if fewer head starts are out than `room` (idle capture slots)
        and none is out for it already."""
        if url in self._ahead or len(self._ahead) >= room:
            return False
        shot = asyncio.ensure_future(self._shoot(url, locale))
        shot.add_done_callback(retrieved)  # a failure is the taker's to report
        ahead = self._ahead[url] = Ahead(url, locale, shot)
        asyncio.get_running_loop().call_later(self._keep, self._expire, ahead)
        return True

    def take(self, url: str, locale: str) -> asyncio.Task[Shot] | None:
        """The shot started for `url`, now the caller's; None if there is none (or it
        was made in another locale: dropped)."""
        ahead = self._ahead.pop(url, None)
        if ahead is None:
            return None
        if ahead.locale != locale:
            ahead.shot.cancel()
            return None
        return ahead.shot

    def drop(self, url: str) -> None:
        """Nobody will take the shot of `url`: its page is closed (or its result let go)."""
        ahead = self._ahead.pop(url, None)
        if ahead is not None:
            ahead.shot.cancel()

    async def close(self) -> None:
        """Stop: every head start not taken ends (its page closed) before the browser does."""
        untaken = [ahead.shot for ahead in self._ahead.values()]
        self._ahead.clear()
        for shot in untaken:
            shot.cancel()
        await asyncio.gather(*untaken, return_exceptions=True)

    def _expire(self, ahead: Ahead) -> None:
        if self._ahead.get(ahead.url) is ahead:
            self.drop(ahead.url)
