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
    # Taken by this process (polled, or delivered to its webhook and not answered yet):
    # a process before it may have died holding it (bot/chat/receipts.py).
    poller = receipts.token if receipts.held(update.update_id) else ""
    try:
        first = await context.services.store.first_delivery(update.update_id, poller)
    except PyMongoError:
        # Better handled twice than lost: the handlers wait out the outage themselves.
        log.warning("update %s not checked for repeats: database away", update.update_id)
        return
    if not first:
        log.info("update %s was handled already: skipped", update.update_id)
        raise ApplicationHandlerStop
