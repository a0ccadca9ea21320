"""/stats: links, tags, this month's captures and failures, LLM tokens, screenshot storage;
for the bot's owner (the first id in ALLOWED_USERS) also the process's memory and browser."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode

from bot.chat import render
from bot.i18n import Texts
from bot.library.stats import ProcessStats, human_bytes, process_stats, user_stats
from bot.services import Context
from handlers.common import texts_of
from storage.models import utcnow


async def stats_command(update: Update, context: Context) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    texts, services = texts_of(update), context.services
    stats = await user_stats(services.store, user.id, utcnow())
    tokens = "".join(
        texts.stats_model.format(model=render.esc(model), prompt=p, completion=c)
        for model, (p, c) in sorted(stats.tokens.items())
    )
    allowed = services.settings.allowed_users
    owner = bool(allowed) and user.id == allowed[0]
    await message.reply_text(
        texts.stats.format(
            links=stats.links,
            tags=stats.tags,
            captured=stats.captured_this_month,
            failed=stats.failed_this_month,
            pending=stats.waiting,
            storage=human_bytes(stats.screenshot_bytes),
            tokens=tokens or texts.stats_no_tokens,
        )
        + (_owner_part(texts, await process_stats(services.capturer)) if owner else ""),
        parse_mode=ParseMode.HTML,
    )


def _owner_part(texts: Texts, found: ProcessStats) -> str:
    browser = found.browser
    if browser is None:
        state = texts.stats_browser_none
    else:
        since = browser.since.strftime("%Y-%m-%d %H:%M UTC")
        line = texts.stats_browser_open if browser.open else texts.stats_browser_closed
        state = line.format(since=since)
    memory = found.memory
    return texts.stats_owner.format(
        total=human_bytes(memory.total),
        own=human_bytes(memory.own),
        browser=human_bytes(memory.children),
        state=state,
    )
