"""Open a page in the one long-lived Chromium and take its snapshot.

One browser per process (launching costs far more than a capture); a fresh context
per capture so pages never share cookies or storage; a semaphore bounds how many
run at once, the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from dataclasses import dataclass, field

import trafilatura
from PIL import Image
from playwright.async_api import Browser, Page, Playwright, Request, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bot.capture_error import CaptureError
from bot.egress import EgressSession, GuardProxy
from bot.netguard import NetGuard
from bot.pageguard import (
    NavigationWatch,
    check_browser_switches,
    final_refusal,
    pending_refresh,
    proxy_answer,
)

__all__ = ["CHROMIUM_ARGS", "CaptureError", "Capturer", "Snapshot", "classify_error"]

log = logging.getLogger(__name__)

VIEWPORT = {"width": 1280, "height": 800}
SETTLE_SECONDS = 2.0
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


@dataclass
class Snapshot:
    url: str
    final_url: str
    http_status: int | None
    image: bytes
    width: int
    height: int
    title: str | None = None
    description: str | None = None
    site_name: str | None = None
    lang: str | None = None
    text: str = ""
    redirects: list[str] = field(default_factory=list)


_NET_ERRORS = {
    "ERR_NAME_NOT_RESOLVED": "dns",
    "ERR_NAME_RESOLUTION_FAILED": "dns",
    "ERR_CONNECTION_REFUSED": "refused",
    "ERR_CONNECTION_RESET": "reset",
    "ERR_CONNECTION_CLOSED": "reset",
    "ERR_EMPTY_RESPONSE": "reset",
    "ERR_TOO_MANY_REDIRECTS": "redirect_loop",
    "ERR_CERT_": "tls",
    "ERR_SSL_": "tls",
    "ERR_TIMED_OUT": "timeout",
    "ERR_CONNECTION_TIMED_OUT": "timeout",
    "ERR_TUNNEL_CONNECTION_FAILED": "unreachable",
    "ERR_ABORTED": "aborted",
    "Download is starting": "download",
    "ERR_INVALID_RESPONSE": "reset",
    "ERR_UNSAFE_REDIRECT": "blocked",
}


def classify_error(message: str) -> str:
    for needle, reason in _NET_ERRORS.items():
        if needle in message:
            return reason
    return "browser"


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
    ) -> None:
        self._guard = guard
        self._args = list(CHROMIUM_ARGS if args is None else args)
        self._executable = executable
        self._ws_endpoint = ws_endpoint
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._proxy = proxy or GuardProxy(guard)
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock = asyncio.Lock()

    @property
    def proxy(self) -> GuardProxy:
        return self._proxy

    @property
    def guard(self) -> NetGuard:
        return self._guard

    async def start(self) -> None:
        await self._proxy.start()
        self._pw = await async_playwright().start()
        await self._ensure_browser()

    async def stop(self) -> None:
        if self._browser is not None:
            await _quietly(self._browser.close())
            self._browser = None
        if self._pw is not None:
            await _quietly(self._pw.stop())
            self._pw = None
        await self._proxy.stop()

    async def _ensure_browser(self) -> Browser:
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            assert self._pw is not None, "Capturer.start() first"
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
            return self._browser

    async def capture(self, url: str, *, locale: str = "en-US") -> Snapshot:
        """Snapshot of `url`; raises CaptureError with a reason code."""
        verdict = await self._guard.check_url(url)
        if not verdict.allowed:
            raise CaptureError(
                "dns" if verdict.reason == "unresolvable" else "blocked", verdict.reason
            )
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout + SETTLE_SECONDS + 15):
                    snap, html = await self._capture_once(url, locale)
            except TimeoutError:
                raise CaptureError("timeout") from None
        return await asyncio.to_thread(_with_text, snap, html)

    async def _capture_once(self, url: str, locale: str) -> tuple[Snapshot, str]:
        browser = await self._ensure_browser()
        try:
            return await self._in_context(browser, url, locale)
        except PlaywrightError as exc:
            if browser.is_connected():
                raise CaptureError(classify_error(exc.message), exc.message[:200]) from None
            log.warning("browser died during a capture; relaunching")
            return await self._in_context(await self._ensure_browser(), url, locale)

    async def _in_context(self, browser: Browser, url: str, locale: str) -> tuple[Snapshot, str]:
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
                page = await context.new_page()
                page.on("dialog", lambda dialog: asyncio.ensure_future(_quietly(dialog.dismiss())))
                return await self._load_and_shoot(page, url, session)
            except PlaywrightError:
                if session.over_budget:
                    raise CaptureError("too_large") from None
                raise
            finally:
                await _quietly(context.close())
        finally:
            self._proxy.close_session(session)

    async def _load_and_shoot(
        self, page: Page, url: str, session: EgressSession
    ) -> tuple[Snapshot, str]:
        watch = NavigationWatch(page)
        try:
            response = await page.goto(
                url, wait_until="domcontentloaded", timeout=self._timeout * 1000
            )
        except PlaywrightTimeout:
            raise CaptureError("too_large" if session.over_budget else "timeout") from None
        except PlaywrightError as exc:
            raise self._navigation_error(exc, watch.failed_urls or [url], session) from None
        try:
            await self._refuse_if_moved(page, url, session, watch)
            await self._settle(page, watch)
            await self._refuse_if_moved(page, url, session, watch)
            image = await page.screenshot(type="jpeg", quality=JPEG_QUALITY, full_page=False)
            meta = await page.evaluate(_META_JS)
            html = await page.content()
        except PlaywrightError:
            # A page that navigates away mid-shot breaks the shot; where it went says why.
            await self._refuse_if_moved(page, url, session, watch)
            raise
        # The page may have moved on while it was being shot.
        await self._refuse_if_moved(page, url, session, watch)
        width, height = Image.open(io.BytesIO(image)).size
        snap = Snapshot(
            url=url,
            final_url=page.url,
            http_status=response.status if response is not None else None,
            image=image,
            width=width,
            height=height,
            title=_clean(meta.get("title")),
            description=_clean(meta.get("description")),
            site_name=_clean(meta.get("site_name")),
            lang=_clean(meta.get("lang")),
        )
        return snap, html[:MAX_HTML_CHARS]

    async def _settle(self, page: Page, watch: NavigationWatch) -> None:
        """`_settle`, then follow a meta refresh due within the settle time.

        A refresh fires some time after the load event; followed, the page ends where the
        refresh takes it, and the final check refuses it there if that is refused.
        """
        await _settle(page, watch.inflight)
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
                wait_until="load",
                timeout=(delay + SETTLE_SECONDS) * 1000,
            )
        await _settle(page, watch.inflight)

    async def _refuse_if_moved(
        self, page: Page, url: str, session: EgressSession, watch: NavigationWatch
    ) -> None:
        refusal = await final_refusal(page, url, self._guard, session, watch)
        if refusal is not None:
            raise refusal

    def _navigation_error(
        self, exc: PlaywrightError, urls: list[str], session: EgressSession
    ) -> CaptureError:
        if session.over_budget:
            return CaptureError("too_large")
        reason = classify_error(exc.message)
        for failed_url in reversed(urls):
            # An upstream failure explains only a failed tunnel; other errors keep their own.
            answer = proxy_answer(session, failed_url, upstream=reason == "unreachable")
            if answer is not None:
                return answer
        return CaptureError(reason, exc.message.splitlines()[0][:200])


async def _settle(page: Page, inflight: set[Request]) -> None:
    """Give late content a short, bounded chance: the load event, then no request in flight.

    Polling the in-flight set instead of Playwright's "networkidle" (which always waits
    500 ms of silence) lets a page that is already complete be shot at once.
    """
    with contextlib.suppress(PlaywrightError):
        await page.wait_for_load_state("load", timeout=SETTLE_SECONDS * 1000)
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS / 2
    while inflight and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value[:500] or None


def _with_text(snap: Snapshot, html: str) -> Snapshot:
    """Main text and any metadata the page's own tags did not give (trafilatura)."""
    if not html:
        return snap
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
