"""Where a capture's page really ended up, and whether the browser obeys the launch switches.

The egress proxy refuses a connection, but Chromium then shows the proxy's refusal as a
page (plain http) or an error page (https): without a look at the main frame after the
page settles, a script or meta redirect to a refused address would be "captured" as a
screenshot of that refusal. `NavigationWatch` records the main frame's navigations;
`final_refusal` turns a page that ended on a refused address into a `CaptureError`.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from playwright.async_api import Browser, Page, Request, Response
from playwright.async_api import Error as PlaywrightError

from bot.browser.errors import CaptureError, Failure
from bot.guard.egress import BLOCK_HEADER, UPSTREAM_HEADER, EgressSession, GuardProxy
from bot.guard.netguard import NetGuard
from storage.errors import LinksnapError

# Reasons the proxy gives for a failure beyond the guard; each has a user text.
UPSTREAM_REASONS = frozenset({Failure.REFUSED, Failure.TIMEOUT, Failure.BUSY, Failure.TOO_LARGE})
# Schemes a page may end on without any network traffic of its own.
_LOCAL_SCHEMES = frozenset({"about", "data", "blob"})


@dataclass
class _Navigation:
    url: str
    failed: bool
    proxy_marked: bool = False


@dataclass
class NavigationWatch:
    """The main frame's navigations during one capture, and the requests still in flight."""

    page: Page
    navigations: list[_Navigation] = field(default_factory=list)
    inflight: set[Request] = field(default_factory=set)
    checked: set[str] = field(default_factory=set)
    # The main frame's latest response, also for a navigation that became a download
    # (its headers say what the file is; Playwright's goto gives no response then).
    last_response: Response | None = None

    def __post_init__(self) -> None:
        # Playwright wraps handlers by setting an attribute: plain functions only.
        self.page.on("request", self._started)
        self.page.on("requestfinished", self._finished)
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _main_navigation(self, request: Request) -> bool:
        return request.is_navigation_request() and request.frame == self.page.main_frame

    def _started(self, request: Request) -> None:
        self.inflight.add(request)

    def _finished(self, request: Request) -> None:
        self.inflight.discard(request)

    def _failed(self, request: Request) -> None:
        self.inflight.discard(request)
        if self._main_navigation(request):
            self.navigations.append(_Navigation(request.url, failed=True))

    def _response(self, response: Response) -> None:
        if self._main_navigation(response.request):
            self.last_response = response
            headers = response.headers
            marked = BLOCK_HEADER.lower() in headers or UPSTREAM_HEADER.lower() in headers
            self.navigations.append(_Navigation(response.url, failed=False, proxy_marked=marked))

    @property
    def failed_urls(self) -> list[str]:
        return [nav.url for nav in self.navigations if nav.failed]


def proxy_answer(session: EgressSession, url: str, *, upstream: bool = True) -> CaptureError | None:
    """The proxy's own record of refusing (or failing) this capture a connection to `url`.

    The proxy's marker headers are only a hint: a server could send them itself, so the
    reason always comes from the session's record, never from a header.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme in {"https", "wss"} else 80)
    except ValueError:
        return None
    refusal = session.refusal_for(parts.hostname, port)
    if refusal:
        return CaptureError(Failure.BLOCKED, refusal)
    failure = session.upstream_error_for(parts.hostname, port) if upstream else None
    if failure:
        return CaptureError(
            Failure(failure) if failure in UPSTREAM_REASONS else Failure.UNREACHABLE
        )
    return None


async def final_refusal(
    page: Page, url: str, guard: NetGuard, session: EgressSession, watch: NavigationWatch
) -> CaptureError | None:
    """Why the page, as it stands now, is not a snapshot to keep; None if it is."""
    if session.over_budget:
        return CaptureError(Failure.TOO_LARGE)
    if watch.navigations:
        last = watch.navigations[-1]
        if last.failed or last.proxy_marked:
            refused = proxy_answer(session, last.url)
            if refused is not None:
                return refused
    final = page.url
    scheme = final.partition(":")[0].lower()
    if scheme in {"http", "https"}:
        if final != url and final not in watch.checked:
            verdict = await guard.check_url(final)
            # "unresolvable": the proxy resolved it to load the page, so it was checked there.
            if not verdict.allowed and verdict.reason != "unresolvable":
                return CaptureError(Failure.BLOCKED, verdict.reason)
            watch.checked.add(final)
        return None
    if scheme in _LOCAL_SCHEMES:
        return None
    # An error page (chrome-error://): the last navigation failed; say why if we know.
    for failed in reversed(watch.failed_urls):
        refused = proxy_answer(session, failed)
        if refused is not None:
            return refused
    return CaptureError(Failure.BROWSER, f"the page ended on {scheme}:")


_REFRESH_JS = """() => {
  const m = document.querySelector('meta[http-equiv="refresh" i]');
  return m ? m.getAttribute("content") : null;
}"""
_REFRESH = re.compile(
    r"""^\s*(\d+(?:\.\d*)?)\s*(?:[;,]\s*(?:url\s*=\s*)?(['"]?)(.*?)\2\s*)?$""", re.I | re.S
)


def parse_refresh(content: str | None, base: str) -> tuple[float, str] | None:
    """A meta refresh's delay and absolute target; None if it reloads itself or is not one."""
    match = _REFRESH.match(content or "")
    if not match or not match.group(3):
        return None
    return float(match.group(1)), urllib.parse.urljoin(base, match.group(3).strip())


async def pending_refresh(page: Page) -> tuple[float, str] | None:
    """The meta refresh the page has announced, if any (it fires some time after load)."""
    try:
        content = await page.evaluate(_REFRESH_JS)
    except PlaywrightError:  # the page is already on its way elsewhere
        return None
    return parse_refresh(content if isinstance(content, str) else None, page.url)


# With the WebRTC switches (bot/browser/capture.py) Chromium gathers no UDP
# candidate at all; without it, every interface yields one. Gathering binds sockets but
# sends nothing when no ICE server is given.
_UDP_CANDIDATES_JS = """async () => {
  const pc = new RTCPeerConnection();
  const found = [];
  pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) found.push(e.candidate.candidate); };
  pc.createDataChannel("probe");
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
    setTimeout(resolve, 3000);
  });
  pc.close();
  return found.filter((c) => / udp /i.test(c)).length;
}"""


class BrowserSwitchError(LinksnapError, RuntimeError):
    """A (remote) browser that was not launched with the switches the guard relies on."""


async def check_browser_switches(browser: Browser, proxy: GuardProxy) -> None:
    """Refuse a browser whose WebRTC would send UDP around the proxy.

    A remote browser's launch switches cannot be set from here, only checked.
    """
    session = await proxy.open_session()
    try:
        context = await browser.new_context(proxy=proxy.browser_proxy(session))  # type: ignore[arg-type]
        try:
            page = await context.new_page()
            udp = await page.evaluate(_UDP_CANDIDATES_JS)
        finally:
            await context.close()
    finally:
        proxy.close_session(session)
    if udp:
        raise BrowserSwitchError(
            "the browser gathers UDP (WebRTC) candidates, which bypass the egress proxy: "
            "launch it with --webrtc-ip-handling-policy=disable_non_proxied_udp and "
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp (see README)"
        )
