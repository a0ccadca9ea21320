"""Managing saved links: retag, delete with undo, purge for good.

Handlers parse and reply; this decides. Storage knows nothing of Telegram, so the
message a link's snapshot lives in is found here (from the replied-to message's buttons,
or the link in its caption).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import timedelta

from bson import ObjectId
from telegram import Message, MessageEntity

from bot.chat import render
from bot.chat.callbacks import Codec, link_ids_in
from bot.chat.links import url_key
from bot.chat.streaming import CAPTION_LIMIT, visible_len
from bot.i18n import Texts
from bot.keyed_lock import KeyedLocks
from bot.tags import clean_tag, merge_tags
from storage.models import LinkRecord
from storage.repository import LinkStore
from storage.trash import Trash, Trashed

UNDO_SECONDS = 60.0
_undoing = KeyedLocks()  # per link, in this process
_ADD = re.compile(r"^[#＃](\S+)$")
_REMOVE = re.compile(r"^[-−－][#＃](\S+)$")


@dataclass(frozen=True)
class Retag:
    """What a reply like `#a #b -#c` asks for."""

    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


def parse_retag(text: str | None) -> Retag | None:
    """`#a #b -#c` → Retag; None when the text is anything but tag tokens."""
    tokens = (text or "").split()
    if not tokens:
        return None
    add: list[str] = []
    remove: list[str] = []
    for token in tokens:
        if m := _ADD.match(token):
            target = add
        elif m := _REMOVE.match(token):
            target = remove
        else:
            return None
        tag = clean_tag(m.group(1))
        if tag is None:
            return None
        if tag not in target:
            target.append(tag)
    return Retag(add, remove)


def snapshot_caption(record: LinkRecord, texts: Texts) -> str:
    """The caption a finished snapshot shows: head, then the summary while it fits (as the
    summary editor lays it out)."""
    head = render.caption(record, texts)
    summary = (record.summary or "").strip()
    if summary:
        full = f"{head}\n\n{texts.summary_heading}\n{html.escape(summary)}"
        if visible_len(full) <= CAPTION_LIMIT:
            return full
    return head


def urls_in(message: Message) -> list[str]:
    """Hidden and plain links of a message's text or caption, in order."""
    entities = message.parse_entities() if message.text else message.parse_caption_entities()
    out = []
    for entity, value in entities.items():
        if entity.type == MessageEntity.TEXT_LINK and entity.url:
            out.append(entity.url)
        elif entity.type == MessageEntity.URL:
            out.append(value)
    return out


class ManageService:
    def __init__(self, store: LinkStore, *, undo_seconds: float = UNDO_SECONDS) -> None:
        self.store = store
        self.trash = Trash(store)
        self.undo_seconds = undo_seconds

    async def link_of(self, codec: Codec, owner_id: int, message: Message) -> LinkRecord | None:
        """The owner's link a bot message shows: by its buttons, else the link in it."""
        for link_id in link_ids_in(codec, message.reply_markup, owner_id):
            record = await self.store.get(owner_id, link_id)
            if record is not None:
                return record
        for url in urls_in(message)[:1]:  # the caption's first link is the page's
            saved = await self.store.link_id_for(owner_id, url_key(url))
            if saved is not None:
                return await self.store.get(owner_id, saved)
        return None

    async def retag(self, owner_id: int, link_id: ObjectId, change: Retag) -> LinkRecord | None:
        """Apply a Retag; None when the owner has no such link."""
        done = await self.retag_counted(owner_id, link_id, change)
        return done[0] if done is not None else None

    async def retag_counted(
        self, owner_id: int, link_id: ObjectId, change: Retag
    ) -> tuple[LinkRecord, int] | None:
        """Apply a Retag: the link as it now stands and how many added tags did not fit
        (a link holds at most MAX_TAGS_PER_LINK); None when the owner has no such link.

        Read, change, write: FerretDB v1 cannot make this atomic, and a tag merged by a
        re-sent link in the same instant may be lost; the user sees the result at once.
        """
        record = await self.store.get(owner_id, link_id)
        if record is None:
            return None
        kept = [t for t in record.tags if t not in change.remove]
        tags, dropped = merge_tags(kept, change.add)
        if tags != record.tags:
            if not await self.store.set_tags(owner_id, link_id, tags):
                return None
            record.tags = tags
        return record, dropped

    async def delete(
        self, owner_id: int, link_id: ObjectId, chat_id: int | None, message_id: int | None
    ) -> Trashed | None:
        return await self.trash.hide(
            owner_id,
            link_id,
            keep_for=timedelta(seconds=self.undo_seconds),
            chat_id=chat_id,
            message_id=message_id,
        )

    async def undo(self, owner_id: int, link_id: ObjectId) -> LinkRecord:
        """Raises storage.trash.AlreadyRestored / UndoExpired / UndoConflict. Presses of
        one ↩ are taken one at a time: a second finds the first's work done."""
        async with _undoing.hold(link_id):
            return await self.trash.restore(owner_id, link_id)

    async def purge(self, link_id: ObjectId) -> Trashed | None:
        return await self.trash.purge(link_id)

    async def purge_expired(self) -> list[Trashed]:
        """Everything whose undo time is over (after a restart the timers are gone)."""
        done = []
        for link_id in await self.trash.expired():
            trashed = await self.trash.purge(link_id)
            if trashed is not None:
                done.append(trashed)
        return done


def deleted_caption(record: LinkRecord, texts: Texts, *, for_good: bool) -> str:
    line = texts.deleted_for_good if for_good else texts.deleted_undo
    shown = render.clip(render.shown(record.title or record.url), render.TITLE_MAX)
    return f"{line}\n<s>{render.esc(shown)}</s>"
