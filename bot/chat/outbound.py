"""The one outbound path: every Bot API call that writes to a chat is paced here.

It is PTB's rate-limiter seam (`ApplicationBuilder.rate_limiter`), so no call can go
around it. Each chat has a lane that hands out turns one at a time, highest priority
first, and only when the chat's token bucket (a small burst, then about one call a
second in private chats, 20 a minute in groups) and the overall bucket (30 a second)
allow it: the bot paces ahead of Telegram instead of discovering its limits. A
`RetryAfter` holds the whole lane until it has passed. A call that must land (a photo,
a final summary) is retried through 429s and passing network faults until Telegram
acknowledges it; only a permanent refusal (bad request, bot blocked) ends it.

Intermediate summary edits take a turn first and render their text inside it
(`Outbound.turn`), so each edit carries the newest text rather than the text of the
moment it joined the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pymongo.errors import PyMongoError
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from storage.queue.pacing import SendLedger

log = logging.getLogger(__name__)

JSON = bool | dict[str, Any] | list[dict[str, Any]]
MAX_BACKOFF = 30.0
MAX_IDLE_LANES = 256
# Calls that do not write to a chat: never queued behind a chat's messages.
UNPACED = frozenset(
    {
        "getMe",
        "getUpdates",
        "setMyCommands",
        "getMyCommands",
        "deleteMyCommands",
        "deleteWebhook",
        "setWebhook",
        "getWebhookInfo",
        "answerCallbackQuery",
        "answerInlineQuery",
        "getFile",
        "getChat",
        "setChatMenuButton",
        "getChatMenuButton",
        "close",
        "logOut",
    }
)
_COUNTED = ("send", "edit", "copy", "forward")  # what Telegram's message limits count


class Priority(IntEnum):
    """Order inside one chat; lower goes first."""

    ACK = 0  # 👀: the user sees at once that the bot heard
    NEW = 1  # new messages, photos, documents
    FINAL = 2  # final edits and closing reactions
    PROGRESS = 3  # intermediate summary edits
    BULK = 4  # messages nobody is waiting for (the link-rot digest): see Outbound._bulk_token


@dataclass(frozen=True)
class Send:
    """`rate_limit_args` of one call."""

    priority: Priority | None = None  # None: from the endpoint
    must_land: bool = True  # retry 429s and passing faults until acknowledged
    granted: bool = False  # the caller already holds this chat's turn (Outbound.turn)


PROGRESS = Send(Priority.PROGRESS, must_land=False, granted=True)
ACK = Send(Priority.ACK, must_land=False)
BULK = Send(Priority.BULK)


@dataclass(frozen=True)
class Pace:
    """Telegram's limits as the bot paces them (configurable; see README)."""

    private_burst: float = 3
    private_per_second: float = 1.0
    group_burst: float = 3
    group_per_minute: float = 20
    overall_per_second: float = 30
    # Requests arrive at Telegram a few ms after they leave and not always in the same
    # spacing; pacing this much slower keeps the two clocks from disagreeing.
    margin: float = 0.1


class _Bucket:
    def __init__(self, capacity: float, per_second: float, margin: float) -> None:
        self.capacity = capacity
        self.rate = per_second / (1 + margin)
        self.tokens = capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self) -> float:
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def wait_for(self, tokens: float) -> float:
        """Seconds until the bucket holds `tokens`."""
        self._refill()
        return max(0.0, (tokens - self.tokens) / self.rate)

    def wait_full(self) -> float:
        self._refill()
        return max(0.0, (self.capacity - self.tokens) / self.rate)

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def no_more_than(self, tokens: float) -> None:
        """Forget what refilled since the bucket held `tokens`."""
        self._refill()
        self.tokens = min(self.tokens, tokens)

    @property
    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.capacity


_order = itertools.count()


class _Lane:
    """One chat: turns one at a time, by priority, when the buckets allow."""

    def __init__(self, bucket: _Bucket, overall: _Bucket) -> None:
        self._bucket = bucket
        self._overall = overall
        # (priority, order, counted, overall already paid, the waiting caller)
        self._queue: list[tuple[int, int, bool, bool, asyncio.Future[None]]] = []
        self._busy = False
        self._left_at_grant: float | None = None  # a counted turn's tokens, until released
        self._held_until = 0.0
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return (
            not self._busy
            and not self._queue
            and self._held_until <= time.monotonic()
            and self._bucket.full
        )

    @property
    def ready(self) -> bool:
        """A new message would be granted at once: no turn taken or waiting, no hold,
        a token in the chat's bucket."""
        return (
            not self._busy
            and not self._queue
            and self._held_until <= time.monotonic()
            and self._bucket.wait() == 0
        )

    def ready_in(self) -> float | None:
        """Seconds until `ready` if nothing else changes; None while a turn is taken or
        waiting (then only a change, `changed`, can make it ready)."""
        if self._busy or self._queue:
            return None
        return max(0.0, self._held_until - time.monotonic(), self._bucket.wait())

    @property
    def changed(self) -> asyncio.Event:
        """Set when a turn is asked for, ends, or Telegram holds the chat."""
        return self._changed

    def hold(self, seconds: float) -> None:
        """Telegram said RetryAfter: nothing for this chat until it has passed."""
        self._held_until = max(self._held_until, time.monotonic() + seconds + 0.05)
        self._changed.set()

    async def acquire(self, priority: Priority, counted: bool, paid: bool = False) -> None:
        """Wait for this chat's turn; `paid`: the overall token was taken already."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (priority, next(_order), counted, paid, future))
        self._changed.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as the caller gave up
            raise

    def release(self) -> None:
        if self._left_at_grant is not None:
            # Telegram counts a call when it arrives, which may be as late as its answer:
            # nothing refills while it is on its way, or a call held up there leaves the
            # next one arriving too soon after it.
            self._bucket.no_more_than(self._left_at_grant)
            self._left_at_grant = None
        self._busy = False
        self._changed.set()

    async def _run(self) -> None:
        try:
            await self._grant()
        finally:
            # Cancelled (the loop is closing): nobody will grant the waiting turns, so
            # their callers must not wait for ever.
            for *_, future in self._queue:
                future.cancel()

    async def _grant(self) -> None:
        while self._queue:
            self._changed.clear()
            delay = self._delay()
            if delay is None:
                continue
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
                continue
            _, _, counted, paid, future = heapq.heappop(self._queue)
            if counted:
                self._bucket.take()
                self._left_at_grant = self._bucket.tokens
                if not paid:
                    self._overall.take()
            self._busy = True
            future.set_result(None)

    def _delay(self) -> float | None:
        """Seconds until the head of the queue may go; None when it was dropped."""
        if self._busy:
            return 3600.0  # until release() says otherwise
        priority, _, counted, paid, future = self._queue[0]
        if future.done():  # its caller was cancelled while waiting
            heapq.heappop(self._queue)
            return None
        delay = self._held_until - time.monotonic()
        if delay <= 0 and counted:
            # Progress edits never spend the burst: it stays for photos and final texts,
            # and the summary moves on at about one edit per interval.
            chat = (
                self._bucket.wait_full() if priority == Priority.PROGRESS else self._bucket.wait()
            )
            delay = max(chat, 0.0 if paid else self._overall.wait())
        return delay


class Outbound(BaseRateLimiter[Send]):
    """PTB rate limiter that is the bot's one outbound path (see module docstring)."""

    def __init__(self, pace: Pace | None = None) -> None:
        self.pace = pace or Pace()
        # Set when several processes share one bot (front/worker roles): their calls to
        # one chat then take turns through MongoDB as well (storage/queue/pacing.py).
        self.ledger: SendLedger | None = None
        # Where each 429's window is written (the ledger, or this alone for one process):
        # a restart inside a window must not call that chat before it ends
        # (`restore_holds`), and Telegram may lengthen a ban broken early.
        self.holds: SendLedger | None = None
        self._overall = _Bucket(self.pace.overall_per_second, self.pace.overall_per_second, 0.1)
        self._lanes: dict[int | str, _Lane] = {}
        self.stopping = asyncio.Event()
        # Bulk calls go one at a time (each once the one before it has landed) and take
        # their overall token only while more than this is left: whoever is waiting for
        # the bot never finds the bucket emptied.
        cap = self.pace.overall_per_second
        self._bulk_reserve = max(0.0, min(cap - 1, cap / 2))
        self._bulk_gate = asyncio.Lock()

    async def initialize(self) -> None:
        self.stopping.clear()

    async def shutdown(self) -> None:
        self.stopping.set()

    def _lane(self, chat: int | str) -> _Lane:
        lane = self._lanes.get(chat)
        if lane is None:
            if len(self._lanes) >= MAX_IDLE_LANES:
                for key in [k for k, v in self._lanes.items() if v.idle]:
                    del self._lanes[key]
            lane = _Lane(self._chat_bucket(chat), self._overall)
            self._lanes[chat] = lane
        return lane

    def _chat_bucket(self, chat: int | str) -> _Bucket:
        p = self.pace
        if isinstance(chat, int) and chat > 0:
            return _Bucket(p.private_burst, p.private_per_second, p.margin)
        return _Bucket(p.group_burst, p.group_per_minute / 60, p.margin)

    async def restore_holds(self) -> None:
        """Hold each chat a 429 still holds, as a process before this one was told (read
        once at start: a database that is away leaves them to Telegram's next 429)."""
        if self.holds is None:
            return
        try:
            held = await self.holds.holds()
        except PyMongoError:
            return
        for chat, seconds in held.items():
            key = _chat_key(chat)
            if key is not None:
                self._lane(key).hold(seconds)

    def free_now(self, chat_id: int) -> bool:
        """A new message to this chat would go out without waiting behind anything. Never
        with other processes sharing the bot: their turns are known only to the ledger."""
        if self.ledger is not None:
            return False
        lane = self._lanes.get(chat_id)
        return (lane is None or lane.ready) and self._overall.wait() == 0

    async def until_free(self, chat_id: int, within: float) -> bool:
        """Wait up to `within` seconds for `free_now`; whether it came. Nothing is reserved:
        a call made right after joins the chat's queue like any other."""
        if self.ledger is not None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.free_now(chat_id):
            left = deadline - loop.time()
            if left <= 0:
                return False
            lane = self._lanes.get(chat_id)
            ready_in = lane.ready_in() if lane is not None else 0.0
            if lane is not None and ready_in is None:  # until the turn in hand or asked ends
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.changed.wait(), left)
            else:  # until a token refills (or a hold passes)
                await asyncio.sleep(min(left, max(ready_in or 0.0, self._overall.wait(), 0.001)))
        return True

    @contextlib.asynccontextmanager
    async def turn(
        self, chat_id: int, priority: Priority = Priority.PROGRESS
    ) -> AsyncIterator[None]:
        """Hold this chat's next turn; make exactly one counted call inside, with `PROGRESS`."""
        lane = self._lane(chat_id)
        await lane.acquire(priority, counted=True)
        try:
            yield
        finally:
            lane.release()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Send | None,
    ) -> JSON:
        send = rate_limit_args or Send()
        chat = _chat_key(data.get("chat_id"))
        if chat is None or endpoint in UNPACED:
            return await callback(*args, **kwargs)
        lane = self._lane(chat)
        counted = endpoint.startswith(_COUNTED)
        if send.granted:
            await self._shared_turn(chat, counted)
            return await self._call_once(chat, lane, callback, args, kwargs, endpoint)
        priority = send.priority if send.priority is not None else _priority_of(endpoint)
        bulk = priority == Priority.BULK and counted
        async for attempt in self._retrying(send):
            with attempt:
                # Bulk calls go one at a time, each once the one before it has landed:
                # Telegram counts a call when it arrives, and calls that took their
                # tokens in step arrive bunched when something on the way (a loaded machine,
                # the shared turn's database) holds some of them up.
                async with self._bulk_gate if bulk else contextlib.nullcontext():
                    if bulk:
                        await self._bulk_token()
                    await lane.acquire(priority, counted, paid=bulk)
                    try:
                        await self._shared_turn(chat, counted)
                        return await self._call_once(chat, lane, callback, args, kwargs, endpoint)
                    finally:
                        lane.release()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _bulk_token(self) -> None:
        """A bulk call's overall token, taken only while the overall bucket holds more than
        the reserve: 1 000 digests go out at the overall pace, and a photo or reply for
        someone who just sent a link goes ahead of all of them (it needs one token, not
        the reserve)."""
        while True:  # tokens come back at the bucket's rate: no event to wait for
            wait = self._overall.wait_for(self._bulk_reserve + 1)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self._overall.take()

    def _retrying(self, send: Send) -> AsyncRetrying:
        def stop(state: RetryCallState) -> bool:
            return not send.must_land or self.stopping.is_set()

        return AsyncRetrying(
            retry=retry_if_exception(is_passing),
            wait=_backoff,
            stop=stop,
            reraise=True,
            before_sleep=_log_retry,
        )

    async def _shared_turn(self, chat: int | str, counted: bool) -> None:
        """With other processes: wait out their RetryAfter, and take a shared slot."""
        if self.ledger is None:
            return
        try:
            wait = await self.ledger.held_for(chat)
            if counted:
                wait = max(wait, await self.ledger.reserve(chat, self._interval(chat)))
        except PyMongoError:
            return  # the database is away: this process's own pace still holds
        if wait > 0:
            await asyncio.sleep(wait)

    def _interval(self, chat: int | str) -> float:
        p = self.pace
        per_second = (
            p.private_per_second if isinstance(chat, int) and chat > 0 else p.group_per_minute / 60
        )
        return (1 + p.margin) / per_second

    async def _call_once(
        self,
        chat: int | str,
        lane: _Lane,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
    ) -> JSON:
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as exc:
            seconds = retry_seconds(exc)
            lane.hold(seconds)
            log.info("flood control: %s held for %.0f s", endpoint, seconds)
            book = self.ledger or self.holds
            if book is not None:
                with contextlib.suppress(PyMongoError):
                    await book.hold(chat, time.time() + seconds + 0.05)
            raise


def is_passing(exc: BaseException) -> bool:
    """A failure that trying again can cure: 429, 5xx, timeouts, dropped connections."""
    if isinstance(exc, RetryAfter):
        return True
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)


def _backoff(state: RetryCallState) -> float:
    """No extra wait after a 429 (the lane's hold is the wait); doubling after a fault."""
    outcome = state.outcome
    if outcome is not None and isinstance(outcome.exception(), RetryAfter):
        return 0.0
    return float(min(MAX_BACKOFF, 0.5 * 2 ** (state.attempt_number - 1)))


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if not isinstance(exc, RetryAfter):
        log.warning("Bot API call failed (%s); trying again", type(exc).__name__)


def _priority_of(endpoint: str) -> Priority:
    return Priority.NEW if endpoint.startswith(("send", "copy", "forward")) else Priority.FINAL


def _chat_key(raw: object) -> int | str | None:
    if raw is None:
        return None
    try:
        return int(str(raw))
    except ValueError:
        return str(raw)


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter's delay in seconds, whether PTB gives an int or a timedelta."""
    delay = exc.retry_after
    return float(delay if isinstance(delay, int | float) else delay.total_seconds())
