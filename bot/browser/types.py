"""What a capture returns, and how it is tuned (its own module so others can import it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

MIB = 1024 * 1024


class SnapshotKind(StrEnum):
    """What the link turned out to be."""

    PAGE = "page"  # a web page: `image` is its screenshot
    PDF = "pdf"  # a PDF file: `original` is the PDF, `image` its first page, `text` its text
    IMAGE = "image"  # an image file: `original` is the image, `image` a JPEG of it


@dataclass
class Snapshot:
    """One capture of a link.

    `image` is always a JPEG for the photo reply (`width` x `height`). For a PDF or an
    image link, `original` holds the file exactly as served, with `content_type` and a
    `file_name` to send it under. `partial` means the page had not finished loading
    when the capture budget ran out: what had been drawn was kept.
    """

    url: str
    final_url: str
    http_status: int | None
    image: bytes
    width: int
    height: int
    title: str | None = None
    description: str | None = None
    site_name: str | None = None
    lang: str | None = None
    text: str = ""
    redirects: list[str] = field(default_factory=list)
    kind: SnapshotKind = SnapshotKind.PAGE
    partial: bool = False
    original: bytes | None = None
    content_type: str | None = None
    file_name: str | None = None


class ArtifactKind(StrEnum):
    FULL_PAGE = "full_page"  # JPEG of the whole page (send as a document)
    PDF = "pdf"  # Chromium's print to PDF
    MHTML = "mhtml"  # Chromium's single-file archive, opens offline in Chromium browsers


@dataclass(frozen=True)
class Artifact:
    """A file made from a page on demand; `data` is at most CaptureOptions.archive_max_bytes.

    `partial`: the page had not finished loading within the budget. `truncated`: a full
    page taller than `full_page_max_height` was cut there.
    """

    kind: ArtifactKind
    data: bytes
    mime_type: str
    file_name: str
    partial: bool = False
    truncated: bool = False
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class CaptureOptions:
    """Capture fidelity settings (CAPTURE_BUDGET, CONSENT_*, FULL_PAGE_MAX_HEIGHT, ...)."""

    budget: float = 8.0
    consent: bool = True
    consent_rules_dir: str | None = None
    consent_wait: float = 3.0
    full_page_max_height: int = 30_000
    archive_max_bytes: int = 45 * MIB
    document_max_bytes: int = 20 * MIB
    spare_page: bool = True  # keep one page ready for the next capture (bot/browser/spare.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> CaptureOptions:
        return cls(
            budget=settings.capture_budget,
            consent=settings.capture_consent,
            consent_rules_dir=settings.consent_rules_dir,
            consent_wait=settings.consent_wait,
            full_page_max_height=settings.full_page_max_height,
            archive_max_bytes=int(settings.archive_max_mb * MIB),
            document_max_bytes=int(settings.document_max_mb * MIB),
            spare_page=settings.capture_spare_page,
        )
