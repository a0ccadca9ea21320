"""The project's one exception base. It lives in the lowest package (storage imports
nothing of bot or handlers) so that every layer's own errors can share it: a caller
can tell the project's refusals from a library's failures with one `except`."""

from __future__ import annotations


class LinksnapError(Exception):
    """Every error linksnap raises on purpose (a refusal, a known failure)."""
