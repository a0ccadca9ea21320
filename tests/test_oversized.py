"""Oversized records (issue 22): every reply that shows user data fits Telegram's limits by
construction — captions ≤ 1024, messages ≤ 4096, inline results within theirs — cut with
"…", never an error; a reply Telegram still refuses is never silent. Also: ↩ twice, five
presses of 📄, and inline offsets nobody sent us.

The real Application against the strict Bot API fake (which refuses what Telegram
refuses: see test_fake_botapi.py), FerretDB, Chromium and pages on 127.0.0.1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.browser.types import ArtifactKind
from bot.chat import render
from bot.chat.callbacks import Delete, EditTags, MakeFile, Undo, codec_for
from bot.i18n import texts_for
from bot.pipeline import delivering
from bot.tags import MAX_TAGS_PER_LINK
from storage.models import LinkRecord, Page, Screenshot, Status, TagCount
from tests.fakes.botapi import Call
from tests.fakes.telegram_rules import parse_html, utf16_len
from tests.harness import BotHarness
from tests.records import owned, seed_links

T0 = datetime(2026, 3, 1, tzinfo=UTC)
EN, ZH = texts_for("en"), texts_for("zh-hans")
RLO = "\u202e"


def shown_len(markup: str) -> int:
    """What Telegram counts: UTF-16 units after entity parsing (the fake's own parser)."""
    return utf16_len(parse_html(markup)[0])


def huge(owner: int, n: int, *, tags: int, title: int, photo: str | None = None) -> LinkRecord:
    url = f"https://{owner}.example/huge/{n}?" + "q=1&" * 200
    return owned(
        owner,
        url,
        title="evil" + RLO + ("标题🙂" * title)[:title],
        note="备注 " * 2000,
        tags=[f"t{i}" + "长" * 40 for i in range(tags)],
        status=Status.DONE,
        screenshot=Screenshot(1280, 800, file_id=photo) if photo else None,
        created_at=T0 + timedelta(minutes=n),
        alive=False,
    )


# --- rendering, for every language ---------------------------------------------------


@pytest.mark.parametrize("texts", [EN, ZH])
def test_every_rendering_fits_however_big_the_record(texts: Any) -> None:
    record = huge(42, 0, tags=10_000, title=5000)
    record.http_status, record.partial = 404, True
    for caption in (
        render.caption(record, texts),
        render.caption(record, texts, saved_on=T0, tail=texts.summary_off),
    ):
        assert shown_len(caption) <= render.CAPTION_LIMIT
        assert "…" in caption and RLO not in caption and "evil" in caption
        assert texts.partial_note in caption and "404" in caption
    page = Page(
        items=[huge(42, i, tags=50, title=5000) for i in range(10)],
        total=99_999,
        page=9999,
        page_size=10,
    )
    listing = render.find_message(page, "#x " * 3000, texts)
    assert shown_len(listing) <= render.TEXT_LIMIT
    assert listing.count("标题") >= 10  # every row is there, cut
    counts = [TagCount("标" * 48 if i % 2 else "t" * 48, i) for i in range(200)]
    tags = render.tags_message(counts, texts)
    assert shown_len(tags) <= render.TEXT_LIMIT
    assert texts.tags_more.split("{")[0] in tags


def test_a_clip_never_splits_a_character() -> None:
    assert render.clip("🙂" * 10, 5) == "🙂🙂…"  # 4 units of emoji, then the ellipsis
    assert render.clip("abc", 3) == "abc"


# --- through the bot -----------------------------------------------------------------


async def seed(bot: BotHarness, records: list[LinkRecord]) -> None:
    assert await seed_links(bot.store, records) == len(records)


async def seed_captured(bot: BotHarness, url: str, **fields: Any) -> LinkRecord:
    """User 42's link, stored as captured: its screenshot a photo Telegram holds."""
    file_id = bot.api.stored_photo(url.encode(), 1280, 800)
    screenshot = Screenshot(1280, 800, file_id=file_id)
    record = owned(42, url, status=Status.DONE, screenshot=screenshot, **fields)
    await seed(bot, [record])
    return record


async def reply_to(bot: BotHarness, sent: dict[str, Any], method: str) -> Call:
    return await bot.api.wait_for(
        lambda c: (
            c.method == method
            and (c.params.get("reply_parameters") or {}).get("message_id") == sent["message_id"]
        ),
        timeout=60,
    )


async def test_a_caption_with_10000_tags_and_a_5000_character_title_is_sent_cut(
    bot: BotHarness,
) -> None:
    """The stored snapshot is shown again for a link sent a second time; the same link in
    inline mode. Both used to be refused (88 959 characters where Telegram takes 1 024)."""
    file_id = bot.api.stored_photo(b"shot", 1280, 800)
    record = huge(42, 0, tags=10_000, title=5000, photo=file_id)
    await seed(bot, [record])
    query_id = bot.api.send_inline_query(42, "#t9999" + "长" * 40)
    await bot.api.wait_until(lambda: query_id in bot.api.inline_answers, timeout=20)
    [result] = bot.api.inline_answers[query_id]["results"]
    assert result["id"] == str(record.id) and shown_len(result["caption"]) <= 1024
    assert "…" in result["caption"] and len(result["description"]) <= 200

    sent = bot.send(42, record.url)
    photo = await reply_to(bot, sent, "sendPhoto")
    assert photo.ok, photo.description
    caption = photo.result["caption"]
    assert utf16_len(caption) <= 1024 and "…" in caption and RLO not in caption
    assert "#t0长" in caption

    # Sent again, the link keeps its first 50 tags (the cap holds however it got more).
    assert len((await bot.records(42))[0].tags) == MAX_TAGS_PER_LINK


async def test_a_link_with_200_typed_tags_gets_its_photo_and_a_word(bot: BotHarness) -> None:
    """Telegram refused the photo ("message caption is too long") and the user saw only
    👀. Now the link keeps 50 tags, the caption shows what fits, and the user is told."""
    tags = [f"#tag{i:03d}" for i in range(200)]
    sent = bot.send(42, bot.pages.url("/article/many-tags") + " " + " ".join(tags))
    assert await bot.finished(sent, timeout=60) == "👌"
    [photo] = bot.photos_for(sent)
    assert utf16_len(photo.result["caption"]) <= 1024 and "#tag000" in photo.result["caption"]
    [record] = await bot.records(42)
    assert record.tags == [t[1:] for t in tags[:MAX_TAGS_PER_LINK]]
    told = [c.params["text"] for c in bot.api.calls_of("sendMessage", 42, ok_only=True)]
    assert any("at most 50 tags; 150 more were left out" in t for t in told), told
    # A retag past the cap says so too, and keeps 50.
    start = len(bot.api.calls)
    bot.send(42, "#one #more", reply_to_message_id=photo.result["message_id"])
    said = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.params["chat_id"] == 42, since=start
    )
    assert "2 more were left out" in said.params["text"]
    assert len((await bot.records(42))[0].tags) == MAX_TAGS_PER_LINK


async def test_a_photo_telegram_refuses_gets_a_shrug_and_a_line(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever Telegram refuses, the user hears: 🤷 and what failed, never only 👀."""
    monkeypatch.setattr(delivering, "_caption", lambda p, record, texts: "x" * 1500)
    sent = bot.send(42, bot.pages.url("/article/refused"))
    assert await bot.finished(sent, timeout=60) == "🤷"
    [line] = [c.params["text"] for c in bot.api.calls_of("sendMessage", 42, ok_only=True)]
    assert "Telegram refused the snapshot" in line and "caption is too long" in line
    [record] = await bot.records(42)
    assert record.status == Status.FAILED


async def test_tags_and_find_fit_one_message(bot: BotHarness) -> None:
    """/tags with 100 tags of 48 characters (Chinese too) and /find echoing a 4 000
    character query both answered "Something went wrong" (message is too long)."""
    long_tags = [f"{i:02d}" + ("标" if i % 2 else "x") * 46 for i in range(100)]
    records = []
    for i, tag in enumerate(long_tags):
        url = f"https://t.example/{i}"
        records.append(owned(42, url, tags=[tag]))
    await seed(bot, records)
    for language, texts in (("en", EN), ("zh-hans", ZH)):
        listed = await bot.command(42, "/tags", language)
        assert listed.ok, listed.description
        assert shown_len(listed.params["text"]) <= 4096
        assert texts.tags_more.split("{")[0] in listed.result["text"]
        query = "/find " + "词" * 2000 + " " + "#x" * 1000
        found = await bot.command(42, query[:4000], language)
        assert found.ok, found.description
        assert shown_len(found.params["text"]) <= 4096 and "…" in found.result["text"]


async def test_five_presses_of_full_page_make_one_file(bot: BotHarness) -> None:
    """Made once and uploaded once; the later presses wait and get the same file."""
    sent = bot.send(42, bot.pages.url("/article/five"))
    assert await bot.finished(sent, timeout=60) == "👌"
    [photo] = bot.photos_for(sent)
    [record] = await bot.records(42)
    data = codec_for(bot.settings.token).encode(MakeFile(record.id, ArtifactKind.FULL_PAGE), 42)
    opened = bot.pages.hits["/article/five"]
    start = len(bot.api.calls)
    for _ in range(5):
        bot.api.press_button(42, photo.result, data)

    def documents() -> list[Call]:
        return [c for c in bot.api.calls[start:] if c.method == "sendDocument" and c.ok]

    await bot.api.wait_until(lambda: len(documents()) == 5, timeout=120)
    uploaded = [c for c in documents() if c.files]
    assert len(uploaded) == 1
    file_id = uploaded[0].result["document"]["file_id"]
    assert {c.result["document"]["file_id"] for c in documents()} == {file_id}
    assert bot.pages.hits["/article/five"] == opened + 1  # the page opened once for it


async def test_a_second_undo_says_it_is_back(bot: BotHarness) -> None:
    record = await seed_captured(bot, "https://undo.example/a", title="Undo me")
    sent = bot.send(42, record.url)
    photo = (await reply_to(bot, sent, "sendPhoto")).result
    codec = codec_for(bot.settings.token)

    async def press(data: str) -> str:
        start = len(bot.api.calls)
        bot.api.press_button(42, photo, data)
        call = await bot.api.wait_for(
            lambda c: c.method == "answerCallbackQuery" and c.ok, since=start, timeout=20
        )
        return str(call.params.get("text") or "")

    assert "Undo" in await press(codec.encode(Delete(record.id), 42))
    undo = codec.encode(Undo(record.id), 42)
    assert await press(undo) == "Restored."
    assert await press(undo) == "Already restored."
    assert await bot.store.get(42, record.id) is not None


@pytest.mark.parametrize("offset", ["-5", str(10**22), "²", "１"])
async def test_inline_offsets_nobody_sent_are_answered(bot: BotHarness, offset: str) -> None:
    record = await seed_captured(bot, "https://inline.example/a", title="Inline", tags=["i"])
    query_id = bot.api.send_inline_query(42, "#i", offset=offset)
    await bot.api.wait_until(lambda: query_id in bot.api.inline_answers, timeout=20)
    results = bot.api.inline_answers[query_id]["results"]
    big = offset == str(10**22)
    assert [r["id"] for r in results] == ([] if big else [str(record.id)])
    assert not bot.api.inline_answers[query_id].get("next_offset")


def test_nothing_said_is_cut_mid_tag() -> None:
    line = render.tag_list(["alpha", "beta", "gamma"], 14)
    assert line == "#alpha #beta …"


async def test_the_tags_alert_and_a_deleted_caption_fit(bot: BotHarness) -> None:
    """🏷 with 50 long tags (Telegram takes 200 characters in an alert); 🗑 on a link with
    no title and a 2 000-character address (its caption names the link)."""
    url = "https://alert.example/?" + "a=1&" * 500
    tags = [f"{i:02d}" + "标" * 46 for i in range(MAX_TAGS_PER_LINK)]
    record = await seed_captured(bot, url, tags=tags)
    sent = bot.send(42, url)
    photo = (await reply_to(bot, sent, "sendPhoto")).result
    codec = codec_for(bot.settings.token)
    for action in (EditTags(record.id), Delete(record.id)):
        start = len(bot.api.calls)
        bot.api.press_button(42, photo, codec.encode(action, 42))
        call = await bot.api.wait_for(lambda c: c.method == "answerCallbackQuery", since=start)
        assert call.ok, call.description
    edit = await bot.api.wait_for(lambda c: c.method == "editMessageCaption", since=start)
    assert edit.ok, edit.description
    assert "…" in edit.result["caption"]
