"""Shared resources built once at start-up, and the one typed way handlers reach them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache
from telegram.ext import CallbackContext, ExtBot

from bot.chat.ordering import InOrder
from bot.chat.outbound import Outbound
from bot.chat.receipts import Receipts
from bot.config import Settings
from bot.i18n import texts_for
from bot.library.importing import Importer
from bot.pipeline.base import Pipeline
from bot.pipeline.intake import Recorded
from bot.pipeline.worker import Kind, Worker
from bot.web_address import WebAddress
from storage.repository import LinkStore

if TYPE_CHECKING:
    from bot.browser.capture import Capturer
    from bot.summarize import Summarizer
    from storage.models import LinkRecord

REFUSAL_EVERY = 600.0
log = logging.getLogger(__name__)


def clock() -> float:
    """Monotonic seconds, looked up at each call (so a test can start it near 0)."""
    return time.monotonic()


class UserLimits:
    """Tells a fast sender once a minute, not once a message (the pace itself is the
    work queue's: storage/queue/claims.py). The map expires, so it stays bounded."""

    def __init__(self, per_minute: int, *, max_users: int = 50_000) -> None:
        self.per_minute = per_minute
        self._warned: TTLCache[int, bool] = TTLCache(max_users, ttl=60, timer=clock)

    def should_warn(self, user_id: int) -> bool:
        if user_id in self._warned:
            return False
        self._warned[user_id] = True
        return True


@dataclass
class Services:
    settings: Settings
    store: LinkStore
    pipeline: Pipeline
    limits: UserLimits
    outbound: Outbound
    worker: Worker | None  # None in a front-only process
    web: WebAddress | None = None  # where the pages are (set once the front serves them)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    resuming: asyncio.Task[Any] | None = None  # imports a killed front left (bot/scheduler.py)
    # One user's links are recorded (and so given turns) in the order they were sent.
    recording: InOrder = field(default_factory=InOrder)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Strangers told "private bot" lately; they are told again once their entry expires.
    refused: TTLCache[int, bool] = field(
        default_factory=lambda: TTLCache(50_000, ttl=REFUSAL_EVERY, timer=clock)
    )

    @property
    def capturer(self) -> Capturer | None:
        return self.pipeline.capturer

    @property
    def summarizer(self) -> Summarizer | None:
        return self.pipeline.summarizer

    def importer(self) -> Importer:
        """What a bookmark file's import needs of this process (bot/library/importing.py)."""
        p = self.pipeline
        return Importer(self.store, p.guard, self.outbound, self.wake_workers, p.durably)

    def wake_workers(self, *, delivery: bool = True) -> None:
        """New work was recorded: a worker in this process claims it without waiting.
        `delivery`: a delivery slot looks too (a re-sent import's stored screenshot); not
        for links only just recorded, whose capture slot sends or hands on the photo.
        Each wake sets one more idle slot looking: a second for the same link costs the
        database a claim query and a lost claim on the way to the page."""
        if self.worker is not None:
            self.worker.wake(Kind.CAPTURE)
            if delivery:
                self.worker.wake(Kind.DELIVERY)

    def shoot_ahead(self, record: LinkRecord) -> None:
        """A message's lone link is written, not yet queued: its page is opened meanwhile
        when a capture slot of this process is free (bot/pipeline/ahead.py)."""
        if self.worker is not None:
            locale = texts_for(record.lang_code).locale
            self.worker.shoot_ahead(record.id, record.owner_id, record.url, locale)

    def hand_or_wake(self, recorded: Recorded) -> None:
        """A message's links are recorded: its one new link goes straight to an idle
        capture slot of this process (claimed by its id); otherwise a slot looks, and a
        page opened ahead for a new link is closed (whoever claims it opens it again).
        None new: nothing (links saved before are woken for after their answer)."""
        if self.worker is None or not any(created for _, created in recorded.links):
            return
        handable = recorded.handable()
        if handable is not None and self.worker.hand(*handable):
            return
        self.worker.let_go([record.id for record, created in recorded.links if created])
        self.wake_workers(delivery=False)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Track fire-and-forget work so it is neither collected nor lost at shutdown."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def drain(self, grace: float) -> None:
        """Stop: workers finish what is in flight for up to `grace` seconds, then the rest
        is cancelled (its links stay recorded, its leases released for the next start)."""
        self.stopping.set()
        if self.worker is not None:
            await self.worker.stop(grace)
        if self.background:
            _, late = await asyncio.wait(set(self.background), timeout=max(grace, 0.1))
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5)


class Role(StrEnum):
    """What one process does: `python -m bot [front|worker]` (default: both)."""

    ALL = "all"
    FRONT = "front"  # updates (polling or webhook), screening, recording
    WORKER = "worker"  # claims and runs link stages; needs Chromium or a remote browser


@dataclass
class BotData:
    """`context.bot_data` of this Application (PTB's ContextTypes): typed, no string keys."""

    settings: Settings | None = None
    role: Role = Role.ALL
    shared_capturer: Capturer | None = None  # a browser owned by the caller (tests)
    services: Services | None = None
    receipts: Receipts = field(default_factory=Receipts)  # build_application's

    def require_settings(self) -> Settings:
        if self.settings is None:
            raise RuntimeError("build_application() sets the settings")
        return self.settings

    def require_services(self) -> Services:
        if self.services is None:
            raise RuntimeError("services are not initialised; start_services has not run")
        return self.services


class Context(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    """What every handler and job receives (PTB's ContextTypes, as its contexttypesbot
    example does): `context.services` is typed, no string keys, no look-up by name."""

    @property
    def services(self) -> Services:
        return self.bot_data.require_services()
