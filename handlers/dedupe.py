"""Each update is handled once, however many fronts or webhook retries deliver it."""

from __future__ import annotations

import logging

from pymongo.errors import PyMongoError
from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.services import Context

log = logging.getLogger(__name__)


async def once(update: Update, context: Context) -> None:
    receipts = context.bot_data.receipts
    # Polled by this process: a poller before it may have died holding it
    # (bot/chat/receipts.py).
    poller = receipts.token if receipts.polled(update.update_id) else ""
    try:
        first = await context.services.store.first_delivery(update.update_id, poller)
    except PyMongoError:
        # Better handled twice than lost: the handlers wait out the outage themselves.
        log.warning("update %s not checked for repeats: database away", update.update_id)
        return
    if not first:
        log.info("update %s was handled already: skipped", update.update_id)
        raise ApplicationHandlerStop
