"""Stage 1, in the handler: screen the links, record them before any slow work, queue them.

Nothing slow happens here: once recorded, a link belongs to the workers (worker.py),
which may run in this process or another.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from telegram.error import BadRequest
from telegram.ext import ExtBot

from bot.chat import render
from bot.chat.callbacks import codec_for, snapshot_keyboard
from bot.chat.links import url_key
from bot.chat.replies import send_media
from bot.i18n import texts_for
from bot.pipeline.base import Pipeline
from bot.tags import MAX_TAGS_PER_LINK, cap_tags
from storage.models import UNFINISHED, LinkRecord, Status
from storage.queue.claims import PRIO_BY_HAND

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkRequest:
    """Who asked for which links, and where to answer."""

    owner_id: int
    chat_id: int
    message_id: int | None  # None: added on the platform's pages, no message to answer
    lang_code: str
    tags: list[str]
    note: str


@dataclass
class Recorded:
    """What recording a message's links did."""

    links: list[tuple[LinkRecord, bool]]  # (record, created now)
    later: datetime | None  # past the user's pace: when the last of them may start
    # Created links claimable now, with their turns: a capture slot of this process
    # may claim one by its id (worker.Worker.hand).
    turns: dict[ObjectId, float] = field(default_factory=dict)

    def handable(self) -> tuple[LinkRecord, float] | None:
        """The message's one new link, queued and claimable now, as recorded."""
        if len(self.links) != 1:
            return None  # several: their siblings are written after queueing
        record, created = self.links[0]
        turn = self.turns.get(record.id)
        return (record, turn) if created and turn is not None else None


async def screen(p: Pipeline, urls: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(links the bot may open, [(link, "blocked" or "malformed")]) — refused ones are
    never stored. A name that does not resolve now is kept: DNS can fail for a while,
    and the capture then says so."""
    allowed: list[str] = []
    refused: list[tuple[str, str]] = []
    for url in urls:
        verdict = await p.guard.check_url(url)
        if verdict.allowed or verdict.reason == "unresolvable":
            allowed.append(url)
        else:
            refused.append((url, "malformed" if verdict.reason == "malformed" else "blocked"))
    return allowed, refused


async def record(
    p: Pipeline,
    request: LinkRequest,
    urls: list[str],
    *,
    on_wait: Callable[[], Awaitable[None]] | None = None,
    prio: int = PRIO_BY_HAND,
    on_new: Callable[[LinkRecord], None] | None = None,
) -> Recorded:
    """Write every link and queue the new ones. While the database is down this waits
    for it (`on_wait` tells the user once). `on_new` is told of a lone new link as soon
    as it is written, before it is queued (its page may be opened meanwhile)."""
    links: list[tuple[LinkRecord, bool]] = []
    later: datetime | None = None
    turns: dict[ObjectId, float] = {}
    for url in urls:
        fresh = LinkRecord(
            owner_id=request.owner_id,
            chat_id=request.chat_id,
            url=url,
            url_key=url_key(url),
            tags=request.tags,
            note=request.note,
            lang_code=request.lang_code,
            source_message_id=request.message_id,
        )
        stored, created = await p.durably(
            functools.partial(p.store.add_pending, fresh), on_wait=on_wait
        )
        on_wait = None
        if created and on_new is not None and len(urls) == 1:
            on_new(stored)
        if len(stored.tags) > MAX_TAGS_PER_LINK:  # merged into a link that had many
            stored.tags = cap_tags(stored.tags)[0]
            await p.durably(
                lambda r=stored: p.store.set_tags(r.owner_id, r.id, r.tags)  # type: ignore[misc]
            )
        # An insert that landed while its answer was lost (the database went away) reads
        # back as "saved before" on retry, but nothing queued it: it is this message's.
        created = created or await p.durably(
            lambda r=stored: _ours_unqueued(p, r, request)  # type: ignore[misc]
        )
        if created:
            queued = await p.durably(
                lambda r=stored: p.store.queue.queue(  # type: ignore[misc]
                    r.id, r.owner_id, per_minute=p.per_minute, prio=prio
                )
            )
            later = queued.later or later
            if queued.later is None and prio == PRIO_BY_HAND:
                turns[stored.id] = queued.turn
        else:  # answer where and to what the user sent it this time
            if (
                stored.source_message_id is None
                and stored.status in UNFINISHED
                and await p.durably(functools.partial(_imported, p, stored))
            ):
                await p.durably(functools.partial(_by_hand, p, stored, request))
            stored.chat_id, stored.source_message_id = request.chat_id, request.message_id
            stored.lang_code = request.lang_code
        links.append((stored, created))
    new = [r.id for r, created in links if created]
    if len(new) > 1:
        await p.durably(lambda: p.store.set_siblings(new))
    return Recorded(links, later, turns)


async def _ours_unqueued(p: Pipeline, record: LinkRecord, request: LinkRequest) -> bool:
    if request.message_id is None:
        return False  # a page's request has no message to tell its links by (workers adopt)
    ours = (record.chat_id, record.source_message_id) == (request.chat_id, request.message_id)
    return ours and record.status == Status.PENDING and not await p.store.queue.queued(record.id)


async def _imported(p: Pipeline, record: LinkRecord) -> bool:
    """Recorded by an import (not by a message, nor on the platform's pages)."""
    return await p.store.was_imported(record.id)


async def _by_hand(p: Pipeline, record: LinkRecord, request: LinkRequest) -> None:
    """An imported link not yet captured, now sent by hand: its photo answers this message
    (imported links are captured silently) and it goes ahead of the rest of the import."""
    await p.store.update(
        record.id,
        chat_id=request.chat_id,
        source_message_id=request.message_id,
        lang_code=request.lang_code,
    )
    await p.store.queue.enqueue(record.id, record.owner_id, per_minute=p.per_minute)


async def answer_again(p: Pipeline, bot: ExtBot[Any], record: LinkRecord) -> bool | None:
    """A link the user had saved before: show the earlier snapshot, its date and a button
    to capture afresh. True when answered now; None when the link is (again) on its way
    and the workers will answer."""
    shot = record.screenshot
    if record.status in UNFINISHED:
        return None
    if shot is not None and shot.file_id is None and shot.gridfs_id is not None:
        await requeue(p, record, status=Status.CAPTURED)  # captured silently by an import
        return None
    if shot is None or shot.file_id is None:
        await requeue(p, record)
        return None
    texts = texts_for(record.lang_code)
    caption = render.caption(record, texts, saved_on=record.created_at)
    try:
        await send_media(
            bot,
            record,
            shot.file_id,
            caption,
            as_document=shot.as_document,
            markup=snapshot_keyboard(codec_for(bot.token), record, texts),
        )
    except BadRequest:
        log.info("stored file_id no longer valid; capturing again")
        await requeue(p, record)
        return None
    return True


async def requeue(p: Pipeline, record: LinkRecord, status: Status = Status.PENDING) -> None:
    """Capture this link afresh (or, from `Status.CAPTURED`, send its stored screenshot);
    the new photo replies to `record.source_message_id`."""
    await p.store.update(
        record.id,
        status=status,
        reply_message_id=None,
        source_message_id=record.source_message_id,
        chat_id=record.chat_id,
        lang_code=record.lang_code,
        siblings=[],
    )
    await p.store.queue.enqueue(record.id, record.owner_id, per_minute=p.per_minute)
