"""Records stored in the `links` collection, as typed objects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId

from storage.terms import terms_for


class Status(StrEnum):
    """Life of a link, its status being its stage:
    pending → capturing → captured → delivering → summarizing → done (or failed)."""

    PENDING = "pending"
    CAPTURING = "capturing"
    CAPTURED = "captured"
    DELIVERING = "delivering"
    SUMMARIZING = "summarizing"
    DONE = "done"
    FAILED = "failed"
    SUMMARY_FAILED = "summary_failed"


UNFINISHED = (
    Status.PENDING,
    Status.CAPTURING,
    Status.CAPTURED,
    Status.DELIVERING,
    Status.SUMMARIZING,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Screenshot:
    width: int
    height: int
    file_id: str | None = None
    file_unique_id: str | None = None
    gridfs_id: ObjectId | None = None
    as_document: bool = False
    size: int | None = None  # bytes stored under gridfs_id (/stats adds these up)


@dataclass
class StoredFile:
    """A file kept for a link: the PDF or image a link pointed at, or one made on demand
    (full page, PDF print, archive). `gridfs_id` names the bytes (storage/images.py);
    `file_id` is Telegram's once it has been sent."""

    file_name: str
    mime_type: str
    size: int
    gridfs_id: ObjectId | None = None
    file_id: str | None = None
    file_unique_id: str | None = None


@dataclass
class LlmUsage:
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _doc_value(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return list(value)
    return value


@dataclass
class LinkRecord:
    """One saved link of one user."""

    owner_id: int
    chat_id: int
    url: str
    url_key: str
    id: ObjectId = field(default_factory=ObjectId)
    tags: list[str] = field(default_factory=list)
    note: str = ""
    lang_code: str = "en"
    source_message_id: int | None = None
    final_url: str | None = None
    http_status: int | None = None
    title: str | None = None
    description: str | None = None
    site_name: str | None = None
    lang: str | None = None
    text: str = ""
    terms: list[str] = field(default_factory=list)
    summary: str | None = None
    summary_error: str | None = None
    summary_attempts: int = 0
    llm: LlmUsage | None = None
    screenshot: Screenshot | None = None
    # What the link turned out to be ("page", "pdf", "image": bot.browser.types.SnapshotKind);
    # for a PDF or an image, `original` is the file itself.
    kind: str = "page"
    # The page was still loading when the capture budget ran out: what had rendered.
    partial: bool = False
    original: StoredFile | None = None
    reply_message_id: int | None = None
    # Other links recorded from the same message: its closing reaction waits for all.
    siblings: list[ObjectId] = field(default_factory=list)
    status: Status = Status.PENDING
    error: str | None = None
    attempts: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    checked_at: datetime | None = None
    alive: bool | None = None
    # When a link-rot check first found the page gone (kept while it stays gone, dropped
    # when it answers again): what the digest tells about (bot/library/digest.py).
    gone_at: datetime | None = None

    def page_terms(self) -> list[str]:
        """The search terms of what the record says about its page (/find's words)."""
        return terms_for(self.title, self.note, self.description, self.site_name, self.text)

    def to_doc(self) -> dict[str, Any]:
        # Field by field: asdict() deep-copies every value (ObjectIds, datetimes), ~1 ms a
        # record, which an import of thousands pays on the event loop. The values here are
        # immutable but for the lists (copied) and the small dataclasses (asdict).
        doc = {f.name: _doc_value(getattr(self, f.name)) for f in fields(self)}
        doc["_id"] = doc.pop("id")
        doc["status"] = str(self.status)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> LinkRecord:
        data = dict(doc)
        data["id"] = data.pop("_id")
        known = cls.__dataclass_fields__
        data = {k: v for k, v in data.items() if k in known}
        if isinstance(data.get("llm"), dict):
            data["llm"] = LlmUsage(**data["llm"])
        if isinstance(data.get("screenshot"), dict):
            data["screenshot"] = Screenshot(**data["screenshot"])
        if isinstance(data.get("original"), dict):
            data["original"] = StoredFile(**data["original"])
        data["status"] = Status(data.get("status", Status.PENDING))
        return cls(**data)


@dataclass(frozen=True)
class TagCount:
    tag: str
    count: int


@dataclass(frozen=True)
class Page:
    """One page of a /find result."""

    items: list[LinkRecord]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))
