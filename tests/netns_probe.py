"""Run one capture inside a network namespace of its own and count what escaped the proxy.

Started by tests/test_webrtc.py as `unshare -rnm python -m tests.netns_probe ...`; never
run on the host's own network. Inside the new namespace it brings loopback up, makes a
veth pair with both ends inside (198.18.0.1 and 198.18.0.2, the benchmark range) so
Chromium has a non-loopback interface to send from, as every real host has, and points
the resolver at 127.0.0.2 (a bind mount in the private mount namespace) so a DNS query
from the browser would land on a listener here, not on the machine's resolver.

Pages come from 127.0.0.1 (allowed, as in the other tests); every UDP listener is on
127.0.0.2, which the guard refuses. The capture goes through the project's own launch
path (`Capturer`). Prints one JSON object: datagrams per listener, and how the capture
ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import async_playwright

from bot import eventloop
from bot.browser.binary import find_chromium
from bot.browser.capture import CHROMIUM_ARGS, WEBRTC_SWITCHES, CaptureError, Capturer
from bot.browser.pageguard import BrowserSwitchError
from bot.guard.netguard import NetGuard
from tests.fakes.web import serve
from tests.remote_browser import RemoteBrowser

TARGET = "127.0.0.2"
# Listener name → UDP port on 127.0.0.2.
UDP_PORTS = {
    "stun": 3478,
    "turn": 3479,
    "ice_host": 40000,
    "dns": 53,
    "webtransport": 4433,
}

_WEBRTC_PAGE = """<!doctype html><html><head><title>WebRTC probe</title></head><body>
<p id="state">starting</p><img src="/hold">
<script>
(async () => {
  const say = (s) => { document.getElementById("state").textContent = s; };
  try {
    const pc = new RTCPeerConnection({iceServers: [
      {urls: "stun:127.0.0.2:3478"},
      {urls: "turn:127.0.0.2:3479?transport=udp", username: "u", credential: "p"},
    ]});
    pc.createDataChannel("x");
    await pc.setLocalDescription(await pc.createOffer());
    // A peer that answers with a host candidate on 127.0.0.2: ICE checks would go there.
    const peer = new RTCPeerConnection();
    await peer.setRemoteDescription(pc.localDescription);
    await peer.setLocalDescription(await peer.createAnswer());
    await pc.setRemoteDescription(peer.localDescription);
    await pc.addIceCandidate({
      candidate: "candidate:1 1 udp 2122260223 127.0.0.2 40000 typ host generation 0",
      sdpMid: "0", sdpMLineIndex: 0,
    });
    say("offer made");
  } catch (e) { say("error " + e); }
})();
</script></body></html>"""

_BYPASS_PAGE = """<!doctype html><html><head><title>Bypass probe</title>
<link rel="dns-prefetch" href="//prefetch-one.linksnap.test">
<link rel="preconnect" href="https://127.0.0.2:4433">
</head><body><a href="http://prefetch-two.linksnap.test/">a link</a><img src="/hold">
<script>
try {
  const wt = new WebTransport("https://127.0.0.2:4433/wt");
  wt.ready.catch(() => 0); wt.closed.catch(() => 0);
} catch (e) {}
if (navigator.serviceWorker) navigator.serviceWorker.register("/sw.js").catch(() => 0);
</script></body></html>"""

# A service worker outlives the page; this one would try WebTransport from there.
_SERVICE_WORKER = """try { new WebTransport("https://127.0.0.2:4433/sw").ready.catch(() => 0); }
catch (e) {}"""


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def make_network() -> None:
    """Loopback up, a veth pair (both ends here), a default route, a resolver on 127.0.0.2."""
    _run("ip", "link", "set", "lo", "up")
    _run("ip", "link", "add", "lsnap0", "type", "veth", "peer", "name", "lsnap1")
    for end in ("lsnap0", "lsnap1"):
        # No IPv6 link-local address: its duplicate check ends a second or two after the
        # link comes up, and Chromium took that address change for a new network, failing
        # the page being opened then (net::ERR_NETWORK_CHANGED, once in a fresh clone).
        _run("ip", "link", "set", "dev", end, "addrgenmode", "none")
    _run("ip", "addr", "add", "198.18.0.1/24", "dev", "lsnap0")
    _run("ip", "addr", "add", "198.18.0.2/24", "dev", "lsnap1")
    _run("ip", "link", "set", "lsnap0", "up")
    _run("ip", "link", "set", "lsnap1", "up")
    _run("ip", "route", "add", "default", "via", "198.18.0.2", "dev", "lsnap0")
    resolv = Path(tempfile.mkdtemp()) / "resolv.conf"
    resolv.write_text(f"nameserver {TARGET}\n")
    _run("mount", "--bind", str(resolv), "/etc/resolv.conf")


class Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams += 1


async def _hold(request: web.Request) -> web.Response:
    # Keeps the page's load event back long enough for the ICE checks to be sent.
    await asyncio.sleep(1.5)
    return web.Response(body=b"GIF89a", content_type="image/gif")


class Pages:
    """The probe pages on 127.0.0.1; counts service-worker script fetches."""

    def __init__(self) -> None:
        self.service_worker_fetches = 0

    async def webrtc(self, request: web.Request) -> web.Response:
        return web.Response(text=_WEBRTC_PAGE, content_type="text/html")

    async def bypass(self, request: web.Request) -> web.Response:
        return web.Response(text=_BYPASS_PAGE, content_type="text/html")

    async def service_worker(self, request: web.Request) -> web.Response:
        self.service_worker_fetches += 1
        return web.Response(text=_SERVICE_WORKER, content_type="text/javascript")

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/webrtc", self.webrtc),
                web.get("/bypass", self.bypass),
                web.get("/sw.js", self.service_worker),
                web.get("/hold", _hold),
            ]
        )
        return app


async def _through_capturer(url: str, args: list[str], remote: bool) -> dict[str, Any]:
    """One capture the bot's way: `Capturer`, its proxy, local launch or a browser server."""
    server = RemoteBrowser(args=args) if remote else None
    capturer = Capturer(
        NetGuard(["127.0.0.1"]),
        executable=find_chromium(),
        ws_endpoint=server.start() if server else None,
        args=args,
    )
    try:
        try:
            await capturer.start()
        except BrowserSwitchError as exc:
            return {"started": False, "error": str(exc)}
        try:
            snap = await capturer.capture(url)
            return {"started": True, "captured": True, "text": snap.text[:200]}
        except CaptureError as exc:
            return {"started": True, "captured": False, "reason": exc.reason}
    finally:
        await capturer.stop()
        if server:
            server.stop()


async def _without_proxy(url: str) -> dict[str, Any]:
    """The control: plain Playwright, the same switches, no proxy, service workers allowed."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=find_chromium(),
            args=CHROMIUM_ARGS,
            chromium_sandbox=False,
        )
        try:
            page = await browser.new_page()
            await page.goto(url, wait_until="load")
            await page.hover("a")
            text = await page.inner_text("body")
        finally:
            await browser.close()
    return {"started": True, "captured": True, "text": text[:200]}


async def probe(page: str, *, with_switch: bool, remote: bool, proxy: bool) -> dict[str, Any]:
    make_network()
    loop = asyncio.get_running_loop()
    counters: dict[str, Counter] = {}
    for name, port in UDP_PORTS.items():
        counter = Counter()
        await loop.create_datagram_endpoint(lambda c=counter: c, local_addr=(TARGET, port))  # type: ignore[misc]
        counters[name] = counter
    pages = Pages()
    runner, port = await serve(pages.app(), "127.0.0.1")
    url = f"http://127.0.0.1:{port}/{page}"
    args = (
        list(CHROMIUM_ARGS)
        if with_switch
        else [a for a in CHROMIUM_ARGS if a not in WEBRTC_SWITCHES]
    )
    try:
        if proxy:
            outcome = await _through_capturer(url, args, remote)
        else:
            outcome = await _without_proxy(url)
    finally:
        await runner.cleanup()
    # Whatever was sent has arrived over loopback by now; give the sockets a moment.
    await asyncio.sleep(0.5)
    outcome["datagrams"] = {name: c.datagrams for name, c in counters.items()}
    outcome["service_worker_fetches"] = pages.service_worker_fetches
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--page", choices=["webrtc", "bypass"], default="webrtc")
    parser.add_argument("--without-switch", action="store_true")
    parser.add_argument("--remote", action="store_true", help="through a browser server")
    parser.add_argument("--no-proxy", action="store_true", help="control: plain Playwright")
    ns = parser.parse_args()
    result = eventloop.run(
        probe(ns.page, with_switch=not ns.without_switch, remote=ns.remote, proxy=not ns.no_proxy)
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
