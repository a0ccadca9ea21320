"""The getUpdates gate's bookkeeping (bot/chat/receipts.py), without Telegram: which
updates hold the next fetch, and which are marked settled in the database."""

from __future__ import annotations

import asyncio

import pytest

import bot.chat.receipts as receipts_module
from bot.chat.receipts import Receipts


def marking(receipts: Receipts) -> list[int]:
    """The updates `receipts` marks settled in the database, in order."""
    marked: list[int] = []

    async def mark(update_id: int) -> None:
        marked.append(update_id)

    receipts.keep_with(mark)
    return marked


async def test_the_next_fetch_waits_for_every_update_before_and_marks_held_ones() -> None:
    receipts = Receipts()
    marked = marking(receipts)
    receipts.fetched([1, 2, 3])
    receipts.take(2)  # the links handler's: settled when its links are written
    fetch = asyncio.ensure_future(receipts.settled())
    receipts.handled(1)  # a command, answered
    receipts.handled(3)
    receipts.handled(2)  # its handlers started; its links not written yet
    await asyncio.sleep(0)
    assert not fetch.done()  # the links handler's update holds the fetch
    receipts.settle(2)
    await asyncio.wait_for(fetch, 1)  # a positive signal: every one settled
    await asyncio.sleep(0)
    # 1 and 3 were settled while 2 still held the confirmation: marked, so a kill then
    # does not have them done twice. 2, the last, is confirmed by the fetch it let go.
    assert marked == [1, 3]
    assert not receipts.held(2) and not receipts.held(3)


async def test_updates_not_polled_here_are_left_alone() -> None:
    """Updates this process neither fetched nor was delivered neither hold nor are marked."""
    receipts = Receipts()
    marked = marking(receipts)
    receipts.take(7)
    receipts.handled(7)
    receipts.settle(7)
    await asyncio.wait_for(receipts.settled(), 1)
    assert marked == [] and not receipts.held(7)


async def test_an_update_waited_for_its_most_holds_no_later_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message whose links wait out a database outage holds the next fetch for
    SETTLE_AT_MOST; that fetch confirms it anyway, so it holds no fetch after."""
    monkeypatch.setattr(receipts_module, "SETTLE_AT_MOST", 0.05)
    receipts = Receipts()
    receipts.fetched([1])
    receipts.take(1)
    receipts.handled(1)
    await asyncio.wait_for(receipts.settled(), 5)  # waited its most, then let go
    receipts.fetched([2])
    receipts.handled(2)
    waited = asyncio.ensure_future(receipts.settled())
    await asyncio.sleep(0)
    assert waited.done()  # 1, still unsettled, no longer holds anything
    assert receipts.held(1)  # nor is it forgotten: its handler settles it later
    receipts.settle(1)


async def test_a_webhook_delivery_is_answered_once_settled_and_marked() -> None:
    """Its POST waits for its links (a kill before the answer: Telegram delivers it
    again) and for the mark that makes another front skip it; it holds no fetch."""
    receipts = Receipts()
    marked: list[int] = []
    marks_land = asyncio.Event()

    async def mark(update_id: int) -> None:
        await marks_land.wait()
        marked.append(update_id)

    receipts.keep_with(mark)
    receipts.delivered(5)
    receipts.take(5)
    answer = asyncio.ensure_future(receipts.answered(5))
    receipts.handled(5)  # its handlers started; its links not written yet
    await asyncio.wait_for(receipts.settled(), 1)  # it holds no fetch
    assert not answer.done() and receipts.held(5)
    receipts.settle(5)
    await asyncio.sleep(0)
    assert not answer.done()  # settled, not marked yet
    marks_land.set()
    await asyncio.wait_for(answer, 1)  # a positive signal: answered once marked
    assert marked == [5] and not receipts.held(5)


async def test_a_webhook_delivery_is_answered_after_its_most_and_marked_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message whose links wait out a database outage does not hold Telegram's POST
    beyond SETTLE_AT_MOST; settled later, it is still marked."""
    monkeypatch.setattr(receipts_module, "SETTLE_AT_MOST", 0.05)
    receipts = Receipts()
    marked = marking(receipts)
    receipts.delivered(6)
    receipts.take(6)
    await asyncio.wait_for(receipts.answered(6), 5)  # never settled: answered at its most
    assert receipts.held(6)  # still its handler's to settle (a repeat is let through)
    receipts.settle(6)
    await asyncio.sleep(0)
    assert marked == [6]
