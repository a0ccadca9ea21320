"""The link-rot digest through the running bot: one message per user, only when something
went offline, in the user's language, honouring /digest off, 📸 buttons that show the
kept snapshot, pages past ten, and 1 000 users at once within Telegram's flood limits
while a message someone waits for still goes first.

Time is driven by the times given to the marks and to the pass (a period boundary is
computed, marks are made before it and the pass after it), never by waiting.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from PIL import Image

from bot import scheduler
from bot.chat.outbound import BULK
from bot.library.digest import Digest
from bot.services import Context
from storage.models import LinkRecord, Screenshot, Status, utcnow
from storage.rot import owner_key
from tests.fakes.botapi import Call
from tests.harness import BotHarness
from tests.records import owned, seed_links

WEEK = 7 * 86400
HOUR = timedelta(hours=1)


def next_boundary() -> datetime:
    """The end of the current digest period (default DIGEST_INTERVAL)."""
    return datetime.fromtimestamp((utcnow().timestamp() // WEEK + 1) * WEEK, UTC)


def after(boundary: datetime) -> datetime:
    """When a pass finds the period that ended at `boundary` over."""
    return boundary + timedelta(minutes=10)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 200), (20, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def kept(owner: int, url: str, title: str, image: ObjectId, **fields: Any) -> LinkRecord:
    """`owner`'s captured page whose screenshot (`image`, a jpeg()) is kept."""
    screenshot = Screenshot(320, 200, gridfs_id=image)
    return owned(owner, url, title=title, status=Status.DONE, screenshot=screenshot, **fields)


async def seed(
    bot: BotHarness,
    owner: int,
    count: int,
    *,
    lang: str = "en",
    gone: int | None = None,
    when: datetime | None = None,
    first: int = 0,
) -> list[LinkRecord]:
    """`count` saved pages of `owner` with a kept screenshot; the first `gone` of them
    (default all) found offline at `when` (default: an hour before the period ends)."""
    image = await bot.store.put_image(jpeg(), "shot.jpg")
    records = [
        kept(
            owner,
            f"https://site{owner}.example/page{i}",
            f"Page {owner}-{i}",
            image,
            lang_code=lang,
        )
        for i in range(first, first + count)
    ]
    assert await seed_links(bot.store, records) == count
    for record in records[: count if gone is None else gone]:
        await bot.store.record_check(record, False, now=when or next_boundary() - HOUR)
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


async def test_one_digest_per_user_only_when_something_went_offline(bot: BotHarness) -> None:
    ann, bo, cy, di = 501, 502, 503, 504
    off = await bot.answer(di, "/digest off")
    assert "Digest off" in off
    await seed(bot, ann, 3, gone=2)
    await seed(bot, bo, 1, lang="zh-hans")
    await seed(bot, cy, 2, gone=0)
    await seed(bot, di, 1)
    digest = digest_of(bot)
    end = next_boundary()

    assert await digest.run(bot.app.bot, after(end)) == 2
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
    assert [c.result["text"] for c in sent_to(bot, di)] == [off]  # /digest off

    # Asked again in the same period, or a period later with nothing new: no message.
    assert await digest.run(bot.app.bot, after(end)) == 0
    week = timedelta(seconds=WEEK)
    assert await digest.run(bot.app.bot, after(end + week)) == 0
    assert len(sent_to(bot, ann)) == 1 and len(sent_to(bot, bo)) == 1

    # A third page of Ann's goes offline: the next digest names it alone.
    third = (await bot.records(ann))[2]
    await bot.store.record_check(third, False, now=end + 2 * week - HOUR)
    assert await digest.run(bot.app.bot, after(end + 2 * week)) == 1
    second = sent_to(bot, ann)[-1].params["text"]
    assert "1 of your saved pages went offline" in second and "Page 501-2" in second
    assert "Page 501-0" not in second


async def test_a_page_gone_before_its_snapshot_was_taken_is_not_in_the_digest(
    bot: BotHarness,
) -> None:
    """Imported links are checked before they are captured: one found gone has no
    snapshot to keep, so the digest ("your snapshots are kept") does not name it."""
    ann = 505
    [kept] = await seed(bot, ann, 1)
    bare = LinkRecord(
        owner_id=ann, chat_id=ann, url="https://site505.example/bare", url_key="bare", title="Bare"
    )
    assert await seed_links(bot.store, [bare]) == 1
    await bot.store.record_check(bare, False, now=next_boundary() - HOUR)
    assert await digest_of(bot).run(bot.app.bot, after(next_boundary())) == 1
    [told] = sent_to(bot, ann)
    assert "1 of your saved pages went offline" in told.params["text"]
    assert kept.title in told.params["text"] and "Bare" not in told.params["text"]


async def test_a_period_missed_while_the_bot_was_down_is_told_at_the_next_pass(
    bot: BotHarness,
) -> None:
    ann, bo = 531, 532
    end = next_boundary()
    week = timedelta(seconds=WEEK)
    await seed(bot, ann, 1, when=end - HOUR)  # first digest: none yet
    assert await digest_of(bot).run(bot.app.bot, after(end)) == 1  # bo had nothing then
    await seed(bot, bo, 1, when=end + HOUR)
    await bot.store.record_check((await bot.records(ann))[0], False, now=end + HOUR)
    second = await seed(bot, ann, 1, when=end + 2 * HOUR, first=1)
    # No pass after end + week (the bot was down); the next one, a period later, tells all.
    assert await digest_of(bot).run(bot.app.bot, after(end + 2 * week)) == 2
    assert "1 of your saved pages" in sent_to(bot, bo)[-1].params["text"]
    last = sent_to(bot, ann)[-1].params["text"]
    assert second[0].title in last and "1 of your saved pages" in last


async def test_digest_on_again_and_a_page_back_is_not_told(bot: BotHarness) -> None:
    ann = 511
    assert "Digest off" in await bot.answer(ann, "/digest off")
    assert "已开启" in await bot.answer(ann, "/digest on", language="zh")
    records = await seed(bot, ann, 2)
    await bot.store.record_check(records[1], True, now=next_boundary() - HOUR / 2)  # back
    assert await digest_of(bot).run(bot.app.bot, after(next_boundary())) == 1
    [told] = sent_to(bot, ann)[-1:]
    assert (
        "1 of your saved pages" in told.params["text"] and "Page 511-1" not in told.params["text"]
    )


async def test_snapshot_buttons_and_pages_past_ten(bot: BotHarness) -> None:
    ann = 521
    await seed(bot, ann, 12)
    assert await digest_of(bot).run(bot.app.bot, after(next_boundary())) == 1
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
    end = next_boundary()
    gone = end - HOUR
    # Stored as a round leaves them (the marks themselves: test_linkrot_rounds.py), in
    # bulk: the subject here is the sending.
    records = [
        kept(
            u,
            f"https://s{u}.example/",
            f"Home of {u}",
            image,
            checked_at=gone,
            alive=False,
            gone_at=gone,
        )
        for u in users
    ]
    assert await seed_links(bot.store, records) == len(users)
    await bot.store.rot.lost.insert_many([{"_id": owner_key(u), "at": gone} for u in users])
    for user in users:
        bot.api.open_chat(user)
    assert await digest_of(bot).run(bot.app.bot, after(end)) == 1000
    sent = [c for c in bot.api.calls if c.method == "sendMessage"]
    assert sorted(c.params["chat_id"] for c in sent if c.ok) == users  # one each
    assert not [c for c in sent if c.error_code == 429]  # paced, not discovered
    # (and the botapi fixture fails the test on any call inside a retry_after window)


async def test_bulk_leaves_room_for_a_message_someone_is_waiting_for(bot: BotHarness) -> None:
    """300 bulk messages queued at once. All the while they go out, a message for someone
    waiting (the photo of a link sent by hand, a reply) would go out at once: the
    capture slot's test for sending a photo itself (`Outbound.free_now`) holds
    throughout, and such a reply sent mid-flood lands before the flood ends. (Without
    the bulk gate the flood keeps the overall bucket empty.)"""
    chats = list(range(20_000, 20_300))
    for chat in [*chats, 42]:
        bot.api.open_chat(chat)
    tg, outbound = bot.app.bot, bot.services.outbound

    def delivered(at_least: int) -> Callable[[], bool]:
        return lambda: len(bot.api.calls_of("sendMessage", ok_only=True)) >= at_least

    bulk = [
        asyncio.create_task(tg.send_message(chat, "digest", rate_limit_args=BULK)) for chat in chats
    ]
    reply: asyncio.Task[Any] | None = None
    for seen in range(40, 280, 10):  # checked as the flood goes by
        await bot.api.wait_until(delivered(seen))
        assert outbound.free_now(43), f"after {seen} bulk messages"
        if seen == 100:
            reply = asyncio.create_task(tg.send_message(42, "your reply"))
    assert reply is not None
    await asyncio.gather(*bulk, reply)
    sent = [c.params["chat_id"] for c in bot.api.calls if c.method == "sendMessage" and c.ok]
    assert len(sent) == 301 and 42 in sent[: len(sent) - 100]
    assert not [c for c in bot.api.calls if c.error_code == 429]


async def test_a_bulk_call_held_up_on_its_way_holds_back_the_bulk_behind_it(
    bot: BotHarness,
) -> None:
    """Telegram counts a call when it arrives. Bulk calls that took their tokens in step
    but reach it bunched (some held up on the way, the rest landing with them: a loaded
    machine, 429s in fresh-clone runs) empty its bucket. So each bulk call goes once the
    one before it has landed: the first, held up for a second, lands before any other."""
    chats = list(range(30_000, 30_012))
    for chat in chats:
        bot.api.open_chat(chat)
    bot.api.stall_arrival("sendMessage", 1.0)
    tg = bot.app.bot
    await asyncio.gather(*(tg.send_message(chat, "digest", rate_limit_args=BULK) for chat in chats))
    landed = [c.params["chat_id"] for c in bot.api.calls if c.method == "sendMessage" and c.ok]
    assert landed == chats


async def test_the_workers_jobs_claim_and_run_a_round_and_a_digest_pass(bot: BotHarness) -> None:
    """The scheduler's two jobs, as the JobQueue calls them: the round of this slot checks
    the links due (a page now 404 is marked gone); the digest pass tells about the last
    full period."""
    # The same jobs, scheduled 60 and 90 s after start, would claim this round themselves
    # on a machine slow enough to get there first: the calls here are the only ones.
    assert bot.app.job_queue is not None
    for name in ("rot", "digest"):
        for job in bot.app.job_queue.get_jobs_by_name(name):
            job.schedule_removal()
    context = Context(bot.app)
    dead = bot.pages.url("/status/404")
    await seed_links(
        bot.store,
        [LinkRecord(owner_id=601, chat_id=601, url=dead, url_key=dead, status=Status.DONE)],
    )
    # The round works until 90 s before its slot ends (ROUND_SPARE): a clock at the start
    # of the next slot, not wherever in this one the wall clock happens to be.
    ahead = (time.time() // scheduler.ROUND_EVERY + 1) * scheduler.ROUND_EVERY - time.time()
    round_ = await scheduler.check_links(context, now=lambda: time.time() + ahead)
    assert round_ is not None
    # Over before the next owner's page is saved: a round still going would check that
    # page too, and mark it gone now rather than in the last period.
    result = await asyncio.wait_for(round_, 60)
    assert (result.checked, result.gone) == (1, 1)
    [record] = await bot.records(601)
    assert record.alive is False

    last_end = next_boundary() - timedelta(seconds=WEEK)
    await seed(bot, 602, 1, when=last_end - HOUR)
    await scheduler.send_digests(context)
    call = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params.get("chat_id") == 602
    )
    assert "1 of your saved pages went offline" in call.params["text"]


@pytest.mark.parametrize(("age", "due"), [(0.7, False), (0.9, True)])
async def test_a_link_is_due_at_four_fifths_of_the_max_age(
    bot: BotHarness, age: float, due: bool
) -> None:
    """A round checks a link last checked 0.9 × LINKROT_MAX_AGE ago, not one checked
    0.7 × ago (DUE_SHARE = 0.8): the rest of the age absorbs a backlog."""
    # Days apart, so the round's reading of "now" a moment later changes nothing; a
    # round's own check writes the time it asked, which is never due again this round.
    now = utcnow()
    page = bot.pages.url("/status/404")
    [record] = await seed(bot, 603, 1, gone=0)
    await bot.store.update(record.id, url=page, final_url=page)
    last = now - timedelta(seconds=bot.settings.linkrot_max_age * age)
    await bot.store.record_check(record, True, now=last)
    # The next slot's round: its working time lies ahead wherever in this slot we are.
    number = int(time.time() // scheduler.ROUND_EVERY) + 1
    result = await scheduler.run_round(bot.services, number)
    assert (result.checked, result.gone) == ((1, 1) if due else (0, 0))
    [after_round] = await bot.records(603)
    assert (after_round.alive is False) is due
