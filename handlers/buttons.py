"""The 🔄 button under a re-sent snapshot: capture that link afresh."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.services import get_services
from bot.snapshots import RECAPTURE_PREFIX
from handlers.common import texts_of
from storage.repository import parse_id


async def recapture_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Only the link's owner can trigger it; a forged or stale id does nothing."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None or not query.data:
        return
    services = get_services(context)
    link_id = parse_id(query.data.removeprefix(RECAPTURE_PREFIX))
    record = await services.store.get(user.id, link_id) if link_id else None
    if record is None:
        await query.answer(texts_of(update).stale_button)
        return
    await query.answer()
    with_reply = query.message.message_id if query.message else None
    record.source_message_id = with_reply or record.source_message_id
    services.spawn(services.snapshots.run(context.bot, record))


async def unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Data we never issued (forged, or from an old version): answer and do nothing."""
    if update.callback_query:
        await update.callback_query.answer(texts_of(update).stale_button)


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Inline mode is not offered; answer empty so clients stop waiting."""
    if update.inline_query:
        await update.inline_query.answer([], cache_time=10, is_personal=True)
