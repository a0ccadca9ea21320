"""The test bed: FerretDB, one Chromium, pages on 127.0.0.1, the Bot API and OpenAI fakes."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.app import start_capturer
from bot.browser.binary import find_chromium
from bot.browser.capture import Capturer
from bot.config import Settings
from bot.eventloop import new_loop
from tests.clock import IDLE, FakeClock
from tests.fakes.botapi import FakeBotAPI
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pages import PageServer, Sentinel
from tests.harness import BotHarness

ROOT = Path(__file__).resolve().parent.parent
# The derived /find index files of every test database: kept out of ./data, and removed
# when the process that made the folder ends (each test worker has its own).
INDEX_DIR = tempfile.mkdtemp(prefix="linksnap-test-index-")
atexit.register(shutil.rmtree, INDEX_DIR, ignore_errors=True)
FERRETDB = ROOT / "tools" / "ferretdb" / "bin" / "ferretdb"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every test runs on the loop the bot runs on (bot/eventloop.py)."""
    return {"uvloop": new_loop}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ferretdb exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("ferretdb did not start listening")


# Go's collector only past 256 MiB: FerretDB's CPU in the two tests that write most
# 46 -> 38 s, its RSS 96 -> 313 MiB at most (docs/BENCHMARKS.md). Tests only: the benches
# start it as scripts/run.sh does (benchmarks/common.py).
TEST_GO_GC = {"GOGC": "off", "GOMEMLIMIT": "256MiB"}


def ferretdb_env(go_gc: dict[str, str]) -> dict[str, str]:
    """This process's environment with `go_gc` as the Go collector's settings (a `GOGC`
    of the caller's own shell left out, so one not in `go_gc` is Go's default)."""
    return {**{k: v for k, v in os.environ.items() if k != "GOGC"}, **go_gc}


def start_ferretdb(
    data: Path, port: int | None = None, go_gc: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A FerretDB (SQLite) process on a free port (or `port`), and its base URI; `go_gc`:
    the Go collector's settings (the tests' by default)."""
    if not FERRETDB.exists():
        raise RuntimeError(f"{FERRETDB} is missing: run `make test`, which builds it")
    port = port or free_port()
    proc = subprocess.Popen(
        [str(FERRETDB), "--listen-addr", f"127.0.0.1:{port}", "--sqlite-url", f"file:{data}/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ferretdb_env(go_gc or TEST_GO_GC),
    )
    _wait_port(port, proc)
    return proc, f"mongodb://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway FerretDB (SQLite) on a free port; yields its base URI."""
    if os.environ.get("TEST_MONGODB_URI"):
        yield os.environ["TEST_MONGODB_URI"].rstrip("/")
        return
    proc, uri = start_ferretdb(tmp_path_factory.mktemp("ferretdb"))
    try:
        yield uri
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def mongodb_uri(ferretdb: str) -> str:
    """A fresh database per test, so tests never see each other's records."""
    return f"{ferretdb}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
async def pages() -> AsyncIterator[PageServer]:
    server = PageServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def late_answers(pages: PageServer) -> Iterator[dict[str, float]]:
    """`late_answers[prefix] = seconds`: the page server holds those paths' answers, for
    this test only (see PageServer.answer_late)."""
    yield pages.answer_late
    pages.answer_late.clear()


@pytest.fixture(scope="session")
async def sentinel(pages: PageServer) -> AsyncIterator[Sentinel]:
    """Loopback but outside CAPTURE_ALLOW_PRIVATE=127.0.0.1: must never see a connection."""
    server = Sentinel("127.0.0.2")
    await server.start()
    pages.sentinel_url = server.url
    yield server
    await server.stop()


def base_env(api_root: str, mongodb_uri: str, **extra: str) -> dict[str, str]:
    env = {
        "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
        "TELEGRAM_API_URL": api_root,
        "MONGODB_URI": mongodb_uri,
        "CAPTURE_ALLOW_PRIVATE": "127.0.0.1",
        "CAPTURE_TIMEOUT": "8",
        "LOG_LEVEL": "INFO",
        "SEARCH_INDEX_DIR": INDEX_DIR,
        "WEB_LISTEN": "127.0.0.1:0",  # the pages on a free port: tests run side by side
        # A test stops its bot once it has seen what it looks for; work it left in flight
        # (a held page, photos waiting their chat's turn) need not be waited out for 20 s.
        "SHUTDOWN_GRACE": "5",
    }
    env.update(extra)
    return env


def settings_for(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]


# The session's shared capturers give a page 20 s to answer and 20 s to load (the bots'
# settings do not reach them): tests side by side share the cores, and an imported
# page's 5 s answer or the 2.5 MB /big ran out of 8 s when a worker had half a core.
# Tests of the limits themselves make capturers of their own.
SHARED_PAGE_LIMITS = {"CAPTURE_TIMEOUT": "20", "CAPTURE_BUDGET": "20"}


@pytest.fixture(scope="session")
async def capturer() -> AsyncIterator[Capturer]:
    """One Chromium for the whole test session, as in production one per process."""
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x", **SHARED_PAGE_LIMITS)
    shared = await start_capturer(settings_for(env))
    yield shared
    await shared.stop()


@pytest.fixture
async def botapi() -> AsyncIterator[FakeBotAPI]:
    """The strict Bot API fake. A call inside a chat's retry_after window (a flood
    violation) fails the test that made it, unless the test says it expects one."""
    api = FakeBotAPI()
    await api.start()
    yield api
    await api.stop()
    if not api.violations_expected:
        assert not api.flood_violations, [
            f"{c.method} chat={c.params.get('chat_id')}" for c in api.flood_violations
        ]


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


@asynccontextmanager
async def harnesses(
    botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, capturer: Capturer
) -> AsyncIterator[Callable[..., Awaitable[BotHarness]]]:
    """`await make(**env)` starts the real Application against the fakes, its browser
    `capturer` (`shared_browser=False`: one of its own); each is stopped on leaving."""
    started: list[BotHarness] = []

    async def make(*, shared_browser: bool = True, **extra: str) -> BotHarness:
        env = base_env(botapi.root, mongodb_uri, **extra)
        harness = BotHarness(botapi, settings_for(env), pages, capturer if shared_browser else None)
        await harness.start()
        started.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in reversed(started):
            await _stopped(harness)


# A bot's stop waits up to its shutdown grace twice (stages in flight, then background
# work): 20 s each in these tests. Past this, something hangs.
STOP_PATIENCE = 60.0


async def _stopped(harness: BotHarness) -> None:
    """Stop `harness`; a stop that hangs fails here with every asyncio task's stack (a
    teardown once hung until pytest-timeout, whose thread dump showed only the loop)."""
    stop = asyncio.ensure_future(harness.stop())
    done, _ = await asyncio.wait({stop}, timeout=STOP_PATIENCE)
    if not done:
        _print_tasks(0, None)  # before the cancel, so the stop's own stack shows
        stop.cancel()
        raise TimeoutError(f"the bot did not stop within {STOP_PATIENCE:.0f} s")
    await stop


@pytest.fixture
async def harness_factory(
    botapi: FakeBotAPI, mongodb_uri: str, capturer: Capturer, pages: PageServer
) -> AsyncIterator[object]:
    """`await make(**env)` starts the real Application against the fakes."""
    async with harnesses(botapi, mongodb_uri, pages, capturer) as make:
        yield make


@pytest.fixture
async def bot(harness_factory: object) -> BotHarness:
    """The bot with summaries off (no OpenAI key)."""
    return await harness_factory()  # type: ignore[operator,no-any-return]


@pytest.fixture
async def bot_llm(harness_factory: object, llm: FakeOpenAI) -> BotHarness:
    """The bot with summaries from the OpenAI-compatible fake."""
    harness = await harness_factory(  # type: ignore[operator]
        openai_api_key="sk-test", openai_base_url=llm.base_url
    )
    harness.llm = llm
    return harness  # type: ignore[no-any-return]


# --- egress guard and remote browsers (issue 9) ---


@pytest.fixture(scope="session")
def remote_browser() -> Iterator[str]:
    """Playwright's browser server on loopback, launched with the bot's switches."""
    from tests.remote_browser import RemoteBrowser

    server = RemoteBrowser()
    endpoint = server.start()
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
async def remote_capturer(remote_browser: str) -> AsyncIterator[Capturer]:
    """The bot's capturer driving the remote browser server (BROWSER_WS_ENDPOINT)."""
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x", **SHARED_PAGE_LIMITS)
    env["BROWSER_WS_ENDPOINT"] = remote_browser
    shared = await start_capturer(settings_for(env))
    yield shared
    await shared.stop()


@pytest.fixture(params=["local", "remote"])
def either_capturer(
    request: pytest.FixtureRequest, capturer: Capturer, remote_capturer: Capturer
) -> Capturer:
    """Run a test once with the local Chromium and once through the remote browser server."""
    return capturer if request.param == "local" else remote_capturer


@pytest.fixture
async def either_harness_factory(
    botapi: FakeBotAPI, mongodb_uri: str, either_capturer: Capturer, pages: PageServer
) -> AsyncIterator[object]:
    """`harness_factory`, with the browser of `either_capturer`."""
    async with harnesses(botapi, mongodb_uri, pages, either_capturer) as make:
        yield make


def _print_tasks(signum: int, frame: object) -> None:
    """`kill -USR1 <pytest pid>`: every asyncio task's stack, for a run that hangs."""
    import asyncio
    import sys

    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:
        print("no running event loop", file=sys.stderr)
        return
    for task in tasks:
        print(f"task {task.get_name()}:", file=sys.stderr)
        for where in _awaiting(task.get_coro()):
            print(f"  {where}", file=sys.stderr)


def _awaiting(coro: object) -> list[str]:
    """file:line of each coroutine `coro` is awaiting through (Task.print_stack shows only
    the outermost: a suspended coroutine's frame has no f_back)."""
    chain: list[str] = []
    while coro is not None and len(chain) < 60:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return chain


def pytest_configure(config: pytest.Config) -> None:
    import signal

    signal.signal(signal.SIGUSR1, _print_tasks)
    _pin_worker(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported so far (the bot, its libraries, the tests) is left out of
    Python's full collections, which otherwise walk it again each time: in four test
    files a worker's full collections took 0.92 s, 0.24-0.33 s frozen (docs/BENCHMARKS.md)."""
    import gc

    gc.collect()
    gc.freeze()


def _pin_worker(config: pytest.Config) -> None:
    """TEST_PIN=1 (scripts/test.sh sets it): an xdist worker keeps to one core, and so
    does what it starts (FerretDB, Chromium, bots). Why, and what it gains:
    tests/scheduling.py."""
    from tests.scheduling import core_for

    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or os.environ.get("TEST_PIN") != "1":
        return
    workers = int(workerinput["workercount"])
    core = core_for(str(workerinput["workerid"]), os.sched_getaffinity(0), workers)
    if core is not None:
        os.sched_setaffinity(0, {core})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests with the longest time limits spread over the workers' first runs
    (tests/scheduling.py): a two-minute test that starts last keeps the whole run waiting,
    and long tests that all land on one worker keep it busy long after the others."""
    from tests.scheduling import spread

    def limit(item: pytest.Item) -> float:
        marker = item.get_closest_marker("timeout")
        return float(marker.args[0]) if marker and marker.args else 0.0

    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    items[:] = spread(items, limit, workers)


# --- the platform's pages (issue 17) ---


@pytest.fixture(scope="session")
async def ui_browser() -> AsyncIterator[object]:
    """A Chromium of the tests' own for the pages, as a user's browser (not the bot's
    capture browser, which goes through the egress proxy)."""
    from playwright.async_api import async_playwright

    executable = find_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable)
        yield browser
        await browser.close()


# --- a clock the test moves, and a capturer whose browser closes by it (issue 19) ---


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def idle_capturer(clock: FakeClock) -> AsyncIterator[Capturer]:
    """A capturer of its own (the session's shared one must stay open for the others)."""
    env = base_env("http://127.0.0.1:1", "mongodb://127.0.0.1:1/x")
    env.update(BROWSER_IDLE_CLOSE=str(IDLE), CAPTURE_BUDGET="3")
    capturer = await start_capturer(settings_for(env), clock=clock)
    yield capturer
    await capturer.stop()


@pytest.fixture
async def idle_harness_factory(
    botapi: FakeBotAPI, mongodb_uri: str, pages: PageServer, idle_capturer: Capturer
) -> AsyncIterator[Callable[..., Awaitable[BotHarness]]]:
    """`harness_factory` whose bots capture with `idle_capturer`."""
    async with harnesses(botapi, mongodb_uri, pages, idle_capturer) as make:
        yield make
