"""JobQueue jobs: link-rot checks (one worker per round, claimed like a stage) and
housekeeping.

Resuming unfinished links and retrying failed summaries are not jobs: workers claim
them like any other stage (bot/pipeline/worker.py).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from pymongo.errors import PyMongoError
from telegram.ext import Application, ContextTypes

from bot import linkrot
from bot.services import Role, get_services
from storage import bulk
from storage.models import utcnow
from storage.pacing import SendLedger

log = logging.getLogger(__name__)

LINK_CHECK_EVERY = 6 * 3600.0  # one round of link-rot checks per period
ROUND_ASK_EVERY = 600.0
HOUSEKEEPING_EVERY = 3600.0
IMPORT_REPAIR_EVERY = 300.0
KEEP_MARKERS = timedelta(days=1)


async def check_links(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every worker asks often; the one that claims the current round checks the links
    due. A round cut short (its worker died) leaves its links due for the next one."""
    services = get_services(context)
    if services.worker is None:
        return
    number = int(time.time() // LINK_CHECK_EVERY)
    if await services.store.queue.claim_round("rot", number, services.worker.name):
        services.spawn(linkrot.check_due(services.store, services.pipeline.guard))


async def housekeeping(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Claim markers and seen-update ids matter for a day at most; saved /find queries
    for a week (storage/queries.py)."""
    store = get_services(context).store
    older = utcnow() - KEEP_MARKERS
    await store.queue.forget_claims(older)
    await store.forget_updates(older)
    await store.queries.forget_expired()
    await SendLedger(store.db).forget(utcnow() - timedelta(minutes=10))


async def finish_cut_imports(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Import batches a killed process left half-written: their links get their work
    entries and keys (storage/bulk.py). Any process may do it; it is idempotent."""
    try:
        kept = await bulk.repair_imports(get_services(context).store)
    except PyMongoError as exc:
        log.warning("cut-off imports not finished now: %s", type(exc).__name__)
        return
    if kept:
        log.info("finished cut-off import batches: %d links kept", kept)


def schedule(app: Application[Any, Any, Any, Any, Any, Any], role: Role) -> None:
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")
    queue.run_repeating(housekeeping, interval=HOUSEKEEPING_EVERY, first=60, name="housekeeping")
    queue.run_repeating(
        finish_cut_imports, interval=IMPORT_REPAIR_EVERY, first=IMPORT_REPAIR_EVERY, name="imports"
    )
    if role is not Role.FRONT:
        # Asked often, from a minute after start: a bot restarted more often than a round
        # lasts still checks its links, and only one of N workers does each round.
        queue.run_repeating(check_links, interval=ROUND_ASK_EVERY, first=60, name="rot")
