"""Every link gets its snapshot: bursts under Telegram's flood control, a killed process,
a database that goes away, and timers on a machine booted a moment ago.

The Bot API fake floods like Telegram (burst 3 then 1/s per private chat, 20/min per
group, 30/s overall) and the `botapi` fixture fails any test that made a call inside a
`retry_after` window.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from asyncio.subprocess import Process
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

import bot.services
from storage.models import Status
from storage.repository import LinkStore
from storage.writes import LinkWrites
from tests.conftest import base_env, free_port, settings_for, start_ferretdb
from tests.fakes.botapi import Call, FakeBotAPI
from tests.fakes.openai_server import FakeOpenAI, Script
from tests.fakes.pages import PageServer
from tests.harness import BotHarness
from tests.processes import all_done, bot_env, start

ROOT = Path(__file__).resolve().parent.parent
COUNTED = re.compile(r"^(send|edit|copy|forward)")


def summary_for(body: dict[str, Any]) -> Script:
    """A summary that names its page, streamed in 12 chunks, so each reply can be checked."""
    text = " ".join(str(m.get("content")) for m in body["messages"] if m.get("role") == "user")
    found = re.search(r"This is article ([\w-]+)\.", text)
    name = found.group(1) if found else "?"
    return Script(chunks=[f"About {name}:", *(f" point{i}" for i in range(11))], interval=0.08)


def expected_summary(name: str) -> str:
    return f"About {name}:" + "".join(f" point{i}" for i in range(11))


def counted_calls(api: FakeBotAPI, chat_id: int) -> list[Call]:
    return [
        c
        for c in api.calls
        if c.ok and c.params.get("chat_id") == chat_id and COUNTED.match(c.method)
    ]


def max_in_window(calls: list[Call], window: float) -> int:
    stamps = [c.at for c in calls]
    return max(
        (sum(1 for t in stamps[i:] if t - s < window) for i, s in enumerate(stamps)), default=0
    )


@pytest.mark.timeout(300)
async def test_burst_from_three_users_and_a_group(harness_factory: Any, llm: FakeOpenAI) -> None:
    llm.responder = summary_for
    bot: BotHarness = await harness_factory(openai_api_key="sk-test", openai_base_url=llm.base_url)
    sent: list[tuple[dict[str, Any], str]] = []
    for i in range(10):  # three users, ten links each, within three seconds
        for user in (101, 102, 103):
            name = f"u{user}-{i}"
            sent.append((bot.send(user, bot.pages.url(f"/article/{name}") + " #burst"), name))
            await asyncio.sleep(0.09)
    group = -100500
    for i in range(5):
        name = f"g-{i}"
        message = bot.send(104, bot.pages.url(f"/article/{name}"), chat_id=group, chat_type="group")
        sent.append((message, name))
    for message, _ in sent:
        assert await bot.finished(message, timeout=240) == "👌"

    for message, name in sent:
        [photo] = bot.photos_for(message)  # exactly one snapshot per link
        final = bot.api.message_text(message["chat"]["id"], photo.result["message_id"]) or ""
        assert final.endswith(expected_summary(name)), (name, final[-200:])
    assert [c for c in bot.api.calls if c.error_code == 429] == []  # paced ahead, never told
    for user in (101, 102, 103):
        calls = counted_calls(bot.api, user)
        assert max_in_window(calls, 10.0) <= 3 + 10  # burst 3, then 1 a second
    group_calls = counted_calls(bot.api, group)
    assert max_in_window(group_calls, 60.0) <= 20
    records = [r for user in (101, 102, 103, 104) for r in await bot.records(user)]
    assert len(records) == 35 and {r.status for r in records} == {Status.DONE}


@pytest.mark.timeout(120)
async def test_a_chats_pace_never_holds_the_browser(harness_factory: Any) -> None:
    """Past a chat's burst its photos wait for their turn, but the browser goes on to the
    next links meanwhile: a capture slot sends a photo itself only when the chat's turn
    is free, and otherwise leaves it to a delivery slot."""
    bot: BotHarness = await harness_factory(
        telegram_private_burst="1", telegram_private_per_second="0.02"
    )
    urls = [bot.pages.url(f"/article/pace-{i}") for i in range(4)]
    message = bot.send(205, " ".join(urls))
    opened = lambda: {p for p in bot.pages.hits if p.startswith("/article/pace-")}  # noqa: E731
    await bot.api.wait_until(lambda: len(opened()) == 4, timeout=120)
    # Two capture slots and the chat's next turn a good 50 s after its first photo: had
    # each slot waited for its photo's turn, the fourth page could not be open before the
    # second photo went out. (An order with a wide margin, not a race of seconds.)
    assert len(bot.photos_for(message)) <= 1
    await bot.api.wait_until(lambda: len(bot.photos_for(message)) == 1, timeout=60)


async def test_without_a_summary_a_link_is_done_by_its_captures_own_write(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Summaries off and its photo out: the capture's write marks the link done, with no
    stage and no write after it (each write is a journal entry and a few database
    commands a link: docs/BENCHMARKS.md). Four in all: recorded, its attempt counted,
    its photo acknowledged, its capture stored."""
    written: Counter[ObjectId] = Counter()
    announce = LinkWrites._announce

    async def counted(self: LinkWrites, link_id: ObjectId, *args: Any, **kwargs: Any) -> int:
        written[link_id] += 1
        return await announce(self, link_id, *args, **kwargs)

    monkeypatch.setattr(LinkWrites, "_announce", counted)
    message = bot.send(207, bot.pages.url("/article/one-write"))
    assert await bot.finished(message) == "👌"
    [record] = await bot.records(207)
    assert record.status == Status.DONE and len(bot.photos_for(message)) == 1
    assert written[record.id] == 4


@pytest.fixture
def env(botapi: FakeBotAPI, mongodb_uri: str) -> dict[str, str]:
    """`python -m bot`'s environment: this test's fakes and database."""
    return bot_env(botapi, mongodb_uri)


async def polling(env: dict[str, str], cwd: Path, botapi: FakeBotAPI) -> Process:
    """`python -m bot`, once it has asked Telegram for updates (killed if it never does)."""
    proc = await start(env, cwd)
    try:
        await botapi.wait_for(lambda c: c.method == "getUpdates", timeout=60)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc


@contextlib.asynccontextmanager
async def sigkilled(env: dict[str, str], cwd: Path, botapi: FakeBotAPI) -> AsyncIterator[Process]:
    """`python -m bot`, polling, SIGKILLed as the block ends (the block waits for the
    moment to kill it)."""
    proc = await polling(env, cwd, botapi)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


@pytest.mark.timeout(300)
async def test_sigkill_mid_burst_then_restart_delivers_every_photo_once(
    botapi: FakeBotAPI, env: dict[str, str], pages: PageServer, tmp_path: Path
) -> None:
    async with sigkilled(env, tmp_path, botapi):
        sent = [botapi.send_message(42, pages.url(f"/article/kill-{i}")) for i in range(20)]
        photos = lambda: botapi.calls_of("sendPhoto", 42, ok_only=True)  # noqa: E731
        await botapi.wait_until(lambda: len(photos()) >= 5, timeout=120)
    at_kill = len(photos())
    second = await start(env, tmp_path)
    try:
        await botapi.wait_until(
            lambda: (
                all(
                    any(
                        c.method == "sendPhoto"
                        and c.ok
                        and (c.params.get("reply_parameters") or {}).get("message_id")
                        == m["message_id"]
                        for c in botapi.calls
                    )
                    for m in sent
                )
                # and each message its closing reaction (a kill between a link's last write
                # and its reaction must not leave it at 👀)
                and closed(botapi, 42) >= {m["message_id"] for m in sent}
            ),
            timeout=180,
        )
        store_done = await all_done(env["MONGODB_URI"], [42], 20)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    per_link = Counter(
        (c.params.get("reply_parameters") or {}).get("message_id")
        for c in botapi.calls_of("sendPhoto", 42, ok_only=True)
    )
    assert set(per_link) == {m["message_id"] for m in sent}
    doubled = [mid for mid, n in per_link.items() if n > 1]
    # Only a send in flight at the instant of the kill may repeat: at most one per
    # capture slot (CAPTURE_CONCURRENCY defaults to 2).
    assert len(doubled) <= 2 and max(per_link.values()) <= 2, (at_kill, per_link)
    assert store_done
    assert second.returncode == 0


@pytest.mark.timeout(300)
async def test_sigkill_while_a_burst_of_messages_is_recorded_loses_none(
    botapi: FakeBotAPI, env: dict[str, str], pages: PageServer, tmp_path: Path
) -> None:
    """Ten messages at once from one user: each gets 👀 at once, and their links are
    written one after another. A kill in between must lose none: what the bot had not
    written it had not confirmed to Telegram either, so the next start is sent it again,
    takes it although it was seen before, and answers every message."""
    async with sigkilled(env, tmp_path, botapi):
        sent = [botapi.send_message(45, pages.url(f"/article/intake-{i}")) for i in range(10)]
        await botapi.wait_until(
            lambda: bool(botapi.calls_of("setMessageReaction", 45, ok_only=True)), timeout=60
        )
    written = await links_of(env["MONGODB_URI"], 45)
    assert written < len(sent)  # the kill came while they were being written
    second = await start(env, tmp_path)
    try:
        ids = {m["message_id"] for m in sent}
        photos = lambda: botapi.calls_of("sendPhoto", 45, ok_only=True)  # noqa: E731
        await botapi.wait_until(lambda: set(replied_to(photos())) == ids, timeout=180)
        store_done = await all_done(env["MONGODB_URI"], [45], len(sent))
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    assert store_done  # each link once, each done
    per_link = Counter(replied_to(photos()))
    assert sum(n - 1 for n in per_link.values()) <= 2, (written, per_link)


@pytest.mark.timeout(300)
async def test_sigkill_while_failures_wait_to_be_told_then_restart_tells_each(
    botapi: FakeBotAPI, env: dict[str, str], tmp_path: Path
) -> None:
    """Links that fail at once are ended before the user is told: their replies wait in
    the chat's pace (1 a second after a burst of 3). A kill then must not leave a message
    silent for good: the next start tells each failure and closes each message (🤷)."""
    refused = free_port()  # nothing listens there: each link fails in moments
    async with sigkilled(env, tmp_path, botapi):
        sent = [botapi.send_message(44, f"http://127.0.0.1:{refused}/gone-{i}") for i in range(10)]
        await botapi.wait_until(lambda: len(told(botapi, 44)) >= 3, timeout=120)
        await recorded(env["MONGODB_URI"], 44, len(sent))
    at_kill = len(told(botapi, 44))
    assert at_kill < len(sent)  # the rest were still waiting for the chat's turn
    second = await start(env, tmp_path)
    try:
        ids = {m["message_id"] for m in sent}
        await botapi.wait_until(
            lambda: set(replied_to(told(botapi, 44))) == ids and closed(botapi, 44) >= ids,
            timeout=180,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    per_link = Counter(replied_to(told(botapi, 44)))
    # Only a reply in flight at the instant of the kill may repeat: one a capture slot.
    assert sum(n - 1 for n in per_link.values()) <= 2, (at_kill, per_link)


@pytest.mark.timeout(300)
async def test_sigterm_while_a_failure_line_waits_out_a_429_then_restart_tells_it(
    botapi: FakeBotAPI, env: dict[str, str], tmp_path: Path
) -> None:
    """A link fails at once, and Telegram answers its line with a 429 (wait 10 s), twice.
    The bot is stopped (SIGTERM) during the first wait: a stopping bot gives up a line
    Telegram refuses with a 429 (the first, if the stop came before the bot read it,
    else its try after the wait). The line must not be lost with it: the next start
    waits out the window the 429 set (a call inside it is a flood violation), tells the
    line once, and closes the message (🤷)."""
    refused = free_port()
    env = {**env, "SHUTDOWN_GRACE": "30"}  # the stop outlasts the wait: the try is made
    botapi.inject_retry_after(46, 10, methods={"sendMessage"}, times=2)
    first = await polling(env, tmp_path, botapi)
    try:
        sent = botapi.send_message(46, f"http://127.0.0.1:{refused}/gone")
        await botapi.wait_for(
            lambda c: c.method == "sendMessage" and c.error_code == 429, timeout=60
        )
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), 60)
    assert not told(botapi, 46)
    second = await start(env, tmp_path)
    try:
        await botapi.wait_until(
            lambda: bool(told(botapi, 46)) and sent["message_id"] in closed(botapi, 46),
            timeout=120,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    assert replied_to(told(botapi, 46)) == [sent["message_id"]]
    refusals = [c for c in botapi.calls_of("sendMessage", 46) if c.error_code == 429]
    assert len(refusals) == 2


async def links_of(uri: str, owner: int) -> int:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        return await client.get_default_database()["links"].count_documents({"owner_id": owner})
    finally:
        await client.close()


async def recorded(uri: str, owner: int, count: int) -> None:
    """Until `count` links of `owner` are in the database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        links = client.get_default_database()["links"]
        for _ in range(1200):  # a minute at most
            if await links.count_documents({"owner_id": owner}) >= count:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{count} links of {owner} not recorded")
    finally:
        await client.close()


def told(api: FakeBotAPI, chat_id: int) -> list[Call]:
    return [
        c
        for c in api.calls_of("sendMessage", chat_id, ok_only=True)
        if "Couldn't capture" in c.params.get("text", "")
    ]


def replied_to(calls: list[Call]) -> list[int | None]:
    return [(c.params.get("reply_parameters") or {}).get("message_id") for c in calls]


def closed(api: FakeBotAPI, chat_id: int) -> set[int]:
    """Messages given a closing reaction (👌 or 🤷)."""
    return {
        c.params["message_id"]
        for c in api.calls_of("setMessageReaction", chat_id, ok_only=True)
        if c.params["reaction"] and c.params["reaction"][0]["emoji"] in {"👌", "🤷"}
    }


@pytest.mark.timeout(300)
async def test_sigterm_finishes_what_is_in_flight_and_leaves_the_rest_recorded(
    botapi: FakeBotAPI, env: dict[str, str], pages: PageServer, tmp_path: Path
) -> None:
    first = await polling(env, tmp_path, botapi)
    sent = [botapi.send_message(42, pages.url(f"/article/term-{i}")) for i in range(12)]
    await botapi.wait_until(lambda: bool(botapi.calls_of("sendPhoto", 42, ok_only=True)), 60)
    first.send_signal(signal.SIGTERM)
    await asyncio.wait_for(first.wait(), 60)
    assert first.returncode == 0  # it stopped by itself (the 60 s wait is only a guard)
    delivered = len(botapi.calls_of("sendPhoto", 42, ok_only=True))
    assert delivered < 12  # some links were left for the next start
    second = await start(env, tmp_path)
    try:
        done = await all_done(env["MONGODB_URI"], [42], 12, timeout=120)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    assert done
    per_link = Counter(
        (c.params.get("reply_parameters") or {}).get("message_id")
        for c in botapi.calls_of("sendPhoto", 42, ok_only=True)
    )
    assert per_link == {m["message_id"]: 1 for m in sent}  # a clean stop repeats nothing


@pytest.mark.timeout(300)
async def test_database_gone_during_a_burst_loses_nothing(
    botapi: FakeBotAPI, pages: PageServer, capturer: Any, tmp_path: Path
) -> None:
    data = tmp_path / "db"
    data.mkdir()
    proc, uri = start_ferretdb(data)
    port = uri.rsplit(":", 1)[1]
    env = base_env(botapi.root, f"{uri}/outage")
    harness = BotHarness(botapi, settings_for(env), pages, capturer)
    await harness.start()
    try:
        sent = [harness.send(42, pages.url(f"/article/outage-{i}")) for i in range(4)]
        for _ in range(600):  # the first four are recorded before the database goes
            if await harness.store.links.count_documents({"owner_id": 42}) == 4:
                break
            await asyncio.sleep(0.1)
        proc.terminate()
        proc.wait(10)
        told = lambda: [  # noqa: E731
            c
            for c in botapi.calls_of("sendMessage", 42, ok_only=True)
            if "database is not answering" in c.params["text"]
        ]
        for i in range(4, 10):
            sent.append(harness.send(42, pages.url(f"/article/outage-{i}")))
        # The outage lasts until the bot has taken every message and told the user it is
        # holding on to them (signals, not a length of time).
        await botapi.wait_until(lambda: bool(told()) and botapi.updates_waiting == 0, 120)
        proc, again = start_ferretdb(data, port=int(port))
        assert again == uri
        try:
            for message in sent:
                assert await harness.finished(message, timeout=120) == "👌"
        except (AssertionError, TimeoutError):
            await _print_queue(harness)
            raise
        for message in sent:
            assert len(harness.photos_for(message)) == 1
        texts = [c.params["text"] for c in botapi.calls_of("sendMessage", 42, ok_only=True)]
        assert any("database is not answering" in t for t in texts)
        records = await harness.records(42)
        assert len(records) == 10 and {r.status for r in records} == {Status.DONE}
    finally:
        await harness.stop()
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fresh_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot's clock reads as on a machine booted a second ago."""
    base = time.monotonic()
    monkeypatch.setattr(bot.services, "clock", lambda: time.monotonic() - base + 1.0)


async def test_stranger_is_told_once_on_a_fresh_machine(
    fresh_boot: None, harness_factory: Any
) -> None:
    harness: BotHarness = await harness_factory(allowed_users="1")
    sent = [harness.send(777, text) for text in ("hello", "https://example.com/page", "/find #x")]
    await harness.handled(*sent)  # every one of them went through the gate
    replies = harness.api.calls_of("sendMessage", 777, ok_only=True)
    assert len(replies) == 1 and "private bot" in replies[0].params["text"]


async def test_fast_sender_is_warned_in_the_first_minute(
    fresh_boot: None, harness_factory: Any
) -> None:
    harness: BotHarness = await harness_factory(user_rate_per_minute="2")
    sent = [harness.send(42, harness.pages.url(f"/article/fast-{i}")) for i in range(4)]
    await harness.finished(sent[0], timeout=60)
    await harness.api.wait_until(
        lambda: any(
            "sending quickly" in c.params.get("text", "")
            for c in harness.api.calls_of("sendMessage", 42, ok_only=True)
        ),
        timeout=20,
    )
    warnings = [
        c
        for c in harness.api.calls_of("sendMessage", 42, ok_only=True)
        if "sending quickly" in c.params.get("text", "")
    ]
    assert len(warnings) == 1  # once a minute, not once a message


async def _print_queue(harness: BotHarness) -> None:
    """Where each link stands; pytest shows it when the test failed."""
    db = harness.store.db
    for name in ("links", "work", "leases", "claims"):
        async for doc in db[name].find({}, {"text": 0, "screenshot": 0}):
            print(name, {k: doc.get(k) for k in list(doc)[:12]})


async def test_a_repeat_is_taken_only_from_a_poller_that_never_settled_it(
    mongodb_uri: str, tmp_path: Path
) -> None:
    """The repeat check behind the kill test above, one case at a time."""
    store = LinkStore.connect(mongodb_uri, index_dir=tmp_path)
    try:
        assert await store.first_delivery(1, "dead")  # taken, then the poller died
        assert not await store.first_delivery(1, "dead")  # the same poller: a repeat
        assert await store.first_delivery(1, "next")  # sent again after the kill: taken
        await store.settle_update(1)
        assert not await store.first_delivery(1, "third")  # settled: never twice
        assert await store.first_delivery(2, "")
        assert not await store.first_delivery(2, "")  # a webhook's retry: skipped
        assert not await store.first_delivery(2, "poller")  # nor taken by a poller
    finally:
        await store.close()
