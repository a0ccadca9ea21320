"""Futures whose failure is reported elsewhere, or by nobody on purpose."""

from __future__ import annotations

import asyncio
from typing import Any


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done callback: the outcome is looked at, so asyncio does not log "exception was
    never retrieved" for a future whose failure is reported where it is awaited (or
    that may never be awaited at all)."""
    if not future.cancelled():
        future.exception()
