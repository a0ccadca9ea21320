"""The egress proxy is a door into the bot's network: only a capture's own credential opens it.

Raw clients speak to the proxy on 127.0.0.1 the way any local process could; the pages
behind it are on 127.0.0.1 too (allowed, as in every test). Nothing here leaves loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.app import build_proxy
from bot.browser.binary import find_chromium
from bot.browser.capture import CaptureError, Capturer
from bot.browser.errors import Failure
from bot.chat import render
from bot.guard import socks
from bot.guard.egress import BLOCK_HEADER, UPSTREAM_HEADER, EgressLimits, EgressSession, GuardProxy
from bot.guard.netguard import NetGuard
from bot.i18n import texts_for
from tests.conftest import free_port
from tests.fakes.pages import GALLERY_IMAGES, PageServer, Sentinel
from tests.harness import BotHarness

IDLE = 1.5


def _auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Proxy-Authorization: Basic {token}\r\n"


def _with(session: EgressSession) -> str:
    return _auth(session.username, session.password)


async def _ask(port: int, request: str) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a request head to the proxy; its status line and headers, and the open stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode("latin-1"))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head.decode("latin-1"), reader, writer


async def _status(port: int, request: str) -> str:
    head, _, writer = await _ask(port, request)
    writer.close()
    return head


@pytest.fixture
async def proxy() -> AsyncIterator[GuardProxy]:
    limits = EgressLimits(max_connections=6, max_connections_per_capture=4, idle_timeout=IDLE)
    server = GuardProxy(NetGuard(["127.0.0.1"]), limits=limits)
    await server.start()
    yield server
    await server.stop()


async def test_no_credential_no_tunnel(proxy: GuardProxy, pages: PageServer) -> None:
    live = await proxy.open_session()
    revoked = await proxy.open_session()
    proxy.close_session(revoked)
    target = f"127.0.0.1:{pages.port}"
    wrong = [
        "",
        _auth(live.username, "not-the-password"),
        _auth("someone", live.password),
        _with(revoked),
        f"Proxy-Authorization: Bearer {live.password}\r\n",
        "Proxy-Authorization: Basic !!!\r\n",
    ]
    for header in wrong:
        head = await _status(
            proxy.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{header}\r\n"
        )
        assert head.startswith("HTTP/1.1 407"), (header, head)
        assert 'Proxy-Authenticate: Basic realm="linksnap"' in head
        url = pages.url("/article/noauth")
        head = await _status(proxy.port, f"GET {url} HTTP/1.1\r\nHost: {target}\r\n{header}\r\n")
        assert head.startswith("HTTP/1.1 407"), (header, head)
    assert pages.hits.get("/article/noauth") is None
    # The capture's own credential opens both kinds of request.
    head, reader, writer = await _ask(
        proxy.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(live)}\r\n"
    )
    assert head.startswith("HTTP/1.1 200")
    writer.write(f"GET /article/authed HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).startswith(b"HTTP/1.1 200")
    writer.close()
    url = pages.url("/article/plain")
    head = await _status(proxy.port, f"GET {url} HTTP/1.1\r\nHost: {target}\r\n{_with(live)}\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert pages.hits.get("/article/authed") == 1 and pages.hits.get("/article/plain") == 1


async def test_a_local_capture_has_a_port_of_its_own_until_it_ends(
    proxy: GuardProxy, pages: PageServer
) -> None:
    """A browser on this machine is pointed at its capture's own port (no credential, so
    Playwright need not intercept each request); the port opens nothing once it ends."""
    first, second = await proxy.open_session(), await proxy.open_session()
    assert first.port is not None and second.port is not None and first.port != second.port
    assert proxy.browser_proxy(first) == {"server": f"socks5://127.0.0.1:{first.port}"}
    target = f"127.0.0.1:{pages.port}"
    url = pages.url("/article/own-port")
    head = await _status(first.port, f"GET {url} HTTP/1.1\r\nHost: {target}\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    head, _, tunnel = await _ask(first.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    # Another capture's port is the proxy too: never a destination.
    other = f"127.0.0.1:{second.port}"
    head = await _status(first.port, f"CONNECT {other} HTTP/1.1\r\nHost: {other}\r\n\r\n")
    assert head.startswith("HTTP/1.1 403") and f"{BLOCK_HEADER}: proxy" in head, head
    # A connection made while the capture lived, whose request comes after it ended.
    late_reader, late_writer = await asyncio.open_connection("127.0.0.1", first.port)
    proxy.close_session(first)
    late_writer.write(f"GET {url} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    late = await asyncio.wait_for(late_reader.readuntil(b"\r\n"), 10)
    assert late.startswith(b"HTTP/1.1 407"), late
    late_writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", first.port)
    tunnel.close()
    assert pages.hits.get("/article/own-port") == 1


async def test_own_port_is_never_a_destination(pages: PageServer) -> None:
    """Whatever CAPTURE_ALLOW_PRIVATE says, a page cannot reach the proxy through itself."""
    port = free_port()
    guard = NetGuard([f"127.0.0.1:{port}", "0.0.0.0/0", "::/0"])
    server = GuardProxy(guard, port=port)
    await server.start()
    try:
        session = await server.open_session()
        for target in (f"127.0.0.1:{port}", f"127.0.0.2:{port}", f"[::ffff:127.0.0.1]:{port}"):
            head = await _status(
                port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n"
            )
            assert head.startswith("HTTP/1.1 403"), (target, head)
            assert f"{BLOCK_HEADER}: proxy" in head
        # The same allow-list still lets the page server through: only the own port is shut.
        target = f"127.0.0.1:{pages.port}"
        head = await _status(
            port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n"
        )
        assert head.startswith("HTTP/1.1 200")
    finally:
        await server.stop()


async def test_waiting_connections_are_bounded(pages: PageServer) -> None:
    """Sockets that never send a request: beyond the total cap the oldest are dropped at once."""
    limits = EgressLimits(max_connections=6, max_connections_per_capture=4, idle_timeout=600)
    server = GuardProxy(NetGuard(["127.0.0.1"]), limits=limits)
    await server.start()
    try:
        idlers = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]

        async def dropped(reader: asyncio.StreamReader) -> None:
            with contextlib.suppress(ConnectionError):
                await reader.read()

        # The 14 oldest are dropped long before their (600 s) idle timeout.
        await asyncio.wait_for(asyncio.gather(*(dropped(r) for r, _ in idlers[:14])), 15)

        async def settled() -> None:
            while server.connections != 6:  # noqa: ASYNC110 (the proxy finishing its drops)
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 5)
        # A capture still gets through (evicting one more idler).
        session = await server.open_session()
        target = f"127.0.0.1:{pages.port}"
        head = await _status(
            server.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n"
        )
        assert head.startswith("HTTP/1.1 200")
        for _, writer in idlers:
            writer.close()
    finally:
        await server.stop()


async def test_connections_are_capped_per_capture_and_in_total(
    proxy: GuardProxy, pages: PageServer
) -> None:
    target = f"127.0.0.1:{pages.port}"
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{{auth}}\r\n"
    first, second = await proxy.open_session(), await proxy.open_session()
    held = []

    async def open_until_busy(session: EgressSession, allowed: int) -> None:
        """`allowed` tunnels open for the capture of `session`; the next one is refused."""
        for _ in range(allowed):
            head, _, writer = await _ask(proxy.port, request.format(auth=_with(session)))
            assert head.startswith("HTTP/1.1 200")
            held.append(writer)
        head = await _status(proxy.port, request.format(auth=_with(session)))
        assert head.startswith("HTTP/1.1 502") and f"{UPSTREAM_HEADER}: busy" in head

    try:
        await open_until_busy(first, 4)
        assert first.upstream_error_for("127.0.0.1", pages.port) == "busy"
        # Another capture has its own allowance, up to the total of 6.
        await open_until_busy(second, 2)
    finally:
        for writer in held:
            writer.close()


async def test_idle_tunnel_is_closed_but_a_busy_one_is_not(
    proxy: GuardProxy, pages: PageServer
) -> None:
    target = f"127.0.0.1:{pages.port}"
    session = await proxy.open_session()
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n"
    _, idle_reader, idle_writer = await _ask(proxy.port, request)
    _, busy_reader, busy_writer = await _ask(proxy.port, request)
    idle_closed = asyncio.create_task(idle_reader.read())
    sent = 0

    async def busy_request() -> None:
        nonlocal sent
        busy_writer.write(f"GET /article/busy{sent} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        status = await asyncio.wait_for(busy_reader.readuntil(b"\r\n"), 10)
        assert status.startswith(b"HTTP/1.1 200"), sent
        await _drain_response(busy_reader)
        sent += 1

    # The busy tunnel carries requests back to back (no pause of its own) until the
    # proxy closes the idle one (it reads end-of-stream: a signal, not a sleep)...
    loop = asyncio.get_running_loop()
    guard = loop.time() + 60  # not a speed: only so that a proxy that never closes fails
    while not idle_closed.done() and loop.time() < guard:
        await busy_request()
    assert idle_closed.done() and idle_closed.result() == b"", "the idle tunnel stayed open"
    # ...and for as long again after it: a tunnel in use is never closed as idle.
    until = loop.time() + IDLE
    while loop.time() < until:
        await busy_request()
    assert sent > 2
    idle_writer.close()
    busy_writer.close()


async def _drain_response(reader: asyncio.StreamReader) -> None:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1").lower()
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
    await asyncio.wait_for(reader.readexactly(length), 10)


async def test_500_idle_connections_do_not_stop_captures(
    harness_factory: Any, pages: PageServer
) -> None:
    """A local process opens 500 connections and sends nothing: captures go on, idlers go."""
    bot: BotHarness = await harness_factory(shared_browser=False, egress_idle_timeout="3")
    assert bot.services.capturer is not None
    proxy = bot.services.capturer.proxy
    idlers = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(500)]
    sent = bot.send(42, pages.url("/colors") + " #despite")
    assert await bot.finished(sent) == "👌"
    assert len(bot.photos_for(sent)) == 1

    async def closed(reader: asyncio.StreamReader) -> bool:
        with contextlib.suppress(ConnectionError):
            return await reader.read() == b""
        return True  # reset by the proxy: closed as well

    # Every idler is closed by the proxy (its idle timeout is 3 s; the wait is a guard).
    results = await asyncio.wait_for(asyncio.gather(*(closed(r) for r, _ in idlers)), 60)
    assert all(results)
    for _, writer in idlers:
        writer.close()
    # And the proxy holds none of them any more.
    await bot.api.wait_until(lambda: proxy.connections == 0, timeout=30)


async def test_byte_budget_stops_an_endless_page(harness_factory: Any, pages: PageServer) -> None:
    bot: BotHarness = await harness_factory(
        shared_browser=False, capture_max_mb="2", capture_timeout="20"
    )
    before = pages.endless_bytes
    sent = bot.send(42, pages.url("/endless"))
    assert await bot.finished(sent, timeout=60) == "🤷"
    texts = [c.params["text"] for c in bot.api.calls_of("sendMessage", ok_only=True)]
    assert any("more data than I download" in t for t in texts), texts
    [record] = await bot.records(42)
    assert record.error and record.error.startswith("too_large")
    # The page got out little more than the budget (socket buffers), not an endless stream.
    assert pages.endless_bytes - before < 16 * 1024 * 1024


async def test_allow_entry_with_a_port_opens_only_that_port(
    harness_factory: Any, pages: PageServer
) -> None:
    """CAPTURE_ALLOW_PRIVATE=127.0.0.1:PORT: that service is captured, its neighbours are not."""
    neighbour = Sentinel("127.0.0.1")
    await neighbour.start()
    try:
        bot: BotHarness = await harness_factory(
            shared_browser=False, capture_allow_private=f"127.0.0.1:{pages.port}"
        )
        ok = bot.send(42, pages.url("/colors"))
        direct = bot.send(43, f"{neighbour.url}/direct")
        hop = bot.send(44, pages.url(f"/redirect?to={neighbour.url}/hop"))
        assert await bot.finished(ok) == "👌"
        assert await bot.finished(direct) == "🤷"
        assert await bot.finished(hop) == "🤷"
        assert len(bot.photos_for(ok)) == 1
        assert neighbour.connections == 0
    finally:
        await neighbour.stop()


async def test_proxy_listens_where_configured() -> None:
    """EGRESS_PROXY_LISTEN / EGRESS_PROXY_URL: where it listens and what a browser is told."""
    from tests.conftest import base_env, settings_for

    port = free_port()
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x")
    env.update(
        EGRESS_PROXY_LISTEN=f"127.0.0.1:{port}",
        EGRESS_PROXY_URL=f"http://127.0.0.1:{port}",
        EGRESS_IDLE_TIMEOUT="7",
        CAPTURE_MAX_MB="3",
    )
    settings = settings_for(env)
    server = build_proxy(NetGuard(settings.capture_allow_private), settings)
    await server.start()
    try:
        assert server.port == port
        assert server.url == f"http://127.0.0.1:{port}"
        assert server.limits.idle_timeout == 7
        assert server.limits.max_bytes_per_capture == 3 * 1024 * 1024
        head = await _status(port, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        assert head.startswith("HTTP/1.1 407")
        # A browser told EGRESS_PROXY_URL reaches only that port: captures use a credential.
        session = await server.open_session()
        assert session.port is None
        assert server.browser_proxy(session) == {
            "server": f"http://127.0.0.1:{port}",
            "username": session.username,
            "password": session.password,
        }
    finally:
        await server.stop()
    env["EGRESS_PROXY_LISTEN"] = "bot-host:8899"
    with pytest.raises(ValueError, match="IP:port"):
        settings_for(env)


async def test_a_capture_asks_the_resolver_once_per_destination(pages: PageServer) -> None:
    """A page's many connections to one host cost one name lookup per capture, not one each;
    what was refused stays refused (and reported) without asking again."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    # Only the page server's port is allowed: the same address on port 1 is refused.
    server = GuardProxy(NetGuard([f"127.0.0.1:{pages.port}"], resolver=resolver))
    await server.start()
    try:
        first, second = await server.open_session(), await server.open_session()
        for session in (first, first, first, second):
            for target in (f"pages.example:{pages.port}", "inside.example:1"):
                head = await _status(
                    server.port,
                    f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n",
                )
                expected = "HTTP/1.1 200" if target.startswith("pages") else "HTTP/1.1 403"
                assert head.startswith(expected), (target, head)
        assert sorted(asked) == ["inside.example"] * 2 + ["pages.example"] * 2
        assert first.refusal_for("inside.example", 1) == "loopback"
        assert second.refusal_for("inside.example", 1) == "loopback"
        assert server.blocked == 4
    finally:
        await server.stop()


async def test_a_request_body_reaches_the_server_whole_and_the_answer_comes_back() -> None:
    """Bytes sent with the request head and after it, then the browser's end-of-stream: the
    server gets all of them, in order, and its answer still comes back."""
    received: list[bytes] = []

    async def digest_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.read()  # up to the end-of-stream the proxy passes on
        received.append(head + body)
        answer = hashlib.sha256(body).hexdigest().encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        writer.close()

    upstream = await asyncio.start_server(digest_server, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    server = GuardProxy(NetGuard([f"127.0.0.1:{port}"]))
    await server.start()
    try:
        session = await server.open_session()
        body = bytes(range(256)) * 4096  # 1 MiB: more than one read, some of it mid-handshake
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"POST http://127.0.0.1:{port}/form HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
            + f"{_with(session)}Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:1000]
        )
        writer.write(body[1000:])
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert answer.endswith(hashlib.sha256(body).hexdigest().encode())
        [request] = received
        assert request.startswith(b"POST /form HTTP/1.1\r\n")
        assert b"Proxy-Authorization" not in request
        writer.close()
    finally:
        await server.stop()
        upstream.close()


async def test_a_closed_connection_gives_its_place_back(
    proxy: GuardProxy, pages: PageServer
) -> None:
    """Many more connections than the caps, one after another: each ends and frees its place."""
    session = await proxy.open_session()
    target = f"127.0.0.1:{pages.port}"
    for n in range(3 * proxy.limits.max_connections):
        head, reader, writer = await _ask(
            proxy.port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n"
        )
        assert head.startswith("HTTP/1.1 200"), (n, head)
        writer.close()
        await reader.read()  # the proxy has closed its side too: the tunnel is over
        await _counted_out(proxy)
    url = pages.url("/article/after")
    head = await _status(
        proxy.port, f"GET {url} HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n"
    )
    assert head.startswith("HTTP/1.1 200")


async def _counted_out(proxy: GuardProxy) -> None:
    """Until the proxy has counted the tunnel out (its close runs in the proxy's callbacks)."""

    async def free() -> None:
        while proxy.active:  # noqa: ASYNC110 (the relay is callbacks: nothing to await)
            await asyncio.sleep(0.005)

    await asyncio.wait_for(free(), 10)


async def test_a_plain_request_to_a_refusing_port_is_reset_and_its_reason_kept(
    proxy: GuardProxy,
) -> None:
    """A dead destination fails the browser as cheaply as it failed the proxy: no 502 page
    for Chromium to load (a burst's pages ask hundreds of dead third-party hosts), and the
    capture's reply still says why, from the session's record."""
    dead = free_port()  # bound, then let go: nothing listens there
    session = await proxy.open_session()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    target = f"127.0.0.1:{dead}"
    writer.write(
        f"GET http://{target}/x.js HTTP/1.1\r\nHost: {target}\r\n{_with(session)}\r\n".encode()
    )
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        answer = b""
    writer.close()
    assert answer == b""
    assert session.upstream_error_for("127.0.0.1", dead) == "refused"


async def test_a_page_whose_server_never_answers_is_told_as_not_loading(
    pages: PageServer,
) -> None:
    """The proxy cuts a connection silent for EGRESS_IDLE_TIMEOUT before the capture's own
    timeout runs out (the defaults: 20 s and 30 s). The browser then sees only a closed
    connection; the reason the user reads is the proxy's record: the server never
    answered, so the page did not load in time, not "closed without a page"."""
    limits = EgressLimits(idle_timeout=IDLE)
    guard = NetGuard(["127.0.0.1"])
    capturer = Capturer(
        guard, executable=find_chromium(), timeout=60, proxy=GuardProxy(guard, limits=limits)
    )
    await capturer.start()
    try:
        with pytest.raises(CaptureError) as caught:
            await capturer.capture(pages.url("/slow"))
        assert caught.value.reason is Failure.TIMEOUT
        assert render.capture_reason(caught.value, texts_for("en")).endswith(
            "did not finish loading in time"
        )
    finally:
        await capturer.stop()


async def _socks(
    port: int, host: str, target_port: int, *, methods: bytes = b"\x00", command: int = 1
) -> tuple[bytes, bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """A SOCKS5 greeting and request (the host by name, as Chromium sends it): the
    method the proxy chose, its reply to the request (empty if it closed), the stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x05" + bytes([len(methods)]) + methods)
    choice = await asyncio.wait_for(reader.read(2), 10)
    if choice != b"\x05\x00":
        return choice, b"", reader, writer
    name = host.encode()
    request = bytes([5, command, 0, 3, len(name)]) + name + target_port.to_bytes(2, "big")
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(10), 10)
    return choice, answer, reader, writer


async def test_a_captures_port_speaks_socks5_checked_as_a_connect(
    proxy: GuardProxy, pages: PageServer
) -> None:
    """A local browser reaches its capture's port by SOCKS5: each tunnel goes only to a
    destination the guard allowed, at the address it checked, and stays pinned to it."""
    session, other = await proxy.open_session(), await proxy.open_session()
    assert proxy.browser_proxy(session) == {"server": f"socks5://127.0.0.1:{session.port}"}
    assert session.port is not None and other.port is not None
    _, answer, reader, writer = await _socks(session.port, "127.0.0.1", pages.port)
    assert answer[:2] == b"\x05\x00", answer
    for path in ("/article/socks-one", "/article/socks-two"):  # one connection, kept alive
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{pages.port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    writer.close()
    assert (
        len(set(pages.connections["/article/socks-one"] + pages.connections["/article/socks-two"]))
        == 1
    )
    # Refused by the guard: a loopback address not allowed, another capture's port.
    for host, port, reason in (
        ("127.0.0.3", pages.port, "loopback"),
        ("127.0.0.1", other.port, "proxy"),
    ):
        _, answer, _, writer = await _socks(session.port, host, port)
        assert answer[:2] == b"\x05\x02", (host, answer)
        assert session.refusal_for(host, port) == reason
        writer.close()
    # Only what Chromium speaks: no authentication method, CONNECT.
    choice, _, _, writer = await _socks(session.port, "127.0.0.1", pages.port, methods=b"\x02")
    assert choice == b"\x05\xff"
    writer.close()
    _, answer, _, writer = await _socks(session.port, "127.0.0.1", pages.port, command=2)
    assert answer[:2] == b"\x05\x07"
    writer.close()
    # The shared port has no credential for SOCKS: closed without an answer.
    choice, _, _, writer = await _socks(proxy.port, "127.0.0.1", pages.port)
    assert choice == b""
    writer.close()
    # Nor does a capture's port once the capture has ended.
    reader, writer = await asyncio.open_connection("127.0.0.1", session.port)
    proxy.close_session(session)
    writer.write(b"\x05\x01\x00")
    assert await asyncio.wait_for(reader.read(2), 10) == b""
    writer.close()


async def test_a_plain_http_page_keeps_its_connections_alive_through_the_proxy(
    capturer: Capturer, pages: PageServer
) -> None:
    """Through an HTTP proxy each plain-HTTP request was a connection of its own (one
    request per connection, so that none reaches a second host unchecked); a local
    capture's SOCKS tunnel is pinned to one checked destination, so Chromium reuses it
    as it would without a proxy: far fewer connections than requests."""
    await capturer.capture(pages.url("/gallery"))
    asked = [pages.connections["/gallery"]] + [
        pages.connections[f"/swatch/{i}-{i}-{i}.png"] for i in range(GALLERY_IMAGES)
    ]
    requests = sum(len(c) for c in asked)
    connections = len({peer for c in asked for peer in c})
    assert requests >= GALLERY_IMAGES + 1
    assert connections <= requests // 3, (connections, requests)


async def test_socks5_tunnels_keep_the_captures_caps_and_say_why_they_failed(
    proxy: GuardProxy, pages: PageServer
) -> None:
    """What a CONNECT gets, a SOCKS5 request gets: the caps, and the proxy's record of why
    a destination failed (what the capture tells the user)."""
    session = await proxy.open_session()
    assert session.port is not None
    # Greeting, request (the address as four bytes) and the page's request in one packet.
    reader, writer = await asyncio.open_connection("127.0.0.1", session.port)
    address = bytes([5, 1, 0, 1, 127, 0, 0, 1]) + pages.port.to_bytes(2, "big")
    get = f"GET /article/socks-packed HTTP/1.1\r\nHost: 127.0.0.1:{pages.port}\r\n\r\n"
    writer.write(b"\x05\x01\x00" + address + get.encode())
    assert await asyncio.wait_for(reader.readexactly(12), 10) == b"\x05\x00" + socks.reply(0)
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 200")
    writer.close()
    dead = free_port()  # nothing listens there
    _, answer, _, writer = await _socks(session.port, "127.0.0.1", dead)
    assert answer[:2] == b"\x05\x05" and session.upstream_error_for("127.0.0.1", dead) == "refused"
    writer.close()
    _, answer, _, writer = await _socks(session.port, "bücher.example", 80)  # not IDNA
    assert answer[:2] == b"\x05\x02" and "malformed" in session.refusals.values()
    writer.close()
    # Anything but a request after the greeting is closed without an answer.
    for wrong in (b"GET / HTTP/1.1\r\n\r\n", bytes([5, 1, 1, 1, 127, 0, 0, 1, 0, 80])):
        reader, writer = await asyncio.open_connection("127.0.0.1", session.port)
        writer.write(b"\x05\x01\x00")
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"\x05\x00"
        writer.write(wrong)
        assert await asyncio.wait_for(reader.read(10), 10) == b"", wrong
        writer.close()
    # Past the capture's cap (4 connections here): refused as busy, and said so.
    crowded = await proxy.open_session()
    assert crowded.port is not None
    tunnels = [await _socks(crowded.port, "127.0.0.1", pages.port) for _ in range(4)]
    assert all(answer[:2] == b"\x05\x00" for _, answer, _, _ in tunnels)
    _, answer, _, writer = await _socks(crowded.port, "127.0.0.1", pages.port)
    assert answer[:2] == b"\x05\x05"
    assert crowded.upstream_error_for("127.0.0.1", pages.port) == "busy"
    for *_, tunnel in tunnels:
        tunnel.close()
    writer.close()
