"""Stage 6: the closing reaction on the user's message, once all its links have finished.

Links of one message may finish on different workers; whichever finishes last sees
every sibling finished and reacts (two finishing at once both react the same: harmless).
A link that ended keeps its work entry until here, after its user was told (its photo,
or why it failed, then this reaction): a kill before that, or a stop while Telegram
would not take the line or the reaction (NotTold), leaves the entry to be claimed again,
and the worker that finds the link ended tells it then (worker._reconcile).
"""

from __future__ import annotations

from typing import Any

from telegram.ext import ExtBot

from bot.chat.replies import react
from bot.pipeline.base import Pipeline
from storage.keys import WORK_STATES
from storage.models import UNFINISHED, LinkRecord, Status


async def finish(
    p: Pipeline, bot: ExtBot[Any], record: LinkRecord, *, keep_requeued: bool = True
) -> None:
    """`keep_requeued`: an entry the link was queued again into while this told its end
    (🔄, the link sent again) stays. Off for a link found ended by a later claim
    (worker._reconcile): its entry goes whatever it says, so that one restored by a
    clock behind another host's is not claimed and told again without end."""
    store = p.store
    current = await p.durably(lambda: store.load(record.id, with_text=False))
    if current is None:
        return
    if record.source_message_id is not None:
        links = [current, *await p.durably(lambda: store.siblings_of(current))]
        if not any(link.status in UNFINISHED for link in links):
            ok = all(link.status == Status.DONE for link in links)
            # 🤷 comes after a failure's line, which a retelling would repeat: given up
            # as the bot stops, it is lost (the line told why); 👌 is told again.
            emoji = "👌" if ok else "🤷"
            await react(bot, current.chat_id, record.source_message_id, emoji, must_tell=ok)
    if str(current.status) not in WORK_STATES:
        ended = current.updated_at if keep_requeued else None
        await p.durably(lambda: store.drop_work(record.id, ended))
