"""The store of files made on demand (full page, PDF, archive) on FerretDB v1."""

from __future__ import annotations

import asyncio

from bson import ObjectId
from pymongo import AsyncMongoClient

from storage.artifacts import LinkFile, LinkFiles
from storage.models import StoredFile


async def test_files_made_at_the_same_moment_are_all_kept(mongodb_uri: str) -> None:
    """Two presses of 📄 (or two workers) finishing together: FerretDB v1 upserts as
    find-then-insert, and neither may fail with the other's insert. The last one stands,
    and its bytes read back."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_uri)
    try:
        files = LinkFiles(client.get_default_database())
        for _ in range(8):
            link = ObjectId()
            made = [
                LinkFile(link, "pdf", StoredFile(f"{n}.pdf", "application/pdf", 5))
                for n in range(4)
            ]
            results = await asyncio.gather(
                *(files.put(m, f"pdf-{n}".encode()) for n, m in enumerate(made)),
                return_exceptions=True,
            )
            assert [r for r in results if isinstance(r, BaseException)] == []
            kept = await files.get(link, "pdf", None)
            assert kept is not None and kept.file.file_name in {"0.pdf", "1.pdf", "2.pdf", "3.pdf"}
            assert await files.read(kept) == f"pdf-{kept.file.file_name[0]}".encode()
    finally:
        await client.close()
