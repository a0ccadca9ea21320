"""Pages opened while their link is being queued: a head start for a lone new link.

A link is written before any slow work starts (its record and work entry), then queued
(its turn) and claimed (its lease): 15-50 ms of writes, the upper end while the previous
link's capture is being stored, that stood between the record and the browser. When a
capture slot is free, nothing waits for the browser, so once the link is written its
page is opened and shot while it is queued and claimed; the stage that claims it takes
the shot instead of opening the page again. Nothing reaches the user before the link is
claimed: the head start only moves the browser's work earlier. A link saved before, or
sent while the database is away, opens nothing; nor does a link its sender's pace will
hold, as far as this process has queued the sender's links (WorkQueue.holds_next).

A shot nobody here will take (the link waits for a pace only another process knew, no
capture slot was idle to hand it to, another process claimed it first, the database went
away while it was queued) is let go as soon as that is known, or after KEEP seconds. At
most as many run or wait as capture slots are free (not running a stage), so a burst of
messages never puts head starts ahead of links already queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bson import ObjectId

from bot.browser.types import Snapshot
from bot.futures import retrieved

KEEP = 30.0  # seconds a shot waits to be taken; past that it is dropped

Shot = tuple[Snapshot, str]  # the snapshot and the page's HTML (Capturer.shoot)
Ready = Callable[[], None]  # the page is about to be shot (Capturer.shoot's `ready`)
Shoot = Callable[[str, str, Ready], Awaitable[Shot]]  # (url, locale, ready)


class _Readiness:
    """Whether a head start's page is about to be shot, told to whoever takes it."""

    def __init__(self) -> None:
        self.fired = False
        self._listener: Ready | None = None

    def fire(self) -> None:
        self.fired = True
        if self._listener is not None:
            self._listener()

    def listen(self, listener: Ready) -> None:
        self._listener = listener
        if self.fired:
            listener()


@dataclass(frozen=True)
class Ahead:
    """A shot of a link's page in `locale`, started before the link was claimed."""

    locale: str
    shot: asyncio.Task[Shot]
    expiry: asyncio.TimerHandle
    readiness: _Readiness


class ShotsAhead:
    """Head starts by link; `start` when a capture slot is free, `take` when claimed."""

    def __init__(self, shoot: Shoot, keep: float = KEEP) -> None:
        self._shoot = shoot
        self._keep = keep
        self._ahead: dict[ObjectId, Ahead] = {}
        self._ending: set[asyncio.Task[Shot]] = set()  # let go, still closing their pages

    def start(self, link_id: ObjectId, url: str, locale: str, room: int) -> bool:
        """Open `url`, the page of link `link_id`, now, if fewer head starts are out than
        `room` (capture slots free) and none is out for the link already."""
        if link_id in self._ahead or len(self._ahead) >= room:
            return False
        readiness = _Readiness()
        shot = asyncio.ensure_future(self._shoot(url, locale, readiness.fire))
        shot.add_done_callback(retrieved)  # a failure is the taker's to report
        expiry = asyncio.get_running_loop().call_later(self._keep, self.drop, link_id)
        self._ahead[link_id] = Ahead(locale, shot, expiry, readiness)
        return True

    def take(self, link_id: ObjectId, locale: str, ready: Ready) -> asyncio.Task[Shot] | None:
        """The shot started for the link, now the caller's, who is told (`ready`) once
        its page is about to be shot, or at once if it is past that; None if there is
        none (or it was made in another locale: let go)."""
        ahead = self._ahead.pop(link_id, None)
        if ahead is None:
            return None
        ahead.expiry.cancel()
        if ahead.locale != locale:
            self._end(ahead.shot)
            return None
        ahead.readiness.listen(ready)
        return ahead.shot

    def drop(self, link_id: ObjectId) -> None:
        """Nobody here will take the link's shot: its page is closed (or its result let go)."""
        ahead = self._ahead.pop(link_id, None)
        if ahead is not None:
            ahead.expiry.cancel()
            self._end(ahead.shot)

    async def close(self) -> None:
        """Stop: every head start not taken ends, its page closed, before the browser does."""
        for link_id in list(self._ahead):
            self.drop(link_id)
        await asyncio.gather(*self._ending, return_exceptions=True)

    def _end(self, shot: asyncio.Task[Shot]) -> None:
        shot.cancel()
        self._ending.add(shot)
        shot.add_done_callback(self._ending.discard)
