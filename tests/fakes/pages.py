"""Web pages the tests point the bot at, served from 127.0.0.1, and a loopback sentinel."""

from __future__ import annotations

import asyncio
import html
from typing import Any

from aiohttp import web

from tests.fakes.web import serve

# Quadrant colours of /colors: the test reads these back from the uploaded JPEG.
QUADRANTS = {
    "top_left": (255, 0, 0),
    "top_right": (0, 160, 0),
    "bottom_left": (0, 0, 255),
    "bottom_right": (255, 220, 0),
}

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
        self.hits: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.sentinel_url = ""  # set by the fixture: where /embeds points
        self.endless_bytes = 0  # what /endless managed to send before the client let go

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._count])
        app.add_routes(
            [
                web.get("/colors", self._colors),
                web.get("/article/{name}", self._article),
                web.get("/zh", self._zh),
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
            ]
        )
        self._runner, port = await serve(app, self.host)
        self.port = port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        return await handler(request)  # type: ignore[no-any-return]

    async def _colors(self, request: web.Request) -> web.Response:
        return web.Response(text=_COLORS_PAGE, content_type="text/html")

    async def _article(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        paragraphs = [f"This is article {name}. " + "It talks about snapshots and tags. " * 8] * 4
        return web.Response(
            text=article_html(f"Article {name}", paragraphs), content_type="text/html"
        )

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
