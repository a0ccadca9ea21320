"""/tags and /find over a seeded set; owners never see each other's links; restarts resume."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from bot.chat.callbacks import TagLinks, codec_for
from bot.chat.links import url_key
from bot.library import rotround
from storage.models import LinkRecord, Screenshot, Status
from tests.conftest import INDEX_DIR
from tests.harness import BotHarness
from tests.records import owned, seed_links

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def seed(
    bot: BotHarness, owner: int, n: int, tags: list[str], prefix: str
) -> list[LinkRecord]:
    records: list[LinkRecord] = []
    for i in range(n):
        url = f"https://{prefix}.example/{i}"
        record = owned(
            owner,
            url,
            tags=list(tags),
            title=f"{prefix} {i:02d}",
            status=Status.DONE,
            created_at=T0 + timedelta(minutes=len(records) + hash(prefix) % 1000),
            screenshot=Screenshot(1280, 800, file_id=None),
        )
        records.append(record)
    assert await seed_links(bot.store, records) == n  # through the storage code, as imports
    return records


async def command(bot: BotHarness, user: int, text: str, language: str = "en") -> dict:
    """Send a command; the bot's answer in that chat (the whole message: text, buttons)."""
    call = await bot.command(user, text, language)
    assert call.ok, call.description
    return call.result  # type: ignore[no-any-return]


async def test_tags_counts_most_used_first(bot: BotHarness) -> None:
    await seed(bot, 42, 5, ["a", "技术"], "x")
    await seed(bot, 42, 3, ["a", "b"], "y")
    await seed(bot, 42, 1, ["c"], "z")
    reply = await command(bot, 42, "/tags")
    lines = reply["text"].splitlines()[1:]
    assert lines == ["#a — 8", "#技术 — 5", "#b — 3", "#c — 1"]
    buttons = [b["callback_data"] for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    codec = codec_for(bot.settings.token)  # button data is signed for its owner
    assert [codec.decode(b, 42) for b in buttons[:2]] == [TagLinks("a"), TagLinks("技术")]


async def test_find_requires_all_tags_and_pages_cover_each_once(bot: BotHarness) -> None:
    both = await seed(bot, 42, 23, ["a", "b"], "both")
    await seed(bot, 42, 4, ["a"], "onlya")
    await seed(bot, 42, 4, ["b"], "onlyb")
    reply = await command(bot, 42, "/find #a #B")
    assert "23 found" in reply["text"]
    seen: list[str] = []
    page = reply
    for _ in range(3):
        seen += re.findall(r"both \d\d", page["text"])
        nav = (page.get("reply_markup") or {}).get("inline_keyboard", [[]])[0]
        forward = [b for b in nav if b["text"] == "▶"]
        if not forward:
            break
        before = len(bot.api.calls)
        bot.api.press_button(42, page, forward[0]["callback_data"])
        edit = await bot.api.wait_for(
            lambda c: c.method == "editMessageText" and c.ok, timeout=20, since=before
        )
        page = edit.result
    assert sorted(seen) == sorted(r.title for r in both if r.title)
    assert len(seen) == len(set(seen)) == 23
    newest_first = [r.title for r in sorted(both, key=lambda r: r.created_at, reverse=True)]
    assert seen == newest_first


async def test_find_with_cjk_tag_and_no_match(bot: BotHarness) -> None:
    await seed(bot, 42, 2, ["技术"], "cjk")
    reply = await command(bot, 42, "/find #技术", language="zh-hans")
    assert "共 2 个" in reply["text"] and "cjk 00" in reply["text"]
    none = await command(bot, 42, "/find #nothing")
    assert "No links match #nothing" in none["text"] and "/tags" in none["text"]


async def test_users_never_see_each_others_links(bot: BotHarness) -> None:
    mine = await seed(bot, 1, 12, ["secret"], "alice")
    await seed(bot, 2, 1, ["own"], "bob")
    tags = await command(bot, 2, "/tags")
    assert "secret" not in tags["text"] and "#own — 1" in tags["text"]
    found = await command(bot, 2, "/find #secret")
    assert "alice" not in found["text"]
    alice_page = await command(bot, 1, "/find #secret")
    forward = alice_page["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    before = len(bot.api.calls)
    bot.api.press_button(2, alice_page, forward)  # bob presses alice's ▶
    answer = await bot.api.wait_for(lambda c: c.method == "answerCallbackQuery", timeout=20)
    assert answer.params.get("text") == "That button has expired."
    bot.api.press_button(2, alice_page, f"r:{mine[0].id}")  # bob forges a recapture
    await bot.api.wait_for(
        lambda c: c.method == "answerCallbackQuery" and bot.api.calls.index(c) > before + 1,
        timeout=20,
    )
    edits = [c for c in bot.api.calls[before:] if c.method in {"editMessageText", "sendPhoto"}]
    assert edits == []


async def test_restart_finishes_pending_links(
    harness_factory: object, botapi: object, mongodb_uri: str, pages: object
) -> None:
    """Records a stopped bot left pending/capturing are captured at the next start."""
    from storage.repository import LinkStore

    user_message = botapi.send_message(42, "earlier message")  # type: ignore[attr-defined]
    store = LinkStore.connect(mongodb_uri, index_dir=INDEX_DIR)
    left = []
    for name, status in (("left1", Status.PENDING), ("left2", Status.CAPTURING)):
        url = pages.url(f"/article/{name}")  # type: ignore[attr-defined]
        record = LinkRecord(
            owner_id=42,
            chat_id=42,
            url=url,
            url_key=url_key(url),
            status=status,
            tags=["old"],
            source_message_id=user_message["message_id"],
        )
        left.append(record)
    assert await seed_links(store, left) == 2
    await store.close()
    bot: BotHarness = await harness_factory()  # type: ignore[operator]
    await bot.api.wait_until(
        lambda: len(bot.api.calls_of("sendPhoto", ok_only=True)) == 2, timeout=40
    )
    assert await bot.finished(user_message) == "👌"
    for record in left:
        for _ in range(100):
            stored = await bot.store.get(42, record.id)
            if stored is not None and stored.status == Status.DONE:
                break
            await asyncio.sleep(0.1)
        assert stored is not None and stored.status == Status.DONE
        assert stored.title == f"Article {record.url.rsplit('/', 1)[1]}"
        assert stored.screenshot is not None and stored.screenshot.file_id


async def test_help_in_both_languages(bot: BotHarness) -> None:
    english = await command(bot, 51, "/help")
    assert "How to use linksnap" in english["text"] and "up to 10 links" in english["text"]
    chinese = await command(bot, 52, "/help", language="zh-TW")
    assert "使用说明" in chinese["text"]
    unknown = await command(bot, 53, "/bogus")
    assert "How to use linksnap" in unknown["text"]


async def test_find_by_words_in_english_and_chinese(bot: BotHarness) -> None:
    sent = bot.send(42, bot.pages.url("/zh") + " #读书 留着周末看")
    await bot.finished(sent)
    sent = bot.send(42, bot.pages.url("/article/words") + " #read")
    await bot.finished(sent)
    chinese = await command(bot, 42, "/find 快照", language="zh-hans")
    assert "中文测试页面" in chinese["text"] and "Article words" not in chinese["text"]
    note = await command(bot, 42, "/find #读书 周末")
    assert "中文测试页面" in note["text"]
    english = await command(bot, 42, "/find Snapshots TAGS")
    assert "Article words" in english["text"] and "中文测试页面" not in english["text"]


async def test_link_rot_check_marks_gone_links(bot: BotHarness) -> None:
    live = bot.send(42, bot.pages.url("/article/alive") + " #rot")
    await bot.finished(live)
    dead_url = bot.pages.url("/status/404")
    dead = bot.send(42, dead_url + " #rot")
    await bot.finished(dead)
    services = bot.services
    assert await rotround.check_due(services.store, services.pipeline.guard, max_age=0) == 2
    by_url = {r.url: r for r in await bot.records(42)}
    assert by_url[dead_url].alive is False and by_url[dead_url].checked_at is not None
    assert by_url[bot.pages.url("/article/alive")].alive is True
    found = await command(bot, 42, "/find #rot")
    gone_lines = [line for line in found["text"].splitlines() if "gone" in line]
    assert len(gone_lines) == 1 and "Error 404" in gone_lines[0]
