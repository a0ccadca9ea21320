"""Managing links through the real Application: retag by reply, delete with undo, delete
for good; the button codec's owner check and 64-byte limit."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from telegram.ext import JobQueue

from bot.chat.callbacks import (
    MAX_DATA,
    Action,
    AddTag,
    Codec,
    Delete,
    FindPage,
    Recapture,
    StaleButton,
    TagLinks,
    Undo,
    codec_for,
    snapshot_keyboard,
)
from bot.chat.links import url_key
from bot.i18n import texts_for
from bot.library.manage import Retag, parse_retag
from storage.images import ImageNotFound
from storage.models import LinkRecord, LlmUsage, Screenshot, Status, utcnow
from storage.repository import LinkStore
from storage.trash import AlreadyRestored, Trash, UndoConflict, UndoExpired
from tests.conftest import INDEX_DIR
from tests.fakes.openai_server import Script
from tests.harness import BotHarness
from tests.records import seed_links

# --- the codec ---------------------------------------------------------------------


def test_codec_round_trip_owner_check_and_size() -> None:
    codec = Codec(b"secret")
    link = ObjectId()
    actions: list[Action] = [
        Recapture(link),
        Delete(link),
        Undo(link),
        AddTag(link, "机器学习"),
        FindPage(ObjectId(), 12),
        TagLinks("reading_list"),
    ]
    for action in actions:
        data = codec.encode(action, 42)
        assert len(data.encode()) <= MAX_DATA
        assert codec.decode(data, 42) == action
        with pytest.raises(StaleButton):
            codec.decode(data, 43)  # another user pressing the owner's button
        with pytest.raises(StaleButton):
            Codec(b"other").decode(data, 42)  # not made by this bot
    tampered = codec.encode(Delete(link), 42)
    other = str(ObjectId())
    with pytest.raises(StaleButton):
        codec.decode(tampered[:2] + other[:16] + tampered[18:], 42)
    assert not codec.fits(AddTag(link, "x" * 40))  # would pass 64 bytes
    assert not codec.fits(TagLinks("two words"))
    with pytest.raises(ValueError):
        codec.encode(TagLinks("a" * 60), 42)
    for junk in ["", "zz", "d:abc:12345678", "x" * 65, "t:a:b:c"]:
        with pytest.raises(StaleButton):
            codec.decode(junk, 42)


def test_codec_reads_buttons_made_before_it() -> None:
    codec = Codec(b"secret")
    link = ObjectId()
    assert codec.decode(f"r:{link}", 7) == Recapture(link)  # the store checks the owner
    assert codec.decode(f"f:{link}:3", 7) == FindPage(link, 3)
    assert codec.decode("t:Reading", 7) == TagLinks("reading")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("#a #B", Retag(["a", "b"], [])),
        ("-#a  #c ＃技术", Retag(["c", "技术"], ["a"])),
        ("#a words", None),
        ("", None),
        ("-a", None),
    ],
)
def test_parse_retag(text: str, want: Retag | None) -> None:
    assert parse_retag(text) == want


# --- through the bot ---------------------------------------------------------------


async def answer(bot: BotHarness, since: int) -> str:
    call = await bot.api.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.ok, timeout=20, since=since
    )
    return str(call.params.get("text") or "")


async def record_of(bot: BotHarness, owner: int) -> LinkRecord:
    [record] = await bot.records(owner)
    return record


def press(bot: BotHarness, user: int, message: dict[str, Any], data: str) -> int:
    start = len(bot.api.calls)
    bot.api.press_button(user, message, data)
    return start


def jobs(bot: BotHarness) -> JobQueue[Any]:
    assert bot.app.job_queue is not None
    return bot.app.job_queue


def buttons_of(message: dict[str, Any]) -> dict[str, str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def test_retag_by_reply_edits_caption_and_shows_in_tags_and_find(bot: BotHarness) -> None:
    photo = await bot.snapshot(42, "/article/retag", "#a #b")
    start = len(bot.api.calls)
    reply = bot.send(42, "#c -#a", reply_to_message_id=photo["message_id"])
    edited = await bot.caption_edit(photo, start)
    tag_line = [line for line in edited["caption"].splitlines() if line.startswith("#")]
    assert tag_line == ["#b #c"]
    assert {"🏷 Tags", "🗑 Delete", "🔄 Capture again"} <= set(buttons_of(edited))
    await bot.api.wait_for(
        lambda c: (
            c.method == "setMessageReaction"
            and c.params.get("message_id") == reply["message_id"]
            and c.params["reaction"][0]["emoji"] == "👌"
        ),
        since=start,
    )
    assert (await record_of(bot, 42)).tags == ["b", "c"]
    tags = await bot.answer(42, "/tags")
    assert "#b — 1" in tags and "#c — 1" in tags and "#a" not in tags
    assert "Article retag" in await bot.answer(42, "/find #c")
    assert "No links match #a" in await bot.answer(42, "/find #a")
    # Nothing but a reply of tags is taken as a retag: a plain reply is a message again.
    assert not bot.replies_to(reply, "sendMessage")


async def test_reply_to_someone_elses_snapshot_changes_nothing(bot: BotHarness) -> None:
    group = -100777
    sent = bot.send(
        42, bot.pages.url("/article/grp-tags") + " #mine", chat_id=group, chat_type="group"
    )
    assert await bot.finished(sent) == "👌"
    [photo] = bot.photos_for(sent)
    start = len(bot.api.calls)
    bot.send(
        43,
        "#theirs -#mine",
        chat_id=group,
        chat_type="group",
        reply_to_message_id=photo.result["message_id"],
    )
    told = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == group,
        since=start,
    )
    assert "can't tell which of your links" in told.params["text"]
    assert (await record_of(bot, 42)).tags == ["mine"]
    assert not [c for c in bot.api.calls[start:] if c.method == "editMessageCaption"]


async def test_delete_undo_then_delete_for_good(bot: BotHarness) -> None:
    photo = await bot.snapshot(42, "/article/gone", "#tmp")
    record = await record_of(bot, 42)
    assert record.screenshot is not None and record.screenshot.gridfs_id is not None
    image_id = record.screenshot.gridfs_id
    assert await bot.store.get_image(image_id)
    delete = buttons_of(photo)["🗑 Delete"]  # under the snapshot as delivered

    # Someone else pressing the owner's 🗑 (say in a group) does nothing.
    start = press(bot, 43, photo, delete)
    assert await answer(bot, start) == "That button has expired."
    assert await bot.store.get(42, record.id) is not None

    start = press(bot, 42, photo, delete)
    assert "Undo" in await answer(bot, start)
    hidden = await bot.caption_edit(photo, start)
    assert hidden["caption"].startswith("🗑 Deleted") and "Article gone" in hidden["caption"]
    assert list(buttons_of(hidden)) == ["↩ Undo"]
    assert await bot.store.get(42, record.id) is None
    assert "#tmp" not in await bot.answer(42, "/tags")
    assert "No links match #tmp" in await bot.answer(42, "/find #tmp")

    start = press(bot, 42, hidden, buttons_of(hidden)["↩ Undo"])
    assert await answer(bot, start) == "Restored."
    back = await bot.caption_edit(photo, start)
    assert "Article gone" in back["caption"] and "🗑 Delete" in buttons_of(back)
    assert not jobs(bot).get_jobs_by_name(f"purge:{record.id}")  # timer stopped
    assert "#tmp — 1" in await bot.answer(42, "/tags")
    assert "Article gone" in await bot.answer(42, "/find #tmp")

    start = press(bot, 42, back, buttons_of(back)["🗑 Delete"])
    await answer(bot, start)
    hidden = await bot.caption_edit(photo, start)
    [job] = jobs(bot).get_jobs_by_name(f"purge:{record.id}")
    start = len(bot.api.calls)
    await job.run(bot.app)  # the minute is over
    final = await bot.caption_edit(photo, start)
    assert final["caption"].startswith("🗑 Deleted for good") and not final.get("reply_markup")
    with pytest.raises(ImageNotFound):
        await bot.store.get_image(image_id)
    assert await bot.store.texts.find_one({"_id": record.id}) is None
    assert await bot.store.db["trash"].find_one({"_id": record.id}) is None
    assert await bot.records(42) == []
    start = press(bot, 42, hidden, buttons_of(hidden)["↩ Undo"])
    assert "Too late" in await answer(bot, start)
    assert "No links match #tmp" in await bot.answer(42, "/find #tmp")

    # The URL can be saved afresh.
    again = await bot.snapshot(42, "/article/gone", "#new")
    assert again["message_id"] != photo["message_id"]
    assert (await record_of(bot, 42)).tags == ["new"]


async def test_delete_while_the_summary_streams_keeps_the_undo(bot_llm: BotHarness) -> None:
    bot, llm = bot_llm, bot_llm.llm
    assert llm is not None

    def script(body: dict[str, Any]) -> Script:
        if body.get("stream"):
            return Script(chunks=[f"w{i} " for i in range(30)], interval=0.2)
        return Script(chunks=["#later"])

    llm.responder = script
    sent = bot.send(42, bot.pages.url("/article/mid-summary"))
    first = await bot.api.wait_for(
        lambda c: c.method == "editMessageCaption" and c.ok and "w0" in c.params["caption"],
        timeout=45,
    )
    photo = bot.api.messages[(42, first.params["message_id"])]
    [record] = await bot.records(42)
    with bot.services.pipeline.live.listen(record.id) as listener:
        start = press(bot, 42, photo, buttons_of(photo)["🗑 Delete"])
        assert "Undo" in await answer(bot, start)
        await bot.api.wait_until(
            lambda: (bot.api.message_text(42, photo["message_id"]) or "").startswith("🗑 Deleted")
        )
        # The summary runs out and its stage ends (a signal from the pipeline, not a
        # sleep); nothing of it is drawn over the deleted message.
        ended: list[str] = []
        while Status.DONE not in ended:
            await asyncio.wait_for(listener.wake.wait(), 60)
            ended += [e.status for e in listener.take() if e.status]
    shown = bot.api.messages[(42, photo["message_id"])]
    assert shown["caption"].startswith("🗑 Deleted") and "w29" not in shown["caption"]
    assert list(buttons_of(shown)) == ["↩ Undo"]
    # Undone: the link is back and its summary is made again.
    start = press(bot, 42, shown, buttons_of(shown)["↩ Undo"])
    assert await answer(bot, start) == "Restored."
    assert await bot.finished(sent, timeout=60) == "👌"
    final = bot.api.messages[(42, photo["message_id"])]
    assert "w29" in final["caption"] and "🗑 Delete" in buttons_of(final)


async def test_deletes_left_by_a_stopped_process_are_swept(bot: BotHarness) -> None:
    photo = await bot.snapshot(42, "/article/swept")
    record = await record_of(bot, 42)
    codec = codec_for(bot.settings.token)
    start = press(bot, 42, photo, codec.encode(Delete(record.id), 42))
    await bot.caption_edit(photo, start)
    for job in jobs(bot).get_jobs_by_name(f"purge:{record.id}"):
        job.schedule_removal()  # as if the process had stopped
    await bot.store.db["trash"].update_one(
        {"_id": record.id}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    [sweep] = jobs(bot).get_jobs_by_name("trash-sweep")
    start = len(bot.api.calls)
    await sweep.run(bot.app)
    final = await bot.caption_edit(photo, start)
    assert final["caption"].startswith("🗑 Deleted for good")
    assert await bot.store.db["trash"].find_one({"_id": record.id}) is None
    assert record.screenshot is not None and record.screenshot.gridfs_id is not None
    with pytest.raises(ImageNotFound):
        await bot.store.get_image(record.screenshot.gridfs_id)


def test_suggestion_buttons_leave_out_the_links_own_tags() -> None:
    url = "https://s.example/"
    record = LinkRecord(owner_id=42, chat_id=42, url=url, url_key=url_key(url), tags=["one"])
    keyboard = snapshot_keyboard(Codec(b"k"), record, texts_for("en"), ["python", "one", "web"])
    assert [b.text for b in keyboard.inline_keyboard[1]] == ["＋#python", "＋#web"]


async def test_suggested_tag_button_adds_the_tag(bot: BotHarness) -> None:
    """Without a model: the user's own tags whose words the page has, under the photo."""
    await bot.snapshot(42, "/article/first", "#snapshots #cooking #tags")
    photo = await bot.snapshot(42, "/article/suggest", "#one #tags")
    buttons = buttons_of(photo)
    assert "＋#snapshots" in buttons and "＋#tags" not in buttons and "＋#cooking" not in buttons
    start = press(bot, 42, photo, buttons["＋#snapshots"])
    assert await answer(bot, start) == "Added #snapshots"
    edited = await bot.caption_edit(photo, start)
    assert "#one #tags #snapshots" in edited["caption"]
    assert "＋#snapshots" not in buttons_of(edited) and "🗑 Delete" in buttons_of(edited)
    [record] = [r for r in await bot.records(42) if r.url.endswith("/suggest")]
    assert record.tags == ["one", "tags", "snapshots"]


async def test_stats_counts_only_the_users_own(bot: BotHarness) -> None:
    now = utcnow()
    image = await bot.store.put_image(b"x" * 300_000, "a.jpg")
    other_image = await bot.store.put_image(b"y" * 900_000, "b.jpg")

    def link(owner: int, n: int, status: Status, **fields: Any) -> LinkRecord:
        url = f"https://stats.example/{owner}/{n}"
        return LinkRecord(
            owner_id=owner, chat_id=owner, url=url, url_key=url_key(url), status=status, **fields
        )

    usage = LlmUsage("gpt-4o-mini", 1000, 200)
    await seed_links(
        bot.store,
        [
            link(
                42,
                1,
                Status.DONE,
                tags=["a", "b"],
                llm=usage,
                created_at=now,
                screenshot=Screenshot(1280, 800, gridfs_id=image),
            ),
            link(
                42, 2, Status.DONE, tags=["a"], llm=LlmUsage("gpt-4o-mini", 10, 5), created_at=now
            ),
            link(
                42,
                3,
                Status.DONE,
                llm=LlmUsage("other-model", 7, 3),
                created_at=now - timedelta(days=40),
            ),
            link(42, 4, Status.FAILED, created_at=now),
            link(42, 5, Status.PENDING, created_at=now),
            link(
                43,
                1,
                Status.DONE,
                tags=["z"],
                llm=usage,
                created_at=now,
                screenshot=Screenshot(1280, 800, gridfs_id=other_image),
            ),
        ],
    )
    text = await bot.answer(42, "/stats")
    assert "Links: 5" in text and "Tags: 2" in text
    assert "This month: 2 captured, 1 failed, 1 waiting" in text
    assert "Screenshots: 293.0 KB" in text
    assert "gpt-4o-mini: 1010 prompt + 205 completion" in text
    assert "other-model: 7 prompt + 3 completion" in text
    chinese = await bot.answer(44, "/stats", language="zh-hans")
    assert "链接：0" in chinese and "LLM 用量：无" in chinese


async def test_undo_puts_an_unfinished_link_back_in_its_queue_place(mongodb_uri: str) -> None:
    """Storage level (no workers running): hide then restore keeps the work entry as it was."""
    store = LinkStore.connect(mongodb_uri, index_dir=INDEX_DIR)
    try:
        await store.ensure_indexes()
        url = "https://queue.example/a"
        record = LinkRecord(owner_id=42, chat_id=42, url=url, url_key=url_key(url), tags=["q"])
        assert await seed_links(store, [record]) == 1
        await store.work.update_one(
            {"_id": record.id}, {"$set": {"prio": 1, "turn": 5.0, "lease": 3}}
        )
        queued = await store.work.find_one({"_id": record.id})
        trash = Trash(store)
        assert await trash.hide(43, record.id, keep_for=timedelta(seconds=60)) is None  # not theirs
        assert await trash.hide(42, record.id, keep_for=timedelta(seconds=60)) is not None
        assert await store.work.find_one({"_id": record.id}) is None
        assert (await store.find(42, ["q"])).total == 0
        with pytest.raises(UndoExpired):
            await trash.restore(43, record.id)
        back = await trash.restore(42, record.id)
        assert back.id == record.id and back.tags == ["q"]
        assert await store.work.find_one({"_id": record.id}) == queued
        assert (await store.find(42, ["q"])).total == 1
        with pytest.raises(AlreadyRestored):
            await trash.restore(42, record.id)  # once; a second ↩ is told it is back
        # Saved again while hidden: the deleted copy cannot come back.
        await trash.hide(42, record.id, keep_for=timedelta(seconds=60))
        again = LinkRecord(owner_id=42, chat_id=42, url=url, url_key=url_key(url))
        await store.add_pending(again)
        with pytest.raises(UndoConflict):
            await trash.restore(42, record.id)
        assert await trash.purge(record.id) is not None
        assert [r.id for r in (await store.find(42, [])).items] == [again.id]
    finally:
        await store.close()


async def test_retag_by_reply_goes_through_the_one_normaliser(bot: BotHarness) -> None:
    """As typed in a message: `&` kept, full-width letters folded, a right-to-left
    override dropped (it would make the caption read as something else)."""
    photo = await bot.snapshot(42, "/article/normal", "#x")
    start = len(bot.api.calls)
    bot.send(42, "#a&b #ＡＩ #ab\u202ecd -#x", reply_to_message_id=photo["message_id"])
    edited = await bot.caption_edit(photo, start)
    assert (await record_of(bot, 42)).tags == ["a&b", "ai", "abcd"]
    assert "#a&b #ai #abcd" in edited["caption"] and "\u202e" not in edited["caption"]


async def test_a_tag_button_carries_only_a_normal_tag(bot: BotHarness) -> None:
    """＋#tag buttons add the stored form; a button whose tag is not one (full-width
    letters, a right-to-left override) is refused as stale and changes nothing."""
    photo = await bot.snapshot(42, "/article/button", "#x")
    record = await record_of(bot, 42)
    codec = codec_for(bot.settings.telegram_bot_token.get_secret_value())
    # Buttons signed for this user as a version before the one normaliser made them.
    head = codec.encode(AddTag(record.id, "z"), 42).rpartition(":")[0][:-1]
    for raw in ("ＡＩ", "a\u202eb"):
        body = head + raw
        start = press(bot, 42, photo, f"{body}:{codec._mac(42, body)}")
        assert await answer(bot, start) == "That button has expired."
    assert (await record_of(bot, 42)).tags == ["x"]
    start = press(bot, 42, photo, codec.encode(AddTag(record.id, "a&b"), 42))
    assert await answer(bot, start) == "Added #a&b"
    assert (await record_of(bot, 42)).tags == ["x", "a&b"]
