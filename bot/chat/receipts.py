"""Polled updates are confirmed to Telegram only once the links they carry are recorded.

PTB's Updater confirms a batch of updates (the next getUpdates' offset) as soon as it has
queued them, and a message's links are recorded moments later, by a handler running
beside the others (handlers/links.py): a process killed in between (the OOM killer on a
small host, a deploy's SIGKILL) lost links it had already answered with 👀, and Telegram
does not send a confirmed update again. So the request that fetches the next batch
waits until each update fetched before is settled: its links recorded, or its handling
over without the links handler. SETTLE_AT_MOST seconds at most: a handler waiting out a
database outage tells its user so, and other users' messages must not wait for it.

A poller killed before it settled an update leaves it unconfirmed, and Telegram sends
it again to the next start; the repeat check (handlers/dedupe.py) lets it through when
the poller that took it (`token`) never settled it. An update settled while others
still hold the confirmation is marked so in the database (`keep_with`), so that a kill
then does not have it done twice.

A webhook delivery is held the same way: the web server answers Telegram's POST only
once its update is settled (`delivered`, `answered`), SETTLE_AT_MOST seconds at most, so
a kill before that leaves Telegram to deliver it again, to the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from telegram.request import BaseRequest, HTTPXRequest, RequestData

log = logging.getLogger(__name__)

# Seconds, at most, that the next fetch waits for the batches before, that a webhook
# POST waits for its update, and that a stop waits for the settled marks on their way.
SETTLE_AT_MOST = 5.0


class Receipts:
    """Updates fetched and not yet settled, by id."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)  # this process, as the poller holding an update
        self._open: set[int] = set()  # fetched here, not settled yet
        # Of those, the ones holding the next fetch: a fetch that waited SETTLE_AT_MOST
        # confirms them anyway, and then they no longer hold any.
        self._holding: set[int] = set()
        self._taken: set[int] = set()  # the links handler settles these itself
        self._settled = asyncio.Event()
        self._settled.set()
        self._delivered: set[int] = set()  # of those, delivered by the webhook
        self._answers: dict[int, asyncio.Event] = {}  # their POSTs waiting to be answered
        self._mark: Callable[[int], Awaitable[None]] | None = None
        self._marking: set[asyncio.Task[None]] = set()

    def keep_with(self, mark: Callable[[int], Awaitable[None]]) -> None:
        """Where a settled update is marked so (the database, once it is open)."""
        self._mark = mark

    def held(self, update_id: int) -> bool:
        """Whether this process took the update (fetched it, or was delivered it by the
        webhook) and has not settled it yet."""
        return update_id in self._open

    def delivered(self, update_id: int) -> None:
        """A webhook delivery, about to be queued: held here as a fetched update is (a
        repeat after a kill is let through), but holding no fetch."""
        self._open.add(update_id)
        self._delivered.add(update_id)
        self._answers.setdefault(update_id, asyncio.Event())

    async def answered(self, update_id: int) -> None:
        """Until the delivered update is settled, SETTLE_AT_MOST seconds at most: then
        its POST is answered (a message whose links wait out a database outage must not
        hold Telegram's delivery for longer)."""
        done = self._answers.get(update_id)
        if done is None:
            return
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_AT_MOST):
                    await done.wait()
        finally:
            self._answers.pop(update_id, None)

    def fetched(self, update_ids: Iterable[int]) -> None:
        ids = set(update_ids)
        self._open |= ids
        self._holding |= ids
        if self._holding:
            self._settled.clear()

    def take(self, update_id: int) -> None:
        """The links handler will run for it, and settles it once its links are recorded."""
        if update_id in self._open:
            self._taken.add(update_id)

    def handled(self, update_id: int) -> None:
        """Its handlers ran (those beside the others were started): settled, unless the
        links handler took it."""
        if update_id not in self._taken:
            self.settle(update_id)

    def settle(self, update_id: int) -> None:
        if update_id not in self._open:
            return
        self._taken.discard(update_id)
        self._open.discard(update_id)
        if update_id in self._delivered:
            # Marked settled before its POST is answered (or after, if that waited its
            # most): the same update delivered to another front (several behind one
            # URL) is skipped there.
            self._delivered.discard(update_id)
            waiting = self._answers.get(update_id)
            self._mark_then(update_id, waiting.set if waiting is not None else lambda: None)
            return
        if update_id not in self._holding:
            return  # confirmed already, by a fetch that waited its most
        self._holding.discard(update_id)
        if not self._holding:
            # The fetch this lets go confirms it within moments: no mark (a database
            # command a link) for a repeat that only a kill in those moments could bring.
            self._settled.set()
            return
        self._mark_then(update_id)  # others hold the confirmation, up to SETTLE_AT_MOST

    def _mark_then(self, update_id: int, then: Callable[[], None] = lambda: None) -> None:
        """Mark the update settled in the database, then call `then` (marked or not)."""
        if self._mark is None:
            then()
            return
        task = asyncio.ensure_future(self._mark(update_id))
        self._marking.add(task)
        task.add_done_callback(self._marked)
        task.add_done_callback(lambda _: then())

    def _marked(self, task: asyncio.Task[None]) -> None:
        self._marking.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Not lost: at worst a kill before the confirmation repeats its answer.
            log.warning("a settled update not marked so: %s", exc)

    async def marked(self) -> None:
        """Until the settled marks on their way have landed (or failed), SETTLE_AT_MOST
        seconds at most. A stop waits for them before it closes the database: a mark lost
        there leaves its update open to a repeat (a webhook answer or a confirmation the
        stop cut short), which the next start would handle again, answering twice."""
        if self._marking:
            await asyncio.wait(set(self._marking), timeout=SETTLE_AT_MOST)

    async def settled(self) -> None:
        """Until every update fetched so far is settled, SETTLE_AT_MOST seconds at most;
        then the fetch that follows confirms them, settled or not, and none of them
        holds a later one (a message whose links wait out a database outage must not
        slow every other user's for as long)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_AT_MOST):
                await self._settled.wait()
        self._holding.clear()
        self._settled.set()


class GatedUpdates(HTTPXRequest):
    """The getUpdates request: sent once the updates fetched before are settled, and the
    ids of those it brings noted before PTB queues them."""

    def __init__(self, receipts: Receipts, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.receipts = receipts

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        await self.receipts.settled()
        code, payload = await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        if code == 200:
            self.receipts.fetched(_update_ids(payload))
        return code, payload


def _update_ids(payload: bytes) -> list[int]:
    try:
        result = json.loads(payload).get("result")
    except (ValueError, AttributeError):
        return []
    if not isinstance(result, list):
        return []
    return [u["update_id"] for u in result if isinstance(u, dict) and "update_id" in u]
