"""Start an aiohttp app on a free loopback port: shared by every fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    # A short shutdown timeout: a test's stalled requests must not hold teardown for a minute.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    return runner, int(runner.addresses[0][1])


class Site(Protocol):
    async def start(self) -> web.AppRunner: ...


S = TypeVar("S", bound=Site)


@asynccontextmanager
async def running(site: S) -> AsyncIterator[S]:
    """`site` started (it serves through `serve`), its runner cleaned up after."""
    runner = await site.start()
    yield site
    await runner.cleanup()
