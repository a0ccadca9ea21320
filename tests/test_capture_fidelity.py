"""Snapshots worth keeping (issue 13): slow pages, consent banners, PDF and image links.

At the Capturer level through real Chromium and the egress proxy, pages on 127.0.0.1;
pixel checks on the JPEGs the capture returns (what the bot stores and sends).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from pathlib import Path

import pytest

from bot.browser.capture import CaptureError, Capturer, SnapshotKind
from bot.browser.consent import DEFAULT_RULES_DIR, PREHIDE_FILE, known_prehide, load_rules
from bot.browser.errors import DownloadRefused, FileTooLarge
from bot.browser.types import CaptureOptions
from bot.chat import render
from bot.i18n import texts_for
from storage.models import LinkRecord
from tests.capture_helpers import close, rgb, share, small_capturer
from tests.conftest import base_env, settings_for
from tests.fakes import cmp, documents
from tests.fakes.pages import BLOCKED_CSS_COLOUR, PageServer, Sentinel

__all__ = ["small_capturer"]  # a fixture, imported for pytest


async def test_a_stylesheet_that_never_arrives_gives_a_partial_shot(
    small_capturer: Capturer, pages: PageServer
) -> None:
    """Chromium paints nothing while a <head> stylesheet is pending; at the budget the
    capture stops the page and keeps what it drew, marked partial."""
    started = time.monotonic()
    snap = await small_capturer.capture(pages.url("/blocked-css"))
    elapsed = time.monotonic() - started
    print(f"blocked stylesheet: photo after {elapsed:.2f} s (budget 2 s)")
    assert snap.partial and snap.kind is SnapshotKind.PAGE
    # The stylesheet request never finished: the shot did not wait for it.
    assert pages.styles_pending >= 1
    image = rgb(snap.image)
    assert image.size == (1280, 800)
    assert share(image, BLOCKED_CSS_COLOUR) > 0.8
    assert snap.title == "Slow stylesheet"
    assert "Only its stylesheet never came" in snap.text


async def test_a_page_that_loads_is_not_partial(
    small_capturer: Capturer, pages: PageServer
) -> None:
    snap = await small_capturer.capture(pages.url("/colors"))
    assert not snap.partial
    assert close(rgb(snap.image).getpixel((320, 200)), (255, 0, 0))


async def test_nothing_drawn_is_still_a_failure(
    small_capturer: Capturer, pages: PageServer
) -> None:
    """A page whose HTML stops mid-<head> has nothing to show: the capture fails."""
    with pytest.raises(CaptureError) as caught:
        await small_capturer.capture(pages.url("/hang"))
    assert caught.value.reason == "timeout"


@pytest.mark.parametrize("platform", cmp.PLATFORMS)
async def test_consent_banners_are_gone_from_the_shot(
    capturer: Capturer, pages: PageServer, platform: str
) -> None:
    snap = await capturer.capture(pages.url(f"/cmp/{platform}"))
    image = rgb(snap.image)
    assert share(image, cmp.BANNER) == 0
    assert share(image, cmp.ARTICLE) > 0.8
    # Dismissed by opting out (the platform's own reject path), not merely hidden.
    await _wait_for(lambda: (platform, "reject") in pages.consent_choices)
    assert (platform, "accept") not in pages.consent_choices


@pytest.mark.parametrize("platform", cmp.PLATFORMS)
async def test_without_the_rules_the_banner_covers_the_article(
    small_capturer: Capturer, pages: PageServer, platform: str
) -> None:
    """The control: the same pages shot with consent handling off show the banner."""
    assert not small_capturer.options.consent
    image = rgb((await small_capturer.capture(pages.url(f"/cmp/{platform}"))).image)
    assert share(image, cmp.BANNER) > 0.5


async def test_a_pdf_link_gives_the_pdf_its_first_page_and_its_text(
    either_capturer: Capturer, pages: PageServer
) -> None:
    for path in ("/report.pdf", "/report-download"):  # shown inline, and as an attachment
        snap = await either_capturer.capture(pages.url(path))
        assert snap.kind is SnapshotKind.PDF, path
        assert snap.original == documents.REPORT_PDF
        assert snap.content_type == "application/pdf"
        assert snap.file_name and snap.file_name.endswith(".pdf")
        assert snap.title == "Zebra report"
        assert "Quarterly zebra report" in snap.text and "Page two" in snap.text
        page = rgb(snap.image)
        assert page.width == snap.width == 1280
        assert close(page.getpixel((640, 40)), documents.PDF_COLOUR)
        assert close(page.getpixel((640, page.height - 40)), (255, 255, 255))


async def test_the_pdf_is_fetched_again_through_the_guard(
    capturer: Capturer, pages: PageServer, sentinel: Sentinel
) -> None:
    """The file is read with a second request (the viewer gives no access to it): a server
    that answers it with a redirect to a refused address gets a refusal, not a fetch."""
    url = pages.url(f"/flip/{uuid.uuid4().hex}.pdf?to={sentinel.url}/file.pdf")
    with pytest.raises(CaptureError) as caught:
        await capturer.capture(url)
    assert caught.value.reason == "blocked"
    assert sentinel.connections == 0


async def test_an_image_link_gives_the_image(capturer: Capturer, pages: PageServer) -> None:
    snap = await capturer.capture(pages.url("/photo.png"))
    assert snap.kind is SnapshotKind.IMAGE
    assert snap.original == documents.PHOTO_PNG
    assert snap.content_type == "image/png" and snap.file_name == "photo.png"
    assert (snap.width, snap.height) == (640, 480)
    assert close(rgb(snap.image).getpixel((320, 240)), documents.PHOTO_COLOUR)


async def test_other_downloads_are_refused_with_what_they_are(
    capturer: Capturer, pages: PageServer
) -> None:
    with pytest.raises(DownloadRefused) as caught:
        await capturer.capture(pages.url("/download"))
    refused = caught.value
    assert refused.reason == "download"
    assert (refused.content_type, refused.size) == ("application/octet-stream", 2048)
    said = render.capture_reason(refused, texts_for("en"))
    assert "file download (application/octet-stream, 2.0 KB)" in said
    assert "application/octet-stream" in render.capture_reason(refused, texts_for("zh"))


async def test_a_file_over_the_cap_is_refused_before_it_is_fetched(
    capturer: Capturer, pages: PageServer
) -> None:
    """/huge.pdf says 500 MB and then sends nothing: refused on its header alone."""
    with pytest.raises(FileTooLarge) as caught:
        await capturer.capture(pages.url("/huge.pdf"))
    assert caught.value.size == 500 * 1024 * 1024
    assert caught.value.limit == capturer.options.document_max_bytes
    said = render.capture_reason(caught.value, texts_for("en"))
    assert "the PDF is 500.0 MB; I keep files of up to 20.0 MB" in said


async def test_a_file_whose_size_shows_only_as_it_arrives_is_capped(
    small_capturer: Capturer, pages: PageServer
) -> None:
    limit = small_capturer.options.document_max_bytes
    assert len(documents.REPORT_PDF) > limit
    for path, what in (("/report-chunked.pdf", "pdf"), ("/photo.png", "image")):
        with pytest.raises(FileTooLarge) as caught:
            await small_capturer.capture(pages.url(path))
        assert (caught.value.what, caught.value.limit) == (what, limit), path


def test_rules_come_from_the_installed_package_or_the_configured_copy(tmp_path: Path) -> None:
    """Newer rules are a package update (or CONSENT_RULES_DIR), not a code change."""
    installed = load_rules(None)
    assert installed is not None and installed.rule_count > 100
    copy = tmp_path / "autoconsent"
    shutil.copytree(DEFAULT_RULES_DIR / "dist", copy / "dist")
    shutil.copytree(DEFAULT_RULES_DIR / "rules", copy / "rules")
    (copy / "package.json").write_text(json.dumps({"version": "99.0.0"}))
    assert (rules := load_rules(str(copy))) is not None and rules.version == "99.0.0"
    assert load_rules(str(tmp_path / "missing")) is None  # banners left alone, with a warning


async def test_the_prehide_selectors_are_kept_beside_the_rules_they_were_read_from(
    capturer: Capturer, tmp_path: Path
) -> None:
    """Reading them runs the library in a Chromium page (~1.2 CPU-s a start); a start
    after the first takes them from the rules' directory, never those of other rules."""
    installed = load_rules(None)
    assert installed is not None
    kept = json.loads((DEFAULT_RULES_DIR / PREHIDE_FILE).read_text(encoding="utf-8"))
    assert kept["digest"] == installed.digest and "#CybotCookiebotDialog" in kept["css"]
    other = tmp_path / "autoconsent"
    shutil.copytree(DEFAULT_RULES_DIR / "dist", other / "dist")
    shutil.copytree(DEFAULT_RULES_DIR / "rules", other / "rules")
    shutil.copy(DEFAULT_RULES_DIR / "package.json", other / "package.json")
    with (other / "dist" / "autoconsent.playwright.js").open("a") as bundle:
        bundle.write("\n// a newer library\n")
    shutil.copy(DEFAULT_RULES_DIR / PREHIDE_FILE, other / PREHIDE_FILE)
    newer = load_rules(str(other))
    assert newer is not None and newer.digest != installed.digest
    assert known_prehide(newer) is None  # made for other rules: read again
    (other / PREHIDE_FILE).write_text(json.dumps({"digest": newer.digest, "css": "#x {}"}))
    assert (script := known_prehide(newer)) is not None and "#x {}" in script


def test_settings_reach_the_capturer() -> None:
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x")
    env.update(CAPTURE_BUDGET="5", CONSENT_WAIT="1", ARCHIVE_MAX_MB="2", DOCUMENT_MAX_MB="3")
    options = CaptureOptions.from_settings(settings_for(env))
    assert (options.budget, options.consent_wait) == (5, 1)
    assert (options.archive_max_bytes, options.document_max_bytes) == (2 * 2**20, 3 * 2**20)


def test_the_caption_says_partial_in_the_users_language() -> None:
    record = LinkRecord(owner_id=1, chat_id=1, url="https://example.org/", url_key="k")
    for lang in ("en", "zh"):
        texts = texts_for(lang)
        assert texts.partial_note in render.caption(record, texts, partial=True)
        assert texts.partial_note not in render.caption(record, texts)


async def _wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
