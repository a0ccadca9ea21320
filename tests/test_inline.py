"""Inline mode through the real Application: `@bot words #tag` lists only the asker's links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from storage.models import LinkRecord, Screenshot, Status
from tests.harness import BotHarness
from tests.records import owned, seed_links

T0 = datetime(2026, 2, 1, tzinfo=UTC)


async def seed(
    bot: BotHarness, owner: int, titles: list[str], tags: list[str], *, photo: bool = True
) -> list[LinkRecord]:
    records = []
    for i, title in enumerate(titles):
        url = f"https://{owner}.example/{len(title)}/{i}"
        shot = None
        if photo:  # a screenshot Telegram holds, as after a real snapshot
            file_id = bot.api.stored_photo(f"{owner}-{title}-{i}".encode(), 1280, 800)
            shot = Screenshot(1280, 800, file_id=file_id)
        records.append(
            owned(
                owner,
                url,
                tags=tags,
                title=title,
                status=Status.DONE,
                screenshot=shot,
                created_at=T0 + timedelta(minutes=i),
            )
        )
    assert await seed_links(bot.store, records) == len(records)
    return records


async def ask(bot: BotHarness, user: int, query: str, offset: str = "") -> dict[str, Any]:
    query_id = bot.api.send_inline_query(user, query, offset=offset)
    await bot.api.wait_until(lambda: query_id in bot.api.inline_answers, timeout=20)
    return bot.api.inline_answers[query_id]


async def test_by_tag_only_the_askers_links_as_cached_photos(bot: BotHarness) -> None:
    mine = await seed(bot, 42, ["Rust book", "Rust async"], ["rust"])
    await seed(bot, 43, ["Someone else's Rust"], ["rust"])
    answer = await ask(bot, 42, "#rust")
    assert answer["is_personal"] is True
    results = answer["results"]
    assert {r["id"] for r in results} == {str(r.id) for r in mine}
    newest = results[0]
    assert newest["type"] == "photo" and newest["title"] == "Rust async"
    assert newest["photo_file_id"] == mine[1].screenshot.file_id  # type: ignore[union-attr]
    assert "#rust" in newest["description"] and "#rust" in newest["caption"]
    assert answer.get("next_offset", "") == ""


async def test_chinese_words_and_a_link_without_a_screenshot(bot: BotHarness) -> None:
    [shot] = await seed(bot, 42, ["网页快照入门"], ["读书"])
    [bare] = await seed(bot, 42, ["标签管理与快照"], [], photo=False)
    await seed(bot, 43, ["别人的网页快照"], ["读书"])
    answer = await ask(bot, 42, "快照")
    by_id = {r["id"]: r for r in answer["results"]}
    assert set(by_id) == {str(shot.id), str(bare.id)}
    assert by_id[str(bare.id)]["type"] == "article"
    assert "标签管理与快照" in by_id[str(bare.id)]["input_message_content"]["message_text"]
    both = await ask(bot, 42, "#读书 网页")
    assert [r["id"] for r in both["results"]] == [str(shot.id)]


async def test_paging_covers_each_link_once(bot: BotHarness) -> None:
    mine = await seed(bot, 42, [f"Page item {i:02d}" for i in range(45)], ["many"])
    seen: list[str] = []
    offset = ""
    for _ in range(5):
        answer = await ask(bot, 42, "#many", offset)
        seen += [r["id"] for r in answer["results"]]
        offset = answer.get("next_offset", "")
        if not offset:
            break
    assert len(seen) == len(set(seen)) == 45
    assert set(seen) == {str(r.id) for r in mine}


async def test_stranger_gets_nothing(harness_factory: Any) -> None:
    bot: BotHarness = await harness_factory(allowed_users="42")
    await seed(bot, 42, ["Private page"], ["secret"])
    await seed(bot, 43, ["Stranger page"], ["secret"])
    assert len((await ask(bot, 42, "#secret"))["results"]) == 1
    answer = await ask(bot, 43, "#secret")
    assert answer["results"] == []
    assert answer["is_personal"] is True
