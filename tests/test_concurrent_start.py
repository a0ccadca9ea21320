"""Several processes (a front and its workers) starting at once on a new database."""

from __future__ import annotations

import asyncio
import uuid

from storage.repository import LinkStore
from tests.conftest import INDEX_DIR


async def _start(uri: str) -> None:
    store = LinkStore.connect(uri, index_dir=INDEX_DIR)
    try:
        await store.ping()
        await store.ensure_indexes()  # indexes and the one-time migration
    finally:
        await store.close()


async def test_four_processes_starting_together_all_start(ferretdb: str) -> None:
    """FerretDB v1 upserts as find-then-insert: the second starter must not die of the
    first one's insert (a worker that exits at start-up is a worker the user lacks)."""
    for _ in range(5):
        uri = f"{ferretdb}/s{uuid.uuid4().hex[:12]}"
        results = await asyncio.gather(*(_start(uri) for _ in range(4)), return_exceptions=True)
        assert [r for r in results if r is not None] == []
