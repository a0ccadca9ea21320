"""Button data: one typed encoder/decoder for every inline button the bot makes.

Telegram gives a button's `callback_data` back as it was sent, from whichever user
pressed it, and a modified client can send any data at all. So every datum names its
action and carries a short MAC over (owner, action): the decoder refuses data that was
not made by this bot for the user who pressed it, before any handler or database sees
it. Data stays within Telegram's 64 bytes; an ObjectId travels as 16 base64 characters.

    <kind>:<payload>:<mac>      e.g.  d:ZP1x3q0AAAGxYz7K:9mT4kQ2a

Buttons made before this codec (`r:<hex id>`, `f:<hex id>:<page>`, `t:<tag>`) are still
read: each names something whose owner the handler checks anyway (the link, the saved
query) or only the presser's own links (a tag).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bson import ObjectId
from bson.errors import InvalidId
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.browser.types import ArtifactKind
from bot.i18n import Texts
from bot.tags import clean_tag
from storage.errors import LinksnapError
from storage.models import LinkRecord

MAX_DATA = 64
MAC_CHARS = 8  # 48 bits: forging one button takes ~2^47 tries against Telegram's rate limits
_ID_CHARS = 16


class StaleButton(LinksnapError):
    """Data this bot did not make for this user, or no longer understands."""


@dataclass(frozen=True)
class _OnLink:
    """An action on one link, named by its id (some carry more). Each kind is its own
    subclass, equal only to its own kind, so handlers match on the kind."""

    link_id: ObjectId


class Recapture(_OnLink):
    """🔄 under a snapshot: capture the page afresh."""


class EditTags(_OnLink):
    """🏷: explains how to retag (reply to the snapshot)."""


class Delete(_OnLink):
    """🗑 under a snapshot."""


class Undo(_OnLink):
    """↩ after a delete: the link back, within the minute."""


@dataclass(frozen=True)
class AddTag(_OnLink):
    """＋#tag under a snapshot: a suggested tag, one tap adds it."""

    tag: str


@dataclass(frozen=True)
class MakeFile(_OnLink):
    """📄 full page, PDF, 🗄 archive under a snapshot: the file, made once, then resent."""

    kind: ArtifactKind


_FILE_CODES = {"f": ArtifactKind.FULL_PAGE, "p": ArtifactKind.PDF, "m": ArtifactKind.MHTML}


@dataclass(frozen=True)
class FindPage:
    query_id: ObjectId
    page: int


@dataclass(frozen=True)
class TagLinks:
    tag: str


class ShowSnapshot(_OnLink):
    """📸 in a link-rot digest: the stored snapshot of a page that went offline."""


@dataclass(frozen=True)
class DigestPage:
    """◀ ▶ in a link-rot digest: page `page` of the digest of period `period`."""

    period: int
    page: int


Action = (
    Recapture
    | EditTags
    | Delete
    | Undo
    | AddTag
    | MakeFile
    | FindPage
    | TagLinks
    | ShowSnapshot
    | DigestPage
)
_LinkAction = Recapture | EditTags | Delete | Undo | ShowSnapshot
_LINK_KINDS: dict[str, type[_LinkAction]] = {
    "r": Recapture,
    "g": EditTags,
    "d": Delete,
    "u": Undo,
    "s": ShowSnapshot,
}
_DIGEST_PAGE = re.compile(r"^(\d{1,9})\.(\d{1,5})$")


def _pack_id(value: ObjectId) -> str:
    return base64.urlsafe_b64encode(value.binary).decode().rstrip("=")


def _unpack_id(text: str) -> ObjectId:
    if len(text) != _ID_CHARS:
        raise StaleButton("bad id")
    try:
        return ObjectId(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, InvalidId, ValueError):
        raise StaleButton("bad id") from None


def _body(action: Action) -> str:
    """`kind:payload` of an action (the part the MAC covers with the owner)."""
    match action:
        case Recapture() | EditTags() | Delete() | Undo() | ShowSnapshot():
            kind = next(k for k, cls in _LINK_KINDS.items() if isinstance(action, cls))
            return f"{kind}:{_pack_id(action.link_id)}"
        case AddTag(link_id, tag):
            return f"a:{_pack_id(link_id)}{tag}"
        case MakeFile(link_id, kind):
            code = next(c for c, k in _FILE_CODES.items() if k is kind)
            return f"x:{_pack_id(link_id)}{code}"
        case FindPage(query_id, page):
            return f"f:{_pack_id(query_id)}{page}"
        case TagLinks(tag):
            return f"t:{tag}"
        case DigestPage(period, page):
            return f"n:{period}.{page}"
    raise TypeError(f"not a button action: {action!r}")


def _parse(body: str) -> Action:
    kind, _, payload = body.partition(":")
    if kind in _LINK_KINDS:
        return _LINK_KINDS[kind](_unpack_id(payload))
    if kind == "a" and _is_tag(payload[_ID_CHARS:]):
        return AddTag(_unpack_id(payload[:_ID_CHARS]), payload[_ID_CHARS:])
    if kind == "x" and payload[_ID_CHARS:] in _FILE_CODES:
        return MakeFile(_unpack_id(payload[:_ID_CHARS]), _FILE_CODES[payload[_ID_CHARS:]])
    if kind == "f" and payload[_ID_CHARS:].isdigit():
        return FindPage(_unpack_id(payload[:_ID_CHARS]), int(payload[_ID_CHARS:]))
    if kind == "t" and _is_tag(payload):
        return TagLinks(payload)
    if kind == "n" and (digits := _DIGEST_PAGE.match(payload)):
        return DigestPage(int(digits[1]), int(digits[2]))
    raise StaleButton("unknown button")


def _is_tag(text: str) -> bool:
    """A tag as stored (the one normaliser leaves it as it is)."""
    return bool(text) and clean_tag(text) == text


def _legacy(data: str) -> Action | None:
    """Unsigned data from before the codec; each is owner-checked where it is used."""
    kind, _, rest = data.partition(":")
    try:
        if kind == "r" and len(rest) == 24:
            return Recapture(ObjectId(rest))
        if kind == "f":
            raw_id, _, page = rest.partition(":")
            if len(raw_id) == 24 and page.isdigit():
                return FindPage(ObjectId(raw_id), int(page))
    except InvalidId:
        return None
    tag = clean_tag(rest) if kind == "t" and ":" not in rest else None
    if tag is not None:
        return TagLinks(tag)
    return None


class Codec:
    """Encodes actions for one owner; decodes only what was made for the presser."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"linksnap callback data\0" + secret).digest()

    def _mac(self, owner_id: int, body: str) -> str:
        digest = hmac.new(self._key, f"{owner_id}\0{body}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:6]).decode()

    def fits(self, action: Action) -> bool:
        """Whether `action` can be a button (its tag is a plain word, it fits 64 bytes)."""
        body = _body(action)
        if len(body.encode()) + 1 + MAC_CHARS > MAX_DATA:
            return False
        try:
            return _parse(body) == action
        except StaleButton:
            return False

    def encode(self, action: Action, owner_id: int) -> str:
        if not self.fits(action):
            raise ValueError(f"cannot be button data: {action!r}")
        body = _body(action)
        return f"{body}:{self._mac(owner_id, body)}"

    def decode(self, data: str | None, presser_id: int) -> Action:
        """The action, if this bot made `data` for `presser_id`; else StaleButton."""
        if not data or len(data.encode()) > MAX_DATA:
            raise StaleButton("no data")
        body, _, mac = data.rpartition(":")
        signed = len(mac) == MAC_CHARS and ":" in body
        if signed and hmac.compare_digest(mac, self._mac(presser_id, body)):
            return _parse(body)
        legacy = _legacy(data)
        if legacy is None:
            raise StaleButton("not ours, or not for this user")
        return legacy

    def button(self, text: str, action: Action, owner_id: int) -> InlineKeyboardButton:
        return InlineKeyboardButton(text, callback_data=self.encode(action, owner_id))


@lru_cache(maxsize=4)
def codec_for(token: str) -> Codec:
    """The codec keyed by this bot's token (a new token makes old buttons stale)."""
    return Codec(token.encode())


def snapshot_keyboard(
    codec: Codec, record: LinkRecord, texts: Texts, suggestions: Sequence[str] = ()
) -> InlineKeyboardMarkup:
    """Buttons under a snapshot: 🏷 tags, 🗑 delete, 🔄 again; then ＋#tag suggestions;
    then, for a web page, 📄 full page, PDF, 🗄 archive."""
    owner = record.owner_id
    rows = [
        [
            codec.button(texts.btn_tags, EditTags(record.id), owner),
            codec.button(texts.btn_delete, Delete(record.id), owner),
            codec.button(texts.recapture, Recapture(record.id), owner),
        ]
    ]
    extra = [
        codec.button(f"＋#{tag}", AddTag(record.id, tag), owner)
        for tag in suggestions
        if tag not in record.tags and codec.fits(AddTag(record.id, tag))
    ]
    if extra:
        rows.append(extra[:3])
    if record.kind == "page":  # a PDF or image link is its own file
        files = (
            (texts.btn_full_page, ArtifactKind.FULL_PAGE),
            (texts.btn_pdf, ArtifactKind.PDF),
            (texts.btn_archive, ArtifactKind.MHTML),
        )
        rows.append([codec.button(t, MakeFile(record.id, k), owner) for t, k in files])
    return InlineKeyboardMarkup(rows)


def gone_keyboard(codec: Codec, record: LinkRecord, texts: Texts) -> InlineKeyboardMarkup:
    """Under the kept snapshot of a page gone offline: 🏷 and 🗑 only. Capturing it again
    or making files from it would open the dead page, not the one that was kept."""
    owner = record.owner_id
    return InlineKeyboardMarkup(
        [
            [
                codec.button(texts.btn_tags, EditTags(record.id), owner),
                codec.button(texts.btn_delete, Delete(record.id), owner),
            ]
        ]
    )


def digest_keyboard(
    codec: Codec,
    owner_id: int,
    shown: Sequence[tuple[int, ObjectId]],
    texts: Texts,
    *,
    period: int,
    page: int,
    pages: int,
) -> InlineKeyboardMarkup:
    """📸 n for each page listed (`shown`: its number and link), five a row; ◀ ▶ when the
    digest has more than one page."""
    buttons = [
        codec.button(texts.btn_snapshot.format(number=n), ShowSnapshot(link_id), owner_id)
        for n, link_id in shown
    ]
    rows = [buttons[i : i + 5] for i in range(0, len(buttons), 5)]
    nav = []
    if page > 0:
        nav.append(codec.button("◀", DigestPage(period, page - 1), owner_id))
    if page + 1 < pages:
        nav.append(codec.button("▶", DigestPage(period, page + 1), owner_id))
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(rows)


def undo_keyboard(codec: Codec, record: LinkRecord, texts: Texts) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[codec.button(texts.btn_undo, Undo(record.id), record.owner_id)]])


def link_ids_in(
    codec: Codec, markup: InlineKeyboardMarkup | None, owner_id: int
) -> Iterable[ObjectId]:
    """Links named by this owner's buttons in a message's keyboard (newest data first)."""
    if markup is None:
        return []
    found: list[ObjectId] = []
    for row in markup.inline_keyboard:
        for button in row:
            data = button.callback_data
            if not isinstance(data, str):
                continue
            try:
                action = codec.decode(data, owner_id)
            except StaleButton:
                continue
            link_id = getattr(action, "link_id", None)
            if isinstance(link_id, ObjectId) and link_id not in found:
                found.append(link_id)
    return found
