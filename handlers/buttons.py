"""Every inline button press: decoded once (bot/chat/callbacks.py), then handed to its handler."""

from __future__ import annotations

from telegram import Update

from bot.chat import callbacks
from bot.chat.callbacks import (
    AddTag,
    Delete,
    DigestPage,
    EditTags,
    FindPage,
    MakeFile,
    Recapture,
    ShowSnapshot,
    StaleButton,
    TagLinks,
    Undo,
)
from bot.pipeline import intake
from bot.services import Context
from handlers import artifacts, browse, digest, manage
from handlers.common import texts_of


async def on_button(update: Update, context: Context) -> None:
    """Data not made by this bot for the presser (forged, someone else's, or from a
    version that no longer understands it) is answered as expired and does nothing."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    try:
        action = callbacks.codec_for(context.bot.token).decode(query.data, user.id)
    except StaleButton:
        await query.answer(texts_of(update).stale_button)
        return
    match action:
        case Recapture():
            await recapture(update, context, action)
        case FindPage():
            await browse.find_button(update, context, action)
        case TagLinks():
            await browse.tag_button(update, context, action)
        case EditTags():
            await manage.edit_tags(update, context, action)
        case AddTag():
            await manage.add_tag(update, context, action)
        case Delete():
            await manage.delete(update, context, action)
        case Undo():
            await manage.undo(update, context, action)
        case MakeFile():
            await artifacts.make_file(update, context, action)
        case ShowSnapshot():
            await digest.show_snapshot(update, context, action)
        case DigestPage():
            await digest.digest_page(update, context, action)


async def recapture(update: Update, context: Context, action: Recapture) -> None:
    """🔄: capture the owner's link afresh; another user's or a gone link does nothing."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    services = context.services
    record = await services.store.get(user.id, action.link_id)
    if record is None:
        await query.answer(texts_of(update).stale_button)
        return
    await query.answer()
    with_reply = query.message.message_id if query.message else None
    record.source_message_id = with_reply or record.source_message_id
    if query.message is not None:
        record.chat_id = query.message.chat.id  # the new photo answers where the tap was
    await intake.requeue(services.pipeline, record)
    services.wake_workers()
