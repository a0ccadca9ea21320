"""The link-rot digest through the running bot: one message per user, only when something
went offline, in the user's language, honouring /digest off, 📸 buttons that show the
kept snapshot, pages past ten, and 1 000 users at once within Telegram's flood limits
while a message someone waits for still goes first.

Time is driven by the `now` the pass is given (a period later than the marks), never by
waiting.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image

from bot.digest import Digest
from bot.outbound import BULK
from storage.models import LinkRecord, Screenshot, Status, utcnow
from tests.fakes.botapi import Call
from tests.harness import BotHarness

WEEK = 7 * 86400


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 200), (20, 120, 200)).save(out, "JPEG")
    return out.getvalue()


async def seed(
    bot: BotHarness, owner: int, count: int, *, lang: str = "en", gone: int | None = None
) -> list[LinkRecord]:
    """`count` saved pages of `owner` with a kept screenshot; the first `gone` of them
    (default all) found offline now."""
    image = await bot.store.put_image(jpeg(), "shot.jpg")
    records = [
        LinkRecord(
            owner_id=owner,
            chat_id=owner,
            url=f"https://site{owner}.example/page{i}",
            url_key=f"https://site{owner}.example/page{i}",
            title=f"Page {owner}-{i}",
            status=Status.DONE,
            lang_code=lang,
            screenshot=Screenshot(320, 200, gridfs_id=image),
        )
        for i in range(count)
    ]
    assert await bot.store.import_links(records) == count
    for record in records[: count if gone is None else gone]:
        await bot.store.record_check(record, False)
    bot.api.open_chat(owner)
    return records


def digest_of(bot: BotHarness) -> Digest:
    return Digest(bot.services.store, bot.settings.digest_interval)


def sent_to(bot: BotHarness, chat_id: int) -> list[Call]:
    return bot.api.calls_of("sendMessage", chat_id, ok_only=True)


def buttons(call: Call) -> list[dict[str, Any]]:
    markup = call.params["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return [b for row in markup["inline_keyboard"] for b in row]


def bot_message(bot: BotHarness, call: Call) -> dict[str, Any]:
    return bot.api.messages[(call.params["chat_id"], call.result["message_id"])]


async def command(bot: BotHarness, user: int, text: str, lang: str = "en") -> Call:
    before = len(bot.api.calls)
    bot.send(user, text, language_code=lang)
    return await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params.get("chat_id") == user,
        since=before,
    )


async def test_one_digest_per_user_only_when_something_went_offline(bot: BotHarness) -> None:
    ann, bo, cy, di = 501, 502, 503, 504
    reply = await command(bot, di, "/digest off")
    assert "Digest off" in reply.params["text"]
    await seed(bot, ann, 3, gone=2)
    await seed(bot, bo, 1, lang="zh-hans")
    await seed(bot, cy, 2, gone=0)
    await seed(bot, di, 1)
    digest = digest_of(bot)
    now = utcnow() + timedelta(seconds=WEEK)

    assert await digest.run(bot.app.bot, now) == 2
    [to_ann] = sent_to(bot, ann)
    text = to_ann.params["text"]
    assert "2 of your saved pages went offline this week" in text
    assert "your snapshots are kept" in text
    assert "Page 501-0" in text and "Page 501-1" in text and "Page 501-2" not in text
    assert [b["text"] for b in buttons(to_ann)] == ["📸 1", "📸 2"]
    [to_bo] = sent_to(bot, bo)
    assert "你收藏的网页中有 1 个本周失效了" in to_bo.params["text"]
    assert "快照仍为你保留" in to_bo.params["text"]
    assert sent_to(bot, cy) == []  # nothing went offline
    assert [c.params["text"] for c in sent_to(bot, di)] == [reply.params["text"]]  # /digest off

    # Asked again in the same period, or a period later with nothing new: no message.
    assert await digest.run(bot.app.bot, now) == 0
    later = now + timedelta(seconds=WEEK)
    assert await digest.run(bot.app.bot, later) == 0
    assert len(sent_to(bot, ann)) == 1 and len(sent_to(bot, bo)) == 1

    # A third page of Ann's goes offline: the next digest names it alone.
    third = (await bot.records(ann))[2]
    await bot.store.record_check(third, False, now=later + timedelta(hours=1))
    assert await digest.run(bot.app.bot, later + timedelta(seconds=WEEK)) == 1
    second = sent_to(bot, ann)[-1].params["text"]
    assert "1 of your saved pages went offline" in second and "Page 501-2" in second
    assert "Page 501-0" not in second


async def test_digest_on_again_and_a_page_back_is_not_told(bot: BotHarness) -> None:
    ann = 511
    assert "Digest off" in (await command(bot, ann, "/digest off")).params["text"]
    assert "已开启" in (await command(bot, ann, "/digest on", lang="zh")).params["text"]
    records = await seed(bot, ann, 2)
    await bot.store.record_check(records[1], True)  # back before the digest
    assert await digest_of(bot).run(bot.app.bot, utcnow() + timedelta(seconds=WEEK)) == 1
    [told] = sent_to(bot, ann)[-1:]
    assert (
        "1 of your saved pages" in told.params["text"] and "Page 511-1" not in told.params["text"]
    )


async def test_snapshot_buttons_and_pages_past_ten(bot: BotHarness) -> None:
    ann = 521
    await seed(bot, ann, 12)
    assert await digest_of(bot).run(bot.app.bot, utcnow() + timedelta(seconds=WEEK)) == 1
    [call] = sent_to(bot, ann)
    first = buttons(call)
    assert [b["text"] for b in first] == [f"📸 {n}" for n in range(1, 11)] + ["▶"]
    assert "12 of your saved pages" in call.params["text"] and "page 1/2" in call.params["text"]
    message = bot_message(bot, call)

    # 📸: the snapshot kept (its bytes: it was never sent before), marked as offline.
    before = len(bot.api.calls)
    bot.api.press_button(ann, message, first[2]["callback_data"])
    photo = await bot.api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, since=before)
    assert photo.params["chat_id"] == ann
    assert "Offline since" in photo.params["caption"]
    assert photo.files["photo"] == jpeg()
    assert {b["text"] for b in buttons(photo)} == {"🏷 Tags", "🗑 Delete"}

    # ▶: the last two pages, numbered on; ◀ back.
    before = len(bot.api.calls)
    bot.api.press_button(ann, message, first[-1]["callback_data"])
    edit = await bot.api.wait_for(lambda c: c.method == "editMessageText" and c.ok, since=before)
    assert "11. " in edit.params["text"] and "12. " in edit.params["text"]
    assert "1. <a" not in edit.params["text"].replace("11. <a", "")
    assert [b["text"] for b in buttons(edit)] == ["📸 11", "📸 12", "◀"]

    # Someone else pressing Ann's button: expired, nothing shown.
    before = len(bot.api.calls)
    bot.api.press_button(999, message, first[0]["callback_data"])
    answer = await bot.api.wait_for(lambda c: c.method == "answerCallbackQuery", since=before)
    assert "expired" in answer.params.get("text", "")
    assert not [c for c in bot.api.calls[before:] if c.method == "sendPhoto"]


@pytest.mark.timeout(600)
async def test_a_thousand_digests_at_once_within_flood_limits(bot: BotHarness) -> None:
    users = list(range(10_000, 11_000))
    image = await bot.store.put_image(jpeg(), "shot.jpg")
    records = [
        LinkRecord(
            owner_id=u,
            chat_id=u,
            url=f"https://s{u}.example/",
            url_key=f"https://s{u}.example/",
            title=f"Home of {u}",
            status=Status.DONE,
            screenshot=Screenshot(320, 200, gridfs_id=image),
        )
        for u in users
    ]
    assert await bot.store.import_links(records) == len(users)
    for record in records:
        await bot.store.record_check(record, False)
        bot.api.open_chat(record.owner_id)
    assert await digest_of(bot).run(bot.app.bot, utcnow() + timedelta(seconds=WEEK)) == 1000
    sent = [c for c in bot.api.calls if c.method == "sendMessage"]
    assert sorted(c.params["chat_id"] for c in sent if c.ok) == users  # one each
    assert not [c for c in sent if c.error_code == 429]  # paced, not discovered
    # (and the botapi fixture fails the test on any call inside a retry_after window)


async def test_bulk_waits_behind_a_message_someone_is_waiting_for(bot: BotHarness) -> None:
    """300 bulk messages queued at once, then one reply: it goes out among the next few,
    not behind the queue. (Without the bulk gate it waits its turn among 300 chats.)"""
    chats = list(range(20_000, 20_300))
    for chat in [*chats, 42]:
        bot.api.open_chat(chat)
    tg = bot.app.bot
    bulk = [
        asyncio.create_task(tg.send_message(chat, "digest", rate_limit_args=BULK)) for chat in chats
    ]
    await bot.api.wait_until(lambda: len(bot.api.calls_of("sendMessage", ok_only=True)) >= 60)
    issued = len(bot.api.calls)
    await tg.send_message(42, "your reply")
    [reply] = bot.api.calls_of("sendMessage", 42, ok_only=True)
    ahead = [c for c in bot.api.calls[issued : bot.api.calls.index(reply)] if c.ok]
    assert len(ahead) <= 5, len(ahead)
    await asyncio.gather(*bulk)
    assert len(bot.api.calls_of("sendMessage", ok_only=True)) == 301
    assert not [c for c in bot.api.calls if c.error_code == 429]
