"""The guard's decision over many destinations, with no network traffic at all."""

from __future__ import annotations

import socket

import pytest

from bot.guard.netguard import NetGuard, classify_ip, parse_host

NAMES = {
    "public.example": ["93.184.215.14"],
    "public6.example": ["2606:4700:4700::1111"],
    "xn--bcher-kva.example": ["8.8.8.8"],
    "private.example": ["10.1.2.3"],
    "mixed.example": ["93.184.215.14", "192.168.1.20"],
    "rebind.example": ["127.0.0.1"],
    "meta.example": ["169.254.169.254"],
}

CASES: list[tuple[str, bool, str]] = [
    # loopback, every spelling Chromium accepts
    ("http://127.0.0.1/", False, "loopback"),
    ("http://127.0.0.2:8080/x", False, "loopback"),
    ("http://0x7f.1/", False, "loopback"),
    ("http://0X7F.0.0.1/", False, "loopback"),
    ("http://2130706433/", False, "loopback"),
    ("http://127.1/", False, "loopback"),
    ("http://0177.0.0.1/", False, "loopback"),
    ("http://0x7f000001/", False, "loopback"),
    ("http://127.0.0.1./", False, "loopback"),
    ("http://localhost/", False, "loopback"),
    ("http://[::1]/", False, "loopback"),
    ("http://[::ffff:127.0.0.1]/", False, "loopback"),
    ("http://[::ffff:7f00:1]/", False, "loopback"),
    ("http://[::127.0.0.1]/", False, "loopback"),
    ("http://example.com@127.0.0.1/", False, "loopback"),
    ("http://127.0.0.1#@example.com/", False, "loopback"),
    ("http:\\\\127.0.0.1\\x", False, "loopback"),
    ("http://12\t7.0.0.1/", False, "loopback"),
    # private, link-local, metadata, CGNAT and friends
    ("http://10.0.0.1/", False, "private"),
    ("http://10.255.255.53:53/", False, "private"),
    ("http://172.16.0.1/", False, "private"),
    ("http://172.31.255.255/", False, "private"),
    ("http://192.168.1.1/", False, "private"),
    ("http://0xc0.0xa8.1.1/", False, "private"),
    ("http://3232235777/", False, "private"),
    ("http://[fc00::1]/", False, "private"),
    ("http://[fd12:3456::1]/", False, "private"),
    ("http://[2002:c0a8:0101::]/", False, "private"),
    ("http://[64:ff9b::10.0.0.1]/", False, "private"),
    ("http://169.254.169.254/latest/meta-data", False, "metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", False, "metadata"),
    ("http://[fd00:ec2::254]/", False, "metadata"),
    ("http://169.254.1.1/", False, "link_local"),
    ("http://[fe80::1%25eth0]/", False, "link_local"),
    ("http://100.64.0.1/", False, "cgnat"),
    ("http://0/", False, "unspecified"),
    ("http://0.0.0.0/", False, "unspecified"),
    ("http://[::]/", False, "unspecified"),
    ("http://224.0.0.1/", False, "multicast"),
    ("http://[ff02::1]/", False, "multicast"),
    ("http://255.255.255.255/", False, "broadcast"),
    ("http://240.0.0.1/", False, "reserved"),
    ("http://192.0.2.10/", False, "documentation"),
    ("http://[2001:db8::1]/", False, "documentation"),
    ("http://198.18.0.1/", False, "benchmark"),
    # names: every address must be public
    ("http://private.example/", False, "private"),
    ("http://mixed.example/", False, "private"),
    ("http://rebind.example/", False, "loopback"),
    ("http://meta.example/", False, "metadata"),
    ("http://unknown.example/", False, "unresolvable"),
    # schemes other than http(s)
    ("file:///etc/passwd", False, "scheme"),
    ("data:text/html,x", False, "scheme"),
    ("javascript:alert(1)", False, "scheme"),
    ("chrome://settings", False, "scheme"),
    ("about:blank", False, "scheme"),
    ("ftp://8.8.8.8/x", False, "scheme"),
    ("view-source:http://8.8.8.8/", False, "scheme"),
    ("blob:http://8.8.8.8/y", False, "scheme"),
    ("gopher://8.8.8.8/", False, "scheme"),
    # malformed
    ("http://", False, "malformed"),
    ("http://exa mple.com/", False, "malformed"),
    ("http://[::1", False, "malformed"),
    ("http://1.2.3.4.5/", False, "malformed"),
    ("http://256.1.1.1/", False, "malformed"),
    ("http://8.8.8.8:99999/", False, "malformed"),
    # public destinations pass
    ("http://8.8.8.8/", True, "ok"),
    ("https://1.1.1.1/dns-query", True, "ok"),
    ("https://9.9.9.9:8443/", True, "ok"),
    ("http://93.184.215.14/", True, "ok"),
    ("http://[2606:4700:4700::1111]/", True, "ok"),
    ("http://[2001:4860:4860::8888]/", True, "ok"),
    ("https://public.example/path?q=1", True, "ok"),
    ("https://PUBLIC.example./", True, "ok"),
    ("https://public6.example/", True, "ok"),
    ("https://bücher.example/", True, "ok"),
    ("http://[::ffff:8.8.8.8]/", True, "ok"),
]


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the guard must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def fake_resolver(asked: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host == "localhost":
            return ["127.0.0.1", "::1"]
        return NAMES.get(host, [])

    return resolve


@pytest.mark.parametrize(("url", "allowed", "reason"), CASES)
async def test_guard_decision(no_sockets: None, url: str, allowed: bool, reason: str) -> None:
    asked: list[str] = []
    verdict = await NetGuard(resolver=fake_resolver(asked)).check_url(url)
    assert (verdict.allowed, verdict.reason) == (allowed, reason)
    host_is_literal = any(c.isdigit() for c in url.split("//")[-1][:1]) or "[" in url
    if host_is_literal and reason not in {"scheme", "malformed"} and "@" not in url:
        assert asked == []  # IP literals are never resolved


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60


async def test_idn_is_resolved_as_punycode(no_sockets: None) -> None:
    asked: list[str] = []
    await NetGuard(resolver=fake_resolver(asked)).check_url("https://bücher.example/")
    assert asked == ["xn--bcher-kva.example"]


async def test_allow_list_is_exact(no_sockets: None) -> None:
    asked: list[str] = []
    guard = NetGuard(["127.0.0.1"], resolver=fake_resolver(asked))
    assert (await guard.check_url("http://127.0.0.1:8080/")).allowed
    assert (await guard.check_url("http://0x7f.0.0.1/")).allowed
    for url in ("http://127.0.0.2/", "http://0x7f.0.0.2/", "http://[::1]/", "http://10.0.0.1/"):
        assert not (await guard.check_url(url)).allowed, url
    wide = NetGuard(["127.0.0.0/8"], resolver=fake_resolver(asked))
    assert (await wide.check_url("http://127.0.0.2/")).allowed
    named = NetGuard(["localhost"], resolver=fake_resolver(asked))
    assert (await named.check_url("http://localhost:3000/")).allowed
    assert not (await named.check_url("http://127.0.0.2/")).allowed


def test_bad_allow_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="not a host"):
        NetGuard(["exa mple"])


def test_verdict_pins_the_checked_addresses() -> None:
    assert classify_ip(parse_host("8.8.8.8")) == "ok"  # type: ignore[arg-type]
    assert parse_host("Bücher.Example.") == "xn--bcher-kva.example"


async def test_allow_entry_with_a_port_opens_only_that_port(no_sockets: None) -> None:
    asked: list[str] = []
    guard = NetGuard(
        ["127.0.0.1:8080", "[::1]:9000", "10.0.0.0/8:443", "localhost:3000"],
        resolver=fake_resolver(asked),
    )
    allowed = [
        "http://127.0.0.1:8080/",
        "http://[::1]:9000/x",
        "https://10.1.2.3/",
        "http://localhost:3000/",
    ]
    refused = [
        "http://127.0.0.1:8081/",
        "http://127.0.0.1/",
        "http://[::1]:9001/",
        "http://10.1.2.3:80/",
        "http://localhost:3001/",
        "http://127.0.0.2:8080/",
    ]
    for url in allowed:
        assert (await guard.check_url(url)).allowed, url
    for url in refused:
        assert not (await guard.check_url(url)).allowed, url


@pytest.mark.parametrize(
    "entry",
    ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", "[::1", "[::1]x", "exa mple:80", ":80"],
)
def test_bad_allow_entry_with_a_port_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="CAPTURE_ALLOW_PRIVATE"):
        NetGuard([entry])


def test_settings_check_allow_entries_as_the_guard_does() -> None:
    from pydantic import ValidationError

    from tests.conftest import base_env, settings_for

    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x")
    env["CAPTURE_ALLOW_PRIVATE"] = "127.0.0.1:8080, [::1]:9000 intranet.local:443 10.0.0.0/8"
    settings = settings_for(env)
    assert settings.capture_allow_private == [
        "127.0.0.1:8080",
        "[::1]:9000",
        "intranet.local:443",
        "10.0.0.0/8",
    ]
    env["CAPTURE_ALLOW_PRIVATE"] = "127.0.0.1:99999"
    with pytest.raises(ValidationError, match="port"):
        settings_for(env)
