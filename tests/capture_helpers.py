"""Shared by the capture tests: a capturer with small limits, pixels, a page's text held."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from bot.browser.binary import find_chromium
from bot.browser.capture import Capturer, Snapshot
from bot.browser.types import CaptureOptions
from bot.guard.netguard import NetGuard

SMALL = CaptureOptions(
    budget=2.0, consent=False, archive_max_bytes=100_000, document_max_bytes=1_000
)


@pytest.fixture(scope="session")
async def small_capturer() -> AsyncIterator[Capturer]:
    """Its own Chromium: a 2 s budget, no consent rules, files capped at 100 kB, links' files at 1 kB."""
    capturer = Capturer(
        NetGuard(["127.0.0.1"]),
        executable=find_chromium(),
        timeout=8,
        options=SMALL,
    )
    await capturer.start()
    yield capturer
    await capturer.stop()


def rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def close(got: object, want: tuple[int, int, int], tolerance: int = 24) -> bool:
    assert isinstance(got, tuple)
    return all(abs(g - w) <= tolerance for g, w in zip(got, want, strict=False))


def share(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 30) -> float:
    """The fraction of the picture (sampled on a 160x100 grid) in `colour`."""
    small = image.resize((160, 100))
    hits = sum(
        1
        for y in range(small.height)
        for x in range(small.width)
        if close(small.getpixel((x, y)), colour, tolerance)
    )
    return hits / (small.width * small.height)


def hold_text_of(
    capturer: Capturer, monkeypatch: pytest.MonkeyPatch, path: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the first text extraction of the page at `path` (after its photo) until the
    second event is set; the first is set once it is held."""
    reading, release = asyncio.Event(), asyncio.Event()
    read_text = capturer.read_text

    async def held(snap: Snapshot, html: str) -> Any:
        if path in snap.url and not reading.is_set():
            reading.set()
            await release.wait()
        return await read_text(snap, html)

    monkeypatch.setattr(capturer, "read_text", held)
    return reading, release
