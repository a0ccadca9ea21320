"""The capture budget: wait for a page to settle up to a deadline, then take what rendered.

Chromium paints nothing while a render-blocking resource (a stylesheet or synchronous
script in <head>) is pending, so a page whose CDN never answers has no picture at all
however long one waits. At the deadline, loading is stopped (`window.stop()`, as the
browser's Stop button): the pending requests are cancelled, Chromium renders with what
it has, and the shot is marked partial. Measured on a page whose stylesheet never
arrives: after `window.stop()` (or CDP `Page.stopLoading`) the screenshot takes ~50 ms;
cutting the proxy's tunnels also unblocks it but took ~0.5 s; doing nothing kept it
blank until the proxy's idle timeout (20 s) cut the tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Request
from playwright.async_api import TimeoutError as PlaywrightTimeout

# After the load event, requests still in flight (late images, beacons) get this long.
QUIET_SECONDS = 1.0
_POLL = 0.05
# An evaluate that does not come back this fast finds the page's main thread busy.
_EVAL_TIMEOUT = 2.0


def remaining(deadline: float) -> float:
    return deadline - asyncio.get_running_loop().time()


async def settle(page: Page, inflight: set[Request], deadline: float) -> bool:
    """Wait for the load event, then briefly for quiet; False if the deadline came first.

    Polling the in-flight set instead of Playwright's "networkidle" (which always waits
    500 ms of silence) lets a page that is already complete be shot at once.
    """
    try:
        await page.wait_for_load_state("load", timeout=max(1.0, remaining(deadline) * 1000))
    except PlaywrightTimeout:
        return False
    except PlaywrightError:
        return True  # the page moved on or closed; the final check says what that means
    quiet_until = asyncio.get_running_loop().time() + min(QUIET_SECONDS, remaining(deadline))
    while inflight and asyncio.get_running_loop().time() < quiet_until:  # noqa: ASYNC110
        await asyncio.sleep(_POLL)
    return True


async def stop_loading(page: Page) -> None:
    """Cancel whatever is still loading, so Chromium renders what it has."""
    with contextlib.suppress(PlaywrightError, TimeoutError):
        await asyncio.wait_for(page.evaluate("() => window.stop()"), _EVAL_TIMEOUT)


async def has_body(page: Page) -> bool:
    """Whether the document got as far as a body: without one Chromium draws no frame."""
    try:
        return bool(await asyncio.wait_for(page.evaluate("() => !!document.body"), _EVAL_TIMEOUT))
    except (PlaywrightError, TimeoutError):
        return False
