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
import urllib.parse
from dataclasses import dataclass, field

import trafilatura
from PIL import Image
from playwright.async_api import Browser, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bot.egress import BLOCK_HEADER, UPSTREAM_HEADER, GuardProxy
from bot.netguard import NetGuard

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

CHROMIUM_ARGS = [
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


class CaptureError(Exception):
    """A capture that could not produce a snapshot; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


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
    ) -> None:
        self._guard = guard
        self._executable = executable
        self._ws_endpoint = ws_endpoint
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._proxy = GuardProxy(guard)
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
            proxy = {"server": self._proxy.url}
            if self._ws_endpoint:
                self._browser = await self._pw.chromium.connect(self._ws_endpoint)
            else:
                self._browser = await self._pw.chromium.launch(
                    executable_path=self._executable,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    proxy=proxy,  # type: ignore[arg-type]
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
        context = await browser.new_context(
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale=locale,
            accept_downloads=False,
            service_workers="block",
            proxy={"server": self._proxy.url} if self._ws_endpoint else None,
        )
        try:
            page = await context.new_page()
            page.on("dialog", lambda dialog: asyncio.ensure_future(_quietly(dialog.dismiss())))
            return await self._load_and_shoot(page, url)
        finally:
            await _quietly(context.close())

    async def _load_and_shoot(self, page: Page, url: str) -> tuple[Snapshot, str]:
        failed: list[str] = []
        inflight: set[object] = set()
        page.on("request", lambda req: inflight.add(req))
        page.on("requestfinished", lambda req: inflight.discard(req))
        page.on("requestfailed", lambda req: inflight.discard(req))
        page.on(
            "requestfailed",
            lambda req: failed.append(req.url) if req.is_navigation_request() else None,
        )
        try:
            response = await page.goto(
                url, wait_until="domcontentloaded", timeout=self._timeout * 1000
            )
        except PlaywrightTimeout:
            raise CaptureError("timeout") from None
        except PlaywrightError as exc:
            raise self._navigation_error(exc, failed or [url]) from None
        if response is not None and response.headers.get(BLOCK_HEADER.lower()):
            raise CaptureError("blocked", response.headers[BLOCK_HEADER.lower()])
        if response is not None and response.headers.get(UPSTREAM_HEADER.lower()):
            raise CaptureError(response.headers[UPSTREAM_HEADER.lower()])
        await _settle(page, inflight)
        image = await page.screenshot(type="jpeg", quality=JPEG_QUALITY, full_page=False)
        meta = await page.evaluate(_META_JS)
        html = await page.content()
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

    def _navigation_error(self, exc: PlaywrightError, urls: list[str]) -> CaptureError:
        reason = classify_error(exc.message)
        for failed_url in reversed(urls):
            host = urllib.parse.urlsplit(failed_url).hostname
            refusal = self._proxy.refusal_for(host)
            if refusal:
                return CaptureError("blocked", refusal)
            upstream = self._proxy.upstream_error_for(host)
            if upstream and reason == "unreachable":
                return CaptureError(upstream)
        return CaptureError(reason, exc.message.splitlines()[0][:200])


async def _settle(page: Page, inflight: set[object]) -> None:
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
