"""Real-world article pages for the burst bench, served from 127.0.0.1.

No machine here reaches the internet, and Mozilla Readability's test pages are not in
any registry package (its npm package ships only the library). newspaper4k's source
distribution on PyPI carries 30 real pages saved from news sites (CNN, Wired, Time,
Yahoo, AP, Chinese, Japanese, Thai, Arabic, Burmese... articles, 14 KB to 2.9 MB) as
its test data, and trafilatura's two more (mozilla.org, apache.org). They are fetched
with pip at bench time into benchmarks/.cache/ (ignored by git: third-party pages are
not committed).

Third-party hosts fail at once, without a DNS query (the machine's resolver is on a
private address, which nothing here may reach): every absolute or protocol-relative
URL to another host is rewritten, as the page is served, to a port on 127.0.0.1 where
nothing listens, so the connection is refused immediately. The bot and bare Playwright
get the same bytes.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

from aiohttp import web

from tests.fakes.web import serve

CACHE = Path(__file__).resolve().parent / ".cache"
SOURCES = {
    "newspaper4k-0.9.6.tar.gz": ("newspaper4k==0.9.6", "newspaper4k-0.9.6/tests/data/html/"),
    "trafilatura-2.0.0.tar.gz": ("trafilatura==2.0.0", "trafilatura-2.0.0/tests/resources/"),
}
# Not articles: a 571-byte redirect to google.com and an RSS listing; trafilatura's
# other files are made-up snippets.
SKIP = {"google_meta_refresh.html", "sample_rss.html"}
TRAFILATURA_PAGES = {"mozilla.org.firefox.developer.html", "apache.html"}
_FOREIGN = re.compile(
    rb"(?:https?:)?//((?:[a-z0-9-]+\.)+[a-z]{2,})(?=[/\"'\s?#:)\\]|&quot;)", re.IGNORECASE
)


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch() -> dict[str, bytes]:
    """The pages by name, downloaded once into the cache."""
    pages_dir = CACHE / "pages"
    if not pages_dir.is_dir() or len(list(pages_dir.iterdir())) < 30:
        pages_dir.mkdir(parents=True, exist_ok=True)
        for archive, (requirement, prefix) in SOURCES.items():
            path = CACHE / archive
            if not path.exists():
                pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
                subprocess.run(
                    [*pip, "--no-binary", ":all:", requirement, "-d", str(CACHE)], check=True
                )
            _extract(path, prefix, pages_dir)
    return {p.name: p.read_bytes() for p in sorted(pages_dir.iterdir())}


def _extract(archive: Path, prefix: str, into: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if not member.name.startswith(prefix) or not name.endswith(".html"):
                continue
            if name in SKIP or ("trafilatura" in prefix and name not in TRAFILATURA_PAGES):
                continue
            data = tar.extractfile(member)
            if data is not None:
                (into / name).write_bytes(data.read())


def localise(html: bytes, port: int) -> bytes:
    """Every URL to another host points at a refusing loopback port instead."""
    return _FOREIGN.sub(lambda m: b"http://127.0.0.1:%d/%s" % (port, m.group(1)), html)


class RealPages:
    """/real/<name>; anything else on this server is a quick 404 (relative assets)."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        refusing = dead_port()
        self.pages = {name: localise(html, refusing) for name, html in fetch().items()}
        app = web.Application()
        app.add_routes([web.get("/real/{name}", self._page)])
        self._runner, self.port = await serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.port}/real/{name}" for name in self.pages]

    async def _page(self, request: web.Request) -> web.Response:
        html = self.pages.get(request.match_info["name"])
        if html is None:
            raise web.HTTPNotFound()
        # No charset here: each page says its own (meta tag), as its site did.
        return web.Response(body=html, headers={"Content-Type": "text/html"})
