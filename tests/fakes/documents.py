"""Files that are not HTML pages, made here so the tests ship no binaries: a PDF, images."""

from __future__ import annotations

import io

from PIL import Image

PDF_COLOUR = (0, 102, 204)  # the filled band across the top of every page
PDF_WORDS = ("Quarterly", "zebra", "report")


def _escape(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def pdf(pages: list[list[str]], title: str = "Zebra report") -> bytes:
    """A valid PDF (Helvetica text, a coloured band per page) with a correct xref table."""
    r, g, b = (c / 255 for c in PDF_COLOUR)
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        text = b"".join(b"(%s) Tj 0 -30 Td " % _escape(line) for line in lines)
        stream = b"%.3f %.3f %.3f rg 0 642 612 150 re f 0 0 0 rg BT /F1 22 Tf 72 600 Td %s ET" % (
            r,
            g,
            b,
            text,
        )
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_ids[i] + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info_id = len(objects) + 1
    objects.append(b"<< /Title (%s) >>" % _escape(title))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, info_id, xref)
    )
    return out.getvalue()


REPORT_PDF = pdf(
    [
        [" ".join(PDF_WORDS), "Snapshots of the third quarter."],
        ["Page two of the report.", "Nothing more to say."],
    ]
)


def swatch(colour: tuple[int, int, int], width: int = 400, height: int = 300) -> bytes:
    """A PNG of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return buf.getvalue()


PHOTO_COLOUR = (250, 120, 10)
PHOTO_PNG = swatch(PHOTO_COLOUR, 640, 480)
