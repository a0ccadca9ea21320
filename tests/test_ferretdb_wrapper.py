"""The FerretDB wrapper (tools/ferretdb) defers formatting what FerretDB attaches to its
per-statement debug lines (lazylog.go) — and a debug log still shows all of it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from tests.conftest import FERRETDB, _wait_port, free_port


def test_debug_log_still_names_each_statements_arguments(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "ferretdb.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(FERRETDB),
                "--listen-addr",
                f"127.0.0.1:{port}",
                "--sqlite-url",
                f"file:{tmp_path}/",
                "--log-level",
                "debug",
            ],
            stdout=out,
            stderr=out,
        )
        try:
            _wait_port(port, proc)
            uri = f"mongodb://127.0.0.1:{port}"
            client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
            with client as c:
                c.wrapper.things.insert_one({"marker": "needle-4711"})
                assert c.wrapper.things.find_one({"marker": "needle-4711"}) is not None
        finally:
            proc.terminate()
            proc.wait(10)
    lines = log.read_text().splitlines()
    inserts = [line for line in lines if "INSERT INTO" in line and "needle-4711" in line]
    # The statement's arguments (the document) and the names FerretDB's loggers were given
    # (With, WithGroup) reach the line, in order, both before and after the statement ran.
    assert any(
        line.startswith("time=") and "level=DEBUG" in line and '">>> INSERT' in line
        for line in inserts
    ), lines[-20:]
    assert any(
        '"<<< INSERT' in line and " time=" in line.split("msg=", 1)[1] for line in inserts
    ), lines[-20:]
    assert all(" name=sqlite" in line and "args=" in line for line in inserts)
