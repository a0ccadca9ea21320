"""A burst of real pages: the bot against bare Playwright, on the same schedule.

30 real-world article pages (benchmarks/realpages.py) sent by three users, one message
each 0.3 s apart, round robin. The bot captures two at a time (CAPTURE_CONCURRENCY=2,
its default) with its default 8 s load budget and Telegram pacing (burst 3, then 1 a
second per chat), summaries off. The yardstick: bare Playwright on a warm browser, each
URL released on the same schedule, two at a time, a fresh page each, `goto` until the
load event or the same 8 s budget, then (past it) `window.stop()` and the shot.

Where the bot's time goes is measured per page by wrapping its own functions from here
(nothing in the bot is changed for it): waiting to be claimed, waiting for a browser
slot, opening the page, the settle wait, consent handling, the shot, reading the page
(meta, HTML), storing, and sending the photo (pacing included), plus text extraction,
which runs beside the photo. `wait_for_page`: from the browser slot to the page being
opened (the spare page taken, or still being made).
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from benchmarks.common import summary
from bot.browser.binary import find_chromium
from tests.fakes.botapi import FakeBotAPI

GAP = 0.3
USERS = (900, 901, 902)
BUDGET = 8.0
CONCURRENCY = 2


def _summary(values: list[float]) -> dict[str, float]:
    return summary(values, 3)


@asynccontextmanager
async def warm_chromium(url: str) -> AsyncIterator[Browser]:
    """The bot's Chromium under bare Playwright, having loaded `url` once."""
    executable = find_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable)
        warm = await browser.new_page()
        await warm.goto(url)
        await warm.close()
        yield browser
        await browser.close()


async def shoot(page: Page, url: str) -> None:
    """A capture's work, bare: `url` loaded within the budget (else stopped), a JPEG."""
    try:
        await page.goto(url, wait_until="load", timeout=BUDGET * 1000)
    except PlaywrightTimeout:
        await page.evaluate("() => window.stop()")
    await page.screenshot(type="jpeg", quality=80)


@dataclass
class Paced:
    """Seconds, one value a URL, in the order the shots finished."""

    done: list[float] = field(default_factory=list)  # from the burst's start
    latency: list[float] = field(default_factory=list)  # from the URL's release (slot wait too)
    work: list[float] = field(default_factory=list)  # from the URL's slot


async def paced(urls: list[str], work: Callable[[str], Awaitable[None]]) -> Paced:
    """`work` on each URL, released GAP apart as a user's burst, CONCURRENCY at a time."""
    slots = asyncio.Semaphore(CONCURRENCY)
    start = time.monotonic()
    out = Paced()

    async def one(i: int, url: str) -> None:
        await asyncio.sleep(max(0.0, start + i * GAP - time.monotonic()))
        released = time.monotonic()
        async with slots:
            began = time.monotonic()
            await work(url)
            out.work.append(time.monotonic() - began)
        out.done.append(time.monotonic() - start)
        out.latency.append(time.monotonic() - released)

    await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
    return out


async def bare(urls: list[str]) -> dict[str, Any]:
    """Bare Playwright: the same releases, two at a time, the same budget."""
    async with warm_chromium(urls[0]) as browser:

        async def work(url: str) -> None:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await shoot(page, url)
            await page.close()

        burst = await paced(urls, work)
    return {"last_s": round(max(burst.done), 2), "release_to_shot": _summary(burst.latency)}


class Phases:
    """Seconds per phase per URL, from wrappers around the bot's own functions."""

    def __init__(self) -> None:
        self.spans: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.marks: dict[str, dict[str, float]] = defaultdict(dict)
        self._undo: list[tuple[object, str, object]] = []

    def add(self, url: str, phase: str, seconds: float) -> None:
        self.spans[_key(url)][phase] += seconds

    def mark(self, url: str, name: str) -> None:
        self.marks[_key(url)].setdefault(name, time.monotonic())

    def wrap(self, owner: object, name: str, phase: str, url_of: Callable[..., str]) -> None:
        original = getattr(owner, name)
        self._undo.append((owner, name, original))
        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                began = time.monotonic()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.add(url_of(*args, **kwargs), phase, time.monotonic() - began)

            setattr(owner, name, timed)
        else:

            @functools.wraps(original)
            def timed_sync(*args: Any, **kwargs: Any) -> Any:
                began = time.monotonic()
                try:
                    return original(*args, **kwargs)
                finally:
                    self.add(url_of(*args, **kwargs), phase, time.monotonic() - began)

            setattr(owner, name, timed_sync)

    def mark_on(self, owner: object, name: str, mark: str, url_of: Callable[..., str]) -> None:
        original = getattr(owner, name)
        self._undo.append((owner, name, original))

        @functools.wraps(original)
        async def marked(*args: Any, **kwargs: Any) -> Any:
            self.mark(url_of(*args, **kwargs), mark)
            return await original(*args, **kwargs)

        setattr(owner, name, marked)

    def undo(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def _key(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 1)[-1]


def instrument() -> Phases:
    """Wrap the stages' functions; `Phases.undo()` puts them back."""
    from bot.browser import budget, shot
    from bot.browser.capture import Capturer
    from bot.browser.visit import Navigator
    from bot.pipeline import capturing, worker

    phases = Phases()
    phases.mark_on(worker, "capture", "claimed", lambda p, bot, record, **k: record.url)
    phases.mark_on(Capturer, "_in_browser", "slot", lambda self, url, *a: url)
    phases.mark_on(Navigator, "open", "page", lambda self, url, *a: url)
    phases.wrap(Navigator, "open", "open+settle", lambda self, url, *a: url)
    phases.wrap(budget, "settle", "settle", lambda page, *a: page.url)
    phases.wrap(Navigator, "dismiss_consent", "consent", lambda self, visit: visit.url)
    phases.wrap(shot, "_shot", "shot", lambda page: page.url)
    phases.wrap(Capturer, "_snapshot", "consent+shot+read", lambda self, visit: visit.url)
    phases.wrap(Capturer, "read_text", "text", lambda self, snap, html: snap.url)
    phases.wrap(capturing, "_save_shot", "store_shot", lambda p, record, snap: record.url)
    phases.wrap(capturing, "_save", "store_capture", lambda p, record, *a: record.url)
    phases.wrap(capturing, "deliver_fresh", "photo", lambda p, bot, record, *a, **k: record.url)
    phases.wrap(worker, "summarize", "after_photo", lambda p, bot, record, *a: record.url)
    phases.wrap(worker, "finish", "reaction", lambda p, bot, record: record.url)
    phases.wrap(worker.Worker, "_capture", "capture_stage", lambda self, record, *a: record.url)
    return phases


async def through_bot(api: FakeBotAPI, urls: list[str]) -> dict[str, Any]:
    """The bot already runs against `api`; send the burst and wait for every photo."""
    phases = instrument()
    try:
        start = time.monotonic()
        sent: dict[tuple[int, int], tuple[str, float]] = {}  # (chat, message) → (url, at)
        for i, url in enumerate(urls):
            await asyncio.sleep(max(0.0, start + i * GAP - time.monotonic()))
            message = api.send_message(USERS[i % len(USERS)], url)
            sent[message["chat"]["id"], message["message_id"]] = (url, time.monotonic())
        photos: dict[str, float] = {}
        refused: dict[str, str] = {}  # url → the bot's reply instead of a photo
        deadline = time.monotonic() + 400
        while len(photos) + len(refused) < len(urls) and time.monotonic() < deadline:
            for call in api.calls:
                to = (call.params.get("reply_parameters") or {}).get("message_id")
                reply = (call.params.get("chat_id"), to)
                if reply not in sent or not call.ok:
                    continue
                if call.method in {"sendPhoto", "sendDocument"}:
                    photos.setdefault(sent[reply][0], call.at)
                elif call.method == "sendMessage":
                    refused.setdefault(sent[reply][0], str(call.params.get("text"))[:160])
            await asyncio.sleep(0.05)
        failed = [u for u in urls if u not in photos]
        latency = [photos[u] - at for u, at in sent.values() if u in photos]
        result: dict[str, Any] = {
            "last_s": round(max(photos.values()) - start, 2) if photos else None,
            "update_to_photo": _summary(latency) if latency else {},
            "without_photo": {_key(u): refused.get(u, "no reply") for u in failed},
            "phases_p50": _phase_table(phases, sent, photos),
            "timeline": _timeline(phases, sent, photos, start),
        }
        return result
    finally:
        phases.undo()


def _phase_table(
    phases: Phases, sent: dict[tuple[int, int], tuple[str, float]], photos: dict[str, float]
) -> dict[str, float]:
    """Median seconds per phase over the pages, and the waits between marks."""
    table: dict[str, list[float]] = defaultdict(list)
    for url, at in sent.values():
        key = _key(url)
        marks = phases.marks.get(key, {})
        if "claimed" in marks:
            table["wait_for_claim"].append(marks["claimed"] - at)
        if "claimed" in marks and "slot" in marks:
            table["wait_for_browser_slot"].append(marks["slot"] - marks["claimed"])
        if "slot" in marks and "page" in marks:  # the spare page taken, or one made
            table["wait_for_page"].append(marks["page"] - marks["slot"])
        for phase, seconds in phases.spans.get(key, {}).items():
            table[phase].append(seconds)
    return {phase: round(statistics.median(v), 3) for phase, v in sorted(table.items())}


def _timeline(
    phases: Phases,
    sent: dict[tuple[int, int], tuple[str, float]],
    photos: dict[str, float],
    start: float,
) -> list[str]:
    """One line per page in sending order: sent, claimed, browser slot, photo (seconds
    from the first message), then its phases."""
    lines = []
    for url, at in sent.values():
        key = _key(url)
        marks = phases.marks.get(key, {})
        when = [at, marks.get("claimed"), marks.get("slot"), photos.get(url)]
        stamps = " ".join("-" if t is None else f"{t - start:6.2f}" for t in when)
        spans = " ".join(f"{k}={v:.2f}" for k, v in sorted(phases.spans.get(key, {}).items()))
        lines.append(f"{key[:28]:28} {stamps} | {spans}")
    return lines


def ratio(bot: dict[str, Any], yardstick: dict[str, Any]) -> float | None:
    """Bare Playwright's last shot over the bot's last photo (1.0 or more: as fast)."""
    if not bot.get("last_s"):
        return None
    return round(yardstick["last_s"] / bot["last_s"], 3)


Runner = Callable[[], Awaitable[dict[str, Any]]]


async def quietly(run: Runner) -> dict[str, Any]:
    try:
        return await run()
    except PlaywrightError as exc:
        return {"error": exc.message.splitlines()[0]}
