"""JobQueue jobs: resume unfinished links at start-up, retry failed summaries, link-rot checks."""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import Application, ContextTypes

from bot.services import get_services

log = logging.getLogger(__name__)

SUMMARY_RETRY_EVERY = 600.0
LINK_CHECK_EVERY = 6 * 3600.0


async def retry_summaries(context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    services.spawn(services.snapshots.retry_summaries(context.bot))


async def check_links(context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    services.spawn(services.snapshots.check_links())


def schedule(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")
    queue.run_repeating(
        retry_summaries, interval=SUMMARY_RETRY_EVERY, first=SUMMARY_RETRY_EVERY, name="summaries"
    )
    queue.run_repeating(check_links, interval=LINK_CHECK_EVERY, first=LINK_CHECK_EVERY, name="rot")
