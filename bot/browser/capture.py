"""Open a link in the one long-lived Chromium and make its snapshot (or a file of it).

One browser per process (launching costs far more than a capture); a fresh context
per capture so pages never share cookies or storage; a semaphore bounds how many
run at once, the rest wait their turn. Every capture, whatever it makes, goes through
the same guard (link screen, egress proxy with a per-capture port or credential, final-URL
check) and the same budget (bot/browser/budget.py).

This module owns the browser's life and the visit's frame; the visit's jobs live beside
it: navigation and settling (visit.py), the page's snapshot and text (shot.py), files a
link points at (linkfiles.py), files made on demand (ondemand.py), failure reasons
(errors.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from playwright.async_api import (
    Browser,
    Playwright,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from bot import procmem
from bot.browser.consent import (
    ConsentRules,
    ConsentWatch,
    known_prehide,
    load_rules,
    prehide_script,
)
from bot.browser.errors import (
    CaptureError,
    Failure,
    classify_error,
)
from bot.browser.idle import BrowserState, Clock, IdleWatch, LoopClock
from bot.browser.linkfiles import LinkFiles
from bot.browser.ondemand import OnDemand
from bot.browser.pageguard import (
    check_browser_switches,
)
from bot.browser.shot import page_snapshot, with_text
from bot.browser.spare import Prepared, SparePage
from bot.browser.text_reader import TextReader
from bot.browser.types import (
    Artifact,
    ArtifactKind,
    CaptureOptions,
    Snapshot,
    SnapshotKind,
)
from bot.browser.visit import Navigator, Visit
from bot.guard.egress import GuardProxy
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
ARTIFACT_EXTRA = 60.0  # printing or shooting a very long page takes a while

# WebRTC sends STUN/TURN/ICE over UDP straight out of the machine, around any HTTP
# proxy; this policy keeps it to proxied TCP only. The full browser reads it from the
# first switch (a browser preference; the `--force-` one alone does not stop it there),
# the headless shell (bot/browser/binary.py, no browser preferences) only from the second.
WEBRTC_SWITCHES = (
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)

CHROMIUM_ARGS = [
    *WEBRTC_SWITCHES,
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
        self._locale = DEFAULT_LOCALE  # of the capture begun last: the next spare's guess
        # BROWSER_IDLE_CLOSE: the browser (and Playwright's driver) close after this
        # long without a visit; the next one starts them again (bot/browser/idle.py).
        self._idle = IdleWatch(idle_close, clock or LoopClock())
        self._idle_task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()  # contexts of finished captures
        self._state = BrowserState(open=False, since=datetime.now(UTC))
        self._state_changed = asyncio.Event()
        self.launches = 0  # browsers started (or connected to) so far
        self._navigator = Navigator(guard, timeout, self.options)
        self._files = LinkFiles(timeout, self.options)
        self._on_demand = OnDemand(self._navigator, self.options)
        self.text_reader = TextReader()

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
        prehide = known_prehide(rules) or await self._read_prehide(browser, rules, library)
        if prehide is not None:
            self._consent = (rules, library, prehide)

    async def _read_prehide(
        self, browser: Browser, rules: ConsentRules, library: str
    ) -> str | None:
        session = await self._proxy.open_session()
        try:
            return await prehide_script(browser, rules, library, self._proxy.browser_proxy(session))
        except PlaywrightError as exc:
            log.error("consent banners will not be dismissed: the rules did not start (%s)", exc)
            return None
        finally:
            self._proxy.close_session(session)

    async def stop(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            await asyncio.gather(self._idle_task, return_exceptions=True)
            self._idle_task = None
        await self._spare.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self._close_browser()
        await self.text_reader.close()
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
            await self.text_reader.close()
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
                # The launch-wide proxy is the shared port with no credential: anything
                # outside a capture's own context (its port or credential) gets a 407.
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

    def spare_ahead(self) -> None:
        """A capture already waits for this browser (its slot claimed it while its page
        was shot): its page is made now, beside that shot, rather than once the page is
        closed, which in a burst of real pages left each capture waiting 0.1-0.4 s for it
        (docs/BENCHMARKS.md). Only then: made with nothing waiting, it would compete with
        the shot for the browser process and slow links sent one by one."""
        browser = self._browser
        # A claim looked for long ago (a database away) may end when the capture is done
        # and the idle close under way: no page for a browser about to go. (`refill`
        # itself skips a disconnected browser.)
        if browser is None or not self.options.spare_page or self._launch_lock.locked():
            return
        if self._idle.busy:
            self._spare.refill(browser, self._locale)

    async def capture(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Snapshot:
        """Snapshot of `url`; raises CaptureError (or a subclass) with a reason code.

        A page still loading when the budget runs out is shot as it stands
        (`partial`); it fails only when nothing rendered at all.
        """
        snap, html = await self.shoot(url, locale=locale)
        return await self.read_text(snap, html)

    async def shoot(
        self, url: str, *, locale: str = DEFAULT_LOCALE, ready: Callable[[], None] | None = None
    ) -> tuple[Snapshot, str]:
        """`capture` without the page's main text: the snapshot and the page's HTML, for
        `read_text` once the photo is on its way (extraction takes 0.1-1 s of CPU).
        `ready` is called once the page is about to be shot (loaded, any consent banner
        dealt with)."""
        return await self._run(url, locale, self._snapshot, ready=ready)

    async def _snapshot(self, visit: Visit) -> tuple[Snapshot, str]:
        return await page_snapshot(visit, self._navigator, self._files)

    async def read_text(self, snap: Snapshot, html: str) -> Snapshot:
        """The snapshot with the page's main text and any metadata its tags lacked."""
        if not html:
            return snap
        return with_text(snap, await self.text_reader.read(html, snap.final_url))

    async def full_page(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Artifact:
        """JPEG of the whole page (lazy content scrolled in), cut at FULL_PAGE_MAX_HEIGHT."""
        return await self._run(url, locale, self._on_demand.full_page, extra=ARTIFACT_EXTRA)

    async def pdf(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Artifact:
        """The page printed to PDF by Chromium."""
        return await self._run(url, locale, self._on_demand.print_pdf, extra=ARTIFACT_EXTRA)

    async def mhtml(self, url: str, *, locale: str = DEFAULT_LOCALE) -> Artifact:
        """The page as one MHTML file (opens offline in Chromium-based browsers)."""
        return await self._run(url, locale, self._on_demand.mhtml, extra=ARTIFACT_EXTRA)

    # --- one visit, through the guard and the budget ---

    async def _run(
        self,
        url: str,
        locale: str,
        action: Callable[[Visit], Awaitable[T]],
        *,
        extra: float = 0.0,
        ready: Callable[[], None] | None = None,
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
                    return await self._in_browser(url, locale, action, ready)
            except TimeoutError:
                raise CaptureError(Failure.TIMEOUT) from None
            finally:
                self._idle.end()

    async def _in_browser(
        self,
        url: str,
        locale: str,
        action: Callable[[Visit], Awaitable[T]],
        ready: Callable[[], None] | None,
    ) -> T:
        browser = await self._ensure_browser()
        try:
            return await self._in_context(browser, url, locale, action, ready)
        except PlaywrightError as exc:
            if browser.is_connected():
                raise CaptureError(classify_error(exc.message), exc.message[:200]) from None
            log.warning("browser died during a capture; relaunching")
            browser = await self._ensure_browser()
            return await self._in_context(browser, url, locale, action, ready)

    async def _in_context(
        self,
        browser: Browser,
        url: str,
        locale: str,
        action: Callable[[Visit], Awaitable[T]],
        ready: Callable[[], None] | None = None,
    ) -> T:
        self._locale = locale
        prepared = await self._spare.take(browser, locale) or await self._prepare(browser, locale)
        context, page, session = prepared.context, prepared.page, prepared.session
        try:
            consent = None
            if self._consent is not None:
                rules, library, _ = self._consent
                consent = ConsentWatch(rules, library)
            page.on("dialog", lambda dialog: asyncio.ensure_future(_quietly(dialog.dismiss())))
            visit = await self._navigator.open(url, context, page, session, consent)
            if ready is not None:
                visit.ready = ready
            try:
                result = await action(visit)
            except PlaywrightError:
                # A page that navigates away mid-shot breaks the shot; where it went says why.
                await self._navigator.refuse_if_moved(visit)
                raise
            # The page may have moved on while it was being shot.
            await self._navigator.refuse_if_moved(visit)
            return result
        except PlaywrightError:
            if session.over_budget:
                raise CaptureError(Failure.TOO_LARGE) from None
            raise
        finally:
            # Closed beside what follows (the photo needs nothing more from the page).
            closing = asyncio.ensure_future(self._discard(prepared))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            if self.options.spare_page:
                self._spare.refill(browser, locale)  # made while the capture is stored

    async def _prepare(self, browser: Browser, locale: str) -> Prepared:
        """A new context (own proxy session, consent prehide) with one blank page."""
        session = await self._proxy.open_session()
        try:
            context = await browser.new_context(
                viewport=VIEWPORT,  # type: ignore[arg-type]
                locale=locale,
                accept_downloads=False,
                service_workers="block",
                proxy=self._proxy.browser_proxy(session),  # type: ignore[arg-type]
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
        finally:  # also when cancelled meanwhile: the proxy session never outlives its page
            self._proxy.close_session(ready.session)


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except Exception:
        log.debug("ignored error during cleanup", exc_info=True)
