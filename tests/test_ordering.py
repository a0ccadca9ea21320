"""One user's updates are taken in Telegram's order; other users do not wait for them.

Each update passes a database check before its handler (duplicate deliveries), and that
check's latency varies. Here the first update's check is made slow on purpose (a handler
ahead of it that sleeps), standing in for a slow database answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from telegram import Update
from telegram.ext import TypeHandler

from tests.harness import BotHarness

SLOW = 1.5


def _slow_for(text: str) -> TypeHandler[Update, Any, Any]:
    async def slow(update: Update, _: Any) -> None:
        message = update.effective_message
        if message is not None and message.text == text:
            await asyncio.sleep(SLOW)

    return TypeHandler(Update, slow)


async def test_comment_with_a_slow_check_still_reaches_the_link_after_it(
    bot: BotHarness,
) -> None:
    """iOS: the typed comment comes as its own message just before the URL."""
    bot.app.add_handler(_slow_for("for the weekend #reading"), group=-10)
    bot.send(42, "for the weekend #reading")
    sent = bot.send(42, bot.pages.url("/article/ios-slow"))
    assert await bot.finished(sent) == "👌"
    [record] = await bot.records(42)
    assert record.tags == ["reading"] and record.note == "for the weekend"


async def test_a_held_update_of_one_user_does_not_hold_another_user(bot: BotHarness) -> None:
    release = asyncio.Event()

    async def held(update: Update, _: Any) -> None:
        if update.effective_user is not None and update.effective_user.id == 50:
            await release.wait()

    bot.app.add_handler(TypeHandler(Update, held), group=-10)
    first = bot.send(50, bot.pages.url("/article/held"))
    other = bot.send(51, bot.pages.url("/colors"))
    try:
        assert await bot.finished(other) == "👌"  # while user 50's update is still held
    finally:
        release.set()
    assert await bot.finished(first) == "👌"


async def test_a_stuck_update_holds_the_same_users_next_one_only_briefly(bot: BotHarness) -> None:
    """A slow handler (a button, /find while the database is away) must not hold the
    user's later links."""
    release = asyncio.Event()

    async def stuck(update: Update, _: Any) -> None:
        message = update.effective_message
        if message is not None and message.text == "stuck words":
            await release.wait()

    bot.app.add_handler(TypeHandler(Update, stuck), group=-10)
    bot.send(60, "stuck words")
    link = bot.send(60, bot.pages.url("/article/after-stuck"))
    try:
        assert await bot.finished(link) == "👌"
    finally:
        release.set()


async def test_links_sent_together_start_in_the_order_sent(harness_factory: Any) -> None:
    """Past their pace a user's links wait: the ones that wait are the later ones. The
    link handlers of one user run concurrently (a photo answer must not hold the next
    message), so only an ordered recording gives the first link the first turn."""
    bot: BotHarness = await harness_factory(user_rate_per_minute="1")
    urls = [bot.pages.url(f"/article/order-{i}") for i in range(6)]
    sent = [bot.send(61, url) for url in urls]
    await bot.wait_queued(61, urls[-1])  # recorded in order: all six are queued
    await bot.api.wait_until(lambda: any(bot.photos_for(m) for m in sent), timeout=30)
    assert [m["message_id"] for m in sent if bot.photos_for(m)] == [sent[0]["message_id"]]
    # The other five wait for their pace (a positive state, not a quiet moment): each
    # is held until a time still to come.
    now = datetime.now(UTC)
    for url in urls[1:]:
        link = await bot.store.links.find_one({"owner_id": 61, "url": url}, {"_id": 1})
        assert link is not None
        lease = await bot.store.queue.leases.find_one({"_id": link["_id"]})
        assert lease is not None and "worker" not in lease and lease["until"] > now, url
        assert url.split("/", 3)[3] not in {p.lstrip("/") for p in bot.pages.hits}
