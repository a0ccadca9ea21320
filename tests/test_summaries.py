"""Streaming summaries through the real Application, the Bot API fake and the OpenAI fake."""

from __future__ import annotations

import itertools
import re
from typing import Any

from storage.models import Status
from tests.fakes.botapi import Call
from tests.fakes.openai_server import FakeOpenAI, Script
from tests.harness import BotHarness

EDITS = {"editMessageCaption", "editMessageText"}
FAST = {"summary_stall_timeout": "1.5", "summary_first_token_timeout": "3"}


async def start_bot(harness_factory: Any, llm: FakeOpenAI, **env: str) -> BotHarness:
    bot: BotHarness = await harness_factory(
        openai_api_key="sk-test", openai_base_url=llm.base_url, **FAST, **env
    )
    bot.llm = llm
    return bot


def summary_of(text: str) -> str:
    """The summary part of a caption or message (after the heading line)."""
    _, _, rest = text.partition("Summary\n")
    return rest


def edits_in(bot: BotHarness, chat_id: int) -> list[Call]:
    return [c for c in bot.api.calls if c.method in EDITS and c.params.get("chat_id") == chat_id]


def words(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i} " for i in range(n)]


async def test_sixty_chunks_over_six_seconds_private(harness_factory: Any, llm: FakeOpenAI) -> None:
    bot = await start_bot(harness_factory, llm)
    chunks = words(60)
    llm.enqueue(Script(chunks=chunks, interval=0.1))
    sent = bot.send(42, bot.pages.url("/article/stream"))
    assert await bot.finished(sent, timeout=60) == "👌"
    [photo] = bot.photos_for(sent)
    edits = [c for c in edits_in(bot, 42) if c.ok]
    assert 2 <= len(edits) <= 8, len(edits)
    texts = [summary_of(c.result["caption"]) for c in edits]
    for earlier, later in itertools.pairwise(texts):
        assert later.startswith(earlier.rstrip())
    final = bot.api.message_text(42, photo.result["message_id"]) or ""
    assert summary_of(final) == "".join(chunks).strip()
    assert not bot.api.flood_violations
    [record] = await bot.records(42)
    assert record.status == Status.DONE and record.summary == "".join(chunks)
    assert record.llm is not None and record.llm.completion_tokens == 60
    assert record.llm.prompt_tokens is not None and record.llm.prompt_tokens > 0
    assert record.llm.model == llm.requests[-1]["body"]["model"]


async def test_group_pace_and_retry_after(harness_factory: Any, llm: FakeOpenAI) -> None:
    bot = await start_bot(harness_factory, llm)
    group = -100777
    chunks = words(60, "g")
    llm.enqueue(Script(chunks=chunks, interval=0.1))
    sent = bot.send(42, bot.pages.url("/article/group"), chat_id=group, chat_type="group")
    photo = await bot.api.wait_for(lambda c: c.method == "sendPhoto" and c.ok, timeout=30)
    first_edit = await bot.api.wait_for(
        lambda c: c.method in EDITS and c.params.get("chat_id") == group, timeout=30
    )
    bot.api.inject_retry_after(group, 3)
    assert await bot.finished(sent, timeout=60) == "👌"
    edits = [c for c in edits_in(bot, group) if c.ok]
    gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
    assert all(g >= 2.5 for g in gaps), gaps
    limited = [c for c in bot.api.calls if c.error_code == 429]
    assert limited, "the injected 429 was never hit"
    after = [c for c in bot.api.calls if c.params.get("chat_id") == group and c.at > limited[0].at]
    assert all(c.at - limited[0].at >= 3 for c in after)
    assert not bot.api.flood_violations
    final = bot.api.message_text(group, photo.result["message_id"]) or ""
    assert summary_of(final) == "".join(chunks).strip()
    assert first_edit.at > photo.at


async def test_long_summary_continues_in_text_messages(
    harness_factory: Any, llm: FakeOpenAI
) -> None:
    bot = await start_bot(harness_factory, llm)
    chunks = [f"sentence number {i} is here to make the summary long. " for i in range(110)]
    llm.enqueue(Script(chunks=chunks, interval=0.0))
    sent = bot.send(42, bot.pages.url("/article/long"))
    assert await bot.finished(sent, timeout=60) == "👌"
    [photo] = bot.photos_for(sent)
    texts = [c for c in bot.api.calls_of("sendMessage", ok_only=True) if c.params["chat_id"] == 42]
    assert len(texts) == 2, [len(c.result["text"]) for c in texts]
    first = bot.api.message_text(42, texts[0].result["message_id"]) or ""
    second = bot.api.message_text(42, texts[1].result["message_id"]) or ""
    assert texts[0].params["reply_parameters"]["message_id"] == photo.result["message_id"]
    assert len(first) <= 4096 and len(second) <= 4096
    joined = re.sub(r"\s+", " ", summary_of(first) + " " + second).strip()
    assert joined == re.sub(r"\s+", " ", "".join(chunks)).strip()
    caption = bot.api.message_text(42, photo.result["message_id"]) or ""
    assert "Summary" not in caption and len(caption) <= 1024


async def run_failure(
    harness_factory: Any, llm: FakeOpenAI, script: Script, reason: str, note: str
) -> None:
    bot = await start_bot(harness_factory, llm)
    llm.enqueue(script)
    sent = bot.send(42, bot.pages.url(f"/article/{reason}"))
    await bot.finished(sent, timeout=60)
    [photo] = bot.photos_for(sent)
    final = bot.api.message_text(42, photo.result["message_id"]) or ""
    assert note in final, final
    [record] = await bot.records(42)
    assert record.status == Status.SUMMARY_FAILED and record.summary_error == reason
    kept = "".join(script.chunks[: script.error_after or script.stall_after or 0])
    assert record.summary == kept
    if kept:
        assert kept.strip() in final


async def test_mid_stream_error_keeps_partial(harness_factory: Any, llm: FakeOpenAI) -> None:
    script = Script(chunks=words(20, "e"), interval=0.05, error_after=8)
    await run_failure(harness_factory, llm, script, "stream_error", "broke off mid-answer")


async def test_rate_limited_model(harness_factory: Any, llm: FakeOpenAI) -> None:
    script = Script(chunks=words(5), status=429, retry_after=20)
    await run_failure(harness_factory, llm, script, "rate_limited", "rate-limiting")


async def test_stall_mid_stream(harness_factory: Any, llm: FakeOpenAI) -> None:
    script = Script(chunks=words(20, "s"), interval=0.05, stall_after=6, stall_seconds=30)
    await run_failure(harness_factory, llm, script, "stalled", "stopped sending")


async def test_five_links_stream_to_their_own_messages(
    harness_factory: Any, llm: FakeOpenAI
) -> None:
    bot = await start_bot(harness_factory, llm)

    def respond(body: dict[str, Any]) -> Script:
        title = re.search(r"<title>(.*?)</title>", body["messages"][-1]["content"])
        name = title.group(1) if title else "?"
        return Script(
            chunks=[f"About {name}: "] + [f"{name} point {i}. " for i in range(12)], interval=0.05
        )

    llm.responder = respond
    urls = [bot.pages.url(f"/article/five{i}") for i in range(5)]
    sent = bot.send(42, " ".join(urls))
    assert await bot.finished(sent, timeout=90) == "👌"
    photos = bot.photos_for(sent)
    assert len(photos) == 5
    for photo in photos:
        title = photo.result["caption"].split("\n")[0]
        final = summary_of(bot.api.message_text(42, photo.result["message_id"]) or "")
        expected = f"About {title}: " + "".join(f"{title} point {i}. " for i in range(12))
        assert final == expected.strip()
    assert not bot.api.flood_violations


async def test_failed_summary_is_retried_in_place(harness_factory: Any, llm: FakeOpenAI) -> None:
    bot = await start_bot(harness_factory, llm, summary_retry_delay="2")
    llm.enqueue(Script(chunks=words(5), status=500))
    sent = bot.send(42, bot.pages.url("/article/retry"))
    await bot.finished(sent, timeout=60)
    [record] = await bot.records(42)
    assert record.status == Status.SUMMARY_FAILED and record.summary_error == "server_error"
    llm.enqueue(Script(chunks=["Second ", "time ", "lucky."]))
    # The worker claims it again once SUMMARY_RETRY_DELAY has passed.
    await bot.api.wait_until(lambda: len(llm.requests) == 2, timeout=30)
    await bot.api.wait_for(
        lambda c: c.method == "setMessageReaction" and "👌" in str(c.params), timeout=30
    )
    [record] = await bot.records(42)
    assert record.status == Status.DONE and record.summary == "Second time lucky."
    assert record.summary_attempts == 2
    [photo] = bot.photos_for(sent)
    final = bot.api.message_text(42, photo.result["message_id"]) or ""
    assert summary_of(final) == "Second time lucky." and "stopped" not in final


async def test_a_reply_held_up_on_its_way_does_not_bring_the_next_too_soon(
    bot: BotHarness,
) -> None:
    """Telegram counts a message when it arrives. The first of five quick answers reaches
    it half a second late (a loaded machine; here the fake holds it), while its burst is
    full and gains nothing: the bot's pace must not spend that half second again."""
    chat = 77
    bot.api.stall_arrival("sendMessage", 0.5)
    start = len(bot.api.calls)
    for _ in range(5):
        bot.send(chat, "/help")

    def answers() -> list[Any]:
        return [
            c
            for c in bot.api.calls[start:]
            if c.method == "sendMessage" and c.params.get("chat_id") == chat
        ]

    await bot.api.wait_until(lambda: sum(c.ok for c in answers()) == 5, timeout=60)
    assert [c.error_code for c in answers() if not c.ok] == []


async def test_a_summary_starts_when_its_capture_ends_not_at_the_idle_poll(
    harness_factory: Any, llm: FakeOpenAI, monkeypatch: Any
) -> None:
    """A capture that leaves its link a summary wakes a delivery slot as it ends: with the
    idle poll an hour away, the summary still follows the photo."""
    from bot.pipeline import worker

    monkeypatch.setattr(worker, "IDLE_POLL", 3600.0)
    bot = await start_bot(harness_factory, llm)
    llm.enqueue(Script(chunks=words(5, "s"), interval=0.05))
    sent = bot.send(42, bot.pages.url("/article/woken"))
    assert await bot.finished(sent, timeout=30) == "👌"
    [record] = await bot.records(42)
    assert record.status == Status.DONE and record.summary == "".join(words(5, "s"))
