"""Stage 2: claim the next stage of any link from MongoDB and run it under a lease.

Two kinds of slots: capture slots (one browser page each, CAPTURE_CONCURRENCY of them)
claim `pending`/`capturing` links, and send the photo themselves when the chat's turn is
free; delivery slots claim links whose photo or summary is owed. A capture slot looks
for its next link once its page is about to be shot (`_look_early`; one found has its
browser page made meanwhile) and starts it as soon as the page is shot: the rest of that
stage (storing, the photo, the text, the reaction) goes on as a tail, under the same
renewed lease, beside the next capture (at most TAILS_PER_SLOT tails a slot). A
message's one new link is handed straight to an idle capture slot of the process that
recorded it (`hand`), which claims it by its id and starts from the record in hand. A
claim is a lease (storage/queue/claims.py) renewed while the stage runs; a worker that
dies stops renewing, and any worker takes the stage over once the lease has run out.
Restart resume and summary retries are this same loop: nothing else sweeps. A slot that
dies of an unexpected error is logged with it and started again; a work entry whose link
is gone (a crash between the two inserts, an import cut short, a stage writing after the
trash) is dropped once it has been missing for GONE_GRACE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from bson import ObjectId
from pymongo.errors import PyMongoError
from telegram.ext import ExtBot

from bot.chat.replies import NotTold
from bot.pipeline.ahead import Shot, ShotsAhead
from bot.pipeline.base import MAX_SUMMARY_ATTEMPTS, Pipeline
from bot.pipeline.capturing import capture, tell_failed
from bot.pipeline.delivering import deliver
from bot.pipeline.files import make_ordered
from bot.pipeline.finish import finish
from bot.pipeline.summarizing import summarize
from storage.keys import WORK_STATES
from storage.models import LinkRecord, Status, utcnow
from storage.queue.claims import Claim

log = logging.getLogger(__name__)

CAPTURE_STATES = frozenset({str(Status.PENDING), str(Status.CAPTURING)})
DELIVERY_STATES = frozenset(
    {
        str(Status.CAPTURED),
        str(Status.DELIVERING),
        str(Status.SUMMARIZING),
        str(Status.SUMMARY_FAILED),
    }
)
LEASE = 20.0  # seconds; renewed every LEASE / 4 while a stage runs
ORPHAN_AGE = timedelta(seconds=10)  # a live front queues what it records within moments
IDLE_POLL = 1.0  # seconds between looks by one idle slot of each kind, unwoken (`_poll`)
RENEW_RETRY = 0.5  # seconds before a renewal the database did not answer is tried again
# A work entry whose link is missing this long is dropped (an import writes its work
# entries just before its links; a link may be on its way back from the trash).
GONE_GRACE = 60.0
RESTART_PAUSE = 1.0  # seconds before a slot that died is started again
# Stage tails running at once, per capture slot (shared by the slots): enough to keep
# the browser busy while links are stored, sent and their text read. Texts queue for
# the one low-priority text reader (bot/browser/text_reader.py), one page's can take
# seconds: in a burst of real pages, two tails a slot held the slots back (a link waited
# 2.7 s p50 to be claimed, 1.6 s with eight; docs/BENCHMARKS.md). A waiting tail holds
# only its page's HTML and shot, and its lease.
TAILS_PER_SLOT = 8


@dataclass(frozen=True)
class Marks:
    """What a stage tells its slot: `ready`, a capture's page is about to be shot (the
    slot looks for its next link meanwhile); `released`, the stage no longer needs its
    slot (a capture: the page is shot); `handed_on`, a capture left its link a delivery
    stage (the photo, a summary or a file still to send), claimable once it ends."""

    ready: Callable[[], None]
    released: Callable[[], None]
    handed_on: Callable[[], None] = lambda: None


# A stage returns when its link may be tried again (a summary retry), or None. It is
# called only with a link in one of its slot's states (`_load_and_run` sees to that).
Stage = Callable[[LinkRecord, Marks], Awaitable[datetime | None]]


class Kind(Enum):
    CAPTURE = "capture"
    DELIVERY = "delivery"


@dataclass
class _Held:
    """A stage running in this process, under its current lease."""

    claim: Claim


@dataclass
class _Slot:
    """One claim loop. `idle` while it waits for a wake (or the idle poll)."""

    kind: Kind
    hand_only: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: bool = False
    running: bool = False  # a stage of its own, until it is shot (or it ends)
    handed: _Handed | None = None  # a link this process just queued, for this slot
    # Its next claim, looked for while its page is shot (`Worker._look_early`).
    early: asyncio.Task[Claim | None] | None = None


@dataclass(frozen=True)
class _Job:
    """A stage claimed: its lease, what runs it, the states it runs in, and the link as
    recorded when it was handed over (None: loaded first)."""

    claim: Claim
    stage: Stage
    states: frozenset[str]
    record: LinkRecord | None = None


@dataclass(frozen=True)
class _Handed:
    record: LinkRecord  # as recorded a moment ago: no load needed
    turn: float


class Worker:
    """Claim loops for this process; `wake()` after recording skips the idle wait."""

    def __init__(
        self, p: Pipeline, bot: ExtBot[Any], *, capture_slots: int, delivery_slots: int = 8
    ) -> None:
        self.p = p
        self.bot = bot
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._counts = (capture_slots, delivery_slots)
        self._slots: list[_Slot] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._held: dict[ObjectId, _Held] = {}
        # Every stage running (`_run`), and those of them a slot has left as tails.
        self._running: set[asyncio.Task[None]] = set()
        self._tails: set[asyncio.Task[None]] = set()
        self.max_tails = max(1, capture_slots) * TAILS_PER_SLOT
        # One photo of a capture stage in flight at a time, tails included: a kill can
        # then repeat at most one photo (the Bot API has no idempotency key), and a send
        # takes a tenth of a second, against seconds for the shot it follows.
        self._sending = asyncio.Semaphore(1)
        self.gone_grace = GONE_GRACE
        self.restarts = 0  # slots started again after an unexpected error
        # Pages opened while a lone new link is queued (bot/pipeline/ahead.py).
        self.ahead = ShotsAhead(self._shoot) if p.capturer is not None else None

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._adopt()))
        capture_slots, delivery_slots = self._counts
        if self.p.capturer is not None:
            # Files a front (no browser) was asked for: made here (bot/pipeline/files.py).
            self._tasks.append(asyncio.create_task(make_ordered(self.p, self.name)))
            # One slot is kept for links sent by hand: a big import never holds every
            # browser page while a user waits for a link just sent. It is listed last,
            # so a wake goes to it only when the others are busy.
            self._slots += [_Slot(Kind.CAPTURE) for _ in range(capture_slots - 1)]
            self._slots.append(_Slot(Kind.CAPTURE, hand_only=capture_slots > 1))
        self._slots += [_Slot(Kind.DELIVERY) for _ in range(delivery_slots)]
        for slot in self._slots:
            self._tasks.append(asyncio.create_task(self._supervise(slot)))
        for kind in {slot.kind for slot in self._slots}:
            self._tasks.append(asyncio.create_task(self._poll(kind)))

    def _shoot(self, url: str, locale: str, ready: Callable[[], None]) -> Awaitable[Shot]:
        assert self.p.capturer is not None
        return self.p.capturer.shoot(url, locale=locale, ready=ready)

    def shoot_ahead(self, link_id: ObjectId, owner_id: int, url: str, locale: str) -> bool:
        """A lone new link is written: while a capture slot is free (nothing is waiting
        for the browser), its page is opened meanwhile, for the slot it is handed to.
        Not for a link its sender's pace will hold: its page would be opened for nothing
        (and the site asked ahead of the sender's turn)."""
        if self.ahead is None or self.p.outbound.stopping.is_set():
            return False
        if self.p.store.queue.holds_next(owner_id, self.p.per_minute):
            return False
        return self.ahead.start(link_id, url, locale, self.free_capture_slots())

    def free_capture_slots(self) -> int:
        """Capture slots not running a stage (waiting for work, or looking for some)."""
        return sum(1 for s in self._slots if s.kind is Kind.CAPTURE and not s.running)

    def let_go(self, link_ids: list[ObjectId]) -> None:
        """Nobody here will claim these links now: their head starts end."""
        if self.ahead is not None:
            for link_id in link_ids:
                self.ahead.drop(link_id)

    async def _poll(self, kind: Kind) -> None:
        """Each IDLE_POLL, one idle slot of `kind` looks for work that no wake announced
        (recorded by another process, a lease that ran out, a retry come due); it wakes
        the next if it finds some. One, not every idle slot: ten claim queries a second
        were most of what an idle bot cost its database."""
        stopping = self.p.outbound.stopping
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), IDLE_POLL)
            self.wake(kind)

    async def _adopt(self) -> None:
        """Queue what a front left unqueued: it died between recording and queueing.

        Only links left so for ORPHAN_AGE: a live front queues what it records within
        moments, and adopting those too would race its own write of the same document.
        """
        stopping = self.p.outbound.stopping
        while not stopping.is_set():
            try:
                found = await self.p.store.queue.adopt_orphans(utcnow() - ORPHAN_AGE)
            except PyMongoError as exc:
                log.warning("could not look for unqueued links: %s", type(exc).__name__)
                found = 0
            if found:
                log.info("queued %d link(s) left unqueued", found)
                self.wake(Kind.CAPTURE)
                self.wake(Kind.DELIVERY)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), ORPHAN_AGE.total_seconds())

    def wake(self, kind: Kind | None = None) -> None:
        """New work of `kind` (None: any, and every slot): one idle slot of that kind
        looks for it at once, and wakes the next when it finds some (a burst fans out).
        Not every idle slot: eight claim queries at once slow the one that matters.
        With none idle, every slot of the kind looks again when its current query or
        stage ends, so work recorded while a query ran is not left to the idle poll."""
        slots = [s for s in self._slots if kind is None or s.kind is kind]
        idle = next((s for s in slots if s.idle), None)
        for slot in slots if idle is None or kind is None else [idle]:
            slot.idle = False
            slot.wake.set()

    async def stop(self, grace: float) -> None:
        """Let stages in flight finish for `grace` seconds, then cancel them; a cancelled
        stage's lease is released so the next start (or another worker) takes it at once."""
        self.p.outbound.stopping.set()
        self.wake()
        # Slots leave no tail once stopping is set, so the stages running now (tails
        # included) and the slots are all there is to wait for.
        tasks = [*self._tasks, *self._running]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if late:
                log.info("stopping: %d stage(s) left for the next start", len(late))
        self._tasks.clear()
        self._slots.clear()
        if self.ahead is not None:
            await self.ahead.close()

    async def _supervise(self, slot: _Slot) -> None:
        """Run the slot's claim loop; one that dies of an unexpected error is logged with
        it and started again (a slot that silently ends leaves its kind of work
        waiting on the others, or on nothing)."""
        stopping = self.p.outbound.stopping
        while not stopping.is_set():
            try:
                await self._loop(slot)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.restarts += 1
                log.exception("a %s slot died; starting it again", slot.kind.value)
                slot.idle = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), RESTART_PAUSE)

    async def _loop(self, slot: _Slot) -> None:
        stopping = self.p.outbound.stopping
        states, stage = (
            (CAPTURE_STATES, self._capture)
            if slot.kind is Kind.CAPTURE
            else (DELIVERY_STATES, self._deliver)
        )
        while not stopping.is_set():
            handed, slot.handed = slot.handed, None
            early, slot.early = slot.early, None
            if early is not None and handed is None:
                claim = await early  # looked for while the page before was shot
            else:
                await _release_early(self.p, early)
                # Cleared just before looking: a wake during the query makes it look again.
                slot.wake.clear()
                claim = await self._look(slot, states, handed)
            if claim is None:
                if handed is not None:
                    self.let_go([handed.record.id])
                    continue  # taken by another worker first: look at the queue as usual
                slot.idle = True
                await slot.wake.wait()  # a wake, or the idle poll (`_poll`)
                slot.idle = False
                continue
            if handed is None:
                self.wake(slot.kind)  # there may be more: the next idle slot looks too
            held = self._held.get(claim.link_id)
            if held is not None:
                # Our own stage of this link still runs: its lease ran out while the
                # database was away. It keeps the link under the new lease; a second
                # copy would send the photo twice.
                held.claim = claim
                continue
            record = handed.record if handed is not None else None
            slot.running = True
            try:
                await self._run_or_leave(slot, _Job(claim, stage, states, record))
            finally:
                slot.running = False
        early, slot.early = slot.early, None
        await _release_early(self.p, early)  # stopping: the next start (or another worker) takes it

    async def _look(
        self, slot: _Slot, states: frozenset[str], handed: _Handed | None
    ) -> Claim | None:
        """The link handed to this slot, claimed by its id, or else the most deserving
        claimable stage; None when there is none (or the database is away)."""
        try:
            if handed is not None:
                record = handed.record
                return await self.p.store.queue.claim_queued(
                    record.id, handed.turn, str(record.status), self.name, LEASE
                )
            return await self.p.store.queue.claim(
                self.name, states, LEASE, hand_only=slot.hand_only, held=self._held.keys()
            )
        except PyMongoError as exc:
            log.warning("claiming work failed (%s); trying again", type(exc).__name__)
            return None

    def hand(self, record: LinkRecord, turn: float) -> bool:
        """A link this process has just recorded and queued (claimable now, at `turn`):
        an idle capture slot claims it by its id and starts from the record in hand,
        without the query for candidates and the load (~15 ms of a lone link's way to
        its photo). False when no capture slot is idle: it waits its turn in the queue.
        An idle slot's last look found nothing claimable; what became claimable since
        without a wake (a pace run out, a lapsed lease, another process's link) waits at
        most for this one link, as it would for the idle poll."""
        slot = next((s for s in self._slots if s.kind is Kind.CAPTURE and s.idle), None)
        if slot is None:
            return False
        slot.idle, slot.handed = False, _Handed(record, turn)
        slot.wake.set()
        return True

    async def _run_or_leave(self, slot: _Slot, job: _Job) -> None:
        """Run the stage; a capture slot returns once its page is shot and there is room
        for one more tail, leaving the rest of the stage running under its lease."""
        released, ready, handed_on = asyncio.Event(), asyncio.Event(), asyncio.Event()
        marks = Marks(ready=ready.set, released=released.set, handed_on=handed_on.set)
        run = asyncio.create_task(self._run_and_wake(job, marks, handed_on))
        self._running.add(run)
        run.add_done_callback(self._running.discard)
        try:
            if slot.kind is Kind.CAPTURE:
                await _first(run, released.wait(), ready.wait())
                if not released.is_set() and not run.done():
                    self._look_early(slot, job.states)
                    await _first(run, released.wait())
            while not run.done() and not self.p.outbound.stopping.is_set():
                if released.is_set() and len(self._tails) < self.max_tails:
                    self._tails.add(run)
                    run.add_done_callback(self._tails.discard)
                    run.add_done_callback(_log_failure)  # nobody awaits a tail
                    return
                await _first(run, *self._tails)  # a tail ends, or our own stage does
            await run
        except asyncio.CancelledError:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            raise

    def _look_early(self, slot: _Slot, states: frozenset[str]) -> None:
        """The slot's page is about to be shot (loaded, any consent banner dealt with): it
        looks for its next link now, so that the claim (a few database round trips, 50-60
        ms p50 in a burst of real pages on two cores) is in hand when the page is done.
        Not sooner: a link claimed here waits for this page, which another slot (or
        worker) finishing first could have started."""
        if slot.early is None and not self.p.outbound.stopping.is_set():
            slot.wake.clear()  # as before any look: a wake during the query looks again
            slot.early = asyncio.ensure_future(self._look(slot, states, None))
            slot.early.add_done_callback(self._page_for_next)

    def _page_for_next(self, look: asyncio.Future[Claim | None]) -> None:
        """A next link was claimed while this slot's page is shot: the browser makes its
        page now, beside the shot (bot/browser/capture.py `spare_ahead`)."""
        if look.cancelled() or look.exception() is not None or look.result() is None:
            return
        if self.p.capturer is not None:
            self.p.capturer.spare_ahead()

    async def _run_and_wake(self, job: _Job, marks: Marks, handed_on: asyncio.Event) -> None:
        try:
            await self._run(job, marks)
        finally:
            marks.released()
        # Only then: a link that ended with its capture left nothing to claim, and a look
        # that finds nothing is a query on `work` (the idle poll finds anything else).
        if handed_on.is_set():
            self.wake(Kind.DELIVERY)  # the link's delivery (or summary) is claimable now

    async def _run(self, job: _Job, marks: Marks) -> None:
        claim = job.claim
        held = self._held[claim.link_id] = _Held(claim)
        work = asyncio.create_task(self._load_and_run(job, marks))
        finished = asyncio.Event()
        renewer = asyncio.create_task(self._renew(held, work, finished))
        not_before: datetime | None = None
        try:
            not_before = await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.cancelled() and not _being_cancelled():
                # The renewer stopped this copy (the lease was taken over): only the
                # stage ends, and this slot goes on claiming.
                not_before = None
            else:
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
                raise
        except NotTold:
            # Telegram would not take a link's last line or reaction as the bot stopped:
            # the entry stays, claimable at once by the next start, which tells it.
            log.warning("%s: its user was not told yet; told at its next claim", claim.link_id)
            stopping = self.p.outbound.stopping.is_set()
            not_before = None if stopping else utcnow() + timedelta(seconds=LEASE)
        except Exception:
            log.exception("a stage failed; it is claimed again after a pause")
            not_before = utcnow() + timedelta(seconds=LEASE)
        finally:
            # Not cancelled: a cancel inside a PyMongo call (a renewal waiting for the
            # database) leaves the client's topology lock broken ("Lock is not acquired")
            # for every later call. It ends after its current call, before the release.
            finished.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(renewer)
            del self._held[claim.link_id]
            with contextlib.suppress(PyMongoError):
                release = self.p.store.queue.release(held.claim, not_before=not_before)
                await asyncio.shield(release)

    async def _load_and_run(self, job: _Job, marks: Marks) -> datetime | None:
        claim, record = job.claim, job.record
        if record is None:
            record = await self.p.durably(lambda: self.p.store.load(claim.link_id))
        if record is None:
            # Its link is gone: the entry is dropped once that has lasted `gone_grace`;
            # until then it is not claimed again.
            store, grace = self.p.store, self.gone_grace
            if await self.p.durably(lambda: store.work_without_link(claim.link_id, grace)):
                return None
            return utcnow() + timedelta(seconds=self.gone_grace)
        if str(record.status) not in job.states:
            marks.released()  # no page: the slot goes on while this one is told
            await self._reconcile(record)
            return None
        return await job.stage(record, marks)

    async def _reconcile(self, record: LinkRecord) -> None:
        """The work entry named another stage than its link. A link that ended keeps its
        entry until its user was told (bot/pipeline/finish.py): one found ended here
        was cut short by a kill (or a write the database lost half of) before that, so
        it is told now: why it failed (the one line a kill in its last moments may
        repeat), and its message's closing reaction; then its entry goes. A link in
        another stage than its entry says: the link is right, the entry follows it."""
        if str(record.status) in WORK_STATES:
            await self.p.store.update(record.id, status=record.status)
            self.wake()
            return
        if record.status == Status.FAILED:
            await tell_failed(self.bot, record)
        await finish(self.p, self.bot, record, keep_requeued=False)

    async def _renew(self, held: _Held, work: asyncio.Task[Any], finished: asyncio.Event) -> None:
        wait = LEASE / 4
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), wait)
            if finished.is_set():
                return
            try:
                ours = await self.p.store.queue.renew(held.claim, LEASE)
            except PyMongoError:
                # The database is away; the stage waits for it too. Asked again soon: once
                # it is back, another worker's poll may take a lease that ran out meanwhile.
                wait = RENEW_RETRY
                continue
            wait = LEASE / 4
            if not ours:
                log.warning("lease of %s taken over; stopping this copy", held.claim.link_id)
                work.cancel()
                return

    async def _capture(self, record: LinkRecord, marks: Marks) -> datetime | None:
        captured = await capture(
            self.p,
            self.bot,
            record,
            page_done=marks.released,
            page_ready=marks.ready,
            sending=self._sending,
            ahead=self.ahead,
        )
        if not captured or record.status == Status.DONE:
            # Failed; or its photo went out with the capture and nothing follows (no
            # summary, nor a PDF's file left to a delivery slot): it ends here rather
            # than through another claim.
            await finish(self.p, self.bot, record)
        elif str(record.status) in DELIVERY_STATES:
            marks.handed_on()
        return None

    async def _deliver(self, record: LinkRecord, marks: Marks) -> datetime | None:
        if (
            record.status == Status.SUMMARY_FAILED
            and record.summary_attempts >= MAX_SUMMARY_ATTEMPTS
        ):
            await self.p.store.drop_work(record.id)  # retries used up: it stays as it is
            return None
        message_id = await deliver(self.p, self.bot, record)
        if message_id is None:
            return None
        done = await summarize(self.p, self.bot, record, message_id)
        await finish(self.p, self.bot, record)
        if done or record.summary_attempts >= MAX_SUMMARY_ATTEMPTS:
            return None
        return utcnow() + timedelta(seconds=self.p.summary_retry_delay)


async def _first(*waits: Awaitable[Any]) -> None:
    """Until the first of `waits` ends (the others go on; plain coroutines are dropped)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task, wait in zip(tasks, waits, strict=True):
            if task is not wait:
                task.cancel()


async def _release_early(p: Pipeline, early: asyncio.Task[Claim | None] | None) -> None:
    """Release a claim looked for early and not run (this slot is stopping)."""
    claim = await early if early is not None else None
    if claim is not None:
        with contextlib.suppress(PyMongoError):
            await p.store.queue.release(claim)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a stage's tail failed", exc_info=exc)


def _being_cancelled() -> bool:
    """Whether the running task itself was asked to stop (not only a task it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
