"""The link-rot decision table, against real HTTP answers from pages on 127.0.0.1.

Gone: 404, 410, a name that no longer resolves. Unknown (check again later): 401, 403,
429, 5xx, timeouts, refused connections. Alive: 2xx and 3xx to a live page.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.guard.netguard import NetGuard
from bot.library import linkrot
from tests.conftest import free_port
from tests.fakes.pages import Sentinel
from tests.fakes.web import running, serve


class StatusSite:
    """`/s/CODE` answers CODE; `/slow` never answers in time; anything else 200."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.port = 0

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/s/{code}", self._status)
        app.router.add_get("/to/{code}", self._redirect)
        app.router.add_route("*", "/away", self._away)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/{tail:.*}", self._ok)
        runner, self.port = await serve(app)
        return runner

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _status(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return web.Response(status=int(request.match_info["code"]), text="x")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/s/{request.match_info['code']}")

    async def _away(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        raise web.HTTPFound(request.query["to"])

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def _ok(self, request: web.Request) -> web.Response:
        self.paths.append(request.raw_path)
        return web.Response(text="here")


@pytest.fixture
async def site() -> AsyncIterator[StatusSite]:
    async with running(StatusSite()) as server:
        yield server


async def _no_dns(host: str, port: int) -> list[str]:
    """The resolver of a world where these names are gone; never asks the real one."""
    raise OSError(f"{host}: Name or service not known")


@pytest.fixture
def guard() -> NetGuard:
    return NetGuard(["127.0.0.1"], resolver=_no_dns)


@pytest.mark.parametrize(
    ("path", "verdict"),
    [
        ("/s/200", True),
        ("/s/204", True),
        ("/to/200", True),
        ("/s/404", False),
        ("/s/410", False),
        ("/to/404", False),
        ("/s/401", None),
        ("/s/403", None),
        ("/s/429", None),
        ("/s/451", None),
        ("/s/500", None),
        ("/s/502", None),
        ("/s/503", None),
    ],
)
async def test_status_decides(
    site: StatusSite, guard: NetGuard, path: str, verdict: bool | None
) -> None:
    assert await linkrot.is_alive(guard, site.url(path)) is verdict


async def test_timeout_is_unknown(
    site: StatusSite, guard: NetGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(linkrot, "REQUEST_SECONDS", 0.5)
    assert await linkrot.is_alive(guard, site.url("/slow")) is None


async def test_refused_connection_is_unknown(guard: NetGuard) -> None:
    port = free_port()  # nothing listens there
    assert await linkrot.is_alive(guard, f"http://127.0.0.1:{port}/page") is None


async def test_name_that_no_longer_resolves_is_gone(guard: NetGuard) -> None:
    assert await linkrot.is_alive(guard, "https://gone-site.example/page") is False


async def test_backslash_authority_is_judged_as_the_url_standard_reads_it(
    site: StatusSite, guard: NetGuard, sentinel: Sentinel
) -> None:
    """Browsers read `\\` as `/` in http(s): the host is 127.0.0.1 and the rest is path.
    The check must ask that host, not the 127.0.0.2 an HTTP client would see after `@`."""
    before = sentinel.connections
    url = f"http://127.0.0.1:{site.port}\\@{sentinel.host}:{sentinel.port}/page"
    assert await linkrot.is_alive(guard, url) is True
    assert site.paths[-1] == f"/@{sentinel.host}:{sentinel.port}/page"
    assert sentinel.connections == before


@pytest.mark.parametrize("hops", [1, 2])
async def test_a_redirect_to_a_refused_address_is_unknown_and_never_followed(
    site: StatusSite, guard: NetGuard, sentinel: Sentinel, hops: int
) -> None:
    """A public page that redirects (directly or by a second hop) to an address the
    guard refuses: "check again later", and not one connection reaches that address."""
    before = sentinel.connections
    url = f"{sentinel.url}/rot"
    for _ in range(hops):
        url = site.url(f"/away?to={urllib.parse.quote(url, safe='')}")
    assert await linkrot.is_alive(guard, url) is None
    assert site.paths.count("/away") >= hops  # the public hops were asked
    assert sentinel.connections == before
