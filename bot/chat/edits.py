"""Edits of messages already sent: the one place that knows Telegram's "message is not
modified" answer, which means the edit has already landed (the same text twice, or an
edit made before a restart), never a failure worth telling anyone about."""

from __future__ import annotations

from collections.abc import Awaitable

from telegram.error import BadRequest


def not_modified(exc: BadRequest) -> bool:
    """Whether Telegram refused an edit only because the message already reads so."""
    return "not modified" in exc.message.lower()


async def unless_unchanged(call: Awaitable[object]) -> None:
    """Await an edit; "not modified" counts as done, any other refusal is raised."""
    try:
        await call
    except BadRequest as exc:
        if not not_modified(exc):
            raise
