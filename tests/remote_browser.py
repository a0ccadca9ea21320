"""Playwright's browser server on loopback, started as an operator would start a remote one."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from bot.browser.server import driver_command, server_config


class RemoteBrowser:
    """`node cli.js launch-server` with the config `bot.browser.server` writes."""

    def __init__(self, *, args: list[str] | None = None, host: str = "127.0.0.1") -> None:
        self._args = args
        self._host = host
        self._proc: subprocess.Popen[str] | None = None
        self.ws_endpoint = ""
        self.log = Path(tempfile.gettempdir()) / "launch-server.log"
        self._folder: Path | None = None  # its config and log: removed at stop

    def start(self, timeout: float = 30) -> str:
        folder = self._folder = Path(tempfile.mkdtemp())
        config = folder / "launch-server.json"
        self.log = folder / "stderr.log"
        config.write_text(json.dumps(server_config(self._host, 0, args=self._args)))
        self._proc = subprocess.Popen(
            [*driver_command(), "launch-server", "--browser", "chromium", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not line or not line[0].startswith("ws://"):
            self.stop(keep_log=True)
            said = self.log.read_text()[-2000:]
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"browser server did not start: {line!r} {said}")
        self.ws_endpoint = line[0].strip()
        return self.ws_endpoint

    def stop(self, *, keep_log: bool = False) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        if self._folder is not None and not keep_log:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
