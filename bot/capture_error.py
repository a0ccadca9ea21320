"""The one failure type of a capture (its own module so the page guard can raise it too)."""

from __future__ import annotations


class CaptureError(Exception):
    """A capture that could not produce a snapshot; `reason` is a stable code.

    Each code has a user text in bot/i18n (`capture_reasons`).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
