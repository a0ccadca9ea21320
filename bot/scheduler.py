"""JobQueue jobs: link-rot checks and housekeeping.

Resuming unfinished links and retrying failed summaries are not jobs: workers claim
them like any other stage (bot/pipeline/worker.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from telegram.ext import Application, ContextTypes

from bot import linkrot
from bot.services import Role, get_services
from storage.models import utcnow
from storage.pacing import SendLedger

log = logging.getLogger(__name__)

LINK_CHECK_EVERY = 6 * 3600.0
HOUSEKEEPING_EVERY = 3600.0
KEEP_MARKERS = timedelta(days=1)


async def check_links(context: ContextTypes.DEFAULT_TYPE) -> None:
    services = get_services(context)
    services.spawn(linkrot.check_due(services.store, services.pipeline.guard))


async def housekeeping(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Claim markers and seen-update ids matter for a day at most."""
    store = get_services(context).store
    older = utcnow() - KEEP_MARKERS
    await store.queue.forget_claims(older)
    await store.queue.adopt_orphans(utcnow() - timedelta(minutes=1))
    await store.forget_updates(older)
    await SendLedger(store.db).forget(utcnow() - timedelta(minutes=10))


def schedule(app: Application[Any, Any, Any, Any, Any, Any], role: Role) -> None:
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")
    queue.run_repeating(housekeeping, interval=HOUSEKEEPING_EVERY, first=60, name="housekeeping")
    if role is not Role.FRONT:
        queue.run_repeating(
            check_links, interval=LINK_CHECK_EVERY, first=LINK_CHECK_EVERY, name="rot"
        )
