"""Files made on demand from an opened page (the full page as one image, the page
printed to PDF, an offline MHTML copy): banners gone and lazy content scrolled in
first, each cut at its size limit."""

from __future__ import annotations

import asyncio
import dataclasses

from playwright.async_api import Page

from bot.browser import archive
from bot.browser.errors import FileTooLarge, NotAPage
from bot.browser.types import Artifact, CaptureOptions, SnapshotKind
from bot.browser.visit import Navigator, Visit

LAZY_SECONDS = 3.0  # scrolling for lazy content gets at least this long


class OnDemand:
    """The full page, PDF and offline copy of a visit (bot/browser/archive.py draws them)."""

    def __init__(self, navigator: Navigator, options: CaptureOptions) -> None:
        self.navigator = navigator
        self.options = options

    async def _prepared(self, visit: Visit) -> Page:
        """A page ready for a file: a page (not a PDF or image), banners gone, lazy content in."""
        if visit.kind is not SnapshotKind.PAGE:
            raise NotAPage(visit.kind.value)
        await self.navigator.dismiss_consent(visit)
        loop = asyncio.get_running_loop()
        until = max(visit.deadline, loop.time() + LAZY_SECONDS)
        await archive.scroll_through(
            visit.page, visit.watch.inflight, until, self.options.full_page_max_height
        )
        return visit.page

    def _finished(self, visit: Visit, artifact: Artifact) -> Artifact:
        limit = self.options.archive_max_bytes
        if len(artifact.data) > limit:
            raise FileTooLarge(artifact.kind.value, len(artifact.data), limit)
        return dataclasses.replace(artifact, partial=visit.partial)

    async def full_page(self, visit: Visit) -> Artifact:
        page = await self._prepared(visit)
        shot = await archive.full_page(page, self.options.full_page_max_height)
        return self._finished(visit, shot)

    async def print_pdf(self, visit: Visit) -> Artifact:
        page = await self._prepared(visit)
        return self._finished(visit, await archive.print_pdf(page))

    async def mhtml(self, visit: Visit) -> Artifact:
        page = await self._prepared(visit)
        return self._finished(visit, await archive.mhtml(visit.context, page))
