"""Pages' main text is read in a child process at the lowest priority (issue 19): in a
thread of the bot it held the interpreter against the loop that relays the pages being
opened, and a burst's photos came twice as late. The child holds none of the bot's
secrets; one that hangs or dies costs that page its text, never the next page's. What
the reader ignores (scripts, styles, comments) is not taken out of the page at all."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.browser.capture import Capturer
from bot.browser.text_child import NICE
from bot.browser.text_reader import CHILD, TextReader
from tests.fakes.pages import PageServer
from tests.waiting import until

ARTICLE = (
    "<html lang='zh'><head><title>长城</title><meta name='description' content='A wall.'>"
    "</head><body><article><h1>长城</h1>"
    + "".join(
        f"<p>The Great Wall, paragraph {i}, runs thousands of kilometres over the hills"
        " and was built over many centuries by several dynasties.</p>"
        for i in range(12)
    )
    + "</article></body></html>"
)

# A stand-in child speaking the same frames: it notes each request in `DIR` (got-N),
# answers only once `DIR/release` exists, and answers with the request's own html.
ECHO = """
import json, os, struct, sys, time
d = sys.argv[1]; n = 0
while True:
    head = sys.stdin.buffer.read(4)
    if len(head) < 4: break
    body = sys.stdin.buffer.read(struct.unpack(">I", head)[0])
    n += 1; open(os.path.join(d, f"got-{n}"), "w").close()
    while not os.path.exists(os.path.join(d, "release")): time.sleep(0.01)
    out = json.dumps({"text": json.loads(body)["html"]}).encode()
    sys.stdout.buffer.write(struct.pack(">I", len(out)) + out); sys.stdout.buffer.flush()
"""


@pytest.fixture
async def readers() -> AsyncIterator[Callable[..., TextReader]]:
    """Makes text readers; each is closed (its child ended) after the test."""
    made: list[TextReader] = []

    def make(*args: Any, **kwargs: Any) -> TextReader:
        made.append(TextReader(*args, **kwargs))
        return made[-1]

    yield make
    for reader in made:
        await reader.close()


async def test_the_text_is_read_in_a_low_priority_child_without_the_bots_secrets(
    monkeypatch: pytest.MonkeyPatch, readers: Callable[..., TextReader]
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:secret-token-of-the-bot")
    reader = readers()
    found = await reader.read(ARTICLE, "https://example.org/wall")
    assert found is not None and found.text and "Great Wall" in found.text
    assert found.lang == "zh" or found.title == "长城"
    pid = reader.pid
    assert pid is not None and pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == NICE == 19
    environ = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
    assert b"secret-token-of-the-bot" not in environ
    assert b"TELEGRAM_BOT_TOKEN" not in environ
    # The same child reads the next page.
    again = await reader.read(ARTICLE.replace("Great Wall", "Long Wall"), None)
    assert again is not None and again.text and "Long Wall" in again.text
    assert reader.started == 1 and reader.pid == pid
    await reader.close()
    assert reader.pid is None


async def test_a_child_that_hangs_is_ended_and_the_page_keeps_no_text(
    tmp_path: Path, readers: Callable[..., TextReader]
) -> None:
    reader = readers([sys.executable, "-c", ECHO, str(tmp_path)])
    (tmp_path / "release").touch()
    first = await reader.read("<p>answered</p>", None)
    assert first is not None and first.text == "<p>answered</p>"
    # The child is up (its start-up, slow on a loaded machine, is not what is timed):
    # from now on it hangs on each page.
    (tmp_path / "release").unlink()
    reader.timeout = 0.5
    assert await reader.read("<p>never answered</p>", None) is None
    assert (tmp_path / "got-2").exists()
    assert reader.pid is None  # ended, not left running
    assert reader.started == 1


async def test_a_child_that_dies_costs_one_page_its_text_and_the_next_starts_anew(
    tmp_path: Path, readers: Callable[..., TextReader]
) -> None:
    # The first child dies on its first page (as if killed); the second is the real one.
    flag = tmp_path / "died-once"
    script = (
        f'if [ -e "{flag}" ]; then exec "$@"; fi; touch "{flag}"; head -c 4 > /dev/null; exit 9'
    )
    reader = readers(["sh", "-c", script, "sh", *CHILD])
    assert await reader.read(ARTICLE, None) is None
    found = await reader.read(ARTICLE, None)
    assert found is not None and found.text and "Great Wall" in found.text
    assert reader.started == 2


async def test_a_page_given_up_mid_read_does_not_hand_its_text_to_the_next(
    tmp_path: Path, readers: Callable[..., TextReader]
) -> None:
    reader = readers([sys.executable, "-c", ECHO, str(tmp_path)])
    first = asyncio.ensure_future(reader.read("text of the first page", None))
    await until(lambda: (tmp_path / "got-1").exists(), within=30)
    first.cancel()  # e.g. the bot stopping: the first page's answer is still to come
    with pytest.raises(asyncio.CancelledError):
        await first
    (tmp_path / "release").touch()
    second = await reader.read("text of the second page", None)
    assert second is not None and second.text == "text of the second page"


async def test_a_pages_scripts_styles_and_comments_stay_in_the_browser(
    capturer: Capturer, pages: PageServer
) -> None:
    """What the text reader ignores is left out of the HTML the capture takes from the
    page (a megabyte of inline script here): the text and the JSON-LD metadata come."""
    snap, html = await capturer.shoot(pages.url("/scripted"))
    assert snap.title == "Scripted article"
    assert "xxxxxxxxxx" not in html and "color: #222" not in html and "cccccccccc" not in html
    assert '"headline": "Scripted article"' in html  # JSON-LD stays: it is metadata
    assert len(html) < 10_000
    snap = await capturer.read_text(snap, html)
    assert "own words are what the reader keeps" in snap.text


# A news page stamped with its date in words, as the burst's AP page is.
DATED = (
    "<html><head><title>Storm</title></head><body>"
    "<div class='timestamp updated'>Jun 13, 4:03 PM EDT</div><article>"
    + "".join(f"<p>The storm, paragraph {i}, crossed the coast overnight.</p>" for i in range(8))
    + "</article></body></html>"
)


def test_a_dated_page_is_read_without_the_date_parsers_languages() -> None:
    """The bot keeps no date. A date in words, searched for extensively, sends htmldate to
    dateparser, which loads every language it knows on the child's first such page (2-5
    s of CPU and ~47 MiB, docs/BENCHMARKS.md): the child reads such a page without it."""
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import text_child; "
        "got = text_child.extract(sys.stdin.read(), 'http://127.0.0.1:1/storm'); "
        "print(json.dumps([got.get('title'), got.get('text'), 'dateparser' in sys.modules]))"
    )
    child_dir = str(Path(CHILD[-1]).parent)
    run = subprocess.run(
        [sys.executable, "-P", "-c", script, child_dir],
        input=DATED,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    title, text, loaded = json.loads(run.stdout)
    assert title == "Storm" and "crossed the coast" in text
    assert not loaded
