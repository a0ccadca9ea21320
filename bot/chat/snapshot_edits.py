"""A snapshot's message in the chat, edited to match its record: after a retag, a delete
(with ↩ Undo), a restore, and once the link is deleted for good; and the timer that
ends a delete's minute. The chat's handlers and the platform's pages both use this, so
a change made in either place shows in the chat the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId
from telegram import InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot, JobQueue

from bot.chat import callbacks
from bot.chat.edits import not_modified
from bot.i18n import Texts, texts_for
from bot.library.manage import ManageService, deleted_caption, snapshot_caption
from bot.services import Context
from storage.models import LinkRecord
from storage.trash import Trashed

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
    try:
        await bot.edit_message_caption(
            chat_id=where[0],
            message_id=where[1],
            caption=caption,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
        )
    except BadRequest as exc:
        if not not_modified(exc):
            log.info("snapshot caption not updated: %s", exc.message)


# -- the minute a delete can be undone ---------------------------------------------------


@dataclass(frozen=True)
class PurgeJob:
    link_id: ObjectId
    lang: str


def purge_name(link_id: ObjectId) -> str:
    return f"purge:{link_id}"


def schedule_purge(
    jobs: JobQueue[Any] | None, link_id: ObjectId, lang: str, seconds: float
) -> None:
    """The link is deleted for good after `seconds` (the minute runs from the hiding);
    without a job queue the sweep does it."""
    if jobs is not None:
        jobs.run_once(
            purge_job,
            when=timedelta(seconds=seconds),
            data=PurgeJob(link_id, lang),
            name=purge_name(link_id),
        )


def cancel_purge(jobs: JobQueue[Any] | None, link_id: ObjectId) -> None:
    if jobs is not None:
        for job in jobs.get_jobs_by_name(purge_name(link_id)):
            job.schedule_removal()


async def purge_job(context: Context) -> None:
    """A deleted link's minute is over: gone for good, and its message says so."""
    job = context.job
    if job is None or not isinstance(job.data, PurgeJob):
        return
    trashed = await _manage(context).purge(job.data.link_id)
    if trashed is not None:
        await _tell_purged(context.bot, trashed, texts_for(job.data.lang))


async def sweep_job(context: Context) -> None:
    """Deletes whose timer a stopped process lost."""
    for trashed in await _manage(context).purge_expired():
        await _tell_purged(context.bot, trashed, texts_for(trashed.record.lang_code))


def _manage(context: Context) -> ManageService:
    return ManageService(context.services.store)


async def _tell_purged(bot: ExtBot[Any], trashed: Trashed, texts: Texts) -> None:
    if trashed.chat_id is None or trashed.message_id is None:
        return
    try:
        await show_deleted(
            bot, trashed.record, texts, (trashed.chat_id, trashed.message_id), for_good=True
        )
    except TelegramError as exc:
        log.info("deleted snapshot's message not updated: %s", exc)
