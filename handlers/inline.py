"""Inline mode: `@bot words #tag` in any chat lists the user's own matching links."""

from __future__ import annotations

import re

from telegram import (
    InlineQueryResultArticle,
    InlineQueryResultCachedDocument,
    InlineQueryResultCachedPhoto,
    InputTextMessageContent,
    Update,
)
from telegram.constants import ParseMode

from bot.chat import render
from bot.i18n import Texts
from bot.services import Context
from handlers.browse import parse_query
from handlers.common import texts_of
from storage.models import LinkRecord

PAGE_SIZE = 20  # Telegram allows 50; 20 photos keep a page quick to load
CACHE_SECONDS = 10  # a retag or delete shows up almost at once
MAX_PAGE = 10_000  # an offset past this is answered with an empty page
TITLE_MAX = 200
DESCRIPTION_MAX = 200
_OFFSET = re.compile(r"[0-9]{1,9}")

InlineResult = (
    InlineQueryResultCachedPhoto | InlineQueryResultCachedDocument | InlineQueryResultArticle
)


def inline_result(record: LinkRecord, texts: Texts) -> InlineResult:
    """The stored screenshot (by its Telegram file_id) with the snapshot's caption; a text
    result for a link that has no screenshot yet."""
    title = render.clip(render.shown(record.title or record.url), TITLE_MAX)
    tags = " ".join(f"#{t}" for t in record.tags)
    where = render.domain(record.final_url or record.url)
    description = render.clip(
        render.shown(" · ".join(x for x in (where, tags) if x)), DESCRIPTION_MAX
    )
    caption = render.caption(record, texts)
    shot = record.screenshot
    if shot is not None and shot.file_id and shot.as_document:
        return InlineQueryResultCachedDocument(
            id=str(record.id),
            title=title,
            document_file_id=shot.file_id,
            description=description,
            caption=caption,
            parse_mode=ParseMode.HTML,
        )
    if shot is not None and shot.file_id:
        return InlineQueryResultCachedPhoto(
            id=str(record.id),
            photo_file_id=shot.file_id,
            title=title,
            description=description,
            caption=caption,
            parse_mode=ParseMode.HTML,
        )
    return InlineQueryResultArticle(
        id=str(record.id),
        title=title,
        input_message_content=InputTextMessageContent(caption, parse_mode=ParseMode.HTML),
        url=record.url,
        description=description,
    )


def page_of(offset: str) -> int:
    """The page an inline query's offset asks for. Telegram sends back the next_offset
    we gave, but a client may send anything: what is not our plain page number (`-5`,
    `²`, an empty string) is the first page, and a huge one is past MAX_PAGE."""
    if _OFFSET.fullmatch(offset):
        return int(offset)
    return MAX_PAGE + 1 if offset.isascii() and offset.isdigit() else 0


async def on_inline_query(update: Update, context: Context) -> None:
    """A page of the asker's links; strangers never get here (handlers/auth.py)."""
    query, user = update.inline_query, update.effective_user
    if query is None or user is None:
        return
    tags, words = parse_query(query.query)
    page = page_of(query.offset)
    if page > MAX_PAGE:
        await query.answer([], cache_time=CACHE_SECONDS, is_personal=True, next_offset="")
        return
    store = context.services.store
    found = await store.find(user.id, tags, words, page=page, page_size=PAGE_SIZE)
    texts = texts_of(update)
    results = [inline_result(record, texts) for record in found.items]
    more = page + 1 < found.pages and bool(found.items)
    await query.answer(
        results,
        cache_time=CACHE_SECONDS,
        is_personal=True,
        next_offset=str(page + 1) if more else "",
    )
