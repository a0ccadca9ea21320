"""The photo does not wait for the page's text (issue 19): it is sent as soon as the
screenshot is stored; the main text is read after it, and only then is the link
`captured` (claimable for its summary) with its text saved for /find."""

from __future__ import annotations

import asyncio

import pytest

from bot.browser.capture import Capturer
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
