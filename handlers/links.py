"""Messages carrying links: react at once, then hand the links to the snapshot service."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError
from telegram import Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.ext import ExtBot, filters

from bot.chat import render
from bot.chat.links import ParsedMessage, Rejected, parse_message
from bot.chat.receipts import Receipts
from bot.chat.replies import react
from bot.i18n import Texts
from bot.pipeline import intake
from bot.pipeline.intake import LinkRequest, Recorded
from bot.services import Context, Services
from bot.tags import MAX_TAGS_PER_LINK
from handlers.common import texts_of
from storage.models import utcnow

log = logging.getLogger(__name__)

COMMENT_WAIT = 3.0  # iOS shares the typed comment as its own message just before the URL


@dataclass
class _Comment:
    at: float
    parsed: ParsedMessage
    used: bool = False


class Taken(filters.UpdateFilter):
    """Passes every update, noting that this handler takes it: the update is confirmed
    to Telegram once its links are recorded, not as its handling begins
    (bot/chat/receipts.py)."""

    def __init__(self, receipts: Receipts) -> None:
        super().__init__(name="Taken")
        self.receipts = receipts

    def filter(self, update: Update) -> bool:
        self.receipts.take(update.update_id)
        return True


async def on_message(update: Update, context: Context) -> None:
    """Screen, record and acknowledge; workers (bot/pipeline) do the rest. The update is
    settled (confirmed to Telegram with the next fetch) once its links are recorded."""
    receipts = context.bot_data.receipts
    try:
        await _on_message(update, context, lambda: receipts.settle(update.update_id))
    finally:
        receipts.settle(update.update_id)


async def _on_message(update: Update, context: Context, settled: Callable[[], None]) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    parsed = parse_message(message)
    texts = texts_of(update)
    if not parsed.urls:
        settled()  # nothing to record (a lone comment waits seconds for its link)
        await _no_links(message, parsed, texts, context)
        return
    services = context.services
    _merge_comment(parsed, context)
    # This handler runs beside the user's other messages' (block=False). Asked for before
    # any await, the recording section is entered in the order the messages came, so
    # the first link sent gets the first turn; 👀 does not wait for it.
    recording = services.recording.of(user.id)
    seen = asyncio.ensure_future(react(context.bot, message.chat_id, message.message_id, "👀"))
    try:
        async with recording:
            recorded = await _record(
                services, message, user.id, user.language_code or "en", parsed, texts
            )
    finally:
        settled()
        await seen  # before any closing reaction, which must come after it
    if recorded is None:
        await react(context.bot, message.chat_id, message.message_id, "🤷")
        return
    services.hand_or_wake(recorded)
    await _explain_leftovers(message, parsed, texts)
    await _warn_if_paced(services, message, user.id, recorded.later, texts)
    await _answer_saved_before(services, context.bot, message, recorded, parsed)


async def _answer_saved_before(
    services: Services,
    bot: ExtBot[Any],
    message: Message,
    recorded: Recorded,
    parsed: ParsedMessage,
) -> None:
    """Links the user had saved before are answered here; new ones by the workers, which
    also set the closing reaction when they finish."""
    answered = [
        await intake.answer_again(services.pipeline, bot, record)
        for record, created in recorded.links
        if not created
    ]
    if answered:
        services.wake_workers()  # a re-capture may have been queued
    if answered and all(answered) and len(answered) == len(recorded.links):
        done = "👌" if not parsed.rejected else "🤷"
        await react(bot, message.chat_id, message.message_id, done)
    elif not recorded.links:
        await react(bot, message.chat_id, message.message_id, "🤷")


async def _record(
    services: Services,
    message: Message,
    user_id: int,
    lang_code: str,
    parsed: ParsedMessage,
    texts: Texts,
) -> Recorded | None:
    """Screen and store the links. While the database is down, say so once and keep
    trying for a while; None (after saying so) if it does not come back."""
    request = LinkRequest(
        owner_id=user_id,
        chat_id=message.chat_id,
        message_id=message.message_id,
        lang_code=lang_code,
        tags=parsed.tags,
        note=parsed.note,
    )
    urls, refused = await intake.screen(services.pipeline, parsed.urls)
    parsed.rejected.extend(Rejected(url, reason) for url, reason in refused)

    async def told() -> None:
        await message.reply_text(texts.db_down_wait)

    try:
        return await intake.record(
            services.pipeline, request, urls, on_wait=told, on_new=services.shoot_ahead
        )
    except PyMongoError:
        log.exception("database unavailable while recording links")
        await message.reply_text(texts.db_down)
        return None


async def _warn_if_paced(
    services: Services, message: Message, user_id: int, later: datetime | None, texts: Texts
) -> None:
    """Past their pace a user's links wait (recorded and safe); tell them once a minute."""
    if later is None or not services.limits.should_warn(user_id):
        return
    seconds = max(1, int((later - utcnow()).total_seconds()) + 1)
    await message.reply_text(texts.too_fast.format(seconds=seconds))


def _merge_comment(parsed: ParsedMessage, context: Context) -> None:
    data = context.user_data if context.user_data is not None else {}
    comment: _Comment | None = data.get("linksnap.comment")
    if comment is None or comment.used or time.monotonic() - comment.at > COMMENT_WAIT:
        return
    comment.used = True
    parsed.add_tags(comment.parsed.tags)
    parsed.tags_dropped += comment.parsed.tags_dropped
    parsed.note = "\n".join(n for n in (comment.parsed.note, parsed.note) if n)


async def _no_links(
    message: Message, parsed: ParsedMessage, texts: Texts, context: Context
) -> None:
    if parsed.rejected:
        await _explain_leftovers(message, parsed, texts)
        return
    if message.chat.type != ChatType.PRIVATE:
        return  # in a group, people talk; only links are the bot's business
    comment = _Comment(time.monotonic(), parsed)
    if context.user_data is not None:
        context.user_data["linksnap.comment"] = comment
    await asyncio.sleep(COMMENT_WAIT)
    if not comment.used:
        await message.reply_text(texts.no_links)


async def _explain_leftovers(message: Message, parsed: ParsedMessage, texts: Texts) -> None:
    """One reply naming refused links and how many were skipped."""
    lines = render.refusal_lines(parsed, texts)
    if parsed.tags_dropped:
        lines.append(texts.tags_dropped.format(limit=MAX_TAGS_PER_LINK, count=parsed.tags_dropped))
    if lines:
        await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML)
