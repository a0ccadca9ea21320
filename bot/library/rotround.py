"""One round of link-rot checks: the links due, checked concurrently, each answer written
as it comes.

- **Due**: a link whose last check is older than `checked_before` (never-checked first,
  newest first, so an import's links are looked at soon), from the listing's due order.
- **Concurrency**: links are queued by host; at most `in_flight` hosts are worked at once,
  one request at a time each, so at most `in_flight` requests are in flight, and no host
  is asked more than once a second (bot/library/hostpace.py).
- **Resuming**: each link's `checked_at` is written the moment its answer is in, and is
  the round's cursor: a round cut short (its worker died, its time was up) leaves
  exactly the links it had not answered due for the next round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

from bson import ObjectId

from bot.guard.netguard import NetGuard
from bot.library import linkrot
from bot.library.hostpace import HostPacer
from storage.models import LinkRecord, utcnow
from storage.repository import LinkStore

log = logging.getLogger(__name__)

IN_FLIGHT = 32  # hosts worked at once (one request in flight each)
FETCH = 200  # links read from the due order at a time
MAX_QUEUED = 2000  # links held in memory, waiting for their host's turn
# Seconds between looks at the due order while lanes work: one large host's lane can
# run for minutes, and other hosts' links may be waiting further down the order.
LOOK_AGAIN = 5.0
# The listing index may name links whose check has just been written (its view lags,
# its replay held up by another): then MongoDB itself is asked, after LAG_PAUSE seconds,
# up to LAG_LOOKS times in a row, before the round ends unfinished (never "nothing left
# due").
LAG_PAUSE = 0.5
LAG_LOOKS = 40


@dataclass
class RoundResult:
    checked: int = 0
    gone: int = 0
    finished: bool = False  # nothing was left due (else: time was up)


@dataclass
class CheckRound:
    """`until`: a time (of `clock`) after which no new check starts; None: until done."""

    store: LinkStore
    guard: NetGuard
    _: KW_ONLY
    checked_before: datetime
    until: float | None = None
    clock: Callable[[], float] = time.time
    in_flight: int = IN_FLIGHT
    pacer: HostPacer = field(default_factory=HostPacer)
    result: RoundResult = field(default_factory=RoundResult, init=False)
    _queues: dict[str, deque[LinkRecord]] = field(default_factory=dict, init=False)
    _taken: set[ObjectId] = field(default_factory=set, init=False)  # queued or being checked
    _lagging: int = field(default=0, init=False)  # fills in a row that found only stale names

    def _open(self, after: float = 0.0) -> bool:
        """Whether a check may start `after` seconds from now."""
        return self.until is None or self.clock() + after < self.until

    async def run(self) -> RoundResult:
        lanes: dict[str, asyncio.Task[None]] = {}
        more = True
        try:
            while True:
                if more and self._open() and self._wants_more():
                    more = await self._fill()
                for host in self._idle_hosts(lanes):
                    lanes[host] = asyncio.create_task(self._lane(host, self._queues[host]))
                if not lanes:
                    if more and self._lagging and self._open():
                        continue  # the listing lagged: it is asked again (after LAG_PAUSE)
                    # Time up with links still queued is not "nothing left due".
                    queued = any(self._queues.values())
                    self.result.finished = not more and not queued and self._lagging <= LAG_LOOKS
                    return self.result
                done, _ = await asyncio.wait(
                    lanes.values(), timeout=LOOK_AGAIN, return_when=asyncio.FIRST_COMPLETED
                )
                for host in [h for h, task in lanes.items() if task in done]:
                    lanes.pop(host).result()
                    if not self._queues[host]:
                        del self._queues[host]
        finally:
            for task in lanes.values():
                task.cancel()
            await asyncio.gather(*lanes.values(), return_exceptions=True)

    def _wants_more(self) -> bool:
        """Read on while hosts could be worked that have nothing queued, or little is."""
        queued = sum(len(q) for q in self._queues.values())
        waiting = sum(1 for q in self._queues.values() if q)
        return queued < MAX_QUEUED and (waiting < self.in_flight or queued < FETCH // 2)

    async def _fill(self) -> bool:
        """Queue the next due links by host; False when nothing more is due (or the
        listing kept naming only links checked already: see LAG_LOOKS)."""
        skip = frozenset(self._taken)
        # After a stale answer, MongoDB itself: the index may stay behind for seconds.
        batch = await self.store.due_batch(
            self.checked_before, limit=FETCH, skip=skip, direct=self._lagging > 0
        )
        for record in batch.records:
            self._taken.add(record.id)
            host = linkrot.host_of(record.final_url or record.url)
            self._queues.setdefault(host, deque()).append(record)
        if batch.records or not batch.named:
            self._lagging = 0
            return bool(batch.records)
        # Every link it named is checked already: the links this round checked last lead
        # the due order (newest first), so a listing behind names only them. Asking
        # again shortly (MongoDB itself), not ending the round as if nothing were due.
        self._lagging += 1
        if self._lagging > LAG_LOOKS:
            log.warning("link-rot round: the listing stays behind the checks; ending the round")
            return False
        await asyncio.sleep(LAG_PAUSE)
        return True

    def _idle_hosts(self, lanes: dict[str, asyncio.Task[None]]) -> list[str]:
        free = self.in_flight - len(lanes)
        if free <= 0 or not self._open():
            return []
        ready = [h for h, q in self._queues.items() if q and h not in lanes and self._turn_open(h)]
        return ready[:free]

    def _turn_open(self, host: str) -> bool:
        """Whether the host's next turn (up to a HOST_GAP away) comes before `until`: no
        check starts past it."""
        return self._open(after=self.pacer.wait(host))

    async def _lane(self, host: str, queue: deque[LinkRecord]) -> None:
        """One host's links, one after another, while its next turn is within the round."""
        while queue and self._turn_open(host):
            record = queue[0]
            alive = await linkrot.is_alive(self.guard, record.final_url or record.url, self.pacer)
            # The answer is written even if the round is being stopped: it was asked for.
            await asyncio.shield(self.store.record_check(record, alive))
            queue.popleft()
            self._taken.discard(record.id)
            self.result.checked += 1
            self.result.gone += alive is False


async def check_due(store: LinkStore, guard: NetGuard, max_age: float = 7 * 86400) -> int:
    """Check every saved link not checked for `max_age` seconds; returns how many."""
    checked_before = utcnow() - timedelta(seconds=max_age)
    result = await CheckRound(store, guard, checked_before=checked_before).run()
    return result.checked
