"""The egress proxy's relay: two real loopback connections spliced by a `Tunnel`.

A "browser" and a "server" are plain sockets on 127.0.0.1; the proxy's two ends sit
between them as they do in `GuardProxy`. Nothing here leaves loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from bot.guard.relay import End, Tunnel
from tests.waiting import until

BLOCK = bytes(range(256)) * 256  # 64 KiB, every byte value, so a reordering shows


@dataclass
class Spliced:
    browser: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    server: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    near: End  # the proxy's end facing the browser
    far: End  # the proxy's end facing the server
    tunnel: Tunnel
    closed: asyncio.Event
    metered: list[int]


async def _splice(
    meter: Callable[[int], bool] | None = None, idle: float = 30.0
) -> tuple[Spliced, Callable[[], Awaitable[None]]]:
    loop = asyncio.get_running_loop()
    near = End()
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
        loop.create_future()
    )

    async def on_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    proxy_side = await loop.create_server(lambda: near, "127.0.0.1", 0)
    server_side = await asyncio.start_server(on_server, "127.0.0.1", 0)
    browser = await asyncio.open_connection("127.0.0.1", proxy_side.sockets[0].getsockname()[1])
    _, far = await loop.create_connection(End, "127.0.0.1", server_side.sockets[0].getsockname()[1])
    server = await accepted
    closed = asyncio.Event()
    metered: list[int] = []

    def count(size: int) -> bool:
        metered.append(size)
        return meter(size) if meter is not None else True

    tunnel = Tunnel(near, far, meter=count, idle=idle, grace=5.0, on_close=closed.set)

    async def cleanup() -> None:
        tunnel.abort()
        for _, writer in (browser, server):
            writer.close()
        proxy_side.close()
        server_side.close()

    return Spliced(browser, server, near, far, tunnel, closed, metered), cleanup


@pytest.fixture
async def spliced() -> AsyncIterator[Spliced]:
    pair, cleanup = await _splice()
    yield pair
    await cleanup()


async def test_a_reader_that_does_not_read_holds_the_sender_back(spliced: Spliced) -> None:
    """A browser that stops reading stops the proxy reading the server: nothing piles up."""
    assert spliced.far.transport is not None and spliced.near.transport is not None
    _, server_writer = spliced.server
    total = 24 * 1024 * 1024
    digest = hashlib.sha256()

    async def send() -> None:
        for _ in range(total // len(BLOCK)):
            server_writer.write(BLOCK)
            digest.update(BLOCK)
            await server_writer.drain()
        server_writer.close()

    sender = asyncio.create_task(send())
    # The proxy stops reading from the server while the browser reads nothing...
    await until(lambda: not spliced.far.transport.is_reading(), 20)  # type: ignore[union-attr]
    # ...and holds no more than its high-water mark plus one read for the browser.
    assert spliced.near.transport.get_write_buffer_size() <= 512 * 1024
    assert not sender.done()  # the server is held back too, not buffered whole
    # Once the browser reads, everything arrives, whole and in order.
    browser_reader, _ = spliced.browser
    received = hashlib.sha256()
    got = 0
    while chunk := await asyncio.wait_for(browser_reader.read(1 << 16), 20):
        received.update(chunk)
        got += len(chunk)
    await sender
    assert got == total and received.digest() == digest.digest()
    assert sum(spliced.metered) == total
    await asyncio.wait_for(spliced.closed.wait(), 20)


async def test_a_browser_that_has_sent_everything_still_gets_the_answer(
    spliced: Spliced,
) -> None:
    """Half-close: the browser's end-of-stream reaches the server; the reply still comes back."""
    browser_reader, browser_writer = spliced.browser
    server_reader, server_writer = spliced.server
    browser_writer.write(b"question")
    browser_writer.write_eof()
    assert await asyncio.wait_for(server_reader.read(), 20) == b"question"  # EOF passed on
    for _ in range(64):
        server_writer.write(BLOCK)
    server_writer.close()
    answer = await asyncio.wait_for(browser_reader.read(), 20)
    assert answer == BLOCK * 64
    await asyncio.wait_for(spliced.closed.wait(), 20)


async def test_a_meter_that_says_stop_drops_the_chunk() -> None:
    """The byte budget: a chunk the meter refuses is not passed on."""
    pair, cleanup = await _splice(meter=lambda size: False)
    try:
        _, browser_writer = pair.browser
        server_reader, _ = pair.server
        browser_writer.write(b"over budget")
        await browser_writer.drain()
        await until(lambda: bool(pair.metered), 20)  # the relay has seen the chunk
        pair.tunnel.close()
        assert await asyncio.wait_for(server_reader.read(), 20) == b""
    finally:
        await cleanup()


async def test_a_tunnel_with_no_traffic_is_cut_after_the_idle_time() -> None:
    pair, cleanup = await _splice(idle=0.3)
    try:
        browser_reader, browser_writer = pair.browser
        server_reader, _ = pair.server
        browser_writer.write(b"ping")
        assert await asyncio.wait_for(server_reader.readexactly(4), 20) == b"ping"
        await asyncio.wait_for(pair.closed.wait(), 20)
        assert await asyncio.wait_for(browser_reader.read(), 20) == b""
    finally:
        await cleanup()
