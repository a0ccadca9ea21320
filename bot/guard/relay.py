"""Splice two TCP connections at the transport level: no task per direction, no drain per chunk.

What one end receives is written straight to the other end's transport from the event
loop's callback; back-pressure is the transports' own (the receiving end stops reading
while the other end's write buffer is above its high-water mark). The tunnel meters
every chunk (the caller's byte budget), closes itself when no byte has moved either way
for `idle` seconds, and gives a side that has ended a short grace for the other side to
finish before both are cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

# Past this much unsent data an end stops reading from the other (asyncio's default is
# 64 KiB; a page's images and scripts are often larger, and each pause costs a syscall).
_HIGH_WATER = 256 * 1024


class End(asyncio.Protocol):
    """One side of a tunnel: what it receives goes to the other side's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.tunnel: Tunnel | None = None
        self.peer: End | None = None
        self.ended = False  # this side sent end-of-stream
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an `asyncio.Transport` subclass).
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.carry(self, data)

    def eof_received(self) -> bool:
        return self.tunnel.side_ended(self) if self.tunnel is not None else False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.tunnel is not None:
            self.tunnel.side_lost(self)

    # Back-pressure: this side's outgoing buffer is full, so stop reading the other side.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.touch()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class Tunnel:
    """Two connected `End`s, relayed until one ends, the pair idles out, or `meter` says stop.

    `meter(size)` is called for each chunk before it is passed on; False drops the chunk
    (the caller has cut the connections). `on_close` runs once, when both sides are gone;
    `on_silent` when the tunnel idles out before the upstream side sent a single byte
    (a server that took the connection and never answered).
    """

    def __init__(
        self,
        client: End,
        upstream: End,
        *,
        meter: Callable[[int], bool],
        idle: float,
        grace: float,
        on_close: Callable[[], None],
        on_silent: Callable[[], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._ends = (client, upstream)
        self._meter = meter
        self._idle = idle
        self._grace = min(grace, idle)
        self._on_close: Callable[[], None] | None = on_close
        self._on_silent = on_silent
        self.answered = False  # the upstream side has sent something
        client.peer, upstream.peer = upstream, client
        client.tunnel = upstream.tunnel = self
        self.last = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = self._loop.call_at(
            self.last + idle, self._check_idle
        )
        self._grace_timer: asyncio.TimerHandle | None = None
        for end in self._ends:
            if end.lost:  # went away before the tunnel was made
                self.side_lost(end)

    def carry(self, source: End, data: bytes) -> None:
        """A chunk from `source`, metered and written to the other side."""
        self.last = self._loop.time()
        if source is self._ends[1]:
            self.answered = True
        if not self._meter(len(data)):
            return
        target = source.peer
        if target is not None and target.transport is not None and not target.lost:
            target.transport.write(data)

    def send(self, source: End, data: bytes) -> None:
        """Bytes the proxy already read from `source` (past a request head), passed on."""
        if data:
            self.carry(source, data)

    def touch(self) -> None:
        self.last = self._loop.time()

    def side_ended(self, source: End) -> bool:
        """`source` will send nothing more: pass the end-of-stream on, keep the other way open."""
        source.ended = True
        target = source.peer
        if target is None or target.transport is None or target.ended or target.lost:
            self.close()
            return False
        if target.transport.can_write_eof():
            target.transport.write_eof()  # written after whatever is still buffered
        self._start_grace()
        return True  # keep our transport: the other direction may still carry a reply

    def side_lost(self, source: End) -> None:
        """`source`'s connection is gone: flush what the other side still has to send, then end."""
        target = source.peer
        if target is not None and target.transport is not None and not target.lost:
            target.transport.close()
            self._start_grace()
        if all(end.lost for end in self._ends):
            self._finish()

    def close(self) -> None:
        """Close both sides (their buffered bytes still go out), cut them after the grace."""
        for end in self._ends:
            if end.transport is not None and not end.lost:
                end.transport.close()
        self._start_grace()

    def abort(self) -> None:
        """Cut both sides now, dropping whatever is buffered."""
        for end in self._ends:
            if end.transport is not None:
                end.transport.abort()
        self._finish()

    def _start_grace(self) -> None:
        # A side that ended gets a short while for the other to finish, not forever: a
        # peer that never reads would otherwise hold the buffered bytes (and the slot).
        if self._grace_timer is None and self._on_close is not None:
            self._grace_timer = self._loop.call_later(self._grace, self.abort)

    def _check_idle(self) -> None:
        due = self.last + self._idle
        if self._loop.time() >= due:
            self._idle_timer = None
            if not self.answered and self._on_silent is not None:
                self._on_silent()
            self.abort()
        else:
            self._idle_timer = self._loop.call_at(due, self._check_idle)

    def _finish(self) -> None:
        for timer in (self._idle_timer, self._grace_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._grace_timer = None
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
