"""Retag by reply, and the 🏷 🗑 ↩ ＋#tag buttons under a snapshot."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId
from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, ContextTypes, filters

from bot import callbacks, render
from bot.callbacks import AddTag, Codec, Delete, EditTags, Undo
from bot.i18n import Texts, texts_for
from bot.manage import (
    ManageService,
    Retag,
    deleted_caption,
    parse_retag,
    snapshot_caption,
)
from bot.pipeline.replies import react
from bot.services import get_services
from bot.tags import MAX_TAGS_PER_LINK
from handlers.common import texts_of
from storage.models import LinkRecord
from storage.trash import AlreadyRestored, Trashed, UndoConflict, UndoExpired

log = logging.getLogger(__name__)
SWEEP_EVERY = 300.0
ALERT_LIMIT = 200  # characters of a callback query's answer
Context = ContextTypes.DEFAULT_TYPE


class _RetagReply(filters.MessageFilter):
    """A reply to one of the bot's messages whose text is only `#tag` / `-#tag` tokens."""

    def filter(self, message: Message) -> bool:
        target = message.reply_to_message
        if target is None or target.from_user is None or not target.from_user.is_bot:
            return False
        return parse_retag(message.text) is not None


RETAG_REPLY = _RetagReply(name="RetagReply")


def manage_of(context: Context) -> ManageService:
    services = get_services(context)
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
    if where is None:
        return
    markup = callbacks.snapshot_keyboard(codec_of(context), record, texts, suggestions or [])
    await _edit_caption(context, where, snapshot_caption(record, texts), markup)


async def _edit_caption(
    context: Context, where: tuple[int, int], caption: str, markup: InlineKeyboardMarkup | None
) -> None:
    try:
        await context.bot.edit_message_caption(
            chat_id=where[0],
            message_id=where[1],
            caption=caption,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
        )
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            log.info("snapshot caption not updated: %s", exc.message)


def _where(query: CallbackQuery) -> tuple[int, int] | None:
    message = query.message
    if not isinstance(message, Message):
        return None  # too old for Telegram to send it: nothing to edit
    return message.chat_id, message.message_id


async def edit_tags(update: Update, context: Context, action: EditTags) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    texts = texts_of(update)
    record = await get_services(context).store.get(user.id, action.link_id)
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


@dataclass(frozen=True)
class _PurgeJob:
    link_id: ObjectId
    lang: str


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
    if context.job_queue is not None:  # the minute runs from the hiding
        context.job_queue.run_once(
            purge_job,
            when=timedelta(seconds=manage.undo_seconds),
            data=_PurgeJob(action.link_id, user.language_code or "en"),
            name=f"purge:{action.link_id}",
        )
    await query.answer(texts.deleted_toast)
    if where is not None:
        markup = callbacks.undo_keyboard(codec_of(context), trashed.record, texts)
        await _edit_caption(
            context, where, deleted_caption(trashed.record, texts, for_good=False), markup
        )


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
    if context.job_queue is not None:
        for job in context.job_queue.get_jobs_by_name(f"purge:{action.link_id}"):
            job.schedule_removal()
    await query.answer(texts.restored)
    await _show_snapshot(context, record, texts, _where(query))


async def purge_job(context: Context) -> None:
    """A deleted link's minute is over: gone for good, and its message says so."""
    job = context.job
    if job is None or not isinstance(job.data, _PurgeJob):
        return
    trashed = await manage_of(context).purge(job.data.link_id)
    if trashed is not None:
        await _tell_purged(context, trashed, texts_for(job.data.lang))


async def sweep_job(context: Context) -> None:
    """Deletes whose timer a stopped process lost."""
    for trashed in await manage_of(context).purge_expired():
        await _tell_purged(context, trashed, texts_for(trashed.record.lang_code))


async def _tell_purged(context: Context, trashed: Trashed, texts: Texts) -> None:
    if trashed.chat_id is None or trashed.message_id is None:
        return
    caption = deleted_caption(trashed.record, texts, for_good=True)
    try:
        await _edit_caption(context, (trashed.chat_id, trashed.message_id), caption, None)
    except TelegramError as exc:
        log.info("deleted snapshot's message not updated: %s", exc)


def schedule(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(sweep_job, interval=SWEEP_EVERY, first=30, name="trash-sweep")
