"""/stats: one user's numbers, from the listing: counts, and the screenshots' sizes stored
with the records (records saved before sizes were kept are looked up by image id); for
the bot's owner, also this process's memory and whether its browser is open."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from bot.browser.idle import BrowserState
from bot.procmem import Memory, process_memory
from storage import bulk
from storage.models import Status
from storage.repository import LinkStore

if TYPE_CHECKING:
    from bot.browser.capture import Capturer

_CAPTURED = {
    str(Status.CAPTURED),
    "delivering",  # the pipeline's stage between capture and summary
    str(Status.SUMMARIZING),
    str(Status.DONE),
    str(Status.SUMMARY_FAILED),
}
_WAITING = {str(Status.PENDING), str(Status.CAPTURING)}
# Where a link's model usage is stored: its summary's, and its tag proposal's
# (bot/pipeline/summarizing.py).
USAGE_FIELDS = ("llm", "llm_tags")
LOOKUPS_UP_TO = 200


@dataclass
class Stats:
    links: int = 0
    tags: int = 0
    captured_this_month: int = 0
    failed_this_month: int = 0
    waiting: int = 0
    screenshot_bytes: int = 0
    # model -> (prompt tokens, completion tokens)
    tokens: dict[str, tuple[int, int]] = field(default_factory=dict)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def tally(docs: list[dict[str, Any]], since: datetime, stats: Stats, images: set[ObjectId]) -> None:
    """Add one page of listing documents to `stats` (and to `images` the screenshots whose
    size the record does not hold)."""
    prompt: Counter[str] = Counter()
    completion: Counter[str] = Counter()
    for doc in docs:
        status = str(doc.get("status"))
        created = doc.get("created_at")
        recent = isinstance(created, datetime) and created >= since
        if status in _WAITING:
            stats.waiting += 1
        elif recent and status in _CAPTURED:
            stats.captured_this_month += 1
        elif recent and status == str(Status.FAILED):
            stats.failed_this_month += 1
        for llm in (doc.get(name) for name in USAGE_FIELDS):
            if isinstance(llm, dict) and llm.get("model"):
                prompt[llm["model"]] += int(llm.get("prompt_tokens") or 0)
                completion[llm["model"]] += int(llm.get("completion_tokens") or 0)
        shot = doc.get("screenshot")
        if isinstance(shot, dict) and isinstance(shot.get("gridfs_id"), ObjectId):
            if isinstance(shot.get("size"), int):
                stats.screenshot_bytes += shot["size"]
            else:
                images.add(shot["gridfs_id"])
    for model in prompt.keys() | completion.keys():
        p, c = stats.tokens.get(model, (0, 0))
        stats.tokens[model] = (p + prompt[model], c + completion[model])


async def user_stats(store: LinkStore, owner_id: int, now: datetime) -> Stats:
    stats = Stats()
    stats.links, stats.tags = await bulk.owner_counts(store, owner_id)
    images: set[ObjectId] = set()
    since = month_start(now)
    async for page in bulk.owner_docs(store, owner_id):
        tally(page, since, stats, images)
    stats.screenshot_bytes += await _sizes(store, images)
    return stats


async def _sizes(store: LinkStore, images: set[ObjectId]) -> int:
    """Bytes of screenshots saved before their size was kept: a look-up each while they
    are few, one pass over the image headers when there are many."""
    if len(images) > LOOKUPS_UP_TO:
        return await bulk.image_bytes(store, images)
    total = 0
    for image_id in images:
        total += await store.images.size(image_id) or 0
    return total


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@dataclass(frozen=True)
class ProcessStats:
    """What the bot's owner sees under /stats: this process's memory, and its browser's
    state (None: a front, which has no browser)."""

    memory: Memory
    browser: BrowserState | None


async def process_stats(capturer: Capturer | None) -> ProcessStats:
    memory = await asyncio.to_thread(process_memory)  # reads /proc: a few ms
    return ProcessStats(memory, capturer.state if capturer is not None else None)
