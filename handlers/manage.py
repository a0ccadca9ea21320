"""Retag by reply, and the 🏷 🗑 ↩ ＋#tag buttons under a snapshot."""

from __future__ import annotations

import logging
from typing import Any

from telegram import CallbackQuery, Message, Update
from telegram.ext import Application, filters

from bot import purge_timer
from bot.chat import callbacks, render
from bot.chat.callbacks import AddTag, Codec, Delete, EditTags, Undo
from bot.chat.replies import react
from bot.i18n import Texts
from bot.library import snapshot_edits
from bot.library.manage import (
    ManageService,
    Retag,
    parse_retag,
)
from bot.services import Context
from bot.tags import MAX_TAGS_PER_LINK
from handlers.common import texts_of
from storage.models import LinkRecord
from storage.trash import AlreadyRestored, UndoConflict, UndoExpired

log = logging.getLogger(__name__)
SWEEP_EVERY = 300.0
ALERT_LIMIT = 200  # characters of a callback query's answer


class _RetagReply(filters.MessageFilter):
    """A reply to one of the bot's messages whose text is only `#tag` / `-#tag` tokens."""

    def filter(self, message: Message) -> bool:
        target = message.reply_to_message
        if target is None or target.from_user is None or not target.from_user.is_bot:
            return False
        return parse_retag(message.text) is not None


RETAG_REPLY = _RetagReply(name="RetagReply")


def manage_of(context: Context) -> ManageService:
    services = context.services
    return ManageService(services.store)


def codec_of(context: Context) -> Codec:
    return callbacks.codec_for(context.bot.token)


async def on_retag_reply(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.reply_to_message is None:
        return
    texts = texts_of(update)
    change = parse_retag(message.text)
    assert change is not None  # the filter let only these through
    manage = manage_of(context)
    target = message.reply_to_message
    record = await manage.link_of(codec_of(context), user.id, target)
    if record is None:
        await message.reply_text(texts.retag_no_link)
        return
    done = await manage.retag_counted(user.id, record.id, change)
    if done is None:
        await message.reply_text(texts.retag_no_link)
        return
    updated, dropped = done
    await _show_snapshot(context, updated, texts, _snapshot_message(target, updated))
    if dropped:
        await message.reply_text(texts.tags_dropped.format(limit=MAX_TAGS_PER_LINK, count=dropped))
    await react(context.bot, message.chat_id, message.message_id, "👌")


def _snapshot_message(target: Message, record: LinkRecord) -> tuple[int, int] | None:
    """(chat, message) of the snapshot: the replied-to message when it is one (a photo or a
    document), else the record's own reply in that chat."""
    if target.photo or target.document:
        return target.chat_id, target.message_id
    if record.reply_message_id and record.chat_id == target.chat_id:
        return record.chat_id, record.reply_message_id
    return None


async def _show_snapshot(
    context: Context,
    record: LinkRecord,
    texts: Texts,
    where: tuple[int, int] | None,
    suggestions: list[str] | None = None,
) -> None:
    """Caption and buttons as the record now stands."""
    await snapshot_edits.show_snapshot(context.bot, record, texts, where, suggestions or [])


def _where(query: CallbackQuery) -> tuple[int, int] | None:
    message = query.message
    if not isinstance(message, Message):
        return None  # too old for Telegram to send it: nothing to edit
    return message.chat_id, message.message_id


async def edit_tags(update: Update, context: Context, action: EditTags) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    texts = texts_of(update)
    record = await context.services.store.get(user.id, action.link_id)
    if record is None:
        await query.answer(texts.stale_button)
        return
    tags = " ".join(f"#{t}" for t in record.tags) or texts.tags_how_none
    await query.answer(render.clip(texts.tags_how.format(tags=tags), ALERT_LIMIT), show_alert=True)


async def add_tag(update: Update, context: Context, action: AddTag) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    texts = texts_of(update)
    done = await manage_of(context).retag_counted(user.id, action.link_id, Retag(add=[action.tag]))
    if done is None:
        await query.answer(texts.stale_button)
        return
    record, dropped = done
    if dropped:
        await query.answer(texts.tags_full.format(limit=MAX_TAGS_PER_LINK), show_alert=True)
        return
    await query.answer(texts.tag_added.format(tag=action.tag))
    message = query.message if isinstance(query.message, Message) else None
    left = _suggestions(codec_of(context), message, user.id)
    await _show_snapshot(context, record, texts, _where(query), left)


def _suggestions(codec: Codec, message: Message | None, owner_id: int) -> list[str]:
    """The ＋#tag suggestions still on a snapshot's keyboard."""
    if message is None or message.reply_markup is None:
        return []
    out = []
    for row in message.reply_markup.inline_keyboard:
        for button in row:
            try:
                action = codec.decode(str(button.callback_data or ""), owner_id)
            except callbacks.StaleButton:
                continue
            if isinstance(action, AddTag):
                out.append(action.tag)
    return out


async def delete(update: Update, context: Context, action: Delete) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    texts = texts_of(update)
    where = _where(query)
    manage = manage_of(context)
    trashed = await manage.delete(user.id, action.link_id, *(where if where else (None, None)))
    if trashed is None:
        await query.answer(texts.stale_button)
        return
    purge_timer.schedule_purge(
        context.job_queue, action.link_id, user.language_code or "en", manage.undo_seconds
    )
    await query.answer(texts.deleted_toast)
    await snapshot_edits.show_deleted(context.bot, trashed.record, texts, where, for_good=False)


async def undo(update: Update, context: Context, action: Undo) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    texts = texts_of(update)
    try:
        record = await manage_of(context).undo(user.id, action.link_id)
    except AlreadyRestored:
        await query.answer(texts.undo_done)
        return
    except UndoExpired:
        await query.answer(texts.undo_expired, show_alert=True)
        return
    except UndoConflict:
        await query.answer(texts.undo_conflict, show_alert=True)
        return
    purge_timer.cancel_purge(context.job_queue, action.link_id)
    await query.answer(texts.restored)
    await _show_snapshot(context, record, texts, _where(query))


def schedule(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(
            purge_timer.sweep_job, interval=SWEEP_EVERY, first=30, name="trash-sweep"
        )
