"""Progressive editing of one reply while a summary streams in.

Text goes into the screenshot's caption while it fits (1024); past that the summary
moves to a text message replying to the photo, continuing in further messages past
4096. Edits are coalesced by a per-chat pacer (about one a second in private chats,
one every three seconds in groups), never repeat the last text, wait out RetryAfter
and then send the latest text, and the final text always lands.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import ExtBot

from bot.ratelimit import NO_RETRY, retry_seconds

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096
MAX_FAILURES = 3
_TAG = re.compile(r"<[^>]+>")


def visible_len(markup: str) -> int:
    """Length Telegram counts for HTML text: tags removed, entities decoded, UTF-16 units."""
    plain = html.unescape(_TAG.sub("", markup))
    return len(plain.encode("utf-16-le")) // 2


class ChatPacer:
    """Spaces out edits per chat, shared by every reply streaming into that chat."""

    def __init__(self, private_interval: float = 1.0, group_interval: float = 3.0) -> None:
        self._private = private_interval
        self._group = group_interval
        self._next: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def turn(self, chat_id: int) -> None:
        """Wait until this chat may see its next edit, and claim it."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            wait = self._next.get(chat_id, 0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            interval = self._private if chat_id > 0 else self._group
            self._next[chat_id] = time.monotonic() + interval

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram said RetryAfter: nothing for this chat until it has passed."""
        until = time.monotonic() + seconds
        self._next[chat_id] = max(self._next.get(chat_id, 0.0), until)


@dataclass
class _Target:
    message_id: int | None
    sent: str | None = None


@dataclass
class StreamLayout:
    """What to show: the fixed caption head, a heading for the summary, notes after it."""

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
        pacer: ChatPacer,
    ) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._layout = layout
        self._pacer = pacer
        self._summary = ""
        self._caption = _Target(photo_message_id, sent=layout.head)
        self._overflow: list[_Target] = []
        self._dirty = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.edits = 0
        self._failures = 0

    @property
    def text_message_ids(self) -> list[int]:
        return [t.message_id for t in self._overflow if t.message_id is not None]

    def push(self, piece: str) -> None:
        self._summary += piece
        self._wake()

    def note(self, line: str) -> None:
        """A line after the summary (a failure reason, say), already escaped HTML."""
        self._layout.notes.append(line)
        self._wake()

    async def finish(self) -> None:
        """Send whatever is not yet shown and stop."""
        self._closing = True
        self._wake()
        if self._task is not None:
            await self._task

    def _wake(self) -> None:
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            await self._pacer.turn(self._chat_id)
            self._dirty.clear()
            done = await self._flush()
            if self._closing and done and not self._dirty.is_set():
                return
            if not done:
                self._dirty.set()

    def _render(self) -> tuple[str, list[str]]:
        """Caption and overflow texts for the current summary."""
        body = html.escape(self._summary.strip())
        tail = "".join(f"\n{n}" for n in self._layout.notes)
        block = f"{self._layout.heading}\n{body}{tail}" if body or tail else ""
        caption = f"{self._layout.head}\n\n{block}" if block else self._layout.head
        if not self._overflow and visible_len(caption) <= CAPTION_LIMIT:
            return caption, []
        return self._layout.head, _split(self._layout.heading, self._summary.strip(), tail)

    async def _flush(self) -> bool:
        """Bring Telegram in line with the render; False when it must be retried."""
        caption, texts = self._render()
        try:
            if caption != self._caption.sent:
                await self._edit_caption(caption)
            for index, text in enumerate(texts):
                if index >= len(self._overflow):
                    await self._send_overflow(text)
                elif text != self._overflow[index].sent:
                    await self._edit_text(self._overflow[index], text)
        except RetryAfter as exc:
            self._pacer.hold(self._chat_id, retry_seconds(exc))
            return False
        except TelegramError as exc:
            # A network hiccup: try again on the next turn, but not forever.
            self._failures += 1
            log.warning("summary update failed (%d): %s", self._failures, exc)
            return self._failures >= MAX_FAILURES
        self._failures = 0
        return True

    async def _edit_caption(self, caption: str) -> None:
        await self._call(
            self._bot.edit_message_caption(
                chat_id=self._chat_id,
                message_id=self._caption.message_id,
                caption=caption,
                parse_mode=ParseMode.HTML,
                reply_markup=self._layout.markup,
                rate_limit_args=NO_RETRY,
            )
        )
        self._caption.sent = caption

    async def _send_overflow(self, text: str) -> None:
        reply_to = (
            self._overflow[-1].message_id if self._overflow else self._caption.message_id
        ) or 0
        message = await self._bot.send_message(
            chat_id=self._chat_id,
            text=text,
            parse_mode=ParseMode.HTML,
            reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True),
            rate_limit_args=NO_RETRY,
        )
        self.edits += 1
        self._overflow.append(_Target(message.message_id, sent=text))

    async def _edit_text(self, target: _Target, text: str) -> None:
        await self._call(
            self._bot.edit_message_text(
                chat_id=self._chat_id,
                message_id=target.message_id,
                text=text,
                parse_mode=ParseMode.HTML,
                rate_limit_args=NO_RETRY,
            )
        )
        target.sent = text

    async def _call(self, request: object) -> None:
        try:
            await request  # type: ignore[misc]
            self.edits += 1
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                log.warning("summary edit refused: %s", exc.message)


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
