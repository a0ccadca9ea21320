"""Progressive editing of one reply while a summary streams in.

Text goes into the screenshot's caption while it fits (1024); past that the summary
moves to a text message replying to the photo, continuing in further messages past
4096. Intermediate edits take the chat's next turn on the outbound path and render the
newest text inside it, so they coalesce by themselves and never outrun Telegram's
limits; a failed intermediate edit is simply superseded by the next. The final text is
sent as calls that must land.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot.chat.edits import unless_unchanged
from bot.chat.outbound import PROGRESS, Outbound, Priority, Send

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
_TAG = re.compile(r"<[^>]+>")
_FINAL_EDIT = Send(Priority.FINAL)
_FINAL_NEW = Send(Priority.NEW)


def visible_len(markup: str) -> int:
    """Length Telegram counts for HTML text: tags removed, entities decoded, UTF-16 units."""
    plain = html.unescape(_TAG.sub("", markup))
    return len(plain.encode("utf-16-le")) // 2


@dataclass
class _Target:
    message_id: int | None
    sent: str | None = None


@dataclass
class StreamLayout:
    """What to show: the caption head, a heading for the summary, notes after it, and the
    photo's buttons (kept on every caption edit: an edit without them would remove them)."""

    head: str
    heading: str
    markup: InlineKeyboardMarkup | None = None
    notes: list[str] = field(default_factory=list)


class SummaryEditor:
    """Feeds a growing summary into a photo message (and overflow messages)."""

    def __init__(
        self,
        bot: ExtBot[Any],
        chat_id: int,
        photo_message_id: int,
        layout: StreamLayout,
        outbound: Outbound,
        alive: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._bot = bot
        self._alive = alive
        self._chat_id = chat_id
        self._layout = layout
        self._outbound = outbound
        self._summary = ""
        self._caption = _Target(photo_message_id, sent=layout.head)
        self._markup_sent = layout.markup  # the photo was sent with these buttons
        self._overflow: list[_Target] = []
        self._dirty = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.edits = 0
        self.gone = False  # `alive` said no: the message shows something else now

    def push(self, piece: str) -> None:
        self._summary += piece
        self._wake()

    def restyle(self, *, head: str, markup: InlineKeyboardMarkup | None) -> None:
        """A new caption head (the tags changed meanwhile) or buttons (＋#tag suggestions),
        shown by the next edit."""
        self._layout.head = head
        self._layout.markup = markup
        self._wake()

    def note(self, line: str) -> None:
        """A line after the summary (a failure reason, say), already escaped HTML."""
        self._layout.notes.append(line)
        self._wake()

    async def finish(self) -> None:
        """Send whatever is not yet shown, as calls that must land, and stop."""
        self._closing = True
        self._wake()
        assert self._task is not None
        await self._task

    async def cancel(self) -> None:
        """Stop without sending more (the process is stopping)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _wake(self) -> None:
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._closing:
            await self._dirty.wait()
            if self._closing:
                break
            async with self._outbound.turn(self._chat_id, Priority.PROGRESS):
                self._dirty.clear()
                if not await self._still_there():
                    return
                await self._step(PROGRESS, PROGRESS)
        if not await self._still_there():
            return
        while await self._step(_FINAL_EDIT, _FINAL_NEW):
            pass

    async def _still_there(self) -> bool:
        """Whether to edit at all (a link deleted meanwhile shows its ↩ Undo instead)."""
        if self._alive is not None and not self.gone:
            try:
                self.gone = not await self._alive()
            except Exception as exc:  # the database is away: the edit is worth more
                log.info("could not tell whether the link is still there: %s", exc)
        return not self.gone

    def _render(self) -> tuple[str, list[str]]:
        """Caption and overflow texts for the current summary."""
        body = html.escape(self._summary.strip())
        tail = "".join(f"\n{n}" for n in self._layout.notes)
        block = f"{self._layout.heading}\n{body}{tail}" if body or tail else ""
        caption = f"{self._layout.head}\n\n{block}" if block else self._layout.head
        if not self._overflow and visible_len(caption) <= CAPTION_LIMIT:
            return caption, []
        return self._layout.head, _split(self._layout.heading, self._summary.strip(), tail)

    async def _step(self, edit: Send, new: Send) -> bool:
        """Make the first call that brings Telegram closer to the render; False if none."""
        caption, texts = self._render()
        try:
            if caption != self._caption.sent or self._layout.markup != self._markup_sent:
                await self._edit_caption(caption, edit)
                return True
            for index, text in enumerate(texts):
                if index >= len(self._overflow):
                    await self._send_overflow(text, new)
                    return True
                if text != self._overflow[index].sent:
                    await self._edit_text(self._overflow[index], text, edit)
                    return True
        except BadRequest as exc:
            log.warning("summary update refused: %s", exc.message)
            return False  # the message is gone or refused: nothing more to do here
        except TelegramError as exc:
            if edit is not PROGRESS:
                raise  # a final call gives up only when the bot stops: left owed
            log.info("intermediate summary edit skipped: %s", exc)
            self._dirty.set()
        return False

    async def _edit_caption(self, caption: str, send: Send) -> None:
        markup = self._layout.markup
        await unless_unchanged(
            self._bot.edit_message_caption(
                chat_id=self._chat_id,
                message_id=self._caption.message_id,
                caption=caption,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                rate_limit_args=send,
            )
        )
        self.edits += 1
        self._caption.sent = caption
        self._markup_sent = markup

    async def _send_overflow(self, text: str, send: Send) -> None:
        reply_to = (
            self._overflow[-1].message_id if self._overflow else self._caption.message_id
        ) or 0
        message = await self._bot.send_message(
            chat_id=self._chat_id,
            text=text,
            parse_mode=ParseMode.HTML,
            reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True),
            rate_limit_args=send,
        )
        self.edits += 1
        self._overflow.append(_Target(message.message_id, sent=text))

    async def _edit_text(self, target: _Target, text: str, send: Send) -> None:
        await unless_unchanged(
            self._bot.edit_message_text(
                chat_id=self._chat_id,
                message_id=target.message_id,
                text=text,
                parse_mode=ParseMode.HTML,
                rate_limit_args=send,
            )
        )
        self.edits += 1
        target.sent = text


def _split(heading: str, summary: str, tail: str, limit: int = TEXT_LIMIT - 96) -> list[str]:
    """Summary in text messages of at most `limit` visible characters, escaped per piece."""
    pieces: list[str] = []
    rest = summary
    first = True
    while rest or first:
        cut = _cut_point(rest, limit)
        body = html.escape(rest[:cut])
        pieces.append(f"{heading}\n{body}" if first else body)
        rest = rest[cut:].lstrip()
        first = False
    if tail:
        if visible_len(pieces[-1] + tail) <= TEXT_LIMIT:
            pieces[-1] += tail
        else:
            pieces.append(tail.strip())
    return pieces


def _cut_point(text: str, limit: int) -> int:
    """Index to cut at so the escaped piece stays within `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            space = text.rfind(" ", index // 2, index)
            return space if space > 0 else index
    return len(text)
