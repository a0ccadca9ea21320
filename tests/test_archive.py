"""Full page, PDF and single-file archive on demand (issue 13), through the same guard.

At the Capturer level through real Chromium and the egress proxy; pages on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.browser.capture import ArtifactKind, CaptureError, Capturer
from bot.browser.errors import FileTooLarge, NotAPage
from tests.capture_helpers import close, rgb, share, small_capturer
from tests.fakes.pages import BLOCKED_CSS_COLOUR, LAZY_IMAGES, LONG_BANDS, PageServer, Sentinel

__all__ = ["small_capturer"]  # a fixture, imported for pytest


async def test_full_page_has_the_lazy_images(capturer: Capturer, pages: PageServer) -> None:
    shot = await capturer.full_page(pages.url("/lazy"))
    assert shot.kind is ArtifactKind.FULL_PAGE and shot.mime_type == "image/jpeg"
    image = rgb(shot.data)
    assert image.height >= 6000
    for name, (colour, top) in LAZY_IMAGES.items():
        assert close(image.getpixel((300, top + 150)), colour), name


async def test_a_20000_px_page_comes_whole_as_a_document(
    capturer: Capturer, pages: PageServer
) -> None:
    shot = await capturer.full_page(pages.url("/long?height=20000"))
    image = rgb(shot.data)
    assert image.size == (1280, 20000) == (shot.width, shot.height)
    assert not shot.truncated and not shot.partial
    band = 20000 // len(LONG_BANDS)
    for i, colour in enumerate(LONG_BANDS):
        assert close(image.getpixel((640, i * band + band // 2)), colour), i
    # Too tall for a Telegram photo (width + height <= 10000): it goes as a document.
    assert image.width + image.height > 10_000
    assert shot.file_name.endswith(".jpg") and len(shot.data) < 50 * 1024 * 1024


async def test_a_taller_page_is_cut_at_the_limit(capturer: Capturer, pages: PageServer) -> None:
    limit = capturer.options.full_page_max_height
    shot = await capturer.full_page(pages.url("/long?height=50000"))
    assert shot.truncated and shot.height == limit
    assert close(rgb(shot.data).getpixel((640, 100)), LONG_BANDS[0])


async def test_the_printed_pdf_has_the_page_text(capturer: Capturer, pages: PageServer) -> None:
    printed = await capturer.pdf(pages.url("/article/printed"))
    assert printed.kind is ArtifactKind.PDF and printed.data.startswith(b"%PDF-")
    # pdftotext (Debian's poppler-utils, installed by scripts/setup.sh) reads it independently.
    done = await asyncio.to_thread(
        subprocess.run,
        ["pdftotext", "-", "-"],
        input=printed.data,
        capture_output=True,
        check=True,
        timeout=30,
    )
    text = done.stdout.decode()
    assert "This is article printed. It talks about snapshots and tags." in text


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_the_mhtml_shows_the_page_with_its_server_gone(
    capturer: Capturer, remote_capturer: Capturer, ui_browser: Any, where: str, tmp_path: Path
) -> None:
    """Made while the page's own server runs; opened in Chromium after it has stopped."""
    server = PageServer()  # its own server, so it can be stopped
    await server.start()
    try:
        chosen = capturer if where == "local" else remote_capturer
        archived = await chosen.mhtml(server.url("/lazy"))
    finally:
        await server.stop()
    assert archived.kind is ArtifactKind.MHTML and archived.file_name.endswith(".mhtml")
    folder = tmp_path
    (folder / "page.mhtml").write_bytes(archived.data)
    # The tests' own session Chromium (a user's browser), in a fresh context.
    context = await ui_browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = await context.new_page()
        await page.goto((folder / "page.mhtml").as_uri())
        assert "Scroll down for the pictures" in await page.inner_text("body")
        image = rgb(await page.screenshot(full_page=True))
    finally:
        await context.close()
    # The lazy pictures were scrolled in before archiving and travel inside the file.
    for name, (colour, top) in LAZY_IMAGES.items():
        assert close(image.getpixel((300, top + 150)), colour), name


async def test_files_are_made_only_of_pages(capturer: Capturer, pages: PageServer) -> None:
    for make in (capturer.full_page, capturer.pdf, capturer.mhtml):
        with pytest.raises(NotAPage):
            await make(pages.url("/report.pdf"))


async def test_files_go_through_the_same_guard(
    capturer: Capturer, pages: PageServer, sentinel: Sentinel
) -> None:
    for make in (capturer.full_page, capturer.pdf, capturer.mhtml):
        for url in (f"{sentinel.url}/direct", pages.url(f"/redirect?to={sentinel.url}/hop")):
            with pytest.raises(CaptureError) as caught:
                await make(url)
            assert caught.value.reason == "blocked", (make, url)
    assert sentinel.connections == 0  # every refusal above came before any connection


async def test_files_over_the_cap_are_refused(small_capturer: Capturer, pages: PageServer) -> None:
    limit = small_capturer.options.archive_max_bytes
    with pytest.raises(FileTooLarge) as caught:
        await small_capturer.full_page(pages.url("/long?height=20000"))
    assert caught.value.what == "full_page" and caught.value.limit == limit
    assert caught.value.size is not None and caught.value.size > limit


async def test_a_partial_page_still_gives_its_files(
    small_capturer: Capturer, pages: PageServer
) -> None:
    """The stylesheet that never arrives: the full page is made of what rendered, partial."""
    shot = await small_capturer.full_page(pages.url("/blocked-css"))
    assert shot.partial
    assert share(rgb(shot.data), BLOCKED_CSS_COLOUR) > 0.8
