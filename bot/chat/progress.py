"""One progress message, edited as long work goes on, within Telegram's flood limits.

Like the summary editor (bot/chat/streaming.py): an intermediate edit waits for the chat's
next turn on the outbound path at the lowest priority and renders the newest state
inside that turn, so edits coalesce by themselves and never outrun the chat's pace; a
failed intermediate edit is simply superseded. The closing text is a call that must land.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot.chat.edits import unless_unchanged
from bot.chat.outbound import PROGRESS, Outbound, Priority, Send

log = logging.getLogger(__name__)
_FINAL = Send(Priority.FINAL)


class ProgressMessage:
    def __init__(
        self,
        bot: ExtBot[Any],
        outbound: Outbound,
        chat_id: int,
        message_id: int,
        render: Callable[[], str],
        *,
        shown: str = "",
    ) -> None:
        self._bot = bot
        self._outbound = outbound
        self._chat_id = chat_id
        self._message_id = message_id
        self._render = render
        self._sent = shown
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.edits = 0

    def changed(self) -> None:
        """The state moved on; an edit follows when the chat's turn comes."""
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            async with self._outbound.turn(self._chat_id, Priority.PROGRESS):
                self._dirty.clear()
                await self._edit(self._render(), PROGRESS)

    async def stop(self) -> None:
        """No more edits (the work it showed was cut short here and goes on elsewhere)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def finish(self, text: str, priority: Priority = Priority.FINAL) -> None:
        """Stop the intermediate edits and show `text` (a call that must land).

        `Priority.NEW` puts it among the chat's new messages: for the one answer a user's
        action is owed (an import's result), which final edits of other work must not
        hold back.
        """
        await self.stop()
        await self._edit(text, _FINAL if priority is Priority.FINAL else Send(priority))

    async def _edit(self, text: str, send: Send) -> None:
        if text == self._sent:
            return
        edit = self._bot.edit_message_text(
            chat_id=self._chat_id,
            message_id=self._message_id,
            text=text,
            parse_mode=ParseMode.HTML,
            rate_limit_args=send,
        )
        try:
            await unless_unchanged(edit)
        except BadRequest as exc:
            log.warning("progress message not updated: %s", exc.message)
            return
        except TelegramError as exc:
            if send is not PROGRESS:
                raise
            log.info("intermediate progress edit skipped: %s", exc)
            return
        self._sent = text
        self.edits += 1
