"""Files a link points at (a PDF, an image): fetched through the capture's guarded
context within the size limit, drawn for the photo, kept as the original."""

from __future__ import annotations

import asyncio
import logging

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Response

from bot.browser import budget, documents, pdfrender
from bot.browser.errors import CaptureError, Failure, FileTooLarge, UnreadableFile
from bot.browser.types import CaptureOptions, Snapshot, SnapshotKind
from bot.browser.visit import Visit

log = logging.getLogger(__name__)


class LinkFiles:
    """The PDF or image a visit's link answered with, as its snapshot."""

    def __init__(self, timeout: float, options: CaptureOptions) -> None:
        self.timeout = timeout
        self.options = options

    async def pdf(self, visit: Visit) -> Snapshot:
        """A PDF link: the file itself, its first page drawn, its text."""
        assert visit.response is not None
        limit = self._limit(visit.response, "pdf")
        final_url = visit.response.url
        # Chromium's viewer is reading the file too; closing the page stops that.
        await quietly(asyncio.wait_for(visit.page.close(), 5))
        data = await self._fetch(visit, final_url, "pdf", limit)
        documents.check_pdf(data)
        try:
            preview = await pdfrender.render(data)
        except pdfrender.PdfUnreadable as exc:
            raise UnreadableFile(f"pdf: {exc}") from None
        name = documents.file_name(final_url, SnapshotKind.PDF, visit.content_type)
        return Snapshot(
            url=visit.url,
            final_url=final_url,
            http_status=visit.response.status,
            image=preview.image,
            width=preview.width,
            height=preview.height,
            title=clean(preview.title) or clean(first_line(preview.text)) or name,
            text=preview.text,
            kind=SnapshotKind.PDF,
            original=data,
            content_type="application/pdf",
            file_name=name,
        )

    def _limit(self, response: Response, what: str) -> int:
        """The most bytes a file may have; FileTooLarge when its server says it has more."""
        limit = self.options.document_max_bytes
        declared = documents.declared_size(response.headers)
        if declared is not None and declared > limit:
            raise FileTooLarge(what, declared, limit)
        return limit

    async def _fetch(self, visit: Visit, url: str, what: str, limit: int) -> bytes:
        refused_before = set(visit.session.refusals)
        try:
            return await documents.fetch(visit.context, url, what, limit, self.timeout)
        except (CaptureError, PlaywrightError) as exc:
            if visit.session.over_budget:
                raise CaptureError(Failure.TOO_LARGE) from None
            refused = set(visit.session.refusals) - refused_before
            if refused:
                raise CaptureError(Failure.BLOCKED, visit.session.refusals[refused.pop()]) from None
            if isinstance(exc, CaptureError):
                raise
            raise CaptureError(Failure.UNREACHABLE, exc.message[:200]) from None

    async def image(self, visit: Visit) -> Snapshot | None:
        """An image link: the file and a JPEG of it; None to shoot it as a page instead."""
        assert visit.response is not None
        limit = self._limit(visit.response, "image")
        final_url = visit.response.url
        if visit.downloaded:
            data = await self._fetch(visit, final_url, "image", limit)
        else:
            try:
                wait = max(0.5, budget.remaining(visit.deadline))
                data = await asyncio.wait_for(visit.response.body(), wait)
            except (PlaywrightError, TimeoutError):
                return None
        if len(data) > limit:
            raise FileTooLarge("image", len(data), limit)
        try:
            image, width, height = await asyncio.to_thread(documents.image_preview, data)
        except UnreadableFile:
            if visit.downloaded:
                raise
            return None
        name = documents.file_name(final_url, SnapshotKind.IMAGE, visit.content_type)
        return Snapshot(
            url=visit.url,
            final_url=final_url,
            http_status=visit.response.status,
            image=image,
            width=width,
            height=height,
            title=name,
            kind=SnapshotKind.IMAGE,
            original=data,
            content_type=visit.content_type,
            file_name=name,
        )


def first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line
    return None


def clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value[:500] or None


async def quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except Exception:
        log.debug("ignored error during cleanup", exc_info=True)
