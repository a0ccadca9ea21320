"""Drive the real Application: "user 42 sends ..." and then inspect what the bot did."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

from telegram import Update

from bot.app import build_application, running
from bot.browser.capture import Capturer
from bot.chat.links import url_key
from bot.config import Settings
from bot.services import Services
from storage.models import LinkRecord
from storage.queue.imports import ImportOrders
from storage.repository import LinkStore
from tests.fakes.botapi import Call, FakeBotAPI
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pages import PageServer

DONE_REACTIONS = {"👌", "🤷"}


class BotHarness:
    """One running bot plus a direct line to its database."""

    def __init__(
        self, api: FakeBotAPI, settings: Settings, pages: PageServer, capturer: Capturer | None
    ) -> None:
        self.api = api
        self.settings = settings
        self.pages = pages
        self.llm: FakeOpenAI | None = None
        self._capturer = capturer
        self._stack = AsyncExitStack()
        self.store = LinkStore.connect(
            settings.mongodb_uri.get_secret_value(),
            index_dir=settings.search_index_dir,
            listing=settings.listing,
        )

    async def start(self) -> None:
        self.api.release_polls(False)
        app = build_application(self.settings, capturer=self._capturer)
        self._count_handled(app)
        self.app = await self._stack.enter_async_context(running(app, self.settings))

    def _count_handled(self, app: Any) -> None:
        """Note each message whose update the Application has finished handling,
        non-blocking handlers included: a positive signal for tests that check that a
        message got no answer."""
        self.handled_messages: set[tuple[int, int]] = set()
        processor = app.update_processor
        inner = processor.do_process_update
        # PTB's own set of the tasks it runs non-blocking handlers in (block=False).
        spawned: set[asyncio.Task[Any]] = app._Application__create_task_tasks

        async def mark(key: tuple[int, int], tasks: list[asyncio.Task[Any]]) -> None:
            await asyncio.wait(tasks)
            self.handled_messages.add(key)

        async def counted(update: object, coroutine: Any) -> None:
            before = set(spawned)
            try:
                await inner(update, coroutine)
            finally:
                message = update.effective_message if isinstance(update, Update) else None
                if message is not None:
                    key = (message.chat_id, message.message_id)
                    # Tasks started meanwhile (this update's, perhaps others' too: waiting
                    # for those as well only makes the signal later, never early).
                    tasks = [t for t in spawned - before if not t.done()]
                    if tasks:
                        marking = asyncio.create_task(mark(key, tasks))
                        self._marks.add(marking)
                        marking.add_done_callback(self._marks.discard)
                    else:
                        self.handled_messages.add(key)

        self._marks: set[asyncio.Task[None]] = set()
        processor.do_process_update = counted

    async def handled(self, *messages: dict[str, Any], timeout: float = 60) -> None:
        """Wait until the bot has finished handling these messages' updates (their
        handlers returned; work they handed to the pipeline may still run)."""
        keys = {(m["chat"]["id"], m["message_id"]) for m in messages}
        await self.api.wait_until(lambda: keys <= self.handled_messages, timeout=timeout)

    async def stop(self) -> None:
        self.api.release_polls()
        await self._stack.aclose()
        self.api.release_polls(False)
        await self.store.close()

    @property
    def services(self) -> Services:
        return self.app.bot_data.require_services()  # type: ignore[no-any-return]

    def send(self, user_id: int, text: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The user sends a message; returns it as Telegram delivered it."""
        return self.api.send_message(user_id, text, **kwargs)

    async def command(
        self, user_id: int, text: str, language: str = "en", timeout: float = 30
    ) -> Call:
        """The user sends `text` (a command, mostly); the bot's next sendMessage in that
        chat, failed or not (a caller that needs it sent checks `ok`, or uses `answer`)."""
        start = len(self.api.calls)
        self.send(user_id, text, language_code=language)
        return await self.api.wait_for(
            lambda c: c.method == "sendMessage" and c.params.get("chat_id") == user_id,
            timeout=timeout,
            since=start,
        )

    async def answer(self, user_id: int, text: str, language: str = "en") -> str:
        """The text of the bot's answer to `command`, which Telegram accepted."""
        call = await self.command(user_id, text, language)
        assert call.ok, call.description
        return str(call.result["text"])

    async def send_file(self, user_id: int, data: bytes, name: str, language: str = "en") -> int:
        """The user sends a file (an import, mostly); the id of the bot's first message in
        that chat after it (the import's progress, edited as it goes)."""
        start = len(self.api.calls)
        self.api.send_document(user_id, data, name, language_code=language)
        reply = await self.api.wait_for(
            lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == user_id,
            timeout=30,
            since=start,
        )
        return int(reply.result["message_id"])

    async def import_closed(self, user_id: int, timeout: float = 30) -> None:
        """Until the user's import order is closed: it is closed just after its last line
        is told, and a file sent before that is refused as another import's (a window
        of moments, which a test sending its next file at once would meet)."""
        orders = ImportOrders(self.store.db).coll
        deadline = time.monotonic() + timeout
        while await orders.count_documents({"owner_id": user_id}):
            assert time.monotonic() < deadline, "the import's order was never closed"
            await asyncio.sleep(0.05)

    async def final_text(
        self, chat_id: int, message_id: int, word: str, timeout: float = 120
    ) -> str:
        """The text of the bot's message once an edit has put `word` in it."""
        await self.api.wait_until(
            lambda: word in (self.api.message_text(chat_id, message_id) or ""), timeout=timeout
        )
        return str(self.api.message_text(chat_id, message_id))

    async def snapshot(self, user_id: int, path: str, tags: str = "") -> dict[str, Any]:
        """The user sends the link of a test page (with tags); the bot's photo message."""
        sent = self.send(user_id, f"{self.pages.url(path)} {tags}".strip())
        assert await self.finished(sent) == "👌"
        [photo] = self.photos_for(sent)
        return photo.result  # type: ignore[no-any-return]

    async def caption_edit(self, message: dict[str, Any], since: int) -> dict[str, Any]:
        """The message as the first caption edit of it from call index `since` on left it."""
        call = await self.api.wait_for(
            lambda c: (
                c.method == "editMessageCaption"
                and c.ok
                and c.params.get("message_id") == message["message_id"]
            ),
            timeout=20,
            since=since,
        )
        return call.result  # type: ignore[no-any-return]

    async def finished(self, message: dict[str, Any], timeout: float = 45) -> str:
        """Wait for the bot's closing reaction (👌 or 🤷) on a user message."""
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        call = await self.api.wait_for(
            lambda c: (
                c.method == "setMessageReaction"
                and c.ok
                and c.params.get("chat_id") == chat_id
                and c.params.get("message_id") == message_id
                and _emoji(c) in DONE_REACTIONS
            ),
            timeout=timeout,
        )
        return _emoji(call)

    def replies_to(self, message: dict[str, Any], method: str | None = None) -> list[Call]:
        """Successful bot calls that reply to this user message."""
        out = []
        for call in self.api.calls:
            if not call.ok or (method and call.method != method):
                continue
            reply = call.params.get("reply_parameters") or {}
            if (
                call.params.get("chat_id") == message["chat"]["id"]
                and reply.get("message_id") == message["message_id"]
            ):
                out.append(call)
        return out

    def photos_for(self, message: dict[str, Any]) -> list[Call]:
        return self.replies_to(message, "sendPhoto")

    async def records(self, owner_id: int) -> list[LinkRecord]:
        docs = self.store.links.find({"owner_id": owner_id}).sort("created_at", 1)
        return [LinkRecord.from_doc(d) async for d in docs]

    async def wait_queued(self, owner_id: int, url: str, timeout: float = 60) -> None:
        """Wait until the link `url` of `owner_id` has its turn in the work queue (or is
        past it): from then on the queue's order decides when it is captured."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            # By the key's _id, not a filter on the links: FerretDB scans every record
            # for that, and this asks every 20 ms while thousands may be coming in.
            link_id = await self.store.link_id_for(owner_id, url_key(url))
            if link_id is not None and await self.store.queue.queued(link_id):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} of {owner_id} was not queued within {timeout}s")
            await asyncio.sleep(0.02)


def _emoji(call: Call) -> str:
    reaction = call.params.get("reaction") or []
    return str(reaction[0].get("emoji")) if reaction else ""
