"""What every stage of the pipeline shares: the store, the browser, the LLM, the way out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from cachetools import TTLCache

from bot.chat.outbound import Outbound
from bot.guard.netguard import NetGuard
from bot.library.tagsuggest import KnownTags
from bot.live import LiveEvents
from bot.pipeline.durable import PATIENCE, durably
from storage.repository import LinkStore

if TYPE_CHECKING:
    from bot.browser.capture import Capturer
    from bot.summarize import Summarizer

T = TypeVar("T")
MAX_SUMMARY_ATTEMPTS = 3


@dataclass
class Pipeline:
    """Dependencies of the stages. `capturer` is None in a front-only process."""

    store: LinkStore
    guard: NetGuard
    capturer: Capturer | None
    summarizer: Summarizer | None
    outbound: Outbound
    per_minute: float = 20
    db_patience: float = PATIENCE
    summary_retry_delay: float = 300
    # Chats told once that summaries are off; bounded, a repeat after eviction is harmless.
    told_no_key: TTLCache[int, bool] = field(
        default_factory=lambda: TTLCache(maxsize=10_000, ttl=7 * 86400)
    )
    # What the stages tell the platform's pages as they go (bot/live.py).
    live: LiveEvents = field(default_factory=LiveEvents)
    # The users' tags that ＋#tag suggestions are chosen from, read again every few seconds.
    known_tags: KnownTags = field(default_factory=KnownTags)

    async def durably(
        self,
        call: Callable[[], Awaitable[T]],
        on_wait: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """A database call that waits out an outage (see bot/pipeline/durable.py)."""
        return await durably(
            call, on_wait=on_wait, patience=self.db_patience, stopping=self.outbound.stopping
        )
