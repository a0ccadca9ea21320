"""`python -m bot` as real processes, for tests of restarts, roles and several workers."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from storage.models import Status
from storage.repository import LinkStore
from tests.conftest import INDEX_DIR, base_env
from tests.fakes.botapi import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


def bot_env(api: FakeBotAPI, mongodb_uri: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "MONGODB_", "OPENAI_", "CAPTURE_"))
    }
    env.update(base_env(api.root, mongodb_uri), PYTHONPATH=str(ROOT), SHUTDOWN_GRACE="5")
    env.update({k.upper(): v for k, v in extra.items()})
    return env


async def start(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    """`python -m bot *args`; its output goes to a log in `cwd` (see `print_logs`)."""
    with _new_log(cwd, "-".join(args) or "all").open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


def _new_log(cwd: Path, name: str) -> Path:
    return cwd / f"{name}-{len(list(cwd.glob(f'{name}-*.log')))}.log"


def print_logs(cwd: Path, lines: int = 40) -> None:
    """The end of each process's log; pytest shows it when the test failed."""
    for log in sorted(cwd.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"----- {log.name} (last {len(tail)} lines)", *tail, sep="\n")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def all_done(uri: str, owners: list[int], count: int, timeout: float = 60) -> bool:
    """Every one of `count` links of these owners reached `done`, within `timeout`."""
    store = LinkStore.connect(uri, index_dir=INDEX_DIR)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            query = {"owner_id": {"$in": owners}}
            docs = [d async for d in store.links.find(query, {"status": 1})]
            if len(docs) == count and all(d["status"] == Status.DONE for d in docs):
                return True
            await asyncio.sleep(0.3)
        return False
    finally:
        await store.close()
