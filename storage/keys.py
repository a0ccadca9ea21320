"""Small shared facts of the data model (used by the repository and the migration)."""

from __future__ import annotations

import hashlib

from storage.models import UNFINISHED, Status

# Links in these states have an entry in the `work` collection.
WORK_STATES = frozenset(str(s) for s in (*UNFINISHED, Status.SUMMARY_FAILED))
# Fields kept in `link_texts`, never in the `links` documents.
HEAVY_FIELDS = ("text", "terms")
# Fields of a link document that are bookkeeping, not the link: no listing returns them
# (`rev`: the journal entry of its last write, storage/writes.py).
INTERNAL_FIELDS = ("rev",)


def key_id(owner_id: int, url_key: str) -> str:
    """`_id` of the `link_keys` document saying which link is this owner's URL."""
    return f"{owner_id}:{hashlib.sha256(url_key.encode()).hexdigest()[:40]}"
