"""Options for Playwright's browser server, so a remote Chromium runs with the bot's switches.

`python -m bot.browser.server HOST PORT [WS_PATH]` prints the JSON that
`node cli.js launch-server --browser chromium --config FILE` reads (Playwright's own
browser server, shipped in the Python package's driver); scripts/remote-browser.sh does
both. The bot checks at connect time that the WebRTC switch is in force and refuses a
browser that would send UDP around its egress proxy.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

from bot.browser.binary import find_chromium
from bot.browser.capture import CHROMIUM_ARGS

# Anything a context does without its own proxy would go here, a closed loopback
# port, and fail: the bot gives every capture's context the egress proxy explicitly.
_DEAD_END_PROXY = "http://127.0.0.1:9"


def driver_command() -> list[str]:
    """The Node binary and CLI of the Playwright driver installed with the Python package."""
    import playwright

    driver = Path(playwright.__file__).parent / "driver"
    return [str(driver / "node"), str(driver / "package" / "cli.js")]


def server_config(
    host: str,
    port: int,
    *,
    executable: str | None = None,
    ws_path: str | None = None,
    args: list[str] | None = None,
) -> dict[str, Any]:
    """launchServer options: loopback or a private interface, a secret path, our switches."""
    config: dict[str, Any] = {
        "host": host,
        "port": port,
        # Whoever knows the endpoint drives the browser: keep the path unguessable.
        "wsPath": ws_path or f"/{secrets.token_urlsafe(18)}",
        "headless": True,
        "chromiumSandbox": False,
        "args": list(CHROMIUM_ARGS if args is None else args),
        "proxy": {"server": _DEAD_END_PROXY},
    }
    found = executable or find_chromium()
    if found:
        config["executablePath"] = found
    return config


def main(argv: list[str]) -> int:
    if len(argv) not in {2, 3}:
        sys.stderr.write("usage: python -m bot.browser.server HOST PORT [WS_PATH]\n")
        return 2
    ws_path = argv[2] if len(argv) == 3 else None
    sys.stdout.write(json.dumps(server_config(argv[0], int(argv[1]), ws_path=ws_path)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
