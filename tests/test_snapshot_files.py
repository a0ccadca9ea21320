"""Snapshots worth keeping (issue 13) through the bot: partial pages, PDF and image links,
📄 full page / 🖨 PDF / 🗄 archive buttons, summaries in the user's language.

The real Application against the Bot API fake, FerretDB, Chromium, pages on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email
import subprocess
import time
from typing import Any

import pytest

from bot.browser.types import ArtifactKind
from bot.chat.callbacks import Delete, MakeFile, Recapture, codec_for
from bot.i18n import texts_for
from bot.library import artifacts
from storage.artifacts import LinkFiles
from storage.images import ImageNotFound
from storage.models import LinkRecord
from tests.capture_helpers import close, rgb, share
from tests.fakes import cmp, documents
from tests.fakes.botapi import Call
from tests.fakes.pages import BLOCKED_CSS_COLOUR, LAZY_IMAGES
from tests.harness import BotHarness

EN, ZH = texts_for("en"), texts_for("zh-hans")


async def snapshot(
    bot: BotHarness, user: int, path: str, language: str = "en"
) -> tuple[dict[str, Any], Call]:
    """The user sends a link; (their message, the bot's photo reply) once it is finished."""
    sent = bot.send(user, bot.pages.url(path), language_code=language)
    assert await bot.finished(sent, timeout=60) == "👌"
    [photo] = bot.photos_for(sent)
    return sent, photo


async def record_of(bot: BotHarness, user: int) -> LinkRecord:
    [record] = await bot.records(user)
    return record


def file_button(bot: BotHarness, photo: Call, record: LinkRecord, kind: ArtifactKind) -> str:
    """The button's data as shown under the snapshot (or, while the snapshot carries no
    keyboard yet, the same data made by the codec for this user)."""
    action = MakeFile(record.id, kind)
    codec = codec_for(bot.settings.token)
    rows = (photo.result.get("reply_markup") or {}).get("inline_keyboard", [])
    for row in rows:
        for button in row:
            data = button.get("callback_data")
            if data and codec.decode(data, record.owner_id) == action:
                return str(data)
    return codec.encode(action, record.owner_id)


async def with_file_button(
    bot: BotHarness, path: str, kind: ArtifactKind
) -> tuple[Call, LinkRecord, str]:
    """User 42's snapshot of `path`: its photo, its record and its `kind` button's data."""
    _, photo = await snapshot(bot, 42, path)
    record = await record_of(bot, 42)
    return photo, record, file_button(bot, photo, record, kind)


async def press_for_document(
    bot: BotHarness, user: int, photo: Call, data: str, timeout: float = 90
) -> tuple[Call, Call]:
    """Press a button under the photo; (the press's answer, the document sent for it)."""
    start = len(bot.api.calls)
    bot.api.press_button(user, photo.result, data)
    answer = await bot.api.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.ok, since=start, timeout=20
    )
    document = await bot.api.wait_for(
        lambda c: (
            c.method == "sendDocument"
            and c.ok
            and (c.params.get("reply_parameters") or {}).get("message_id")
            == photo.result["message_id"]
        ),
        since=start,
        timeout=timeout,
    )
    return answer, document


def downloaded(bot: BotHarness, document: Call) -> bytes:
    return bot.api.download(document.result["document"]["file_id"])


async def test_a_page_still_loading_at_the_budget_is_delivered_marked_partial(
    harness_factory: Any,
) -> None:
    """A stylesheet that never arrives: the photo comes at the budget, and says partial."""
    bot: BotHarness = await harness_factory(
        shared_browser=False, capture_budget="2", capture_consent="false"
    )
    for user, language, texts in ((42, "en", EN), (43, "zh-hans", ZH)):
        started = time.monotonic()
        _, photo = await snapshot(bot, user, "/blocked-css", language)
        print(f"partial photo ({language}) after {photo.at - started:.1f} s, budget 2 s")
        assert texts.partial_note in photo.result["caption"]
        record = await record_of(bot, user)
        assert record.partial and record.kind == "page"
        assert record.screenshot is not None and record.screenshot.gridfs_id is not None
        stored = rgb(await bot.store.get_image(record.screenshot.gridfs_id))
        assert share(stored, BLOCKED_CSS_COLOUR) > 0.8
    assert bot.pages.styles_pending >= 1  # the shot did not wait for the stylesheet


async def test_a_page_that_loads_is_not_called_partial(bot: BotHarness) -> None:
    _, photo = await snapshot(bot, 42, "/colors")
    assert EN.partial_note not in photo.result["caption"]
    assert not (await record_of(bot, 42)).partial


async def test_a_pdf_link_gives_the_pdf_its_first_page_and_find_finds_it(
    bot: BotHarness,
) -> None:
    sent, photo = await snapshot(bot, 42, "/report.pdf")
    # The snapshot is the PDF's first page, drawn.
    page = rgb(bot.api.download(photo.result["photo"][-1]["file_id"]))
    assert close(page.getpixel((page.width // 2, 40)), documents.PDF_COLOUR)
    assert "Zebra report" in photo.result["caption"]
    # The file itself, as a document answering the snapshot.
    [document] = [
        c
        for c in bot.api.calls_of("sendDocument", 42, ok_only=True)
        if c.params["reply_parameters"]["message_id"] == photo.result["message_id"]
    ]
    assert downloaded(bot, document) == documents.REPORT_PDF
    assert document.result["document"]["file_name"] == "report.pdf"
    record = await record_of(bot, 42)
    assert record.kind == "pdf" and record.original is not None
    assert record.original.file_id == document.result["document"]["file_id"]
    assert record.original.gridfs_id is not None
    assert await bot.store.get_image(record.original.gridfs_id) == documents.REPORT_PDF
    loaded = await bot.store.load(record.id)  # with its text
    assert loaded is not None and "Page two of the report" in loaded.text
    # Its text is searchable: a word that is only inside the PDF.
    start = len(bot.api.calls)
    bot.send(42, "/find quarter")
    found = await bot.api.wait_for(
        lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == 42,
        since=start,
        timeout=20,
    )
    assert "Zebra report" in found.result["text"] and "1 found" in found.result["text"]
    # No page-only buttons on a file.
    rows = (photo.result.get("reply_markup") or {}).get("inline_keyboard", [])
    assert EN.btn_full_page not in [b["text"] for row in rows for b in row]
    assert len(bot.replies_to(sent, "sendDocument")) == 0  # one document, under the photo


async def test_an_image_link_is_sent_as_the_image(bot: BotHarness) -> None:
    _, photo = await snapshot(bot, 42, "/photo.png")
    image = rgb(bot.api.download(photo.result["photo"][-1]["file_id"]))
    assert image.size == (640, 480)
    assert close(image.getpixel((320, 240)), documents.PHOTO_COLOUR)
    record = await record_of(bot, 42)
    assert record.kind == "image" and record.original is not None
    assert record.original.gridfs_id is not None
    assert await bot.store.get_image(record.original.gridfs_id) == documents.PHOTO_PNG
    assert bot.api.calls_of("sendDocument", 42) == []


async def test_other_downloads_and_files_over_the_cap_are_refused_with_a_reason(
    bot: BotHarness,
) -> None:
    for user, path, language, said in (
        (42, "/download", "en", "file download (application/octet-stream, 2.0 KB)"),
        (43, "/huge.pdf", "en", "the PDF is 500.0 MB; I keep files of up to 20.0 MB"),
        (44, "/download", "zh-hans", "（application/octet-stream，2.0 KB）"),
    ):
        sent = bot.send(user, bot.pages.url(path), language_code=language)
        assert await bot.finished(sent, timeout=60) == "🤷"
        [reply] = bot.replies_to(sent, "sendMessage")
        assert said in reply.result["text"], reply.result["text"]
        assert bot.photos_for(sent) == []


async def test_a_pdf_links_text_is_what_the_summary_reads(bot_llm: BotHarness) -> None:
    llm = bot_llm.llm
    assert llm is not None
    await snapshot(bot_llm, 42, "/report.pdf")
    await bot_llm.api.wait_until(lambda: any(r["body"].get("stream") for r in llm.requests))
    [asked] = [r["body"] for r in llm.requests if r["body"].get("stream")]
    page = asked["messages"][-1]["content"]
    assert "Quarterly zebra report" in page and "Page two of the report" in page


async def test_full_page_button_sends_a_20000_px_page_as_a_document(bot: BotHarness) -> None:
    photo, _, data = await with_file_button(bot, "/long?height=20000", ArtifactKind.FULL_PAGE)
    answer, document = await press_for_document(bot, 42, photo, data)
    assert answer.params.get("text") == EN.file_making.format(what="full-page image")
    image = rgb(downloaded(bot, document))
    assert image.size == (1280, 20000)  # too tall for a photo: a document
    assert document.result["document"]["file_name"].endswith(".jpg")
    assert EN.file_captions["full_page"] in document.result["caption"]


async def test_consent_banners_are_gone_from_the_stored_snapshot(bot: BotHarness) -> None:
    """OneTrust, Cookiebot and a TCF platform: the stored (and sent) screenshot shows the
    article, not the banner."""
    for user, platform in enumerate(cmp.PLATFORMS, start=50):
        _, photo = await snapshot(bot, user, f"/cmp/{platform}")
        record = await record_of(bot, user)
        assert record.screenshot is not None and record.screenshot.gridfs_id is not None
        stored = rgb(await bot.store.get_image(record.screenshot.gridfs_id))
        assert share(stored, cmp.BANNER) == 0, platform
        assert share(stored, cmp.ARTICLE) > 0.8, platform
        sent = rgb(bot.api.download(photo.result["photo"][-1]["file_id"]))
        assert share(sent, cmp.BANNER) == 0, platform


async def test_full_page_button_brings_the_lazy_images(bot: BotHarness) -> None:
    photo, _, data = await with_file_button(bot, "/lazy", ArtifactKind.FULL_PAGE)
    _, document = await press_for_document(bot, 42, photo, data)
    image = rgb(downloaded(bot, document))
    assert image.height >= 6000
    for name, (colour, top) in LAZY_IMAGES.items():
        assert close(image.getpixel((300, top + 150)), colour), name


async def test_pdf_button_prints_the_page_text(bot: BotHarness) -> None:
    photo, _, data = await with_file_button(bot, "/article/printed", ArtifactKind.PDF)
    _, document = await press_for_document(bot, 42, photo, data)
    printed = downloaded(bot, document)
    assert printed.startswith(b"%PDF-")
    done = await asyncio.to_thread(
        subprocess.run,
        ["pdftotext", "-", "-"],
        input=printed,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert "This is article printed. It talks about snapshots and tags." in done.stdout.decode()


async def test_archive_button_sends_mhtml_once_then_by_file_id(bot: BotHarness) -> None:
    """The second press sends Telegram's file_id: the page is not opened again."""
    photo, record, data = await with_file_button(bot, "/lazy", ArtifactKind.MHTML)
    _, first = await press_for_document(bot, 42, photo, data)
    archived = downloaded(bot, first)
    assert first.result["document"]["file_name"].endswith(".mhtml")
    html = _html_of_mhtml(archived)
    assert "Scroll down for the pictures" in html
    # The lazy pictures were scrolled in and travel inside the file.
    images = [
        p for p in email.message_from_bytes(archived).walk() if p.get_content_maintype() == "image"
    ]
    colours = {rgb(bytes(p.get_payload(decode=True))).getpixel((10, 10)) for p in images}
    for name, (colour, _) in LAZY_IMAGES.items():
        assert any(close(c, colour) for c in colours), name
    opened = bot.pages.hits.get("/lazy", 0)
    _, again = await press_for_document(bot, 42, photo, data, timeout=20)
    assert again.params["document"] == first.result["document"]["file_id"]
    assert not again.files  # nothing uploaded
    assert downloaded(bot, again) == archived
    assert bot.pages.hits.get("/lazy", 0) == opened  # no new capture
    kept = await LinkFiles(bot.store.db).get(record.id, "mhtml", record.screenshot.gridfs_id)  # type: ignore[union-attr]
    assert kept is not None and kept.file.file_id == first.result["document"]["file_id"]


async def test_without_a_browser_kept_files_still_come_and_new_ones_are_explained(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process with no browser (the front role) resends what was made; a new file is
    ordered from the workers, and when none makes it in time the user is told why."""
    monkeypatch.setattr(artifacts, "ORDER_PATIENCE", 1.0)
    photo, record, pdf = await with_file_button(bot, "/article/front", ArtifactKind.PDF)
    _, first = await press_for_document(bot, 42, photo, pdf)
    pipeline = bot.services.pipeline
    capturer, pipeline.capturer = pipeline.capturer, None  # no browser, so no worker either
    try:
        _, again = await press_for_document(bot, 42, photo, pdf, timeout=20)
        assert again.params["document"] == first.result["document"]["file_id"]
        start = len(bot.api.calls)
        bot.api.press_button(42, photo.result, file_button(bot, photo, record, ArtifactKind.MHTML))
        told = await bot.api.wait_for(
            lambda c: c.method == "sendMessage" and c.ok and c.params["chat_id"] == 42,
            since=start,
            timeout=20,
        )
        assert told.params["text"] == EN.file_no_browser
        assert not [c for c in bot.api.calls[start:] if c.method == "sendDocument"]
    finally:
        pipeline.capturer = capturer


async def test_a_file_of_a_pdf_link_is_refused_with_a_reason(bot: BotHarness) -> None:
    _, photo = await snapshot(bot, 42, "/report.pdf")
    record = await record_of(bot, 42)
    start = len(bot.api.calls)
    bot.api.press_button(42, photo.result, file_button(bot, photo, record, ArtifactKind.PDF))
    answer = await bot.api.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.ok, since=start, timeout=20
    )
    assert answer.params.get("text") == EN.file_not_a_page


async def test_another_users_file_button_does_nothing(bot: BotHarness) -> None:
    photo, _, data = await with_file_button(bot, "/article/mine", ArtifactKind.PDF)
    start = len(bot.api.calls)
    bot.api.press_button(7, photo.result, data)
    answer = await bot.api.wait_for(
        lambda c: c.method == "answerCallbackQuery" and c.ok, since=start, timeout=20
    )
    assert answer.params.get("text") == EN.stale_button
    await bot.handled(photo.result)  # the press's update was handled to its end
    assert [c for c in bot.api.calls[start:] if c.method == "sendDocument"] == []


async def test_a_chinese_users_summary_is_asked_for_in_chinese(bot_llm: BotHarness) -> None:
    """Whatever the page's language: an English page for a Chinese user, and back."""
    llm = bot_llm.llm
    assert llm is not None
    await snapshot(bot_llm, 43, "/article/english", "zh-hans")
    await snapshot(bot_llm, 42, "/zh", "en")
    asked = {}
    for request in llm.requests:
        messages = request["body"]["messages"]
        page = messages[-1]["content"]
        if request["body"].get("stream"):
            asked["english page" if "Article english" in page else "chinese page"] = messages[0][
                "content"
            ]
    assert "简体中文" in asked["english page"] and "English" not in asked["english page"]
    assert "in English" in asked["chinese page"]


def _html_of_mhtml(data: bytes) -> str:
    message = email.message_from_bytes(data)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
    raise AssertionError("no HTML in the archive")


async def test_deleted_for_good_takes_the_kept_files_with_it(bot: BotHarness) -> None:
    """A PDF link's file, and a file made from a page, go when the link is purged."""
    _, pdf_photo = await snapshot(bot, 42, "/report.pdf")
    _, page_photo = await snapshot(bot, 42, "/article/purged")
    pdf_link, page_link = await bot.records(42)
    made = file_button(bot, page_photo, page_link, ArtifactKind.PDF)
    await press_for_document(bot, 42, page_photo, made)
    assert pdf_link.original is not None and pdf_link.original.gridfs_id is not None
    assert page_link.screenshot is not None
    kept = await LinkFiles(bot.store.db).get(page_link.id, "pdf", page_link.screenshot.gridfs_id)
    assert kept is not None and kept.file.gridfs_id is not None
    codec = codec_for(bot.settings.token)
    jobs = bot.app.job_queue
    assert jobs is not None
    for link, photo in ((pdf_link, pdf_photo), (page_link, page_photo)):
        start = len(bot.api.calls)
        bot.api.press_button(42, photo.result, codec.encode(Delete(link.id), 42))
        await bot.api.wait_for(
            lambda c: c.method == "answerCallbackQuery" and c.ok, since=start, timeout=20
        )
        name = f"purge:{link.id}"
        await bot.api.wait_until(lambda n=name: bool(jobs.get_jobs_by_name(n)))  # type: ignore[misc]
        [job] = jobs.get_jobs_by_name(name)
        await job.run(bot.app)  # the minute is over
    with pytest.raises(ImageNotFound):
        await bot.store.get_image(pdf_link.original.gridfs_id)
    with pytest.raises(ImageNotFound):
        await bot.store.get_image(kept.file.gridfs_id)
    assert await bot.store.db["link_files"].find_one({"link_id": page_link.id}) is None


async def test_a_fresh_capture_makes_its_files_afresh(bot: BotHarness) -> None:
    """Files belong to the snapshot they were made from: after 🔄 the next press opens
    the page again instead of resending the older file."""
    photo, record, pdf = await with_file_button(bot, "/article/renewed", ArtifactKind.PDF)
    _, first = await press_for_document(bot, 42, photo, pdf)
    assert bot.pages.hits["/article/renewed"] == 2  # the snapshot, then the PDF
    photos = len(bot.api.calls_of("sendPhoto", 42, ok_only=True))
    again = codec_for(bot.settings.token).encode(Recapture(record.id), 42)
    bot.api.press_button(42, photo.result, again)
    await bot.api.wait_until(
        lambda: len(bot.api.calls_of("sendPhoto", 42, ok_only=True)) == photos + 1, timeout=60
    )
    fresh = bot.api.calls_of("sendPhoto", 42, ok_only=True)[-1]
    assert bot.pages.hits["/article/renewed"] == 3
    # The photo goes out before the capture is saved (issue 19): the new screenshot is
    # the record's once the save lands.
    old_shot = record.screenshot.gridfs_id if record.screenshot else None
    async with asyncio.timeout(30):
        while True:
            renewed = await record_of(bot, 42)
            if renewed.screenshot and renewed.screenshot.gridfs_id != old_shot:
                break
            await asyncio.sleep(0.05)
    _, second = await press_for_document(
        bot, 42, fresh, file_button(bot, fresh, renewed, ArtifactKind.PDF)
    )
    assert bot.pages.hits["/article/renewed"] == 4  # made again, not resent
    assert second.files and "document" not in second.params  # uploaded, not resent
    assert second.result["document"]["file_id"] != first.result["document"]["file_id"]
    assert downloaded(bot, second).startswith(b"%PDF-")
