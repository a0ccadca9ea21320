"""The Bot API calls the stages make, each through the outbound path (bot/chat/outbound.py)."""

from __future__ import annotations

import logging
from typing import Any

from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.chat.outbound import ACK, Priority, Send, is_passing
from storage.errors import LinksnapError
from storage.models import LinkRecord, Screenshot

log = logging.getLogger(__name__)

PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20


class NotTold(LinksnapError):
    """A line or reaction that ends a link's story did not reach its user: Telegram could
    not take it (a 429, a fault) when the bot stopped trying, as it does on a stop (while
    running it tries until it lands). The link keeps its work entry, so a later claim
    (this start's or the next's) tells it (bot/pipeline/worker._reconcile)."""


async def send_media(
    bot: ExtBot[Any],
    record: LinkRecord,
    media: bytes | str,
    caption: str,
    *,
    as_document: bool,
    markup: InlineKeyboardMarkup | None = None,
    send: Send | None = None,
) -> Message:
    """A photo, or a document when Telegram would refuse the image as a photo. `send`:
    how the outbound path treats it (default: a new message that must land)."""
    common: dict[str, object] = {
        "caption": caption,
        "parse_mode": ParseMode.HTML,
        "reply_markup": markup,
        "reply_parameters": reply_to(record),
        "rate_limit_args": send,
    }
    if as_document:
        return await bot.send_document(record.chat_id, media, **common)  # type: ignore[arg-type]
    return await bot.send_photo(record.chat_id, media, **common)  # type: ignore[arg-type]


def photo_ok(width: int, height: int) -> bool:
    """Telegram's photo rule: sides add up to at most 10000, ratio at most 20."""
    return width + height <= PHOTO_MAX_SIDES and max(width, height) <= PHOTO_MAX_RATIO * min(
        width, height
    )


def screenshot_of(message: Message, shot: Screenshot | None, as_document: bool) -> Screenshot:
    """What Telegram says it stored, beside the bytes we keep."""
    base = shot or Screenshot(width=0, height=0)
    if as_document and message.document:
        file = message.document
        return Screenshot(
            base.width,
            base.height,
            file.file_id,
            file.file_unique_id,
            base.gridfs_id,
            True,
            size=base.size,
        )
    biggest = message.photo[-1]
    return Screenshot(
        biggest.width,
        biggest.height,
        biggest.file_id,
        biggest.file_unique_id,
        base.gridfs_id,
        size=base.size,
    )


def reply_to(record: LinkRecord) -> ReplyParameters | None:
    if record.source_message_id is None:
        return None
    return ReplyParameters(record.source_message_id, allow_sending_without_reply=True)


async def reply(
    bot: ExtBot[Any], record: LinkRecord, text: str, *, must_tell: bool = False
) -> None:
    """A text reply to the user's message; a failure is logged, never raised, except
    with `must_tell` one that trying again could cure: NotTold then.

    A link no message asked for (an imported bookmark: `source_message_id` None) gets
    none: an import of old bookmarks must not post a line per dead link. Its status says
    it failed, and a link sent by hand always has its message.
    """
    if record.source_message_id is None:
        log.info("no message to answer for %s; not told", record.id)
        return
    try:
        await bot.send_message(
            record.chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=reply_to(record)
        )
    except TelegramError as exc:
        if must_tell and is_passing(exc):
            raise NotTold(record.id) from exc
        log.warning("reply failed: %s", exc)


async def react(
    bot: ExtBot[Any], chat_id: int, message_id: int, emoji: str, *, must_tell: bool = False
) -> None:
    """Set a reaction; a failure here must never stop the work it decorates (except with
    `must_tell`, as `reply`: NotTold for one that trying again could cure).

    👀 goes ahead of everything in the chat; the closing reaction after the replies.
    """
    send = ACK if emoji == "👀" else Send(Priority.FINAL)
    try:
        await bot.set_message_reaction(chat_id, message_id, emoji, rate_limit_args=send)
    except TelegramError as exc:
        if must_tell and is_passing(exc):
            raise NotTold(chat_id, message_id) from exc
        log.info("reaction %s not set: %s", emoji, exc)
