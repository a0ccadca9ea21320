"""/digest on|off, and the buttons of a link-rot digest (📸 a kept snapshot, ◀ ▶ pages)."""

from __future__ import annotations

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode

from bot.chat.callbacks import DigestPage, ShowSnapshot, codec_for
from bot.chat.edits import unless_unchanged
from bot.library import digest
from bot.services import Context, Services
from handlers.common import texts_of

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def _digest(services: Services) -> digest.Digest:
    return digest.Digest(services.store, services.settings.digest_interval)


async def digest_command(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    texts, services = texts_of(update), context.services
    every = _digest(services).every(texts)
    choice = (context.args or [""])[0].casefold()
    if choice in {"on", "off"}:
        await services.store.prefs.set_digest(user.id, choice == "on")
        reply = texts.digest_on if choice == "on" else texts.digest_off
        await message.reply_text(reply.format(every=every), parse_mode=ParseMode.HTML)
        return
    state = texts.digest_states[(await services.store.prefs.get(user.id)).digest]
    await message.reply_text(
        texts.digest_usage.format(every=every, state=state), parse_mode=ParseMode.HTML
    )


async def show_snapshot(update: Update, context: Context, action: ShowSnapshot) -> None:
    """📸: the snapshot kept of a page that went offline (the presser's own link only)."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    texts, services = texts_of(update), context.services
    await query.answer()
    chat_id = query.message.chat.id if query.message else user.id
    store = services.store
    if not await digest.show_snapshot(store, context.bot, user.id, chat_id, action.link_id, texts):
        await context.bot.send_message(chat_id, texts.no_snapshot)


async def digest_page(update: Update, context: Context, action: DigestPage) -> None:
    """◀ ▶: another page of the user's latest digest; an older digest's buttons expired."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    texts, services = texts_of(update), context.services
    told = await services.store.rot.told(user.id)
    if told is None or told.period != action.period or not told.items:
        await query.answer(texts.stale_button)
        return
    await query.answer()
    codec = codec_for(context.bot.token)
    text, markup = _digest(services).page(told, action.page, texts, codec, user.id)
    await unless_unchanged(
        query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=markup, link_preview_options=NO_PREVIEW
        )
    )
