"""Which Chromium binary to start when none is configured.

Debian's `chromium-headless-shell` first: Chromium's headless shell (the "old" headless
mode, the binary Playwright itself starts for `headless=True`) draws a page without the
full browser's window machinery. The same capture of the test bed's article page took
0.18-0.23 CPU-s of Chromium against 0.46-0.53 with the full `chromium` in headless mode,
and half the wall time (docs/BENCHMARKS.md). The full browser is the fallback.
"""

from __future__ import annotations

import os
import shutil

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """`CHROMIUM_PATH` if set, else the first of CANDIDATES on PATH, else None
    (Playwright's own download). The bot's settings may also name one (`.env`)."""
    if os.environ.get("CHROMIUM_PATH"):
        return os.environ["CHROMIUM_PATH"]
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None
