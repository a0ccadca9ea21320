"""A snapshot's message in the chat, edited to match its record: after a retag, a delete
(with ↩ Undo), a restore, and once the link is deleted for good. The chat's handlers
and the platform's pages both use this, so a change made in either place shows in the
chat the same way. (The timer that ends a delete's minute: bot/purge_timer.py.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot.chat import callbacks
from bot.chat.edits import unless_unchanged
from bot.i18n import Texts, texts_for
from bot.library.manage import deleted_caption, snapshot_caption
from storage.models import LinkRecord

log = logging.getLogger(__name__)
Where = tuple[int, int]  # (chat id, message id) of a snapshot


def where_of(record: LinkRecord) -> Where | None:
    """The message the link's snapshot was sent as, if it was."""
    if record.reply_message_id is None:
        return None
    return record.chat_id, record.reply_message_id


async def show_snapshot(
    bot: ExtBot[Any],
    record: LinkRecord,
    texts: Texts,
    where: Where | None,
    suggestions: Sequence[str] = (),
) -> None:
    """Caption and buttons as the record now stands."""
    if where is None:
        return
    markup = callbacks.snapshot_keyboard(callbacks.codec_for(bot.token), record, texts, suggestions)
    await edit_caption(bot, where, snapshot_caption(record, texts), markup)


async def show_deleted(
    bot: ExtBot[Any], record: LinkRecord, texts: Texts, where: Where | None, *, for_good: bool
) -> None:
    """ "Deleted" with ↩ Undo while it can be undone; "deleted for good" after."""
    if where is None:
        return
    codec = callbacks.codec_for(bot.token)
    markup = None if for_good else callbacks.undo_keyboard(codec, record, texts)
    await edit_caption(bot, where, deleted_caption(record, texts, for_good=for_good), markup)


async def show_many(bot: ExtBot[Any], records: Iterable[LinkRecord]) -> None:
    """Many snapshots after one change (a bulk retag, a renamed tag), each in the language
    it was sent in; paced as every edit is, so this may take a while."""
    for record in records:
        try:
            await show_snapshot(bot, record, texts_for(record.lang_code), where_of(record))
        except TelegramError as exc:
            log.info("snapshot caption not updated: %s", exc)


async def edit_caption(
    bot: ExtBot[Any], where: Where, caption: str, markup: InlineKeyboardMarkup | None
) -> None:
    edit = bot.edit_message_caption(
        chat_id=where[0],
        message_id=where[1],
        caption=caption,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
    )
    try:
        await unless_unchanged(edit)
    except BadRequest as exc:
        log.info("snapshot caption not updated: %s", exc.message)
