"""Stage 6: the closing reaction on the user's message, once all its links have finished.

Links of one message may finish on different workers; whichever finishes last sees
every sibling finished and reacts (two finishing at once both react the same: harmless).
"""

from __future__ import annotations

from typing import Any

from telegram.ext import ExtBot

from bot.chat.replies import react
from bot.pipeline.base import Pipeline
from storage.models import UNFINISHED, LinkRecord, Status


async def finish(p: Pipeline, bot: ExtBot[Any], record: LinkRecord) -> None:
    if record.source_message_id is None:
        return
    current = await p.store.load(record.id, with_text=False)  # its status is what counts
    if current is None:
        return
    links = [current, *await p.store.siblings_of(current)]
    if any(link.status in UNFINISHED for link in links):
        return
    ok = all(link.status == Status.DONE for link in links)
    await react(bot, current.chat_id, record.source_message_id, "👌" if ok else "🤷")
