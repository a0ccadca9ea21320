"""Live progress of links in this process: the pipeline's stages publish, pages listen.

A stage says when a link enters it (`stage`), and the summary stage passes on each piece
of text it pushes into the chat's editor (`summary`). The platform's pages (bot/web/)
subscribe per link and forward what comes as server-sent events. Only this process's
stages are heard here: a page whose link is worked on by another process reads the
record from the database instead (bot/web/progress.py), so nothing depends on hearing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bson import ObjectId
from cachetools import TTLCache

from storage.models import Status

MAX_QUEUED = 2000  # events one listener may fall behind by before it is told to resync
_ENDED = frozenset({str(Status.DONE), str(Status.FAILED), str(Status.SUMMARY_FAILED)})


@dataclass(frozen=True)
class LinkEvent:
    """A link entered a stage (`status`, with `reason` when it failed), or its summary
    grew by `piece`."""

    link_id: ObjectId
    status: str | None = None
    piece: str | None = None
    at: int = 0  # where `piece` starts in the summary (a listener may have the start)
    reason: str | None = None


@dataclass(eq=False)  # each listener is itself (kept in a set)
class Listener:
    """One page's view of one link. `lagged`: events were dropped (it fell far behind):
    the listener shows the summary so far from `LiveEvents.summary_so_far` instead."""

    events: deque[LinkEvent] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lagged: bool = False

    def take(self) -> list[LinkEvent]:
        self.wake.clear()
        out = list(self.events)
        self.events.clear()
        return out


class LiveEvents:
    def __init__(self, *, max_links: int = 10_000) -> None:
        self._listeners: dict[ObjectId, set[Listener]] = {}
        # Summaries being written now, so a page opened mid-way shows the start too.
        self._summaries: TTLCache[ObjectId, str] = TTLCache(max_links, ttl=3600)

    def stage(self, link_id: ObjectId, status: Status | str, reason: str | None = None) -> None:
        status = str(status)
        if status == Status.SUMMARIZING or status in _ENDED:
            self._summaries.pop(link_id, None)
        self._publish(LinkEvent(link_id, status=status, reason=reason))

    def summary(self, link_id: ObjectId, piece: str) -> None:
        before = self._summaries.get(link_id, "")
        self._summaries[link_id] = before + piece
        self._publish(LinkEvent(link_id, piece=piece, at=len(before)))

    def summary_so_far(self, link_id: ObjectId) -> str | None:
        return self._summaries.get(link_id)

    @contextmanager
    def listen(self, link_id: ObjectId) -> Iterator[Listener]:
        listener = Listener()
        self._listeners.setdefault(link_id, set()).add(listener)
        try:
            yield listener
        finally:
            listeners = self._listeners.get(link_id, set())
            listeners.discard(listener)
            if not listeners:
                self._listeners.pop(link_id, None)

    def _publish(self, event: LinkEvent) -> None:
        for listener in self._listeners.get(event.link_id, ()):
            if len(listener.events) >= MAX_QUEUED:
                listener.events.clear()
                listener.lagged = True
            listener.events.append(event)
            listener.wake.set()
