"""A capture slot claims its next link once its page is shot (issue 19): storing, the
photo, the text and the reaction of the link before go on beside it, under that link's
lease, so a burst keeps the browser busy. A worker killed during such a tail leaves the
link to another worker, which finishes it without a second photo (the send ledger)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bot.browser import shot
from bot.browser.capture import Capturer
from bot.browser.visit import Navigator, Visit
from bot.pipeline.worker import Worker
from storage.models import Status
from tests.capture_helpers import hold_text_of
from tests.harness import BotHarness


async def test_a_slot_captures_the_next_link_while_the_last_is_stored(
    harness_factory: Any, capturer: Capturer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot: BotHarness = await harness_factory(capture_concurrency="1")  # one slot
    reading, release = hold_text_of(capturer, monkeypatch, "/article/tail-first")
    first = bot.send(61, bot.pages.url("/article/tail-first"))
    async with asyncio.timeout(45):
        await reading.wait()  # its photo is out; its text, save and reaction are not
    second = bot.send(62, bot.pages.url("/article/tail-second"))
    # The one slot shoots and sends the second link while the first is still held.
    await bot.api.wait_until(lambda: len(bot.photos_for(second)) == 1, timeout=45)
    (held,) = await bot.records(61)
    loaded = await bot.store.load(held.id)
    assert loaded is not None and loaded.status == Status.CAPTURING and not loaded.text
    assert "👌" not in {str(c.params.get("reaction")) for c in bot.replies_to(first)}
    release.set()
    assert await bot.finished(first) == "👌"
    assert await bot.finished(second) == "👌"
    assert len(bot.photos_for(first)) == 1 and len(bot.photos_for(second)) == 1
    loaded = await bot.store.load(held.id)
    assert loaded is not None and loaded.status == Status.DONE and loaded.text


@dataclass
class HeldPage:
    """A link's page held twice: once loaded (before consent handling), and once about
    to be shot. `go_on()` lets it on to the shot, `shoot()` lets the shot happen."""

    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    shooting: asyncio.Event = field(default_factory=asyncio.Event)
    consent_go: asyncio.Event = field(default_factory=asyncio.Event)
    shot_go: asyncio.Event = field(default_factory=asyncio.Event)
    page: Any = None  # Playwright's page, once it is about to be shot
    contexts_when_loaded: list[Any] = field(default_factory=list)  # the browser's, then


def hold_page(url: str, monkeypatch: pytest.MonkeyPatch) -> HeldPage:
    held = HeldPage()
    dismiss, real_shot = Navigator.dismiss_consent, shot._shot

    async def held_consent(self: Navigator, visit: Visit) -> None:
        if visit.url == url:
            browser = visit.page.context.browser
            held.contexts_when_loaded = list(browser.contexts) if browser is not None else []
            held.loaded.set()
            await held.consent_go.wait()
        await dismiss(self, visit)

    async def held_shot(page: Any) -> bytes:
        if page.url == url:
            held.page = page
            held.shooting.set()
            await held.shot_go.wait()
        return await real_shot(page)

    monkeypatch.setattr(Navigator, "dismiss_consent", held_consent)
    monkeypatch.setattr(shot, "_shot", held_shot)
    return held


async def _second_queued_while_first_is_shot(
    bot: BotHarness, held: HeldPage, first_url: str, second_url: str, users: tuple[int, int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first link's page loaded, the second link sent and queued (claimable once the
    first page is ready), then the first page let on to its shot, which stays held."""
    first = bot.send(users[0], first_url)
    async with asyncio.timeout(45):
        await held.loaded.wait()
    second = bot.send(users[1], second_url)
    await bot.wait_queued(users[1], second_url)
    held.consent_go.set()
    async with asyncio.timeout(45):
        await held.shooting.wait()
    return first, second


async def test_a_slot_claims_its_next_link_while_its_page_is_shot(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its next claim (a few database round trips) is in hand when its page is done: the
    one slot holds the second link's lease while the first page is still being shot,
    and opens the second page only after it."""
    bot: BotHarness = await harness_factory(capture_concurrency="1")
    first_url, second_url = bot.pages.url("/article/early-1"), bot.pages.url("/article/early-2")
    held = hold_page(first_url, monkeypatch)
    first, second = await _second_queued_while_first_is_shot(
        bot, held, first_url, second_url, (64, 65)
    )
    (record,) = await bot.records(65)
    queue = bot.store.queue
    async with asyncio.timeout(30):
        while not await queue.leases.find_one({"_id": record.id}):  # noqa: ASYNC110 (the database)
            await asyncio.sleep(0.02)
    assert bot.pages.hits.get("/article/early-2") is None  # the one page is still busy
    held.shot_go.set()
    assert await bot.finished(first) == "👌"
    assert await bot.finished(second) == "👌"
    assert len(bot.photos_for(first)) == 1 and len(bot.photos_for(second)) == 1


async def test_the_next_links_page_is_made_while_the_last_page_is_shot(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link already claimed for the one slot gets its page (a context and a blank page,
    the spare) while the page before is still being shot, not once that page is closed:
    in a burst each capture waited for it (docs/BENCHMARKS.md)."""
    bot: BotHarness = await harness_factory(capture_concurrency="1")
    first_url, second_url = bot.pages.url("/article/next-1"), bot.pages.url("/article/next-2")
    held = hold_page(first_url, monkeypatch)
    first, second = await _second_queued_while_first_is_shot(
        bot, held, first_url, second_url, (66, 67)
    )
    shooting_context = held.page.context
    browser = shooting_context.browser
    assert browser is not None
    before = set(held.contexts_when_loaded)

    def made_for_the_next() -> bool:
        """A context new since the first page loaded, with its one page still blank."""
        return any(
            c not in before
            and c is not shooting_context
            and [p.url for p in c.pages] == ["about:blank"]
            for c in browser.contexts
        )

    try:
        async with asyncio.timeout(30):
            while not made_for_the_next():  # noqa: ASYNC110 (Chromium's own state)
                await asyncio.sleep(0.02)
        assert bot.pages.hits.get("/article/next-2") is None  # made, not opened before its turn
    finally:
        held.shot_go.set()
    assert await bot.finished(first) == "👌"
    assert await bot.finished(second) == "👌"
    assert len(bot.photos_for(first)) == 1 and len(bot.photos_for(second)) == 1


async def test_a_worker_killed_during_a_tail_leaves_one_photo(
    harness_factory: Any, capturer: Capturer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot: BotHarness = await harness_factory(capture_concurrency="1")
    reading, release = hold_text_of(capturer, monkeypatch, "/article/tail-killed")
    sent = bot.send(63, bot.pages.url("/article/tail-killed"))
    async with asyncio.timeout(45):
        await reading.wait()  # photo sent and acknowledged; the tail is in flight
    doomed = bot.services.worker
    assert doomed is not None
    await kill(doomed, monkeypatch)
    # Another worker (its own connection to the database) takes the lease over once it
    # has run out, captures the link again and finishes it: the photo is not sent twice.
    taker = Worker(replace(doomed.p, store=bot.store), doomed.bot, capture_slots=1)
    taker.start()
    try:
        assert await bot.finished(sent, timeout=90) == "👌"
    finally:
        release.set()
        await taker.stop(10)
    assert len(bot.photos_for(sent)) == 1
    (record,) = await bot.records(63)
    loaded = await bot.store.load(record.id)
    assert loaded is not None and loaded.status == Status.DONE and loaded.text


async def kill(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    """What SIGKILL leaves: the worker does nothing more, and its leases are neither
    renewed nor released (they run out)."""
    queue = worker.p.store.queue

    async def nothing(*args: Any, **kwargs: Any) -> Any:
        return True

    monkeypatch.setattr(queue, "renew", nothing)
    monkeypatch.setattr(queue, "release", nothing)
    tasks = [*worker._tasks, *worker._running]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
