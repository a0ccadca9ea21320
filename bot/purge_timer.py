"""The minute a delete can be undone: a JobQueue timer per deleted link purges it for
good and says so in its snapshot's message; a sweep purges those whose timer a stopped
process lost. Above the services (its jobs find the store in the typed context).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bson import ObjectId
from telegram.error import TelegramError
from telegram.ext import ExtBot, JobQueue

from bot.i18n import Texts, texts_for
from bot.library.manage import ManageService
from bot.library.snapshot_edits import show_deleted
from bot.services import Context
from storage.trash import Trashed

log = logging.getLogger(__name__)


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
