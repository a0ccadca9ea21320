"""Links that are files, not pages: which ones are kept (PDF, images) and how they are read.

A PDF link opens Chromium's PDF viewer, which gives no access to the file, so the file
is fetched again through the capture's own context (`context.request`: the same egress
proxy session and byte budget as the page). An image link is read from the
navigation's own response. Anything else that Chromium would download is refused.
"""

from __future__ import annotations

import io
import urllib.parse

from PIL import Image, ImageOps, UnidentifiedImageError
from playwright.async_api import BrowserContext

from bot.browser.errors import CaptureError, Failure, FileTooLarge, UnreadableFile
from bot.browser.types import SnapshotKind

PDF_TYPES = frozenset({"application/pdf", "application/x-pdf", "application/acrobat"})
# Raster formats Pillow reads; SVG is a document Chromium renders like a page.
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/pjpeg", "image/gif", "image/webp", "image/bmp"}
)
PREVIEW_SIDE = 2560
MAX_PIXELS = 50_000_000  # decoding more would take ~150 MB and more per image
JPEG_QUALITY = 85


def media_type(headers: dict[str, str]) -> str | None:
    value = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return value or None


def declared_size(headers: dict[str, str]) -> int | None:
    try:
        size = int(headers.get("content-length", ""))
    except ValueError:
        return None
    return size if size >= 0 else None


def kind_of(content_type: str | None) -> SnapshotKind | None:
    """PDF or IMAGE for the files kept as such; None for anything else."""
    if content_type in PDF_TYPES:
        return SnapshotKind.PDF
    if content_type in IMAGE_TYPES:
        return SnapshotKind.IMAGE
    return None


def file_name(url: str, kind: SnapshotKind, content_type: str | None) -> str:
    """The last path segment if it looks like a file name, else one made from the type."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '\\/:*?"<>|')[:100]
    if "." in name.strip("."):
        return name
    subtype = (content_type or "").partition("/")[2] or "bin"
    extension = {"jpeg": "jpg", "pjpeg": "jpg", "x-pdf": "pdf", "acrobat": "pdf"}.get(subtype)
    return f"{name or kind.value}.{extension or subtype}"


async def fetch(context: BrowserContext, url: str, what: str, limit: int, seconds: float) -> bytes:
    """The file at `url` through the capture's proxy; FileTooLarge over `limit` bytes.

    The proxy's byte budget (CAPTURE_MAX_MB) bounds a body whose size is not declared.
    """
    response = await context.request.get(
        url, max_redirects=5, timeout=seconds * 1000, fail_on_status_code=False
    )
    try:
        size = declared_size(response.headers)
        if size is not None and size > limit:
            raise FileTooLarge(what, size, limit)
        if not response.ok:
            raise CaptureError(
                Failure.UNREACHABLE, f"HTTP {response.status} when fetching the file"
            )
        body = await response.body()
    finally:
        await response.dispose()
    if len(body) > limit:
        raise FileTooLarge(what, len(body), limit)
    return body


def check_pdf(data: bytes) -> None:
    # The header may follow up to 1 KB of junk (PDF 1.7, annex H).
    if b"%PDF-" not in data[:1024]:
        raise UnreadableFile("not a PDF file")


def image_preview(data: bytes) -> tuple[bytes, int, int]:
    """A JPEG of an image file (first frame, upright, at most PREVIEW_SIDE), its size."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise UnreadableFile(f"{opened.width}x{opened.height} pixels")
            opened.seek(0)
            image = ImageOps.exif_transpose(opened) or opened
            image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
            if image.mode in {"RGBA", "LA", "P", "PA"}:
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            image = image.convert("RGB")
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=JPEG_QUALITY)
            return buf.getvalue(), image.width, image.height
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableFile(f"image: {type(exc).__name__}") from None
