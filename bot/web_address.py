"""Where the pages live: WEBAPP_URL, or the address the front listens on."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class WebAddress:
    """The public URL users open (it ends with `/`); everything else lives under it."""

    base: str

    @classmethod
    def of(cls, url: str) -> WebAddress:
        return cls(url if url.endswith("/") else url + "/")

    @property
    def https(self) -> bool:
        """Telegram opens only https Mini Apps; an http one is for this machine alone."""
        return self.base.startswith("https://")

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.base).path or "/"

    def signin(self, token: str) -> str:
        return f"{self.base}signin/{token}"

    def library(self, tags: list[str] | None = None, words: str = "") -> str:
        """The library (link管理), filtered as /find was."""
        query = {"view": "manage"}
        if tags:
            query["tags"] = ",".join(tags)
        if words:
            query["q"] = words
        return f"{self.base}?{urllib.parse.urlencode(query)}"
