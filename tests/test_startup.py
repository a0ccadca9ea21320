"""Start-up: through `python -m bot`, exactly as a deployment runs it; and, in process,
what the start waits out and what stops it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from bot.app import StartupError
from storage.repository import LinkStore
from tests.conftest import free_port
from tests.fakes.botapi import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


def run_bot(
    env: dict[str, str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "MONGODB_", "OPENAI_"))
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_missing_token_stops_with_one_line(tmp_path: Path) -> None:
    result = run_bot({"PYTHONPATH": str(ROOT)}, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["configuration error: TELEGRAM_BOT_TOKEN is required but not set"]


@pytest.mark.parametrize("uri", ["http://db.example/x", "mongodb://", "mongodb://host:99999/db"])
def test_malformed_mongodb_uri_stops_with_one_line(tmp_path: Path, uri: str) -> None:
    result = run_bot(
        {"PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": "1:abc", "MONGODB_URI": uri}, tmp_path
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: MONGODB_URI is invalid")
    assert "abc" not in result.stderr  # the token never shows


def test_unreachable_database_stops_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = run_bot(
        {
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": "1:secret-token-value",
            "MONGODB_URI": f"mongodb://127.0.0.1:{port}/linksnap",
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
        },
        tmp_path,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("start-up failed: cannot reach the database at 127.0.0.1 (MONGODB_URI)")
    assert "secret-token-value" not in result.stderr


@pytest.mark.parametrize(
    ("language", "expected"), [("en", "keeps a snapshot of every link"), ("zh-hans", "保存快照")]
)
async def test_python_m_bot_answers_start(
    tmp_path: Path, ferretdb: str, language: str, expected: str
) -> None:
    """The real process, started as `python -m bot`, answers /start over the Bot API fake."""
    api = FakeBotAPI()
    await api.start()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "MONGODB_", "OPENAI_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.root,
        MONGODB_URI=f"{ferretdb}/startup_{language.replace('-', '_')}",
        WEB_LISTEN="127.0.0.1:0",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await api.wait_for(lambda c: c.method == "getUpdates", timeout=30)
        sent = api.send_message(7, "/start", language_code=language)
        call = await api.wait_for(
            lambda c: (
                c.method == "sendMessage" and c.ok and c.params["chat_id"] == sent["chat"]["id"]
            ),
            timeout=20,
        )
        assert expected in call.result["text"]
        commands = api.calls_of("setMyCommands", ok_only=True)
        assert {c.params.get("language_code") for c in commands} == {None, "zh"}
        assert any(cmd["command"] == "find" for cmd in commands[0].params["commands"])
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        await api.stop()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert api.token.split(":")[1] not in stderr.decode()
    # Its start-up heap is set aside from the collector's full passes (a stall each).
    frozen = re.search(r"started; (\d+) objects set aside", stderr.decode())
    assert frozen is not None and int(frozen.group(1)) > 10_000, stderr.decode()[-2000:]


def _refused_once(monkeypatch: pytest.MonkeyPatch, refusal: OperationFailure) -> list[int]:
    """The store's first `ensure_indexes` is refused with `refusal`; returns the calls."""
    calls: list[int] = []
    real = LinkStore.ensure_indexes

    async def ensure_indexes(self: LinkStore) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise refusal
        await real(self)

    monkeypatch.setattr(LinkStore, "ensure_indexes", ensure_indexes)
    return calls


async def test_a_database_busy_for_a_moment_at_start_is_waited_out(
    monkeypatch: pytest.MonkeyPatch, harness_factory: Any
) -> None:
    """FerretDB answered a bot's first createIndexes with "database is locked" once, while
    it set up the new database's file: the start tries again and the bot answers."""
    busy = OperationFailure("database is locked (5) (SQLITE_BUSY)", code=1)
    calls = _refused_once(monkeypatch, busy)
    bot = await harness_factory()
    assert len(calls) == 2
    answer = await bot.answer(42, "/start")
    assert "keeps a snapshot of every link" in answer


async def test_a_refusal_no_wait_mends_stops_the_start_at_once(
    monkeypatch: pytest.MonkeyPatch, harness_factory: Any
) -> None:
    """A wrong password is not waited on: the start says so, after one try."""
    denied = OperationFailure("Authentication failed.", code=18)
    calls = _refused_once(monkeypatch, denied)
    with pytest.raises(StartupError, match="cannot reach the database"):
        await harness_factory()
    assert len(calls) == 1
