"""Files made from a loaded page on demand: the full page, a PDF, a single-file archive.

Before any of them the page is scrolled through, one viewport at a time, so images that
load only when scrolled into view (`loading=lazy`, IntersectionObserver scripts) are
there; then it waits (bounded) for what that started to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import io

from PIL import Image
from playwright.async_api import BrowserContext, Page, Request
from playwright.async_api import Error as PlaywrightError

from bot.browser.budget import remaining
from bot.browser.types import Artifact, ArtifactKind

JPEG_QUALITY = 80
_POLL = 0.05
# Two animation frames per step let IntersectionObserver callbacks run and start loads.
_SCROLL_JS = """async ({ maxHeight, seconds }) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const end = performance.now() + seconds * 1000;
  const step = Math.max(200, window.innerHeight - 100);
  const height = () => Math.min(document.documentElement.scrollHeight, maxHeight);
  for (let y = step; y < height() + step && performance.now() < end; y += step) {
    window.scrollTo(0, y);
    await frame(); await frame();
  }
  window.scrollTo(0, 0);
  await frame();
  return document.documentElement.scrollHeight;
}"""
_IMAGES_DONE_JS = "() => Array.from(document.images).every((i) => i.complete)"


async def scroll_through(
    page: Page, inflight: set[Request], deadline: float, max_height: int
) -> None:
    """Scroll to the bottom (at most `max_height`) and back, then wait for the images."""
    seconds = max(0.1, remaining(deadline))
    with contextlib.suppress(PlaywrightError, TimeoutError):
        await asyncio.wait_for(
            page.evaluate(_SCROLL_JS, {"maxHeight": max_height, "seconds": seconds}),
            seconds + 2,
        )
    while remaining(deadline) > 0:
        try:
            done = await asyncio.wait_for(page.evaluate(_IMAGES_DONE_JS), 2)
        except (PlaywrightError, TimeoutError):
            return
        if done and not inflight:
            return
        await asyncio.sleep(_POLL)


async def full_page(page: Page, max_height: int) -> Artifact:
    """A JPEG of the whole page, cut at `max_height` px (Telegram takes it as a document)."""
    height = await page.evaluate(
        "() => Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)"
    )
    width = page.viewport_size["width"] if page.viewport_size else 1280
    truncated = int(height) > max_height
    clip = {"x": 0, "y": 0, "width": width, "height": min(int(height), max_height)}
    data = await page.screenshot(
        type="jpeg",
        quality=JPEG_QUALITY,
        full_page=True,
        clip=clip if truncated else None,  # type: ignore[arg-type]
        timeout=60_000,
    )
    shot_width, shot_height = Image.open(io.BytesIO(data)).size
    return Artifact(
        ArtifactKind.FULL_PAGE,
        data,
        "image/jpeg",
        "page.jpg",
        truncated=truncated,
        width=shot_width,
        height=shot_height,
    )


async def print_pdf(page: Page) -> Artifact:
    """Chromium's print to PDF, with backgrounds (A4)."""
    data = await page.pdf(format="A4", print_background=True)
    return Artifact(ArtifactKind.PDF, data, "application/pdf", "page.pdf")


async def mhtml(context: BrowserContext, page: Page) -> Artifact:
    """Chromium's single-file archive (MHTML) of the page as it stands, from its cache."""
    cdp = await context.new_cdp_session(page)
    try:
        result = await cdp.send("Page.captureSnapshot", {"format": "mhtml"})
    finally:
        with contextlib.suppress(PlaywrightError):
            await cdp.detach()
    data = str(result["data"]).encode("utf-8")
    return Artifact(ArtifactKind.MHTML, data, "multipart/related", "page.mhtml")
