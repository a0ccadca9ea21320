"""Tag suggestions: never a near-twin of a tag the user has; with and without a model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.chat.callbacks import AddTag, codec_for
from bot.i18n import texts_for
from bot.library.tagsuggest import (
    KNOWN_TAGS_FOR,
    TAGS_STALE_UP_TO,
    KnownTags,
    from_page,
    near_twins,
    parse_model_tags,
    resolve,
    snapshot_markup,
    suggest,
)
from bot.summarize import Summarizer
from storage.models import LinkRecord, Status
from storage.repository import LinkStore
from tests.fakes.openai_server import FakeOpenAI, Script, message_text
from tests.harness import BotHarness
from tests.records import owned, seed_links


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("js", "javascript"),
        ("AI", "ai"),
        ("ai", "artificial_intelligence"),
        ("ml", "machine_learning"),
        ("machine-learning", "MachineLearning"),
        ("tool", "tools"),
        ("k8s", "kubernetes"),
        ("postgres", "postgresql"),
        ("golang", "go"),
        ("javascirpt", "javascript"),  # a typo in a long word
        ("colour", "colours"),
        ("人工智能", "ai"),
        ("读书", "reading"),
        ("nlp", "natural_language_processing"),
        ("docs", "documentation"),
    ],
)
def test_near_twins(a: str, b: str) -> None:
    assert near_twins(a, b) and near_twins(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("java", "javascript"),
        ("python2", "python3"),
        ("go", "rust"),
        ("news", "new"),
        ("css", "cs"),
        ("ai", "api"),
        ("react", "redux"),
        ("读书", "读写"),
        ("ios", "io"),
    ],
)
def test_not_twins(a: str, b: str) -> None:
    assert not near_twins(a, b) and not near_twins(b, a)


@pytest.mark.parametrize(
    ("proposed", "existing", "on_link", "want"),
    [
        # A twin of the user's tag becomes their tag.
        (["js", "webdev"], ["javascript"], [], ["javascript", "webdev"]),
        (["AI", "Tools"], ["ai", "tool"], [], ["ai", "tool"]),
        (["machine learning"], ["ml"], [], ["ml"]),
        # Nothing the link has, nor a twin of it.
        (["javascript", "ai"], ["javascript"], ["js"], ["ai"]),
        (["#Rust", "rust", "RUST"], [], [], ["rust"]),
        # Two proposals that are twins of each other count once; at most three.
        (["k8s", "kubernetes", "a", "b", "c"], [], [], ["k8s", "a", "b"]),
        (["人工智能", "ai"], ["ai"], [], ["ai"]),
        (["", "#", "!!"], [], [], []),
    ],
)
def test_resolve(
    proposed: list[str], existing: list[str], on_link: list[str], want: list[str]
) -> None:
    got = resolve(proposed, existing, on_link)
    assert got == want
    for tag in got:  # the promise itself: no offered tag twins a tag the user has, unless it is it
        assert all(tag == e or not near_twins(tag, e) for e in existing)
        assert not any(near_twins(tag, t) for t in on_link)


def test_from_page_uses_own_tags_whose_words_appear() -> None:
    existing = ["python", "machine_learning", "机器学习", "cooking", "rust"]
    got = from_page(
        existing, ["rust"], "Python tips", None, "On machine learning and 机器学习 with Rust"
    )
    assert got == ["python", "machine_learning"]  # 机器学习 is machine_learning's twin
    assert from_page(existing, [], "菜谱", None, "") == []


def test_parse_model_tags() -> None:
    assert parse_model_tags("#rust #web-dev, #数据库") == ["rust", "web-dev", "数据库"]
    assert parse_model_tags("rust, go") == ["rust", "go"]


async def _user_with_tags(
    bot: BotHarness, owner: int, tags: dict[str, int], store: LinkStore | None = None
) -> None:
    """`owner`'s links with these tags, each tag on that many links, written through
    `store` (another process's; by default the harness's own)."""
    records = []
    for tag, count in tags.items():
        for i in range(count):
            url = f"https://{tag}.example/{i}"
            records.append(
                owned(
                    owner,
                    url,
                    tags=[tag],
                    status=Status.DONE,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            )
    await seed_links(store or bot.store, records)


def _page(owner: int, tags: list[str]) -> LinkRecord:
    url = "https://page.example/post"
    return owned(
        owner,
        url,
        tags=tags,
        title="Writing async JavaScript with AI helpers",
        text="A post about JavaScript, ai tools and reading lists.",
    )


async def test_model_proposals_mapped_onto_the_users_tags(bot: BotHarness, llm: FakeOpenAI) -> None:
    await _user_with_tags(bot, 42, {"javascript": 5, "ai": 3, "reading": 1})
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> Script:
        seen.append(body)
        return Script(chunks=["#JS #AI #webdev #javascript"])

    llm.responder = answer
    summarizer = Summarizer("sk-test", base_url=llm.base_url)
    try:
        got = await suggest(bot.store, summarizer, _page(42, ["reading"]), texts_for("en"))
        assert got == ["javascript", "ai", "webdev"]
        system = message_text(seen[0]["messages"][0]["content"])
        assert "#javascript #ai #reading" in system  # most used first, sent to the model
        assert "stream" not in seen[0]
        # The model fails: the page's words still find the user's own tags.
        llm.responder = None
        llm.enqueue(Script(chunks=[], status=500))
        got = await suggest(bot.store, summarizer, _page(42, ["ai"]), texts_for("en"))
        assert got == ["javascript", "reading"]
    finally:
        await summarizer.close()


async def test_without_a_model_own_tags_from_the_page(bot: BotHarness) -> None:
    await _user_with_tags(bot, 42, {"javascript": 2, "cooking": 4})
    got = await suggest(bot.store, None, _page(42, []), texts_for("zh-hans"))
    assert got == ["javascript"]


async def test_snapshot_markup_offers_suggestions_as_buttons(bot: BotHarness) -> None:
    await _user_with_tags(bot, 42, {"javascript": 2})
    record = _page(42, [])
    markup = await snapshot_markup(bot.settings.token, bot.store, None, record, texts_for("en"))
    rows = [[b.text for b in row] for row in markup.inline_keyboard]
    assert rows == [
        ["🏷 Tags", "🗑 Delete", "🔄 Capture again"],
        ["＋#javascript"],
        ["📄 Full page", "🖨 PDF", "🗄 Archive"],  # a web page's files (issue 13)
    ]
    data = markup.inline_keyboard[1][0].callback_data
    assert codec_for(bot.settings.token).decode(str(data), 42) == AddTag(record.id, "javascript")


# --- through the bot, with a model -----------------------------------------------------


def _labels(markup: dict[str, Any] | None) -> list[str]:
    return [b["text"] for row in (markup or {}).get("inline_keyboard", []) for b in row]


async def test_summary_brings_suggestions_keeps_buttons_and_a_retag_made_meanwhile(
    bot_llm: BotHarness,
) -> None:
    bot, llm = bot_llm, bot_llm.llm
    assert llm is not None
    await _user_with_tags(bot, 42, {"javascript": 5, "ai": 3})
    summary = [f"part{i} " for i in range(24)]

    def answer(body: dict[str, Any]) -> Script:
        if body.get("stream"):  # the summary, slow enough to retag the photo meanwhile
            return Script(chunks=summary, interval=0.2)
        return Script(chunks=["#JS #webdev"], prompt_tokens=50, completion_tokens=4)

    llm.responder = answer
    sent = bot.send(42, bot.pages.url("/article/suggested") + " #mine")
    first = await bot.api.wait_for(
        lambda c: c.method == "editMessageCaption" and c.ok and "part0" in c.params["caption"],
        timeout=45,
    )
    photo_id = first.params["message_id"]
    reply = bot.send(42, "#extra", reply_to_message_id=photo_id)
    assert await bot.finished(sent, timeout=60) == "👌"
    await bot.api.wait_for(
        lambda c: c.method == "setMessageReaction" and c.params["message_id"] == reply["message_id"]
    )
    [photo] = bot.photos_for(sent)
    assert {"🏷 Tags", "🗑 Delete", "🔄 Capture again"} <= set(_labels(photo.params["reply_markup"]))
    edits = [
        c
        for c in bot.api.calls
        if c.method == "editMessageCaption" and c.ok and c.params["message_id"] == photo_id
    ]
    assert len(edits) >= 3  # summary edits, the retag's, the final one
    for edit in edits:  # no edit ever drops the buttons
        assert "🗑 Delete" in _labels(edit.params.get("reply_markup")), edit.params
    final = bot.api.messages[(42, photo_id)]
    assert "#mine #extra" in final["caption"].splitlines()  # the retag outlived the summary
    assert "part23" in final["caption"]
    suggested = [t for t in _labels(final.get("reply_markup")) if t.startswith("＋")]
    assert suggested == ["＋#javascript", "＋#webdev"]  # #JS is the user's #javascript
    # The tag proposal's tokens count in /stats beside the summary's.
    record = next(r for r in await bot.records(42) if r.url.endswith("/suggested"))
    assert record.tags == ["mine", "extra"] and record.llm is not None
    assert record.llm.prompt_tokens is not None and record.llm.completion_tokens == 24
    start = len(bot.api.calls)
    bot.send(42, "/stats")
    stats = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and "LLM" in c.params["text"], since=start
    )
    want = f"{record.llm.model}: {record.llm.prompt_tokens + 50} prompt + {24 + 4} completion"
    assert want in stats.params["text"], stats.params["text"]


async def test_a_burst_reads_a_users_tags_once_and_a_new_tag_shows_after_a_while(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Suggestions for a burst of links come from one read of the user's tags; askers at
    the same time share it, a failed read is not kept, and a tag added (by another
    process: this one learns of it from the journal alone) shows once KNOWN_TAGS_FOR has
    passed and the listing index's last catch-up with the writes is older than
    TAGS_STALE_UP_TO (injected clocks; no upkeep runs), well inside the minute reads
    converge in."""
    uri = bot.settings.mongodb_uri.get_secret_value()
    store = LinkStore.connect(uri, index_path=tmp_path / "reader.sqlite", listing="index")
    other = LinkStore.connect(uri, index_path=tmp_path / "writer.sqlite", listing="index")
    await _user_with_tags(bot, 43, {"javascript": 2}, store=other)
    reads: list[int] = []
    real = store.tag_counts

    async def tag_counts(owner_id: int, limit: int, **how: float) -> Any:
        reads.append(owner_id)
        if len(reads) == 1:
            raise ConnectionError("the database went away")
        return await real(owner_id, limit, **how)

    monkeypatch.setattr(store, "tag_counts", tag_counts)
    now = [1000.0]
    known = KnownTags(clock=lambda: now[0])
    caught_up = [0.0]  # seconds since the reader's index last caught up with the writes
    monkeypatch.setattr(store.index, "clock", lambda: 1_800_000_000.0 + caught_up[0])
    try:
        await store.index.complete()  # the reader's index holds every owner
        with pytest.raises(ConnectionError):
            await known.of(store, 43)
        got = await asyncio.gather(*(known.of(store, 43) for _ in range(5)))
        assert got == [["javascript"]] * 5 and reads == [43, 43]
        await _user_with_tags(bot, 43, {"cooking": 3}, store=other)
        now[0] += KNOWN_TAGS_FOR - 1
        assert await known.of(store, 43) == ["javascript"] and len(reads) == 2
        now[0] += 2  # the cache's time is up; the index caught up less than TAGS_STALE_UP_TO ago
        caught_up[0] = TAGS_STALE_UP_TO - 1
        assert await known.of(store, 43) == ["javascript"] and len(reads) == 3
        now[0] += KNOWN_TAGS_FOR + 1
        caught_up[0] = TAGS_STALE_UP_TO + 1
        assert await known.of(store, 43) == ["cooking", "javascript"] and len(reads) == 4
    finally:
        await store.close()
        await other.close()
