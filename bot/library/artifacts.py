"""📄 full page, PDF print, 🗄 MHTML archive of a saved link: made once, then resent.

The first press opens the page with the Capturer (a process with a browser: the worker
or all-in-one role), keeps the file beside the screenshots (storage/artifacts.py, capped
at ARCHIVE_MAX_MB by the capture) and hands it to the caller to send; once Telegram has
it, its `file_id` is kept and later presses send that, without opening the page again.
A process without a browser (the front role) orders the file (storage/queue/orders.py),
a worker makes it (bot/pipeline/files.py), and the asker takes it from where it is kept.
This module knows nothing of Telegram: handlers/artifacts.py sends.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.browser.errors import CaptureError, Failure
from bot.browser.types import Artifact, ArtifactKind
from bot.chat import render
from bot.i18n import Texts
from bot.keyed_lock import KeyedLocks
from storage.artifacts import LinkFile, LinkFiles
from storage.errors import LinksnapError
from storage.models import LinkRecord, StoredFile
from storage.queue.orders import FileOrders
from storage.repository import LinkStore

if TYPE_CHECKING:
    from bot.browser.capture import Capturer

_EXTENSIONS = {ArtifactKind.FULL_PAGE: "jpg", ArtifactKind.PDF: "pdf", ArtifactKind.MHTML: "mhtml"}
_UNSAFE = re.compile(r"[^\w.-]+")
# One making per (link, kind) in this process: a double tap waits for the first.
_making = KeyedLocks()
# How long a process without a browser waits for a worker to make an ordered file: a
# capture's budget several times over (a queue of files ahead of it), then it says so.
ORDER_PATIENCE = 180.0
ORDER_POLL = 0.25  # seconds between looks for the ordered file


class NoBrowser(LinksnapError):
    """The file has not been made yet, this process has no browser to make it, and no
    worker made it within ORDER_PATIENCE."""


@dataclass
class Ready:
    """What to send: by `made.file.file_id` when `data` is None, else these bytes."""

    made: LinkFile
    data: bytes | None
    fresh: bool  # made just now (the page was opened for it)


def files_of(store: LinkStore) -> LinkFiles:
    return LinkFiles(store.db)


async def ready(
    store: LinkStore,
    capturer: Capturer | None,
    record: LinkRecord,
    kind: ArtifactKind,
    *,
    locale: str,
    upload: bool = False,
) -> Ready:
    """The file for `record`'s current snapshot: kept, or made now. Call it inside
    `making(record, kind)`, through to `sent`, so that a second press waits and then
    sends the first one's file by its file_id.

    `upload`: the bytes even if Telegram has a file_id (it refused that one). Raises
    NoBrowser, or CaptureError (and its subclasses) when the page cannot be made into it.
    """
    files = files_of(store)
    of_shot = record.screenshot.gridfs_id if record.screenshot else None
    made = await files.get(record.id, kind, of_shot)
    if made is not None and made.file.gridfs_id is not None:
        if made.file.file_id and not upload:
            return Ready(made, None, fresh=False)
        try:
            return Ready(made, await files.read(made), fresh=False)
        except LookupError:
            pass  # the bytes are gone: made again below
    if capturer is None:
        return await _ordered(store, record, kind, locale)
    artifact = await _make(capturer, record.final_url or record.url, kind, locale)
    made = LinkFile(
        link_id=record.id,
        kind=str(kind),
        file=StoredFile(
            file_name=file_name(record, kind),
            mime_type=artifact.mime_type,
            size=len(artifact.data),
        ),
        of_shot=of_shot,
        partial=artifact.partial,
        truncated_at=artifact.height if artifact.truncated else None,
    )
    made = await files.put(made, artifact.data)
    return Ready(made, artifact.data, fresh=True)


async def _ordered(store: LinkStore, record: LinkRecord, kind: ArtifactKind, locale: str) -> Ready:
    """Ask the workers for the file and wait for it to be kept (or for why it was not)."""
    files, orders = files_of(store), FileOrders(store.db)
    of_shot = record.screenshot.gridfs_id if record.screenshot else None
    await orders.ask(record.id, record.owner_id, str(kind), locale)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ORDER_PATIENCE
    while loop.time() < deadline:
        made = await files.get(record.id, kind, of_shot)
        if made is not None and made.file.gridfs_id is not None:
            try:
                return Ready(made, await files.read(made), fresh=True)
            except LookupError:
                pass  # replaced meanwhile: the newer one is read next time round
        failed = await orders.failure(record.id, str(kind))
        if failed is not None:
            raise CaptureError(_failure(failed.reason), failed.detail)
        await asyncio.sleep(ORDER_POLL)
    raise NoBrowser()


def _failure(reason: str) -> Failure:
    try:
        return Failure(reason)
    except ValueError:
        return Failure.INTERNAL


def making(record: LinkRecord, kind: ArtifactKind) -> AbstractAsyncContextManager[None]:
    """Held from looking for the file until Telegram has it: one at a time per (link,
    kind) in this process."""
    return _making.hold((str(record.id), str(kind)))


async def sent(store: LinkStore, made: LinkFile, file_id: str, file_unique_id: str | None) -> None:
    await files_of(store).sent(made, file_id, file_unique_id)


async def forget_file_id(store: LinkStore, made: LinkFile) -> None:
    await files_of(store).forget_file_id(made)


async def _make(capturer: Capturer, url: str, kind: ArtifactKind, locale: str) -> Artifact:
    match kind:
        case ArtifactKind.FULL_PAGE:
            return await capturer.full_page(url, locale=locale)
        case ArtifactKind.PDF:
            return await capturer.pdf(url, locale=locale)
        case ArtifactKind.MHTML:
            return await capturer.mhtml(url, locale=locale)
    raise ValueError(kind)


def file_name(record: LinkRecord, kind: ArtifactKind) -> str:
    """`example.org-2026-12-01.pdf`: where it is from and when it was saved."""
    host = _UNSAFE.sub("-", render.domain(record.final_url or record.url))[:60].strip("-.")
    return f"{host or 'page'}-{record.created_at:%Y-%m-%d}.{_EXTENSIONS[kind]}"


def caption(record: LinkRecord, made: LinkFile, texts: Texts) -> str:
    """What the file is, of which page; partial or cut where that is so."""
    lines = [
        texts.file_captions.get(made.kind, made.kind),
        f"<b>{render.link_title(record)}</b>",
    ]
    if made.partial:
        lines.append(texts.partial_note)
    if made.truncated_at:
        lines.append(texts.file_truncated.format(height=made.truncated_at))
    return "\n".join(lines)
