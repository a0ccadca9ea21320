"""Web pages the tests point the bot at, served from 127.0.0.1, and a loopback sentinel."""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from typing import Any

from aiohttp import web

from bot.library.linkrot import USER_AGENT as CHECKER_AGENT
from tests.fakes import cmp, documents
from tests.fakes.web import serve

# Quadrant colours of /colors: the test reads these back from the uploaded JPEG.
QUADRANTS = {
    "top_left": (255, 0, 0),
    "top_right": (0, 160, 0),
    "bottom_left": (0, 0, 255),
    "bottom_right": (255, 220, 0),
}

_REMEMBER_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>remember</title>
</head><body><p>A page that remembers its visitors.</p><script>
const kept = [
  document.cookie.includes("seen=1") ? "cookie-kept" : "cookie-none",
  localStorage.getItem("seen") ? "storage-kept" : "storage-none",
  "lang-" + navigator.language,
];
document.title = kept.join(" ");
document.cookie = "seen=1; max-age=3600";
localStorage.setItem("seen", "1");
</script></body></html>"""

_COLORS_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Colour test page</title>
<meta name="description" content="Four coloured quadrants for pixel checks.">
<meta property="og:site_name" content="Linksnap Test Site">
<style>html,body{margin:0;height:100%;overflow:hidden}
div{position:fixed;width:50vw;height:50vh}</style></head><body>
<div style="left:0;top:0;background:rgb(255,0,0)"></div>
<div style="right:0;top:0;background:rgb(0,160,0)"></div>
<div style="left:0;bottom:0;background:rgb(0,0,255)"></div>
<div style="right:0;bottom:0;background:rgb(255,220,0)"></div>
</body></html>"""


GALLERY_IMAGES = 24


def article_html(title: str, paragraphs: list[str], lang: str = "en") -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><article><h1>{html.escape(title)}</h1>"
        f"{body}</article></body></html>"
    )


class PageServer:
    """aiohttp site with the pages the scenarios need; counts hits per path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        # Openings per path, in the order first opened. The link-rot checker's requests
        # are not openings: its rounds (never-checked links newest first) come whenever
        # a slow machine lets them, so they are only in `requested`.
        self.hits: dict[str, int] = {}
        self.requested: list[tuple[str, float]] = []  # (path, time.monotonic()) of each request
        # The client's end of the connection each request came on, per path.
        self.connections: dict[str, list[tuple[str, int]]] = {}
        self.languages: list[str] = []  # Accept-Language of each /remember request
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.sentinel_url = ""  # set by the fixture: where /embeds points
        self.endless_bytes = 0  # what /endless managed to send before the client let go
        self.consent_choices: list[tuple[str, str]] = []  # (platform, choice) from /cmp/choice
        self.styles_pending = 0  # /never.css requests still waiting (they never finish)
        # Paths (by prefix) answered only after so many seconds: a test whose point is an
        # order, not the pages, keeps its capture slots waiting instead of working.
        self.answer_late: dict[str, float] = {}

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._count])
        app.add_routes(
            [
                web.get("/colors", self._colors),
                web.get("/article/{name}", self._article),
                web.get("/zh", self._zh),
                web.get("/scripted", self._scripted),
                web.get("/redirect", self._redirect),
                web.get("/loop", self._loop),
                web.get("/slow", self._slow),
                web.get("/hang", self._hang_after_headers),
                web.get("/status/{code}", self._status),
                web.get("/download", self._download),
                web.get("/dialog", self._dialog),
                web.get("/html-title", self._html_title),
                web.get("/embeds", self._embeds),
                web.get("/tall", self._tall),
                web.get("/big", self._big),
                web.get("/script-redirect", self._script_redirect),
                web.get("/meta-refresh", self._meta_refresh),
                web.get("/endless", self._endless),
                # capture fidelity (issue 13)
                web.get("/cmp/choice", self._cmp_choice),
                web.get("/cmp/{platform}", self._cmp_page),
                web.get("/cmp/{platform}/loader.js", self._cmp_loader),
                web.get("/blocked-css", self._blocked_css),
                web.get("/never.css", self._never_css),
                web.get("/lazy", self._lazy),
                web.get("/long", self._long),
                web.get("/swatch/{r}-{g}-{b}.png", self._swatch),
                web.get("/gallery", self._gallery),
                web.get("/report.pdf", self._report_pdf),
                web.get("/report-download", self._report_download),
                web.get("/report-chunked.pdf", self._report_chunked),
                web.get("/flip/{key}.pdf", self._flip_pdf),
                web.get("/huge.pdf", self._huge_pdf),
                web.get("/photo.png", self._photo),
                web.get("/remember", self._remember),
            ]
        )
        self._runner, port = await serve(app, self.host)
        self.port = port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("User-Agent") != CHECKER_AGENT:
            self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.requested.append((request.path, time.monotonic()))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.connections.setdefault(request.path, []).append(tuple(peer[:2]) if peer else ("", 0))
        # Read before waiting: a test's end clears answer_late meanwhile.
        late = sum(s for prefix, s in self.answer_late.items() if request.path.startswith(prefix))
        if late:
            await asyncio.sleep(late)
        return await handler(request)  # type: ignore[no-any-return]

    async def _remember(self, request: web.Request) -> web.Response:
        """Says in its title what an earlier visit left (cookie, storage) and the
        browser's language, then leaves a cookie and storage of its own."""
        self.languages.append(request.headers.get("Accept-Language", ""))
        return web.Response(text=_REMEMBER_PAGE, content_type="text/html")

    async def _colors(self, request: web.Request) -> web.Response:
        return web.Response(text=_COLORS_PAGE, content_type="text/html")

    async def _article(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        paragraphs = [f"This is article {name}. " + "It talks about snapshots and tags. " * 8] * 4
        return web.Response(
            text=article_html(f"Article {name}", paragraphs), content_type="text/html"
        )

    async def _scripted(self, request: web.Request) -> web.Response:
        """An article carrying what a news site's page carries besides its text: a large
        inline script and style, comments, and its metadata as JSON-LD."""
        bundle = "var bundle = " + repr("x" * 1_000_000) + ";"
        style = "p { color: #222 } " * 20_000
        head = (
            f"<script>{bundle}</script><style>{style}</style><!-- {'c' * 50_000} -->"
            '<script type="application/ld+json">{"@type": "NewsArticle", '
            '"headline": "Scripted article"}</script>'
        )
        paragraphs = ["The scripted article's own words are what the reader keeps. " * 6] * 3
        page = article_html("Scripted article", paragraphs).replace("</head>", head + "</head>")
        return web.Response(text=page, content_type="text/html")

    async def _zh(self, request: web.Request) -> web.Response:
        paragraphs = ["这是一篇关于网页快照和标签管理的中文文章。" * 6] * 3
        return web.Response(
            text=article_html("中文测试页面", paragraphs, "zh"), content_type="text/html"
        )

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query.get("to", "/colors"))

    async def _loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="late")

    async def _hang_after_headers(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        await response.write(b"<html><head><title>Hanging")
        await asyncio.sleep(3600)
        return response

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        page = article_html(f"Error {code}", [f"The server answered {code}."])
        return web.Response(status=code, text=page, content_type="text/html")

    async def _download(self, request: web.Request) -> web.Response:
        return web.Response(
            body=b"\x00" * 2048,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": 'attachment; filename="file.bin"',
            },
        )

    async def _dialog(self, request: web.Request) -> web.Response:
        page = article_html("Dialog page", ["A page that opens dialogs."])
        page = page.replace("</body>", "<script>alert('hi');confirm('sure?');</script></body>")
        return web.Response(text=page, content_type="text/html")

    async def _html_title(self, request: web.Request) -> web.Response:
        title = "&lt;b&gt;Bold&lt;/b&gt; &amp; <i>co</i>"
        page = (
            f"<html><head><title>{title}</title></head><body><p>markup in title</p></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _embeds(self, request: web.Request) -> web.Response:
        target = self.sentinel_url
        ws = target.replace("http://", "ws://")
        page = f"""<!doctype html><html><head><title>Embeds</title>
<script src="{target}/script.js"></script>
<link rel="stylesheet" href="{target}/style.css"></head><body>
<img src="{target}/img.png"><iframe src="{target}/frame"></iframe>
<script>fetch("{target}/fetch").catch(()=>0);
try {{ new WebSocket("{ws}/ws"); }} catch (e) {{}}
var x = new XMLHttpRequest(); x.open("GET", "{target}/xhr"); x.send();</script>
<p>Embeds pointing elsewhere.</p></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _tall(self, request: web.Request) -> web.Response:
        page = article_html("Tall page", ["Tall. "] * 10).replace(
            "<body>",
            '<body><div style="height:50000px;background:linear-gradient(red,blue)"></div>',
        )
        return web.Response(text=page, content_type="text/html")

    async def _big(self, request: web.Request) -> web.Response:
        paragraphs = ["Lots of words in a very big page. " * 50] * 1500
        return web.Response(text=article_html("Big page", paragraphs), content_type="text/html")

    async def _script_redirect(self, request: web.Request) -> web.Response:
        target = html.escape(request.query.get("to", "/colors"))
        page = f"""<!doctype html><html><head><title>Moving on</title>
<script>location.href = "{target}";</script></head><body><p>Moving on.</p></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _meta_refresh(self, request: web.Request) -> web.Response:
        target = html.escape(request.query.get("to", "/colors"))
        delay = int(request.query.get("delay", "0"))
        page = f"""<!doctype html><html><head><title>Refreshing</title>
<meta http-equiv="refresh" content="{delay};url={target}"></head><body><p>Refreshing.</p></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """A page that does not stop sending (256 MiB at most, so a test stays bounded)."""
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        await response.write(b"<!doctype html><html><head><title>Endless</title></head><body>")
        chunk = b"<p>" + b"more " * 12_000 + b"</p>\n"
        sent = 0
        try:
            while sent < 256 * 1024 * 1024:
                await response.write(chunk)
                sent += len(chunk)
                self.endless_bytes += len(chunk)
            await asyncio.sleep(3600)
        except (ConnectionError, RuntimeError):
            pass
        return response

    # --- capture fidelity (issue 13) ---

    async def _cmp_page(self, request: web.Request) -> web.Response:
        platform = request.match_info["platform"]
        if platform not in cmp.PLATFORMS:
            raise web.HTTPNotFound()
        return web.Response(text=cmp.page(platform), content_type="text/html")

    async def _cmp_loader(self, request: web.Request) -> web.Response:
        platform = request.match_info["platform"]
        if platform not in cmp.PLATFORMS:
            raise web.HTTPNotFound()
        return web.Response(text=cmp.loader(platform), content_type="text/javascript")

    async def _cmp_choice(self, request: web.Request) -> web.Response:
        self.consent_choices.append((request.query["cmp"], request.query["choice"]))
        return web.Response(status=204)

    async def _blocked_css(self, request: web.Request) -> web.Response:
        """An article whose stylesheet in <head> never arrives (a dead CDN)."""
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Slow stylesheet</title><link rel="stylesheet" href="/never.css">
</head><body style="margin:0;background:rgb{BLOCKED_CSS_COLOUR}">
<h1>The article was drawn long ago</h1><p>Only its stylesheet never came.</p></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _never_css(self, request: web.Request) -> web.Response:
        self.styles_pending += 1
        try:
            await asyncio.sleep(3600)
        finally:
            self.styles_pending -= 1
        return web.Response(text="", content_type="text/css")

    async def _lazy(self, request: web.Request) -> web.Response:
        """Images far below the fold: one native `loading=lazy`, one set by a script on view."""
        native, scripted = LAZY_IMAGES["native"], LAZY_IMAGES["scripted"]
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Lazy images</title>
<style>body{{margin:0;height:{LAZY_HEIGHT}px;background:#eee;position:relative}}
img{{position:absolute;left:100px;width:400px;height:300px}}</style></head><body>
<h1>Scroll down for the pictures</h1>
<img loading="lazy" style="top:{native[1]}px" src="/swatch/{"-".join(map(str, native[0]))}.png">
<img id="scripted" style="top:{scripted[1]}px" data-src="/swatch/{"-".join(map(str, scripted[0]))}.png">
<script>new IntersectionObserver((entries, observer) => entries.forEach((e) => {{
  if (e.isIntersecting) {{ e.target.src = e.target.dataset.src; observer.unobserve(e.target); }}
}})).observe(document.getElementById("scripted"));</script></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _long(self, request: web.Request) -> web.Response:
        """A page `height` px tall in LONG_BANDS colour bands, text at the top and the bottom."""
        height = int(request.query.get("height", "20000"))
        band = height // len(LONG_BANDS)
        bands = "".join(
            f'<div style="height:{band}px;background:rgb{c}"></div>' for c in LONG_BANDS
        )
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Long page</title>
<style>body{{margin:0}} p{{position:absolute;left:20px;font:24px sans-serif;color:#fff}}</style>
</head><body><p style="top:10px">Top of the long page</p>{bands}
<p style="top:{height - 60}px">Bottom of the long page</p></body></html>"""
        return web.Response(text=page, content_type="text/html")

    async def _gallery(self, request: web.Request) -> web.Response:
        """GALLERY_IMAGES small pictures from this same server, as an article's photos."""
        images = "".join(
            f'<img src="/swatch/{i}-{i}-{i}.png" width="40" height="40">'
            for i in range(GALLERY_IMAGES)
        )
        page = article_html("Gallery", ["Pictures of swatches."]).replace(
            "</body>", f"{images}</body>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _swatch(self, request: web.Request) -> web.Response:
        colour = tuple(int(request.match_info[k]) for k in "rgb")
        return web.Response(body=documents.swatch(colour), content_type="image/png")  # type: ignore[arg-type]

    async def _report_pdf(self, request: web.Request) -> web.Response:
        return web.Response(body=documents.REPORT_PDF, content_type="application/pdf")

    async def _report_download(self, request: web.Request) -> web.Response:
        """The same PDF, offered as an attachment under a URL that does not say .pdf."""
        return web.Response(
            body=documents.REPORT_PDF,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": 'attachment; filename="report.pdf"',
            },
        )

    async def _flip_pdf(self, request: web.Request) -> web.Response:
        """A PDF the first time; every later request is sent on to `to` (the sentinel)."""
        if self.hits.get(request.path, 0) > 1:
            raise web.HTTPFound(request.query["to"])
        return web.Response(body=documents.REPORT_PDF, content_type="application/pdf")

    async def _report_chunked(self, request: web.Request) -> web.StreamResponse:
        """The same PDF with no Content-Length: its size shows only as it arrives."""
        response = web.StreamResponse(headers={"Content-Type": "application/pdf"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(documents.REPORT_PDF)
        await response.write_eof()
        return response

    async def _huge_pdf(self, request: web.Request) -> web.StreamResponse:
        """A PDF that says it is 500 MB; it sends a few bytes, then nothing."""
        response = web.StreamResponse(headers={"Content-Type": "application/pdf"})
        response.content_length = 500 * 1024 * 1024
        await response.prepare(request)
        await response.write(b"%PDF-1.4\n")
        with contextlib.suppress(ConnectionError, RuntimeError):
            await asyncio.sleep(3600)
        return response

    async def _photo(self, request: web.Request) -> web.Response:
        return web.Response(body=documents.PHOTO_PNG, content_type="image/png")


BLOCKED_CSS_COLOUR = (0, 128, 255)
# colour, top (px) of each picture on /lazy
LAZY_HEIGHT = 6000
LAZY_IMAGES = {"native": ((200, 40, 40), 3000), "scripted": ((40, 170, 40), 4800)}
LONG_BANDS = [(200, 30, 30), (30, 150, 30), (30, 30, 200), (220, 180, 0), (120, 0, 160)]


class Sentinel:
    """A TCP listener that only counts: any connection at all is a guard failure."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
