"""The snapshot flow for one link: record, capture, photo, summary.

A link is written as `pending` before any slow work starts, so nothing acknowledged
is lost; `resume` picks up whatever a stopped process left unfinished.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from cachetools import TTLCache
from pymongo.errors import ConnectionFailure
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot import render
from bot.capture import CaptureError, Capturer, Snapshot
from bot.durable import PATIENCE, durably
from bot.i18n import Texts, texts_for
from bot.linkrot import is_alive
from bot.links import url_key
from bot.outbound import ACK, Outbound, Priority, Send, is_passing
from bot.streaming import StreamLayout, SummaryEditor
from bot.summarize import PageText, Summarizer, SummaryError
from storage.models import UNFINISHED, LinkRecord, LlmUsage, Screenshot, Status, utcnow
from storage.repository import LinkStore

log = logging.getLogger(__name__)
T = TypeVar("T")

PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20
RECAPTURE_PREFIX = "r:"
MAX_SUMMARY_ATTEMPTS = 3


@dataclass(frozen=True)
class LinkRequest:
    """Who asked for which links, and where to answer."""

    owner_id: int
    chat_id: int
    message_id: int
    lang_code: str
    tags: list[str]
    note: str


class SnapshotService:
    """Runs links through capture and summary, replying through a Bot."""

    def __init__(
        self,
        store: LinkStore,
        capturer: Capturer,
        summarizer: Summarizer | None,
        outbound: Outbound,
        *,
        db_patience: float = PATIENCE,
    ) -> None:
        self.store = store
        self.db_patience = db_patience
        self.stopping = outbound.stopping
        self.capturer = capturer
        self.summarizer = summarizer
        self.outbound = outbound
        # Chats told once that summaries are off; bounded, a repeat after eviction is harmless.
        self._told_no_key: TTLCache[int, bool] = TTLCache(maxsize=10_000, ttl=7 * 86400)

    async def screen(self, urls: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """(links the bot may open, [(link, "blocked" or "malformed")]) — refused ones are
        never stored. A name that does not resolve now is kept: DNS can fail for a while,
        and the capture then says so.
        """
        allowed: list[str] = []
        refused: list[tuple[str, str]] = []
        for url in urls:
            verdict = await self.capturer.guard.check_url(url)
            if verdict.allowed or verdict.reason == "unresolvable":
                allowed.append(url)
            else:
                refused.append((url, "malformed" if verdict.reason == "malformed" else "blocked"))
        return allowed, refused

    async def record(
        self,
        request: LinkRequest,
        urls: list[str],
        *,
        on_wait: Callable[[], Awaitable[None]] | None = None,
    ) -> list[tuple[LinkRecord, bool]]:
        """Write every link before any slow work; (record, created) each. While the
        database is down this waits for it (`on_wait` tells the user once)."""
        stored = []
        for url in urls:
            fresh = LinkRecord(
                owner_id=request.owner_id,
                chat_id=request.chat_id,
                url=url,
                url_key=url_key(url),
                tags=request.tags,
                note=request.note,
                lang_code=request.lang_code,
                source_message_id=request.message_id,
            )
            record, created = await self._durably(
                functools.partial(self.store.add_pending, fresh), on_wait=on_wait
            )
            on_wait = None
            if not created:  # answer where and to what the user sent it this time
                record.chat_id, record.source_message_id = request.chat_id, request.message_id
                record.lang_code = request.lang_code
            stored.append((record, created))
        return stored

    async def _durably(
        self,
        call: Callable[[], Awaitable[T]],
        on_wait: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        return await durably(
            call, on_wait=on_wait, patience=self.db_patience, stopping=self.stopping
        )

    async def process(self, bot: ExtBot[Any], record: LinkRecord, created: bool) -> bool:
        """One link end to end; a database outage on the way is waited out, and the link
        continues from what its record says was done."""
        try:
            return await self.handle(bot, record, created)
        except ConnectionFailure:
            log.warning("database lost mid-way; the link continues when it is back")
        fresh = await self._durably(lambda: self.store.get(record.owner_id, record.id))
        if fresh is None:
            return False
        fresh.source_message_id = record.source_message_id
        return await self._continue(bot, fresh, texts_for(record.lang_code))

    async def handle(self, bot: ExtBot[Any], record: LinkRecord, created: bool) -> bool:
        """One link end to end; True when it ended well."""
        if not created and record.screenshot and record.screenshot.file_id:
            return await self.show_existing(bot, record)
        if not created and record.status in UNFINISHED:
            return True  # already on its way (here, or resumed after a restart); tags merged
        return await self.run(bot, record)

    async def run(self, bot: ExtBot[Any], record: LinkRecord) -> bool:
        texts = texts_for(record.lang_code)
        await self.store.start_attempt(record.id)
        try:
            snap = await self.capturer.capture(record.url, locale=texts.locale)
        except CaptureError as exc:
            return await self._failed(bot, record, texts, exc.reason, exc.detail)
        except Exception:
            log.exception("capture crashed")
            return await self._failed(bot, record, texts, "internal", "")
        await self._save_capture(record, snap)
        return await self._deliver(bot, record, snap.image, texts)

    async def _deliver(
        self, bot: ExtBot[Any], record: LinkRecord, image: bytes, texts: Texts
    ) -> bool:
        """The photo the user is owed, then its summary."""
        message = await self._send_photo(bot, record, image, texts)
        if message is None:
            return False
        return await self.summarize(bot, record, message.message_id, texts)

    async def _failed(
        self, bot: ExtBot[Any], record: LinkRecord, texts: Texts, reason: str, detail: str
    ) -> bool:
        await self.store.update(record.id, status=Status.FAILED, error=f"{reason}: {detail}"[:300])
        why = texts.capture_reasons.get(reason, texts.capture_reasons["browser"])
        text = texts.failed_link.format(url=render.esc(record.url[:300]), reason=why)
        await _reply(bot, record, text)
        return False

    async def _save_capture(self, record: LinkRecord, snap: Snapshot) -> None:
        record.final_url, record.http_status = snap.final_url, snap.http_status
        record.title, record.description = snap.title, snap.description
        record.site_name, record.lang, record.text = snap.site_name, snap.lang, snap.text
        image_id = await self.store.put_image(snap.image, f"{record.id}.jpg")
        record.screenshot = Screenshot(width=snap.width, height=snap.height, gridfs_id=image_id)
        await self.store.update(
            record.id,
            status=Status.CAPTURED,
            final_url=snap.final_url,
            http_status=snap.http_status,
            title=snap.title,
            description=snap.description,
            site_name=snap.site_name,
            lang=snap.lang,
            text=snap.text,
            screenshot=record.screenshot,
            error=None,
        )
        await self.store.set_searchable(record)

    async def _send_photo(
        self, bot: ExtBot[Any], record: LinkRecord, image: bytes, texts: Texts
    ) -> Message | None:
        """Send the photo; it stays owed (status captured, no reply id) until acknowledged."""
        # Shielded: once started, a stop lets the send and its acknowledgement finish
        # together, so a clean stop never leaves a delivered photo marked as owed.
        return await asyncio.shield(self._send_and_ack(bot, record, image, texts))

    async def _send_and_ack(
        self, bot: ExtBot[Any], record: LinkRecord, image: bytes, texts: Texts
    ) -> Message | None:
        caption = self._caption(record, texts)
        shot = record.screenshot or Screenshot(width=0, height=0)
        as_document = not _photo_ok(shot.width, shot.height)
        try:
            message = await _send_media(bot, record, image, caption, as_document=as_document)
        except TelegramError as exc:
            if is_passing(exc):  # only when the bot is stopping: delivered at the next start
                log.info("snapshot left owed for the next start: %s", exc)
                return None
            log.warning("Telegram refused the snapshot: %s", exc)
            await self.store.update(record.id, status=Status.FAILED, error=f"telegram: {exc}"[:300])
            return None
        shot = _screenshot_of(message, record.screenshot, as_document)
        record.screenshot, record.reply_message_id = shot, message.message_id
        # Delivered: say so at once, and hold on to it through an outage (a lost
        # acknowledgement would send the photo twice).
        await self._durably(
            lambda: self.store.update(
                record.id, screenshot=shot, reply_message_id=message.message_id
            )
        )
        return message

    def _caption(self, record: LinkRecord, texts: Texts) -> str:
        caption = render.caption(record, texts)
        if self.summarizer is None and record.chat_id not in self._told_no_key:
            self._told_no_key[record.chat_id] = True
            caption += "\n\n" + texts.summary_off
        return caption

    async def summarize(
        self, bot: ExtBot[Any], record: LinkRecord, message_id: int, texts: Texts
    ) -> bool:
        """Stream the summary into the photo's caption; the record follows along."""
        if self.summarizer is None:
            await self.store.update(record.id, status=Status.DONE)
            return True
        record.summary_attempts += 1
        await self.store.update(
            record.id, status=Status.SUMMARIZING, summary_attempts=record.summary_attempts
        )
        layout = StreamLayout(head=render.caption(record, texts), heading=texts.summary_heading)
        editor = SummaryEditor(bot, record.chat_id, message_id, layout, self.outbound)
        page = PageText(
            record.title, record.description, record.text, record.final_url or record.url
        )
        stream = self.summarizer.stream(page, texts.summary_prompt)
        reason: str | None = None
        try:
            async for piece in stream:
                editor.push(piece)
        except SummaryError as exc:
            reason = exc.reason
        except asyncio.CancelledError:
            await editor.cancel()  # stopping: the record stays `summarizing` for the next start
            raise
        except Exception:
            log.exception("summary broke off")
            reason = "internal"
        if reason is not None:
            why = texts.summary_reasons.get(reason, texts.summary_reasons["server_error"])
            editor.note(texts.summary_failed.format(reason=why))
        await editor.finish()
        if reason is not None:
            await self.store.update(
                record.id, status=Status.SUMMARY_FAILED, summary=stream.text, summary_error=reason
            )
            return False
        usage = stream.usage
        llm = LlmUsage(usage.model, usage.prompt_tokens, usage.completion_tokens)
        await self.store.update(record.id, status=Status.DONE, summary=stream.text, llm=llm)
        return True

    async def show_existing(self, bot: ExtBot[Any], record: LinkRecord) -> bool:
        """A link sent again: the earlier snapshot, its date, and a button to capture afresh."""
        texts = texts_for(record.lang_code)
        assert record.screenshot is not None and record.screenshot.file_id is not None
        caption = render.caption(record, texts, saved_on=record.created_at)
        markup = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        texts.recapture, callback_data=f"{RECAPTURE_PREFIX}{record.id}"
                    )
                ]
            ]
        )
        shot = record.screenshot
        if shot.file_id is None:
            return await self.run(bot, record)
        try:
            await _send_media(
                bot, record, shot.file_id, caption, as_document=shot.as_document, markup=markup
            )
        except BadRequest:
            log.info("stored file_id no longer valid; capturing again")
            return await self.run(bot, record)
        return True

    async def leftovers(self) -> list[LinkRecord]:
        """What an earlier process left unfinished. Read before updates flow, so a
        redelivered update cannot make a leftover look like fresh work."""
        return await self.store.unfinished(before=utcnow())

    async def resume(self, bot: ExtBot[Any], records: list[LinkRecord]) -> int:
        """Finish what a stopped process left behind, each link where it stopped."""
        await asyncio.gather(*(self._resume_one(bot, record) for record in records))
        return len(records)

    async def _resume_one(self, bot: ExtBot[Any], record: LinkRecord) -> None:
        texts = texts_for(record.lang_code)
        try:
            ok = await self._continue(bot, record, texts)
        except Exception:
            log.exception("resuming a link failed")
            ok = False
        if record.source_message_id:
            await react(bot, record.chat_id, record.source_message_id, "👌" if ok else "🤷")

    async def _continue(self, bot: ExtBot[Any], record: LinkRecord, texts: Texts) -> bool:
        if record.status not in UNFINISHED:
            return record.status == Status.DONE
        if record.reply_message_id:  # the photo was delivered: only the summary is owed
            return await self.summarize(bot, record, record.reply_message_id, texts)
        shot = record.screenshot
        if record.status == Status.CAPTURED and shot and shot.gridfs_id:
            image = await self.store.get_image(shot.gridfs_id)
            return await self._deliver(bot, record, image, texts)
        return await self.run(bot, record)

    async def check_links(self, max_age: float = 7 * 86400) -> int:
        """Mark saved links alive or gone; unknown answers (timeouts, 5xx) change nothing."""
        records = await self.store.due_for_check(utcnow() - timedelta(seconds=max_age))
        for record in records:
            alive = await is_alive(self.capturer.guard, record.final_url or record.url)
            fields: dict[str, object] = {"checked_at": utcnow()}
            if alive is not None:
                fields["alive"] = alive
            await self.store.update(record.id, **fields)
        return len(records)

    async def retry_summaries(self, bot: ExtBot[Any], min_age: float = 300) -> int:
        """Summaries that failed a while ago get another go, in place."""
        older = utcnow() - timedelta(seconds=min_age)
        records = await self.store.summary_failed(older, MAX_SUMMARY_ATTEMPTS)
        for record in records:
            if record.reply_message_id:
                await self.summarize(
                    bot, record, record.reply_message_id, texts_for(record.lang_code)
                )
        return len(records)


async def _send_media(
    bot: ExtBot[Any],
    record: LinkRecord,
    media: bytes | str,
    caption: str,
    *,
    as_document: bool,
    markup: InlineKeyboardMarkup | None = None,
) -> Message:
    """A photo, or a document when Telegram would refuse the image as a photo."""
    common: dict[str, object] = {
        "caption": caption,
        "parse_mode": ParseMode.HTML,
        "reply_markup": markup,
        "reply_parameters": _reply_to(record),
    }
    if as_document:
        return await bot.send_document(record.chat_id, media, **common)  # type: ignore[arg-type]
    return await bot.send_photo(record.chat_id, media, **common)  # type: ignore[arg-type]


def _photo_ok(width: int, height: int) -> bool:
    """Telegram's photo rule: sides add up to at most 10000, ratio at most 20."""
    return width + height <= PHOTO_MAX_SIDES and max(width, height) <= PHOTO_MAX_RATIO * min(
        width, height
    )


def _screenshot_of(message: Message, shot: Screenshot | None, as_document: bool) -> Screenshot:
    base = shot or Screenshot(width=0, height=0)
    if as_document and message.document:
        file = message.document
        return Screenshot(
            base.width, base.height, file.file_id, file.file_unique_id, base.gridfs_id, True
        )
    biggest = message.photo[-1]
    return Screenshot(
        biggest.width, biggest.height, biggest.file_id, biggest.file_unique_id, base.gridfs_id
    )


def _reply_to(record: LinkRecord) -> ReplyParameters | None:
    if record.source_message_id is None:
        return None
    return ReplyParameters(record.source_message_id, allow_sending_without_reply=True)


async def _reply(bot: ExtBot[Any], record: LinkRecord, text: str) -> None:
    try:
        await bot.send_message(
            record.chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=_reply_to(record)
        )
    except TelegramError as exc:
        log.warning("reply failed: %s", exc)


async def react(bot: ExtBot[Any], chat_id: int, message_id: int, emoji: str) -> None:
    """Set a reaction; a failure here must never stop the work it decorates.

    👀 goes ahead of everything in the chat; the closing reaction after the replies.
    """
    send = ACK if emoji == "👀" else Send(Priority.FINAL)
    try:
        await bot.set_message_reaction(chat_id, message_id, emoji, rate_limit_args=send)
    except TelegramError as exc:
        log.info("reaction %s not set: %s", emoji, exc)
