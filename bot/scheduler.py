"""JobQueue jobs: link-rot checks and the digest (one worker per round, each round
claimed like a stage), imports a killed front left (bot/library/importing.py), and
housekeeping.

Resuming unfinished links and retrying failed summaries are not jobs: workers claim
them like any other stage (bot/pipeline/worker.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pymongo.errors import PyMongoError
from telegram.ext import Application

from bot.library import importing, linkrot
from bot.library.digest import Digest
from bot.library.rotround import CheckRound, RoundResult
from bot.services import Context, Role, Services
from storage import bulk
from storage.models import utcnow
from storage.queue.pacing import SendLedger

log = logging.getLogger(__name__)

# Link-rot: one round per slot, claimed by one worker. A round starts no check in the
# last ROUND_SPARE seconds of its slot, so it has ended before the next slot's round
# (perhaps another worker's) begins: no link is in two rounds' hands.
ROUND_EVERY = 600.0
ROUND_SPARE = linkrot.CHECK_SECONDS + 30
ROUND_ASK_EVERY = ROUND_EVERY / 2
# A link is due this far into LINKROT_MAX_AGE: the rest absorbs a backlog (a large
# import, a stopped worker) before any link goes unchecked for longer than the setting.
DUE_SHARE = 0.8
DIGEST_ASK_EVERY = 600.0
HOUSEKEEPING_EVERY = 3600.0
IMPORT_REPAIR_EVERY = 300.0
# A front looks this often for a file whose import a killed process left (the order's
# lease, bot/library/importing.LEASE, must have run out first).
IMPORT_RESUME_EVERY = 15.0
KEEP_MARKERS = timedelta(days=1)


async def check_links(
    context: Context, now: Callable[[], float] = time.time
) -> asyncio.Task[RoundResult] | None:
    """Every worker asks often; the one that claims the current slot's round checks the
    links due. A round cut short (its worker died) leaves its links due for the next.
    Returns the round started here, if any. `now`: the wall clock (a test's own, so that
    where in a slot it runs changes nothing)."""
    services = context.services
    if services.worker is None:
        return None
    number = int(now() // ROUND_EVERY)
    if await services.store.queue.claim_round("rot", number, services.worker.name):
        return services.spawn(run_round(services, number, now))
    return None


async def run_round(
    services: Services, number: int, now: Callable[[], float] = time.time
) -> RoundResult:
    """Round `number`: the links due, until they are done or the slot's time is up."""
    max_age = services.settings.linkrot_max_age
    checked_before = utcnow() - timedelta(seconds=max_age * DUE_SHARE)
    until = (number + 1) * ROUND_EVERY - ROUND_SPARE
    round_ = CheckRound(
        services.store,
        services.pipeline.guard,
        checked_before=checked_before,
        until=until,
        clock=now,
    )
    result = await round_.run()
    log.info(
        "link-rot round %d: %d checked, %d gone%s",
        number,
        result.checked,
        result.gone,
        "" if result.finished else " (time up; the rest is due next round)",
    )
    return result


async def send_digests(context: Context) -> None:
    """Asked as often as rounds; a pass that finds a new period ended tells each owner
    once (bot/library/digest.py), and otherwise finds nothing to do."""
    services = context.services
    if services.worker is None:
        return
    number = int(time.time() // DIGEST_ASK_EVERY)
    if await services.store.queue.claim_round("digest", number, services.worker.name):
        digest = Digest(services.store, services.settings.digest_interval)
        services.spawn(digest.run(context.bot, utcnow()))


async def housekeeping(context: Context) -> None:
    """Claim markers and seen-update ids matter for a day at most; saved /find queries
    for a week (storage/queries.py)."""
    store = context.services.store
    older = utcnow() - KEEP_MARKERS
    await store.queue.forget_claims(older)
    await store.forget_updates(older)
    await store.queries.forget_expired()
    await SendLedger(store.db).forget(utcnow() - timedelta(minutes=10))


async def finish_cut_imports(context: Context) -> None:
    """Import batches a killed process left half-written: their links get their work
    entries and keys (storage/bulk.py). Any process may do it; it is idempotent."""
    try:
        kept = await bulk.repair_imports(context.services.store)
    except PyMongoError as exc:
        log.warning("cut-off imports not finished now: %s", type(exc).__name__)
        return
    if kept:
        log.info("finished cut-off import batches: %d links kept", kept)


async def resume_imports(context: Context) -> None:
    """Files whose importing process died are imported again, one at a time, beside
    everything else (an import takes longer than a job should)."""
    services = context.services
    if services.resuming is None or services.resuming.done():
        services.resuming = services.spawn(_resume_all(context, services))


async def _resume_all(context: Context, services: Services) -> None:
    try:
        while not services.stopping.is_set() and await importing.resume(
            context.bot, services.importer()
        ):
            pass
    except PyMongoError as exc:
        log.warning("cut-off imports not resumed now: %s", type(exc).__name__)


def schedule(app: Application[Any, Any, Any, Any, Any, Any], role: Role) -> None:
    queue = app.job_queue
    if queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")
    queue.run_repeating(housekeeping, interval=HOUSEKEEPING_EVERY, first=60, name="housekeeping")
    queue.run_repeating(
        finish_cut_imports, interval=IMPORT_REPAIR_EVERY, first=IMPORT_REPAIR_EVERY, name="imports"
    )
    if role is not Role.WORKER:
        queue.run_repeating(
            resume_imports, interval=IMPORT_RESUME_EVERY, first=1.0, name="resume imports"
        )
    if role is not Role.FRONT:
        # Asked often, from a minute after start: a bot restarted more often than a round
        # lasts still checks its links, and only one of N workers does each round.
        queue.run_repeating(check_links, interval=ROUND_ASK_EVERY, first=60, name="rot")
        queue.run_repeating(send_digests, interval=DIGEST_ASK_EVERY, first=90, name="digest")
