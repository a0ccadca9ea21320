"""The link-rot digest: once every DIGEST_INTERVAL, a user whose saved pages went offline
hears it in one message, with a button per page that shows the snapshot kept.

Periods are fixed slices of time (period n ends at (n + 1) × interval since the epoch),
so every user's digest is due at the same moment. A pass (any worker's, claimed like a
link-rot round) tells each owner with news what went offline between the end of their
last digest and the end of the last full period, and records that end
(`storage/rot.py`): a pass cut short is finished by the next one, and nobody hears of a
page twice. A period counts as ended SETTLE seconds after its end, so the answers of
checks made just before it have landed. Only pages still offline are told; nothing is
sent when nothing went offline. The messages go out as bulk through the outbound path (bot/chat/outbound.py):
paced at the overall limit, after anything someone is waiting for.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from telegram import InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import ExtBot

from bot.chat import render
from bot.chat.callbacks import Codec, codec_for, digest_keyboard, gone_keyboard
from bot.chat.outbound import BULK
from bot.chat.replies import send_media
from bot.i18n import Texts, texts_for
from storage.images import ImageNotFound
from storage.repository import LinkStore
from storage.rot import GoneItem, Told

log = logging.getLogger(__name__)

SETTLE = 120.0
EPOCH = datetime.fromtimestamp(0, UTC)
PAGE = 10  # pages listed per digest message; ◀ ▶ past that
AT_ONCE = 8  # owners worked on at once (their sends queue in the outbound path)
CHUNK = 256  # owners given tasks at once
MOST = 1000  # pages one digest names at most
WEEK = 7 * 86400


class Digest:
    def __init__(self, store: LinkStore, interval: float) -> None:
        self.store = store
        self.interval = interval

    def period_end(self, now: datetime) -> tuple[int, datetime]:
        """The last full period before `now`: its number and when it ended."""
        number = int((now.timestamp() - SETTLE) // self.interval) - 1
        return number, datetime.fromtimestamp((number + 1) * self.interval, UTC)

    async def run(self, bot: ExtBot[Any], now: datetime) -> int:
        """Tell every owner with news; returns how many digests were sent."""
        period, end = self.period_end(now)
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(owner_id: int, last_gone: datetime) -> bool:
            async with gate:
                return await self._owner(bot, owner_id, last_gone, period, end)

        news = await self.store.rot.news()
        sent = 0
        for start in range(0, len(news), CHUNK):  # tasks for a few owners at a time
            batch = news[start : start + CHUNK]
            results = await asyncio.gather(*(one(*n) for n in batch), return_exceptions=True)
            for (owner_id, _), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("digest for %s failed", owner_id, exc_info=result)
            sent += sum(1 for r in results if r is True)
        return sent

    async def _owner(
        self,
        bot: ExtBot[Any],
        owner_id: int,
        last_gone: datetime,
        period: int,
        end: datetime,
    ) -> bool:
        told = await self.store.rot.told(owner_id)
        if told is not None and told.through >= end:
            return False  # told already (an earlier pass of this period)
        # Never told: everything still offline (a pass missed while the bot was down is
        # made up for by the next one, for a first digest too).
        since = told.through if told is not None else EPOCH
        if last_gone < since:
            return False  # nothing went offline since their last digest
        items: list[GoneItem] = []
        language: str | None = None
        if (await self.store.prefs.get(owner_id)).digest:
            items, language = await self._gone_between(owner_id, since, end)
        sent = False
        if items:
            texts = texts_for(language)
            sent = await self._send(bot, owner_id, Told(end, period, items), texts)
        await self.store.rot.tell(owner_id, Told(end, period, items))
        return sent

    async def _gone_between(
        self, owner_id: int, since: datetime, end: datetime
    ) -> tuple[list[GoneItem], str | None]:
        """Pages of the owner that went offline in [since, end) and still are, most
        recently gone first; and the language the owner saved the newest of them in."""
        found = await self.store.gone(owner_id, page_size=10 * MOST)
        # Only pages with a snapshot: the digest promises it is kept (an imported link
        # found gone before its capture shows its mark in /find and on the web instead).
        fresh = [
            r
            for r in found.items
            if r.gone_at is not None and since <= r.gone_at < end and r.screenshot is not None
        ]
        language = fresh[0].lang_code if fresh else None  # the listing is newest first
        fresh.sort(key=lambda r: r.gone_at or end, reverse=True)
        return [GoneItem(r.id, r.title or "", r.url) for r in fresh[:MOST]], language

    async def _send(self, bot: ExtBot[Any], owner_id: int, told: Told, texts: Texts) -> bool:
        text, markup = self.page(told, 0, texts, codec_for(bot.token), owner_id)
        try:
            await bot.send_message(
                owner_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                rate_limit_args=BULK,
            )
        except (BadRequest, Forbidden) as exc:  # no private chat, or the bot was blocked
            log.info("digest for %s not sent: %s", owner_id, exc)
            return False
        return True

    def page(
        self, told: Told, page: int, texts: Texts, codec: Codec, owner_id: int
    ) -> tuple[str, InlineKeyboardMarkup]:
        """Page `page` of a digest: its text and its buttons."""
        pages = max(1, -(-len(told.items) // PAGE))
        page = min(max(page, 0), pages - 1)
        first = page * PAGE
        shown = told.items[first : first + PAGE]
        text = render.digest_message(
            shown, first + 1, len(told.items), self.when(texts), texts, page, pages
        )
        numbered = [(first + 1 + i, item.id) for i, item in enumerate(shown)]
        markup = digest_keyboard(
            codec, owner_id, numbered, texts, period=told.period, page=page, pages=pages
        )
        return text, markup

    def when(self, texts: Texts) -> str:
        if self.interval == WEEK:
            return texts.digest_when_week
        return texts.digest_when_days.format(days=_days(self.interval))

    def every(self, texts: Texts) -> str:
        if self.interval == WEEK:
            return texts.digest_every_week
        return texts.digest_every_days.format(days=_days(self.interval))


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g}"


async def show_snapshot(
    store: LinkStore, bot: ExtBot[Any], owner_id: int, chat_id: int, link_id: ObjectId, texts: Texts
) -> bool:
    """Send the owner the snapshot kept of one of their links; False when there is none
    (the link was deleted, or never captured)."""
    record = await store.get(owner_id, link_id)
    if record is None or record.screenshot is None:
        return False
    shot = record.screenshot
    target = replace(record, chat_id=chat_id, source_message_id=None)
    caption = render.caption(record, texts, saved_on=record.created_at)
    if record.alive is False and record.gone_at is not None:
        caption += "\n" + texts.gone_since.format(date=record.gone_at.strftime("%Y-%m-%d"))
    markup = gone_keyboard(codec_for(bot.token), record, texts)
    if shot.file_id is not None:
        try:
            await send_media(
                bot, target, shot.file_id, caption, as_document=shot.as_document, markup=markup
            )
            return True
        except BadRequest:
            log.info("stored file_id of %s no longer valid; sending the kept bytes", link_id)
    if shot.gridfs_id is None:
        return False
    try:
        image = await store.get_image(shot.gridfs_id)
    except ImageNotFound:
        return False
    await send_media(bot, target, image, caption, as_document=shot.as_document, markup=markup)
    return True
