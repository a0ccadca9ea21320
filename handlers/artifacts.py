"""📄 full page, 🖨 PDF, 🗄 archive buttons under a snapshot: the file, sent as a document.

The press is answered at once; the file is made (or found) in the background so a
capture of many seconds holds up none of the user's other updates. A process without a
browser (the front role) resends files made before and has new ones made by a worker
(bot/library/artifacts.py orders them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from telegram import Message, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot.browser.errors import CaptureError
from bot.chat import render
from bot.chat.callbacks import MakeFile
from bot.i18n import Texts
from bot.library import artifacts
from bot.services import Context, Services
from handlers.common import texts_of
from storage.models import LinkRecord

log = logging.getLogger(__name__)


async def make_file(update: Update, context: Context, action: MakeFile) -> None:
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    texts = texts_of(update)
    services = context.services
    record = await services.store.get(user.id, action.link_id)
    if record is None:
        await query.answer(texts.stale_button)
        return
    if record.kind != "page":
        await query.answer(texts.file_not_a_page, show_alert=True)
        return
    what = texts.file_kinds.get(str(action.kind), str(action.kind))
    await query.answer(texts.file_making.format(what=what))
    chat_id = query.message.chat.id if query.message else record.chat_id
    reply = (
        ReplyParameters(query.message.message_id, allow_sending_without_reply=True)
        if query.message
        else None
    )
    delivery = _Delivery(services, context.bot, record, action, texts, chat_id, reply)
    services.spawn(delivery.run())


@dataclass(frozen=True)
class _Delivery:
    """One file on its way to a chat, and where to say what became of it."""

    services: Services
    bot: ExtBot[Any]
    record: LinkRecord
    action: MakeFile
    texts: Texts
    chat_id: int
    reply: ReplyParameters | None

    async def run(self) -> None:
        try:
            async with artifacts.making(self.record, self.action.kind):
                await self._make_and_send()
        except artifacts.NoBrowser:
            await self._say(self.texts.file_no_browser)
        except CaptureError as exc:
            texts, kind = self.texts, str(self.action.kind)
            text = texts.file_failed.format(
                what=render.esc(texts.file_kinds.get(kind, kind)),
                url=render.esc((self.record.final_url or self.record.url)[:300]),
                reason=render.capture_reason(exc, texts),
            )
            await self._say(text)
        except TelegramError as exc:
            log.warning("the %s was not sent: %s", self.action.kind, exc)
        except Exception:
            log.exception("making the %s failed", self.action.kind)
            await self._say(self.texts.internal_error)

    async def _make_and_send(self) -> None:
        """The file (kept, or made now), sent; its file_id kept once Telegram has it."""
        store, capturer = self.services.store, self.services.capturer
        record, kind, locale = self.record, self.action.kind, self.texts.locale
        ready = await artifacts.ready(store, capturer, record, kind, locale=locale)
        caption = artifacts.caption(record, ready.made, self.texts)
        try:
            message = await self._send(ready, caption)
        except BadRequest:
            if ready.data is not None:
                raise
            log.info("a kept file_id was refused; uploading the file again")
            await artifacts.forget_file_id(store, ready.made)
            ready = await artifacts.ready(store, capturer, record, kind, locale=locale, upload=True)
            message = await self._send(ready, caption)
        if message.document is not None:
            document = message.document
            await artifacts.sent(store, ready.made, document.file_id, document.file_unique_id)

    async def _send(self, ready: artifacts.Ready, caption: str) -> Message:
        file = ready.made.file
        return await self.bot.send_document(
            self.chat_id,
            ready.data if ready.data is not None else str(file.file_id),
            filename=file.file_name if ready.data is not None else None,
            caption=caption,
            parse_mode=ParseMode.HTML,
            reply_parameters=self.reply,
        )

    async def _say(self, text: str) -> None:
        try:
            await self.bot.send_message(
                self.chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=self.reply
            )
        except TelegramError as exc:
            log.warning("reply failed: %s", exc)
