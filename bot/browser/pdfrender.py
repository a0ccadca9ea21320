"""A PDF's first page as a JPEG, its text and title, read in a child process.

The PDF comes from the internet, so pdfium (Chrome's PDF engine, via pypdfium2) reads
it in a process of its own with a memory limit and a deadline: a file that crashes,
hangs or balloons the parser costs that child, never the bot.

`python -m bot.browser.pdfrender` reads the PDF on stdin and writes one JSON object to stdout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import sys
from dataclasses import dataclass

from storage.errors import LinksnapError

RENDER_WIDTH = 1280
MAX_RENDER_HEIGHT = 4 * RENDER_WIDTH
MAX_TEXT_PAGES = 200
MAX_TEXT_CHARS = 20_000
MEMORY_LIMIT = 1024 * 1024 * 1024
TIMEOUT = 30.0
JPEG_QUALITY = 85


class PdfUnreadable(LinksnapError):
    """pdfium could not open or render the file (or ran out of time or memory)."""


@dataclass(frozen=True)
class PdfPreview:
    image: bytes  # JPEG of the first page
    width: int
    height: int
    text: str
    title: str | None
    pages: int


async def render(data: bytes, seconds: float = TIMEOUT) -> PdfPreview:
    """Preview of a PDF; PdfUnreadable if the child could not make one."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.browser.pdfrender",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), seconds)
    except TimeoutError:
        raise PdfUnreadable("timed out") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise PdfUnreadable(f"exit {proc.returncode}")
    try:
        doc = json.loads(out)
        return PdfPreview(
            image=base64.b64decode(doc["image"]),
            width=int(doc["width"]),
            height=int(doc["height"]),
            text=str(doc["text"])[:MAX_TEXT_CHARS],
            title=str(doc["title"]) if doc.get("title") else None,
            pages=int(doc["pages"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PdfUnreadable(f"bad answer: {exc}") from None


def _read(data: bytes) -> dict[str, object]:
    import pypdfium2 as pdfium  # imported here: only the child loads pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        first = pdf[0]
        width, height = first.get_size()
        scale = min(RENDER_WIDTH / max(width, 1), MAX_RENDER_HEIGHT / max(height, 1))
        bitmap = first.render(scale=scale, fill_color=(255, 255, 255, 255))
        image = bitmap.to_pil().convert("RGB")
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=JPEG_QUALITY)
        texts: list[str] = []
        size = 0
        for index in range(min(len(pdf), MAX_TEXT_PAGES)):
            textpage = pdf[index].get_textpage()
            piece = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
            texts.append(piece)
            size += len(piece)
            if size >= MAX_TEXT_CHARS:
                break
        title = pdf.get_metadata_dict().get("Title") or None
        return {
            "image": base64.b64encode(buf.getvalue()).decode("ascii"),
            "width": image.width,
            "height": image.height,
            "text": "\n".join(texts)[:MAX_TEXT_CHARS],
            "title": title,
            "pages": len(pdf),
        }
    finally:
        pdf.close()


def main() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    data = sys.stdin.buffer.read()
    sys.stdout.write(json.dumps(_read(data)))


if __name__ == "__main__":
    main()
