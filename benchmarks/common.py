"""What every bench shares: a fresh FerretDB for its run, the bot's settings against the
Bot API fake, the same summary of its samples, and benchmarks/results.json."""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.config import Settings
from storage.bulk import record_imported
from storage.models import LinkRecord
from storage.queue.claims import PRIO_BY_HAND
from storage.repository import LinkStore
from tests.conftest import start_ferretdb
from tests.fakes.botapi import FakeBotAPI

RESULTS = Path(__file__).resolve().parent / "results.json"
# FerretDB's Go collector as scripts/run.sh leaves it (GOGC at Go's default, the heap's
# soft ceiling at FERRETDB_GOMEMLIMIT's default), not the tests' (collecting only past
# 256 MiB): a bench measures the database `make run` starts. In a 30-page burst the
# tests' setting spent 0.3-0.8 CPU-s less in FerretDB (docs/BENCHMARKS.md).
RUN_GO_GC = {"GOMEMLIMIT": "64MiB"}


def settings(api: FakeBotAPI, mongo: str, **extra: str) -> Settings:
    """The bot's settings against the Bot API fake and `mongo`, capturing pages served on
    127.0.0.1, logging only warnings; `extra` adds or overrides settings."""
    env = {
        "telegram_bot_token": api.token,
        "telegram_api_url": api.root,
        "mongodb_uri": mongo,
        "capture_allow_private": "127.0.0.1",
        "log_level": "WARNING",
        **extra,
    }
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


def summary(values: list[float], digits: int) -> dict[str, float]:
    """How many, the median, the 95th percentile (the value at that rank) and the largest,
    rounded to `digits` places."""
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), digits),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], digits),
        "max": round(ordered[-1], digits),
    }


@contextmanager
def fresh_ferretdb(prefix: str) -> Iterator[tuple[str, Path]]:
    """A FerretDB (SQLite, as `make run` starts it) in a new temporary folder, listening
    once this yields its base URI and the folder; stopped and the folder removed after."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    proc, base = start_ferretdb(data, go_gc=RUN_GO_GC)
    try:
        yield base, data
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


def merge_results(name: str, results: dict[str, Any]) -> None:
    """Print `results` and store them under `name` in results.json, beside the other
    benches' numbers (a bench run alone keeps what the others measured before)."""
    print(json.dumps(results, indent=2, ensure_ascii=False))
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**previous, name: results}, indent=2, ensure_ascii=False) + "\n")


async def seed_links(store: LinkStore, records: list[LinkRecord]) -> int:
    """Links stored at once, as sent by hand, through the bot's one bulk writer."""
    return await record_imported(store, records, prio=PRIO_BY_HAND, turn=0.0, imported=False)
