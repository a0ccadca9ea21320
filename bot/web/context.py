"""What every request handler of the pages reaches: one typed object on the aiohttp app."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cachetools import LRUCache
from telegram.ext import ExtBot, JobQueue

from bot.library.manage import ManageService
from bot.services import Services
from bot.web_address import WebAddress
from storage.thumbs import Thumbnails
from storage.websessions import Sessions, SignIns

THUMB_CACHE_BYTES = 8 * 2**20


def _sized(value: tuple[bytes, str]) -> int:
    return len(value[0])


@dataclass
class WebContext:
    services: Services
    bot: ExtBot[Any]
    jobs: JobQueue[Any] | None
    address: WebAddress
    clock: Callable[[], float] = time.time  # wall-clock seconds (auth_date, link expiry)
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # the server is stopping
    # Thumbnails served lately, by screenshot id: (bytes, ETag).
    thumbs_cache: LRUCache[str, tuple[bytes, str]] = field(
        default_factory=lambda: LRUCache(THUMB_CACHE_BYTES, getsizeof=_sized)
    )

    @property
    def token(self) -> str:
        return self.services.settings.token

    @property
    def key(self) -> bytes:
        """Signs CSRF tokens and media links; a new bot token makes old ones stale."""
        return hashlib.sha256(b"linksnap web\0" + self.token.encode()).digest()

    @property
    def signins(self) -> SignIns:
        return SignIns(self.services.store.db)

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.services.store.db)

    @property
    def thumbnails(self) -> Thumbnails:
        return Thumbnails(self.services.store.db)

    @property
    def manage(self) -> ManageService:
        return ManageService(self.services.store)


CONTEXT = web.AppKey("linksnap_web", WebContext)


def context_of(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


API_PREFIX = web.AppKey("linksnap_api_prefix", str)
