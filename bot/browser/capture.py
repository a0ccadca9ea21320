"""Open a link in the one long-lived Chromium and make its snapshot (or a file of it).

One browser per process (launching costs far more than a capture); a fresh context
per capture so pages never share cookies or storage; a semaphore bounds how many
run at once, the rest wait their turn. Every capture, whatever it makes, goes through
the same guard (link screen, egress proxy with a per-capture credential, final-URL
check) and the same budget (bot/browser/budget.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from PIL import Image
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Response,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bot import procmem
from bot.browser import archive, budget, documents, pdfrender
from bot.browser.consent import ConsentRules, ConsentWatch, load_rules, prehide_script
from bot.browser.errors import (
    CaptureError,
    DownloadRefused,
    Failure,
    FileTooLarge,
    NotAPage,
    UnreadableFile,
    classify_error,
)
from bot.browser.idle import BrowserState, Clock, IdleWatch, LoopClock
from bot.browser.pageguard import (
    NavigationWatch,
    check_browser_switches,
    final_refusal,
    pending_refresh,
    proxy_answer,
)
from bot.browser.spare import Prepared, SparePage
from bot.browser.types import (
    Artifact,
    ArtifactKind,
    CaptureOptions,
    Snapshot,
    SnapshotKind,
)
from bot.guard.egress import EgressSession, GuardProxy
from bot.guard.netguard import NetGuard

__all__ = [
    "CHROMIUM_ARGS",
    "Artifact",
    "ArtifactKind",
    "CaptureError",
    "CaptureOptions",
    "Capturer",
    "Snapshot",
    "SnapshotKind",
    "classify_error",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_LOCALE = "en-US"
SETTLE_SECONDS = 2.0  # a meta refresh due within this long is followed
LAZY_SECONDS = 3.0  # scrolling for lazy content gets at least this long (files on demand)
SHOT_TIMEOUT = 15.0
ARTIFACT_EXTRA = 60.0  # printing or shooting a very long page takes a while
MAX_HTML_CHARS = 3_000_000
MAX_TEXT_CHARS = 20_000
JPEG_QUALITY = 80

_META_JS = """() => {
  const m = (sel) => { const e = document.querySelector(sel); return e ? e.getAttribute('content') : null; };
  return {
    title: document.title || m('meta[property="og:title"]'),
    description: m('meta[name="description"]') || m('meta[property="og:description"]'),
    site_name: m('meta[property="og:site_name"]'),
    lang: document.documentElement.getAttribute('lang'),
  };
}"""

# WebRTC sends STUN/TURN/ICE over UDP straight out of the machine, around any HTTP
# proxy; this policy keeps it to proxied TCP only (the `--force-` variant alone does not).
WEBRTC_SWITCH = "--webrtc-ip-handling-policy=disable_non_proxied_udp"

CHROMIUM_ARGS = [
    WEBRTC_SWITCH,
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-features=OptimizationHints,OptimizationGuideModelDownloading,Translate,MediaRouter",
]


@dataclass(eq=False)
class _Visit:
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


class Capturer:
    """Owns Playwright, the browser and the egress proxy for the whole process."""

    def __init__(
        self,
        guard: NetGuard,
        *,
        executable: str | None = None,
        ws_endpoint: str | None = None,
        concurrency: int = 2,
        timeout: float = 30.0,
        args: list[str] | None = None,
        proxy: GuardProxy | None = None,
        options: CaptureOptions | None = None,
        idle_close: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        self._guard = guard
        self._args = list(CHROMIUM_ARGS if args is None else args)
        self._executable = executable
        self._ws_endpoint = ws_endpoint
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._proxy = proxy or GuardProxy(guard)
        self.options = options or CaptureOptions()
        self._consent: tuple[ConsentRules, str, str] | None = None  # rules, library, prehide
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock = asyncio.Lock()
        self._spare = SparePage(self._prepare, self._discard)
        # BROWSER_IDLE_CLOSE: the browser (and Playwright's driver) close after this
        # long without a visit; the next one starts them again (bot/browser/idle.py).
        self._idle = IdleWatch(idle_close, clock or LoopClock())
        self._idle_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()  # contexts of finished captures
        self._state = BrowserState(open=False, since=datetime.now(UTC))
        self._state_changed = asyncio.Event()
        self.launches = 0  # browsers started (or connected to) so far

    @property
    def proxy(self) -> GuardProxy:
        return self._proxy

    @property
    def guard(self) -> NetGuard:
        return self._guard

    @property
    def state(self) -> BrowserState:
        """Open or closed, and since when."""
        return self._state

    async def wait_state(self, *, open: bool) -> BrowserState:
        """The state once the browser is open (or closed)."""
        while self._state.open is not open:
            await self._state_changed.wait()
        return self._state

    def _set_state(self, *, open: bool) -> None:
        self._state = BrowserState(open=open, since=datetime.now(UTC))
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()

    async def start(self) -> None:
        await self._proxy.start()
        browser = await self._ensure_browser()
        if self.options.consent:
            await self._load_consent(browser)
        if self.options.spare_page:
            self._spare.refill(browser, DEFAULT_LOCALE)
        if self._idle.idle_close > 0:
            self._idle_task = asyncio.create_task(self._idle.run(self.close_if_idle))

    async def _load_consent(self, browser: Browser) -> None:
        rules = await asyncio.to_thread(load_rules, self.options.consent_rules_dir)
        if rules is None:
            return
        # The library keeps what it handles hidden for as long as a capture can last.
        library = rules.library(self._timeout + self.options.budget + ARTIFACT_EXTRA)
        session = self._proxy.open_session()
        try:
            prehide = await prehide_script(
                browser, library, session.proxy_settings(self._proxy.url)
            )
        except PlaywrightError as exc:
            log.error("consent banners will not be dismissed: the rules did not start (%s)", exc)
            return
        finally:
            self._proxy.close_session(session)
        self._consent = (rules, library, prehide)

    async def stop(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            await asyncio.gather(self._idle_task, return_exceptions=True)
            self._idle_task = None
        await self._spare.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self._close_browser()
        await self._proxy.stop()

    async def close_if_idle(self) -> bool:
        """Close the browser, its spare page and Playwright's driver when no visit has
        run for BROWSER_IDLE_CLOSE seconds; True when the browser is closed after it."""
        async with self._launch_lock:  # a capture starting now waits, then relaunches
            if self._browser is None:
                return True
            if not self._idle.due():
                return False
            log.info("no capture for %.0f s: closing the browser", self._idle.idle_close)
            await self._spare.drop()
            await asyncio.gather(*self._closing, return_exceptions=True)
            await self._close_browser()
            await asyncio.to_thread(procmem.give_back)  # what the burst's pages left behind
            return True

    async def _close_browser(self) -> None:
        if self._browser is not None:
            await _quietly(self._browser.close())
            self._browser = None
        if self._pw is not None:
            await _quietly(self._pw.stop())
            self._pw = None
        if self._state.open:
            self._set_state(open=False)

    async def _ensure_browser(self) -> Browser:
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._pw is None:
                self._pw = await async_playwright().start()
            self.launches += 1
            if self._ws_endpoint:
                browser = await self._pw.chromium.connect(self._ws_endpoint)
                try:
                    await check_browser_switches(browser, self._proxy)
                except BaseException:
                    await _quietly(browser.close())
                    raise
                self._browser = browser
            else:
                # The launch-wide proxy has no credential: anything outside a capture's
                # own context (which carries one) is answered 407 and goes nowhere.
                self._browser = await self._pw.chromium.launch(
                    executable_path=self._executable,
                    headless=True,
                    args=self._args,
                    proxy={"server": self._proxy.url},
                    chromium_sandbox=False,
                )
            log.info("browser ready: %s", self._browser.version)
            self._set_state(open=True)
            return self._browser

    # --- what the bot calls ---

    async def capture(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Snapshot:
        """Snapshot of `url`; raises CaptureError (or a subclass) with a reason code.

        A page still loading when the budget runs out is shot as it stands
        (`partial`); it fails only when nothing rendered at all.
        """
        snap, html = await self.shoot(url, locale=locale)
        return await self.read_text(snap, html)

    async def shoot(self, url: str, *, locale: str = DEFAULT_LOCALE) -> tuple[Snapshot, str]:
        """`capture` without the page's main text: the snapshot and the page's HTML, for
        `read_text` once the photo is on its way (extraction takes 0.1-1 s of CPU)."""
        return await self._run(url, locale, self._snapshot)

    async def read_text(self, snap: Snapshot, html: str) -> Snapshot:
        """The snapshot with the page's main text and any metadata its tags lacked."""
        return await asyncio.to_thread(_with_text, snap, html)

    async def full_page(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Artifact:
        """JPEG of the whole page (lazy content scrolled in), cut at FULL_PAGE_MAX_HEIGHT."""
        return await self._run(url, locale, self._full_page, extra=ARTIFACT_EXTRA)

    async def pdf(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Artifact:
        """The page printed to PDF by Chromium."""
        return await self._run(url, locale, self._print, extra=ARTIFACT_EXTRA)

    async def mhtml(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Artifact:
        """The page as one MHTML file (opens offline in Chromium-based browsers)."""
        return await self._run(url, locale, self._mhtml, extra=ARTIFACT_EXTRA)

    # --- one visit, through the guard and the budget ---

    async def _run(
        self,
        url: str,
        locale: str,
        action: Callable[[_Visit], Awaitable[T]],
        *,
        extra: float = 0.0,
    ) -> T:
        verdict = await self._guard.check_url(url)
        if not verdict.allowed:
            raise CaptureError(
                Failure.DNS if verdict.reason == "unresolvable" else Failure.BLOCKED, verdict.reason
            )
        limit = self._timeout + self.options.budget + self.options.consent_wait + 15 + extra
        async with self._slots:
            self._idle.begin()
            try:
                async with asyncio.timeout(limit):
                    return await self._in_browser(url, locale, action)
            except TimeoutError:
                raise CaptureError(Failure.TIMEOUT) from None
            finally:
                self._idle.end()

    async def _in_browser(
        self, url: str, locale: str, action: Callable[[_Visit], Awaitable[T]]
    ) -> T:
        browser = await self._ensure_browser()
        try:
            return await self._in_context(browser, url, locale, action)
        except PlaywrightError as exc:
            if browser.is_connected():
                raise CaptureError(classify_error(exc.message), exc.message[:200]) from None
            log.warning("browser died during a capture; relaunching")
            return await self._in_context(await self._ensure_browser(), url, locale, action)

    async def _in_context(
        self, browser: Browser, url: str, locale: str, action: Callable[[_Visit], Awaitable[T]]
    ) -> T:
        ready = await self._spare.take(browser, locale) or await self._prepare(browser, locale)
        context, page, session = ready.context, ready.page, ready.session
        try:
            consent = None
            if self._consent is not None:
                rules, library, _ = self._consent
                consent = ConsentWatch(rules, library)
            page.on("dialog", lambda dialog: asyncio.ensure_future(_quietly(dialog.dismiss())))
            visit = await self._open(url, context, page, session, consent)
            try:
                result = await action(visit)
            except PlaywrightError:
                # A page that navigates away mid-shot breaks the shot; where it went says why.
                await self._refuse_if_moved(visit)
                raise
            # The page may have moved on while it was being shot.
            await self._refuse_if_moved(visit)
            return result
        except PlaywrightError:
            if session.over_budget:
                raise CaptureError(Failure.TOO_LARGE) from None
            raise
        finally:
            # Closed beside what follows (the photo needs nothing more from the page).
            closing = asyncio.ensure_future(self._discard(ready))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            if self.options.spare_page:
                self._spare.refill(browser, locale)  # made while the capture is stored

    async def _prepare(self, browser: Browser, locale: str) -> Prepared:
        """A new context (own proxy credential, consent prehide) with one blank page."""
        session = self._proxy.open_session()
        try:
            context = await browser.new_context(
                viewport=VIEWPORT,  # type: ignore[arg-type]
                locale=locale,
                accept_downloads=False,
                service_workers="block",
                proxy=session.proxy_settings(self._proxy.url),  # type: ignore[arg-type]
            )
            try:
                if self._consent is not None:
                    await context.add_init_script(self._consent[2])
                page = await context.new_page()
            except BaseException:
                await _quietly(context.close())
                raise
        except BaseException:
            self._proxy.close_session(session)
            raise
        return Prepared(browser, locale, context, page, session)

    async def _discard(self, ready: Prepared) -> None:
        try:
            await _quietly(ready.context.close())
        finally:  # also when cancelled meanwhile: the credential never outlives its page
            self._proxy.close_session(ready.session)

    async def _open(
        self,
        url: str,
        context: BrowserContext,
        page: Page,
        session: EgressSession,
        consent: ConsentWatch | None,
    ) -> _Visit:
        """Navigate until the server answers; a page then loads within the budget."""
        watch = NavigationWatch(page)
        downloaded = False
        try:
            response = await page.goto(url, wait_until="commit", timeout=self._timeout * 1000)
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
        visit = _Visit(url, context, page, session, watch, consent, response, deadline)
        visit.downloaded = downloaded
        if response is not None:
            visit.content_type = documents.media_type(response.headers)
            visit.kind = documents.kind_of(visit.content_type) or SnapshotKind.PAGE
        await self._refuse_if_moved(visit)
        if visit.kind is SnapshotKind.PAGE:
            await self._load(visit)
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

    async def _load(self, visit: _Visit) -> None:
        """Settle within the budget; past it, stop loading and keep what rendered."""
        page = visit.page
        if await budget.settle(page, visit.watch.inflight, visit.deadline):
            await self._follow_refresh(visit)
        else:
            visit.partial = True
            log.info("capture budget (%.0f s) ran out; stopping the page", self.options.budget)
            await budget.stop_loading(page)
            if not await budget.has_body(page):
                await self._refuse_if_moved(visit)
                raise CaptureError(Failure.TIMEOUT, "nothing rendered within the capture budget")
        await self._refuse_if_moved(visit)

    async def _follow_refresh(self, visit: _Visit) -> None:
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

    async def _refuse_if_moved(self, visit: _Visit) -> None:
        refusal = await final_refusal(
            visit.page, visit.url, self._guard, visit.session, visit.watch
        )
        if refusal is not None:
            raise refusal

    def _navigation_error(
        self, exc: PlaywrightError, urls: list[str], session: EgressSession
    ) -> CaptureError:
        if session.over_budget:
            return CaptureError(Failure.TOO_LARGE)
        reason = classify_error(exc.message)
        for failed_url in reversed(urls):
            # An upstream failure explains only a failed tunnel; other errors keep their own.
            answer = proxy_answer(session, failed_url, upstream=reason is Failure.UNREACHABLE)
            if answer is not None:
                return answer
        return CaptureError(reason, exc.message.splitlines()[0][:200])

    async def _dismiss_consent(self, visit: _Visit) -> None:
        if visit.consent is not None:
            wait = self.options.consent_wait
            await visit.consent.settle(visit.page, min(wait, 1.0) if visit.partial else wait)
            if visit.consent.dismissed or visit.consent.failed:
                log.info("consent banner: %s", visit.consent.summary())

    # --- the snapshot ---

    async def _snapshot(self, visit: _Visit) -> tuple[Snapshot, str]:
        if visit.kind is SnapshotKind.PDF:
            return await self._pdf_file(visit), ""
        if visit.kind is SnapshotKind.IMAGE:
            snap = await self._image_file(visit)
            if snap is not None:
                return snap, ""
            visit.kind = SnapshotKind.PAGE  # Chromium may still draw what Pillow cannot read
            await self._load(visit)
        await self._dismiss_consent(visit)
        page = visit.page
        image = await _shot(page)
        meta = await page.evaluate(_META_JS)
        html = await page.content()
        width, height = Image.open(io.BytesIO(image)).size
        snap = Snapshot(
            url=visit.url,
            final_url=page.url,
            http_status=visit.response.status if visit.response is not None else None,
            image=image,
            width=width,
            height=height,
            title=_clean(meta.get("title")),
            description=_clean(meta.get("description")),
            site_name=_clean(meta.get("site_name")),
            lang=_clean(meta.get("lang")),
            partial=visit.partial,
        )
        return snap, html[:MAX_HTML_CHARS]

    async def _pdf_file(self, visit: _Visit) -> Snapshot:
        """A PDF link: the file itself, its first page drawn, its text."""
        assert visit.response is not None
        limit = self.options.document_max_bytes
        declared = documents.declared_size(visit.response.headers)
        if declared is not None and declared > limit:
            raise FileTooLarge("pdf", declared, limit)
        final_url = visit.response.url
        # Chromium's viewer is reading the file too; closing the page stops that.
        await _quietly(asyncio.wait_for(visit.page.close(), 5))
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
            title=_clean(preview.title) or _clean(_first_line(preview.text)) or name,
            text=preview.text,
            kind=SnapshotKind.PDF,
            original=data,
            content_type="application/pdf",
            file_name=name,
        )

    async def _fetch(self, visit: _Visit, url: str, what: str, limit: int) -> bytes:
        refused_before = set(visit.session.refusals)
        try:
            return await documents.fetch(visit.context, url, what, limit, self._timeout)
        except (CaptureError, PlaywrightError) as exc:
            if visit.session.over_budget:
                raise CaptureError(Failure.TOO_LARGE) from None
            refused = set(visit.session.refusals) - refused_before
            if refused:
                raise CaptureError(Failure.BLOCKED, visit.session.refusals[refused.pop()]) from None
            if isinstance(exc, CaptureError):
                raise
            raise CaptureError(Failure.UNREACHABLE, exc.message[:200]) from None

    async def _image_file(self, visit: _Visit) -> Snapshot | None:
        """An image link: the file and a JPEG of it; None to shoot it as a page instead."""
        assert visit.response is not None
        limit = self.options.document_max_bytes
        declared = documents.declared_size(visit.response.headers)
        if declared is not None and declared > limit:
            raise FileTooLarge("image", declared, limit)
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

    # --- files on demand ---

    async def _prepared(self, visit: _Visit) -> Page:
        """A page ready for a file: a page (not a PDF or image), banners gone, lazy content in."""
        if visit.kind is not SnapshotKind.PAGE:
            raise NotAPage(visit.kind.value)
        await self._dismiss_consent(visit)
        loop = asyncio.get_running_loop()
        until = max(visit.deadline, loop.time() + LAZY_SECONDS)
        await archive.scroll_through(
            visit.page, visit.watch.inflight, until, self.options.full_page_max_height
        )
        return visit.page

    def _finished(self, visit: _Visit, artifact: Artifact) -> Artifact:
        limit = self.options.archive_max_bytes
        if len(artifact.data) > limit:
            raise FileTooLarge(artifact.kind.value, len(artifact.data), limit)
        return dataclasses.replace(artifact, partial=visit.partial)

    async def _full_page(self, visit: _Visit) -> Artifact:
        page = await self._prepared(visit)
        shot = await archive.full_page(page, self.options.full_page_max_height)
        return self._finished(visit, shot)

    async def _print(self, visit: _Visit) -> Artifact:
        page = await self._prepared(visit)
        return self._finished(visit, await archive.print_pdf(page))

    async def _mhtml(self, visit: _Visit) -> Artifact:
        page = await self._prepared(visit)
        return self._finished(visit, await archive.mhtml(visit.context, page))


async def _shot(page: Page) -> bytes:
    try:
        return await page.screenshot(
            type="jpeg", quality=JPEG_QUALITY, full_page=False, timeout=SHOT_TIMEOUT * 1000
        )
    except PlaywrightTimeout:
        raise CaptureError(Failure.TIMEOUT, "the page drew nothing to shoot") from None


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line
    return None


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value[:500] or None


def _with_text(snap: Snapshot, html: str) -> Snapshot:
    """Main text and any metadata the page's own tags did not give (trafilatura)."""
    if not html:
        return snap
    import trafilatura  # ~25 MB resident: loaded with the first page's text, not at start

    try:
        doc = trafilatura.bare_extraction(
            html,
            url=snap.final_url,
            with_metadata=True,
            include_comments=False,
            favor_precision=True,
        )
    except Exception:  # trafilatura can fail on hostile markup; the screenshot still stands
        log.warning("text extraction failed for a page", exc_info=True)
        return snap
    if doc is None:
        return snap
    data = doc if isinstance(doc, dict) else doc.as_dict()
    snap.text = (data.get("text") or "")[:MAX_TEXT_CHARS]
    snap.title = snap.title or _clean(data.get("title"))
    snap.description = snap.description or _clean(data.get("description"))
    snap.site_name = snap.site_name or _clean(data.get("sitename"))
    snap.lang = snap.lang or _clean(data.get("language"))
    return snap


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except Exception:
        log.debug("ignored error during cleanup", exc_info=True)
