"""One link opened in a capture's page: navigation through the guard, settling within
the budget (a meta refresh due soon followed), consent banners dismissed, and the check
that the page has not moved somewhere refused. Why a navigation failed is read here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from playwright.async_api import BrowserContext, Page, Response
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bot.browser import budget, documents
from bot.browser.consent import ConsentWatch
from bot.browser.errors import CaptureError, DownloadRefused, Failure, classify_error
from bot.browser.pageguard import NavigationWatch, final_refusal, pending_refresh, proxy_answer
from bot.browser.types import CaptureOptions, SnapshotKind
from bot.guard.egress import EgressSession
from bot.guard.netguard import NetGuard

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0  # a meta refresh due within this long is followed


def _nothing() -> None:
    pass


@dataclass(eq=False)
class Visit:
    """One opened link: its page, guard state and what the budget made of it."""

    url: str
    context: BrowserContext
    page: Page
    session: EgressSession
    watch: NavigationWatch
    consent: ConsentWatch | None
    response: Response | None
    deadline: float  # loop time at which the capture budget ends
    kind: SnapshotKind = SnapshotKind.PAGE
    content_type: str | None = None
    partial: bool = False
    downloaded: bool = False  # the navigation became a download: nothing in the page
    # Called once the page is about to be shot (`page_snapshot`): the capture's slot
    # looks for its next link meanwhile.
    ready: Callable[[], None] = _nothing


class Navigator:
    """Opens links in capture pages and keeps each within the guard and the budget."""

    def __init__(self, guard: NetGuard, timeout: float, options: CaptureOptions) -> None:
        self.guard = guard
        self.timeout = timeout  # seconds for the server to answer the navigation
        self.options = options

    async def open(
        self,
        url: str,
        context: BrowserContext,
        page: Page,
        session: EgressSession,
        consent: ConsentWatch | None,
    ) -> Visit:
        """Navigate until the server answers; a page then loads within the budget."""
        watch = NavigationWatch(page)
        downloaded = False
        try:
            response = await page.goto(url, wait_until="commit", timeout=self.timeout * 1000)
        except PlaywrightTimeout:
            raise CaptureError(
                Failure.TOO_LARGE if session.over_budget else Failure.TIMEOUT
            ) from None
        except PlaywrightError as exc:
            response = self._download(exc, watch)
            if response is None:
                raise self._navigation_error(exc, watch.failed_urls or [url], session) from None
            downloaded = True
        deadline = asyncio.get_running_loop().time() + self.options.budget
        visit = Visit(url, context, page, session, watch, consent, response, deadline)
        visit.downloaded = downloaded
        if response is not None:
            visit.content_type = documents.media_type(response.headers)
            visit.kind = documents.kind_of(visit.content_type) or SnapshotKind.PAGE
        await self.refuse_if_moved(visit)
        if visit.kind is SnapshotKind.PAGE:
            await self.load(visit)
        return visit

    def _download(self, exc: PlaywrightError, watch: NavigationWatch) -> Response | None:
        """The response of a navigation that became a download, if it is a file we keep."""
        response = watch.last_response
        if classify_error(exc.message) is not Failure.DOWNLOAD or response is None:
            return None
        content_type = documents.media_type(response.headers)
        if documents.kind_of(content_type) is None:
            raise DownloadRefused(content_type, documents.declared_size(response.headers))
        return response

    async def load(self, visit: Visit) -> None:
        """Settle within the budget; past it, stop loading and keep what rendered."""
        page = visit.page
        if await budget.settle(page, visit.watch.inflight, visit.deadline):
            await self._follow_refresh(visit)
        else:
            visit.partial = True
            log.info("capture budget (%.0f s) ran out; stopping the page", self.options.budget)
            await budget.stop_loading(page)
            if not await budget.has_body(page):
                await self.refuse_if_moved(visit)
                raise CaptureError(Failure.TIMEOUT, "nothing rendered within the capture budget")
        await self.refuse_if_moved(visit)

    async def _follow_refresh(self, visit: Visit) -> None:
        """Follow a meta refresh due within the settle time.

        A refresh fires some time after the load event; followed, the page ends where the
        refresh takes it, and the final check refuses it there if that is refused.
        """
        page = visit.page
        refresh = await pending_refresh(page)
        if refresh is None or refresh[0] > SETTLE_SECONDS:
            return
        delay, target = refresh
        if target.partition(":")[0].lower() not in {"http", "https"}:
            return  # Chromium refuses a refresh to any other scheme itself
        before = page.url
        with contextlib.suppress(PlaywrightError):
            await page.wait_for_url(
                lambda now: now != before,
                wait_until="commit",
                timeout=(delay + SETTLE_SECONDS) * 1000,
            )
        loop = asyncio.get_running_loop()
        visit.deadline = max(visit.deadline, loop.time() + SETTLE_SECONDS)
        if not await budget.settle(page, visit.watch.inflight, visit.deadline):
            visit.partial = True
            await budget.stop_loading(page)

    async def refuse_if_moved(self, visit: Visit) -> None:
        refusal = await final_refusal(visit.page, visit.url, self.guard, visit.session, visit.watch)
        if refusal is not None:
            raise refusal

    def _navigation_error(
        self, exc: PlaywrightError, urls: list[str], session: EgressSession
    ) -> CaptureError:
        if session.over_budget:
            return CaptureError(Failure.TOO_LARGE)
        reason = classify_error(exc.message)
        for failed_url in reversed(urls):
            # An upstream failure explains only what the proxy does on one: a failed tunnel,
            # or a plain request's connection reset; other errors keep their own.
            upstream = reason in {Failure.UNREACHABLE, Failure.RESET}
            answer = proxy_answer(session, failed_url, upstream=upstream)
            if answer is not None:
                return answer
        return CaptureError(reason, exc.message.splitlines()[0][:200])

    async def dismiss_consent(self, visit: Visit) -> None:
        if visit.consent is not None:
            wait = self.options.consent_wait
            await visit.consent.settle(visit.page, min(wait, 1.0) if visit.partial else wait)
            if visit.consent.dismissed or visit.consent.failed:
                log.info("consent banner: %s", visit.consent.summary())
