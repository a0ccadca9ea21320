"""What every bench shares: a fresh FerretDB for its run, and benchmarks/results.json."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import start_ferretdb

RESULTS = Path(__file__).resolve().parent / "results.json"


@contextmanager
def fresh_ferretdb(prefix: str) -> Iterator[tuple[str, Path]]:
    """A FerretDB (SQLite, as `make run` starts it) in a new temporary folder, listening
    once this yields its base URI and the folder; stopped and the folder removed after."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    proc, base = start_ferretdb(data)
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
