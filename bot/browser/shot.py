"""The snapshot of an opened page: its screenshot, metadata and HTML, and later (off the
photo's path, from bot/browser/text_reader.py) its main text."""

from __future__ import annotations

import io

from PIL import Image
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bot.browser.errors import CaptureError, Failure
from bot.browser.linkfiles import LinkFiles, clean
from bot.browser.text_reader import PageText
from bot.browser.types import Snapshot, SnapshotKind
from bot.browser.visit import Navigator, Visit

SHOT_TIMEOUT = 15.0
MAX_HTML_CHARS = 3_000_000
MAX_TEXT_CHARS = 20_000
JPEG_QUALITY = 80

# The page's own metadata, and its HTML for the text reader. Read after the shot, from
# the page about to be closed: scripts (but JSON-LD, which has metadata), styles and
# comments are taken out of its DOM first, in the page, since the text reader ignores
# them. On the burst bench's real pages they are ~3/4 of the HTML, and moving it
# (renderer, driver, the bot, the reader) was the capture's largest cost after the shot
# (docs/BENCHMARKS.md). Removing nodes is linear and cannot be made to backtrack.
_READ_JS = """(limit) => {
  const m = (sel) => { const e = document.querySelector(sel); return e ? e.getAttribute('content') : null; };
  const meta = {
    title: document.title || m('meta[property="og:title"]'),
    description: m('meta[name="description"]') || m('meta[property="og:description"]'),
    site_name: m('meta[property="og:site_name"]'),
    lang: document.documentElement ? document.documentElement.getAttribute('lang') : null,
  };
  const root = document.documentElement;
  if (!root) return { ...meta, html: '' };
  for (const e of document.querySelectorAll('script:not([type="application/ld+json" i]), style')) e.remove();
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_COMMENT);
  const comments = [];
  while (walker.nextNode()) comments.push(walker.currentNode);
  for (const c of comments) c.remove();
  const doctype = document.doctype ? '<!DOCTYPE ' + document.doctype.name + '>' : '';
  return { ...meta, html: (doctype + root.outerHTML).slice(0, limit) };
}"""


async def page_snapshot(
    visit: Visit, navigator: Navigator, files: LinkFiles
) -> tuple[Snapshot, str]:
    """The link's snapshot and its page's HTML (a PDF or image link: its file's)."""
    if visit.kind is SnapshotKind.PDF:
        return await files.pdf(visit), ""
    if visit.kind is SnapshotKind.IMAGE:
        snap = await files.image(visit)
        if snap is not None:
            return snap, ""
        visit.kind = SnapshotKind.PAGE  # Chromium may still draw what Pillow cannot read
        await navigator.load(visit)
    await navigator.dismiss_consent(visit)
    visit.ready()
    page = visit.page
    image = await _shot(page)
    meta = await page.evaluate(_READ_JS, MAX_HTML_CHARS)
    width, height = Image.open(io.BytesIO(image)).size
    snap = Snapshot(
        url=visit.url,
        final_url=page.url,
        http_status=visit.response.status if visit.response is not None else None,
        image=image,
        width=width,
        height=height,
        title=clean(meta.get("title")),
        description=clean(meta.get("description")),
        site_name=clean(meta.get("site_name")),
        lang=clean(meta.get("lang")),
        partial=visit.partial,
    )
    html = meta.get("html")
    return snap, html if isinstance(html, str) else ""


async def _shot(page: Page) -> bytes:
    try:
        return await page.screenshot(
            type="jpeg", quality=JPEG_QUALITY, full_page=False, timeout=SHOT_TIMEOUT * 1000
        )
    except PlaywrightTimeout:
        raise CaptureError(Failure.TIMEOUT, "the page drew nothing to shoot") from None


def with_text(snap: Snapshot, found: PageText | None) -> Snapshot:
    """The snapshot with the page's main text, and any metadata its own tags lacked."""
    if found is None:
        return snap
    snap.text = (found.text or "")[:MAX_TEXT_CHARS]
    snap.title = snap.title or clean(found.title)
    snap.description = snap.description or clean(found.description)
    snap.site_name = snap.site_name or clean(found.site_name)
    snap.lang = snap.lang or clean(found.lang)
    return snap
