"""The derived listing index: one SQLite file answering /find, /tags and link-rot order.

MongoDB is the record of truth; this file only holds what listing queries need, derived
from it (see storage/search.py for how it is kept current). SQLite answers every query
from real indexes, which FerretDB v1 cannot (it filters and sorts in Go after reading
every document of a collection).

Calls are blocking; storage/search.py runs them in a worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions

SCHEMA_VERSION = "1"
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)

# Tokens are split on spaces and control characters only: a term from storage/terms.py
# (letters, digits, CJK runs that may hold punctuation like "・") is always one token, and
# the owner token's "$" can never come out of a page's text.
_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(body, content='links',"
    " content_rowid='rid', detail=none,"
    " tokenize=\"unicode61 remove_diacritics 0 categories 'L* N* Co M* P* S*'\")"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links(
  rid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  owner INTEGER NOT NULL,
  created INTEGER NOT NULL,
  status TEXT NOT NULL,
  checked INTEGER,
  body TEXT NOT NULL,
  doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS links_owner ON links(owner, created DESC, id DESC);
CREATE INDEX IF NOT EXISTS links_check ON links(status, checked);
CREATE TABLE IF NOT EXISTS tags(
  owner INTEGER NOT NULL, tag TEXT NOT NULL, created INTEGER NOT NULL, id TEXT NOT NULL,
  rid INTEGER NOT NULL,
  PRIMARY KEY(owner, tag, created DESC, id DESC)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_rid ON tags(rid, tag);
CREATE TABLE IF NOT EXISTS tag_counts(
  owner INTEGER NOT NULL, tag TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(owner, tag)
) WITHOUT ROWID;
{_FTS};
CREATE TRIGGER IF NOT EXISTS links_ai AFTER INSERT ON links BEGIN
  INSERT INTO words(rowid, body) VALUES (new.rid, new.body);
END;
CREATE TRIGGER IF NOT EXISTS links_ad AFTER DELETE ON links BEGIN
  INSERT INTO words(words, rowid, body) VALUES ('delete', old.rid, old.body);
  DELETE FROM tags WHERE rid = old.rid;
END;
CREATE TRIGGER IF NOT EXISTS tags_ai AFTER INSERT ON tags BEGIN
  INSERT INTO tag_counts(owner, tag, n) VALUES (new.owner, new.tag, 1)
    ON CONFLICT(owner, tag) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS tags_ad AFTER DELETE ON tags BEGIN
  UPDATE tag_counts SET n = n - 1 WHERE owner = old.owner AND tag = old.tag;
  DELETE FROM tag_counts WHERE owner = old.owner AND tag = old.tag AND n <= 0;
END;
"""


def owner_token(owner_id: int) -> str:
    return f"$u{owner_id}" if owner_id >= 0 else f"$n{-owner_id}"


def _micros(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


@dataclass(frozen=True)
class Entry:
    """What the index keeps of one link."""

    id: str
    owner_id: int
    created_at: datetime
    status: str
    checked_at: datetime | None
    tags: Sequence[str]
    terms: Sequence[str]
    doc: dict[str, Any]  # the listing fields, returned as they are by find()


class Catalog:
    """One SQLite connection; every method is one short transaction."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, timeout=10, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    # -- state -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def position(self, epoch: str) -> int | None:
        """The journal position applied, or None when this file belongs to another epoch."""
        if self.get_meta("epoch") != epoch or self.get_meta("schema") != SCHEMA_VERSION:
            return None
        return int(self.get_meta("position") or 0)

    def begin(self) -> None:
        """Take the write lock: a sync reads the journal and MongoDB under it, so two
        processes sharing this file never apply an older state over a newer one."""
        self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def commit_applied(
        self, epoch: str, position: int, upserts: Iterable[Entry], deletes: Iterable[str]
    ) -> None:
        """Apply link states and record the journal position, in the open transaction."""
        try:
            for link_id in deletes:
                self.conn.execute("DELETE FROM links WHERE id = ?", (link_id,))
            for entry in upserts:
                self._put(entry)
            self._set_meta("epoch", epoch)
            self._set_meta("schema", SCHEMA_VERSION)
            self._set_meta("position", str(position))
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def clear(self) -> None:
        """Empty every table (inside the open transaction), before a rebuild."""
        for table in ("links", "tags", "tag_counts", "meta"):
            self.conn.execute(f"DELETE FROM {table}")
        self.conn.execute("INSERT INTO words(words) VALUES ('delete-all')")

    def stage_terms(self, rows: Sequence[tuple[str, str]]) -> None:
        """Hold (link id, space-joined terms) while a rebuild reads the links."""
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged(id TEXT PRIMARY KEY, terms TEXT NOT NULL)"
        )
        self.conn.executemany("INSERT OR REPLACE INTO staged(id, terms) VALUES (?, ?)", rows)

    def put_staged(self, entries: Sequence[Entry]) -> None:
        """Insert entries whose terms were staged (their own `terms` are ignored)."""
        for entry in entries:
            row = self.conn.execute("SELECT terms FROM staged WHERE id = ?", (entry.id,))
            found = row.fetchone()
            terms = str(found[0]).split() if found else list(entry.terms)
            self._put(Entry(**{**entry.__dict__, "terms": terms}))

    def drop_staged(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS temp.staged")

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _put(self, e: Entry) -> None:
        # Delete and insert rather than update: the FTS and tag-count triggers then see
        # exactly the old and the new row.
        self.conn.execute("DELETE FROM links WHERE id = ?", (e.id,))
        body = " ".join([owner_token(e.owner_id), *e.terms])
        created = _micros(e.created_at)
        cur = self.conn.execute(
            "INSERT INTO links(id, owner, created, status, checked, body, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                e.id,
                e.owner_id,
                created,
                e.status,
                _micros(e.checked_at),
                body,
                bson.encode(e.doc, codec_options=_CODEC),
            ),
        )
        for tag in dict.fromkeys(e.tags):
            self.conn.execute(
                "INSERT INTO tags(owner, tag, created, id, rid) VALUES (?, ?, ?, ?, ?)",
                (e.owner_id, tag, created, e.id, cur.lastrowid),
            )

    # -- queries ---------------------------------------------------------------------

    def tag_counts(self, owner_id: int, limit: int) -> list[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT tag, n FROM tag_counts WHERE owner = ? ORDER BY n DESC, tag LIMIT ?",
            (owner_id, limit),
        )
        return [(str(tag), int(n)) for tag, n in rows]

    def find(
        self, owner_id: int, tags: Sequence[str], terms: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, listing docs) of the owner's links with all tags and terms, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if tags:
            # Walk the rarest tag's rows, already in newest-first order in its index.
            counts = dict(self._counts(owner_id, tags))
            if any(counts.get(t, 0) == 0 for t in tags):
                return 0, []
            first, *rest = sorted(tags, key=lambda t: counts[t])
            source = "tags t JOIN links l ON l.rid = t.rid"
            where += ["t.owner = ?", "t.tag = ?"]
            args += [owner_id, first]
            order = "t.created DESC, t.id DESC"
        else:
            rest = []
            source = "links l"
            where.append("l.owner = ?")
            args.append(owner_id)
            order = "l.created DESC, l.id DESC"
        for tag in rest:
            where.append("EXISTS (SELECT 1 FROM tags x WHERE x.rid = l.rid AND x.tag = ?)")
            args.append(tag)
        if terms:
            match = " AND ".join(_quote(t) for t in [owner_token(owner_id), *terms])
            where.append("l.rid IN (SELECT rowid FROM words WHERE words MATCH ?)")
            args.append(match)
        condition = " AND ".join(where)
        total = self.conn.execute(
            f"SELECT count(*) FROM {source} WHERE {condition}",
            args,
        ).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT l.doc FROM {source} WHERE {condition} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return int(total), [bson.decode(doc, codec_options=_CODEC) for (doc,) in rows]

    def _counts(self, owner_id: int, tags: Sequence[str]) -> list[tuple[str, int]]:
        marks = ",".join("?" * len(tags))
        rows = self.conn.execute(
            f"SELECT tag, n FROM tag_counts WHERE owner = ? AND tag IN ({marks})",
            [owner_id, *tags],
        )
        return [(str(tag), int(n)) for tag, n in rows]

    def due_for_check(
        self, statuses: Sequence[str], checked_before: datetime, limit: int
    ) -> list[str]:
        """Ids of links in `statuses` never checked or checked before the time, oldest first."""
        marks = ",".join("?" * len(statuses))
        rows = self.conn.execute(
            f"SELECT id FROM links WHERE status IN ({marks})"
            " AND (checked IS NULL OR checked < ?) ORDER BY checked IS NOT NULL, checked LIMIT ?",
            [*statuses, _micros(checked_before), limit],
        )
        return [str(link_id) for (link_id,) in rows]

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM links").fetchone()[0])
