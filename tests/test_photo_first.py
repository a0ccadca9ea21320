"""The photo does not wait for the page's text (issue 19): it is sent as soon as the
screenshot is stored; the main text is read after it, and only then is the link
`captured` (claimable for its summary) with its text saved for /find."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.browser.capture import Capturer
from bot.chat.replies import send_media
from bot.pipeline import delivering
from storage.models import Status
from tests.capture_helpers import hold_text_of
from tests.harness import BotHarness


async def test_the_photo_goes_out_before_the_text_is_read(
    bot: BotHarness, capturer: Capturer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading, release = hold_text_of(capturer, monkeypatch, "/article/photofirst")
    message = bot.send(42, bot.pages.url("/article/photofirst"))
    # The photo arrives while the text may not be read yet (held until `release`).
    await bot.api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, timeout=45)
    async with asyncio.timeout(30):
        await reading.wait()
    (record,) = await bot.records(42)
    loaded = await bot.store.load(record.id)
    assert loaded is not None and loaded.status == Status.CAPTURING and not loaded.text
    release.set()
    assert await bot.finished(message) == "👌"
    loaded = await bot.store.load(record.id)
    assert loaded is not None and loaded.status == Status.DONE
    assert "snapshots and tags" in loaded.text  # read after the photo, and saved


async def test_a_photo_waits_a_moment_for_its_chat_rather_than_for_its_text(
    bot: BotHarness, capturer: Capturer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram holds the chat for 2 s (a 429 on the 👀): the capture stage waits that out
    and sends the photo itself, while the page's text is still unread (held here); it
    does not leave the photo to a delivery slot, which would send it only after the text."""
    _, release = hold_text_of(capturer, monkeypatch, "/article/heldchat")
    bot.api.inject_retry_after(44, 2, methods={"setMessageReaction"})
    message = bot.send(44, bot.pages.url("/article/heldchat"))
    await bot.api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, timeout=45)
    (record,) = await bot.records(44)
    loaded = await bot.store.load(record.id)
    assert loaded is not None and loaded.status == Status.CAPTURING and not loaded.text
    release.set()
    assert await bot.finished(message) == "👌"
    assert len(bot.photos_for(message)) == 1


async def test_the_photo_goes_out_while_its_bytes_are_stored_and_keeps_them(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screenshot's bytes are written while the photo is sent, not before it (two
    inserts, 20-40 ms of every photo's path). The photo's acknowledgement waits for them:
    a link recorded as answered has its bytes, and they are the photo the user got."""
    store = bot.services.store  # the bot's own, not the harness's connection
    put, update = store.put_image, store.update
    writing, release, written, sent = (asyncio.Event() for _ in range(4))
    acks: list[bool] = []  # for each acknowledgement: were the bytes written by then?

    async def put_image(data: bytes, filename: str) -> Any:
        writing.set()
        await release.wait()
        image_id = await put(data, filename)
        written.set()
        return image_id

    async def store_update(link_id: Any, **fields: Any) -> None:
        if fields.get("reply_message_id"):
            acks.append(written.is_set())
        await update(link_id, **fields)

    async def send(*args: Any, **kwargs: Any) -> Any:
        message = await send_media(*args, **kwargs)
        sent.set()  # the caller goes on at once: an acknowledgement not waiting is next
        return message

    monkeypatch.setattr(store, "put_image", put_image)
    monkeypatch.setattr(store, "update", store_update)
    monkeypatch.setattr(delivering, "send_media", send)
    message = bot.send(46, bot.pages.url("/article/storedbeside"))
    async with asyncio.timeout(45):
        await sent.wait()
    assert writing.is_set() and not written.is_set()  # the photo did not wait for them
    release.set()
    assert await bot.finished(message) == "👌"
    assert acks == [True]
    (record,) = await bot.records(46)
    loaded = await store.load(record.id)
    assert loaded is not None and loaded.reply_message_id
    assert loaded.screenshot is not None and loaded.screenshot.gridfs_id is not None
    assert loaded.screenshot.file_id  # Telegram's id and our bytes, side by side
    photo = bot.photos_for(message)[0]
    assert await store.get_image(loaded.screenshot.gridfs_id) == photo.files["photo"]


async def test_a_store_that_fails_after_the_photo_went_out_never_costs_a_second_photo(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing the bytes fails (not an outage, which is waited out) while the photo is
    already on its way: the photo is still recorded as sent, so the capture tried again
    after the failure keeps the user's one photo rather than sending another."""
    store = bot.services.store
    put, update = store.put_image, store.update
    failed, acked = asyncio.Event(), asyncio.Event()

    async def put_image(data: bytes, filename: str) -> Any:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a write the database refused")
        return await put(data, filename)

    async def store_update(link_id: Any, **fields: Any) -> None:
        await update(link_id, **fields)
        if fields.get("reply_message_id"):
            acked.set()

    monkeypatch.setattr(store, "put_image", put_image)
    monkeypatch.setattr(store, "update", store_update)
    message = bot.send(47, bot.pages.url("/article/storefails"))
    async with asyncio.timeout(45):
        await acked.wait()  # recorded as sent although its bytes were not stored
    assert failed.is_set()
    (record,) = await bot.records(47)
    assert record.reply_message_id and len(bot.photos_for(message)) == 1
