"""The derived listing index: one SQLite file answering /find, /tags and link-rot order.

MongoDB is the record of truth; this file only holds what listing queries need, derived
from it (storage/index/search.py keeps it current). SQLite answers every query from real
indexes, which FerretDB v1 cannot (it filters and sorts in Go after reading every
document of a collection).

Each row keeps a fingerprint of the link document it came from (`fp`, of the document's
BSON as MongoDB returns it), so a pass over the collection finds what changed behind the
journal's back (storage/index/heal.py) without reading anything else. Owners fall into
BUCKETS buckets; a file can hold only some buckets (`ready`) while the rest are restored
(storage/index/shelves.py), and `changed` says at which journal position a bucket last changed.

Calls are blocking; storage/index/search.py runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions

SCHEMA_VERSION = "7"
BUCKETS = 64
# Seconds a connection waits for another one's write transaction before giving up
# (processes sharing the file: storage/index/search.py).
BUSY_TIMEOUT = 10.0
WAL_NET_PAGES = 20_000  # ~80 MB of log before a commit copies it in itself
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)

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
  bucket INTEGER NOT NULL,
  created INTEGER NOT NULL,
  status TEXT NOT NULL,
  checked INTEGER,
  fp INTEGER NOT NULL,
  body TEXT NOT NULL,
  doc BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS links_owner ON links(owner, created DESC, id DESC);
CREATE INDEX IF NOT EXISTS links_due ON links(checked, created DESC);
CREATE INDEX IF NOT EXISTS links_bucket ON links(bucket);
CREATE TABLE IF NOT EXISTS unworded(rid INTEGER PRIMARY KEY, bucket INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS unworded_bucket ON unworded(bucket);
CREATE TABLE IF NOT EXISTS tags(
  owner INTEGER NOT NULL, tag TEXT NOT NULL, created INTEGER NOT NULL, id TEXT NOT NULL,
  rid INTEGER NOT NULL,
  PRIMARY KEY(owner, tag, created DESC, id DESC)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_rid ON tags(rid, tag);
CREATE TABLE IF NOT EXISTS tag_counts(
  owner INTEGER NOT NULL, tag TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(owner, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unsettled(id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
  gone INTEGER NOT NULL, since REAL NOT NULL, bucket INTEGER);
CREATE TABLE IF NOT EXISTS ready(bucket INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS changed(bucket INTEGER PRIMARY KEY, position INTEGER NOT NULL);
{_FTS};
CREATE TRIGGER IF NOT EXISTS links_ai AFTER INSERT ON links
  WHEN NOT EXISTS (SELECT 1 FROM meta WHERE key = 'bulk') BEGIN
  INSERT INTO words(rowid, body) VALUES (new.rid, new.body);
END;
CREATE TRIGGER IF NOT EXISTS links_ad AFTER DELETE ON links BEGIN
  DELETE FROM tags WHERE rid = old.rid;
END;
CREATE TRIGGER IF NOT EXISTS links_ad_words AFTER DELETE ON links BEGIN
  INSERT INTO words(words, rowid, body) SELECT 'delete', old.rid, old.body
    WHERE NOT EXISTS (SELECT 1 FROM unworded WHERE rid = old.rid);
  DELETE FROM unworded WHERE rid = old.rid;
END;
CREATE TRIGGER IF NOT EXISTS tags_ai AFTER INSERT ON tags
  WHEN NOT EXISTS (SELECT 1 FROM meta WHERE key = 'bulk') BEGIN
  INSERT INTO tag_counts(owner, tag, n) VALUES (new.owner, new.tag, 1)
    ON CONFLICT(owner, tag) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS tags_ad AFTER DELETE ON tags BEGIN
  UPDATE tag_counts SET n = n - 1 WHERE owner = old.owner AND tag = old.tag;
  DELETE FROM tag_counts WHERE owner = old.owner AND tag = old.tag AND n <= 0;
END;
"""

_TABLES = ("links", "tags", "tag_counts", "meta", "unsettled", "ready", "changed", "unworded")


# `alive: false` as BSON writes it (type 0x08, the name, a NUL, the byte 0): present in a
# listing document exactly when the link is marked gone (checked after decoding).
_ALIVE_FALSE = b"\x08alive\x00\x00"


def owner_token(owner_id: int) -> str:
    return f"$u{owner_id}" if owner_id >= 0 else f"$n{-owner_id}"


def bucket_of(owner_id: int) -> int:
    return owner_id % BUCKETS


def fingerprint(raw: bytes) -> int:
    """A link document's BSON (as MongoDB returns it) in 8 bytes, as a signed int."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)


def micros(when: datetime | None) -> int | None:
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
    fp: int  # fingerprint of the document as MongoDB returned it

    @property
    def bucket(self) -> int:
        return bucket_of(self.owner_id)


# A row as shelves carry it: id, owner, created, status, checked, fp, terms, tags, doc.
Row = tuple[str, int, int, str, int | None, int, str, list[str], bytes]


def _row(e: Entry) -> Row:
    return (
        e.id,
        e.owner_id,
        micros(e.created_at) or 0,
        e.status,
        micros(e.checked_at),
        e.fp,
        " ".join(e.terms),
        list(dict.fromkeys(e.tags)),
        bson.encode(e.doc, codec_options=CODEC),
    )


def _statements(script: str) -> Iterator[str]:
    """A script's statements one by one (a trigger's body holds `;` of its own), to run
    inside one transaction, which `executescript` would commit first."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""
    if statement.strip():
        yield statement.strip()


class Catalog:
    """One SQLite connection; every method is one short transaction or runs in one."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # Commits do not copy the log into the file (a restore's commit would wait for
        # that): `checkpoint` does, beside them; this is only a net when nothing calls it.
        self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_NET_PAGES}")
        self._side: sqlite3.Connection | None = None
        if self._schema_found() != SCHEMA_VERSION:
            self._create()

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
        self.conn.close()

    def checkpoint(self) -> int:
        """Copy the write-ahead log into the file through a connection of its own, which
        neither waits for nor blocks this one's readers and writer (storage/index/upkeep.py
        calls it from a worker thread); returns the pages left in the log."""
        if self.path == ":memory:":
            return 0
        if self._side is None:
            self._side = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        _, logged, copied = self._side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(0, int(logged) - int(copied))

    def _schema_found(self) -> str | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            return None  # a new file
        return str(row[0]) if row else "?"

    def _create(self) -> None:
        """Make the tables, dropping an older layout's first (rebuilt from MongoDB). The
        layout is looked at again under the write lock: processes starting together on
        one old file must not drop what the first of them has made and filled since."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            found = self._schema_found()
            if found != SCHEMA_VERSION:
                if found is not None:
                    self._drop_all()
                for statement in _statements(_SCHEMA):
                    self.conn.execute(statement)
                self._set_meta("schema", SCHEMA_VERSION)
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def _drop_all(self) -> None:
        for name, kind in self.conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'trigger')"
            " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'words_%'"
        ).fetchall():
            self.conn.execute(
                f'DROP {"TRIGGER" if kind == "trigger" else "TABLE"} IF EXISTS "{name}"'
            )

    # -- state -----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def state(self, epoch: str) -> tuple[int, str] | None:
        """(journal position applied, nonce of that entry), or None when this file is
        empty or belongs to another journal."""
        if self.get_meta("epoch") != epoch or self.get_meta("schema") != SCHEMA_VERSION:
            return None
        return int(self.get_meta("position") or 0), self.get_meta("nonce") or ""

    def ready(self) -> set[int] | None:
        """Buckets this file holds; None when it holds them all."""
        if self.get_meta("complete") == "1":
            return None
        return {int(b) for (b,) in self.conn.execute("SELECT bucket FROM ready")}

    def begin(self) -> None:
        """Take the write lock: a sync reads the journal and MongoDB under it, so two
        processes sharing this file never apply an older state over a newer one."""
        self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def reset(self, epoch: str, position: int, nonce: str) -> None:
        """Empty every table (inside the open transaction): nothing held, all to restore."""
        for table in _TABLES:
            self.conn.execute(f"DELETE FROM {table}")
        self.conn.execute("INSERT INTO words(words) VALUES ('delete-all')")
        self._set_meta("epoch", epoch)
        self._set_meta("schema", SCHEMA_VERSION)
        self._set_meta("generation", secrets.token_hex(8))
        self.set_position(position, nonce)

    def generation(self) -> str:
        """Changes at every reset: work begun before one (a rebuild) knows it was undone."""
        return self.get_meta("generation") or ""

    def set_position(self, position: int, nonce: str) -> None:
        self._set_meta("position", str(position))
        self._set_meta("nonce", nonce)

    def set_ready(self, buckets: Iterable[int], *, complete: bool = False) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO ready(bucket) VALUES (?)", [(b,) for b in buckets]
        )
        if complete or self._count("ready") >= BUCKETS:
            self._set_meta("complete", "1")
            self.conn.execute("DELETE FROM ready")

    def lease_rebuild(self, token: str, now: float, length: float) -> bool:
        """In the open transaction: True when no other process's rebuild holds this file
        (or its lease ran out: that process died), this one's lease then running to
        `now + length`. Two rebuilds of one file at once drop each other's rows."""
        held = self.get_meta("rebuild")
        if held:
            other, _, until = held.partition(" ")
            if other != token and float(until) > now:
                return False
        self._set_meta("rebuild", f"{token} {now + length!r}")
        return True

    def end_rebuild(self, token: str) -> None:
        held = self.get_meta("rebuild")
        if held and held.partition(" ")[0] == token:
            self.conn.execute("DELETE FROM meta WHERE key = 'rebuild'")

    def claim_job(self, job: str, every: float, now: float) -> bool:
        """True when `job` last began `every` seconds ago or more (or never), and it is
        this caller's now: processes sharing the file take turns, not all do it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            last = self.get_meta(f"job:{job}")
            due = last is None or now - float(last) >= every
            if due:
                self._set_meta(f"job:{job}", repr(now))
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        return due

    def apply(
        self,
        upserts: Iterable[Entry],
        deletes: Iterable[str],
        position: int,
        *,
        words: bool = True,
    ) -> None:
        """Store link states (inside the open transaction), marking their buckets changed
        at `position`; their words now, or later (`put_rows`)."""
        touched: set[int] = set()
        for link_id in deletes:
            row = self.conn.execute("SELECT bucket FROM links WHERE id = ?", (link_id,))
            found = row.fetchone()
            if found is not None:
                touched.add(int(found[0]))
                self.conn.execute("DELETE FROM links WHERE id = ?", (link_id,))
        rows = []
        for entry in upserts:
            rows.append(_row(entry))
            touched.add(entry.bucket)
        self.put_rows(rows, words=words)
        self.conn.executemany(
            "INSERT INTO changed(bucket, position) VALUES (?, ?)"
            " ON CONFLICT(bucket) DO UPDATE SET position = max(position, excluded.position)",
            [(b, position) for b in touched],
        )

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def put_rows(self, rows: Iterable[Row], *, words: bool = True) -> None:
        """Store rows (replacing those of the same links), in the open transaction: a
        statement for all of them per table, several times faster than row by row (a new
        front restoring its asker's bucket waits for this). Delete and insert rather than
        update: the FTS and tag-count triggers then see exactly the old and the new row.
        Later rows get higher row numbers. Without `words` the rows' words are indexed
        later (`word`): a restore answers tag questions first, and a word question waits
        for its bucket's words."""
        batch = list({row[0]: row for row in rows}.values())  # one row a link: the last
        if not batch:
            return
        self.conn.executemany("DELETE FROM links WHERE id = ?", [(row[0],) for row in batch])
        top = int(self.conn.execute("SELECT coalesce(max(rid), 0) FROM links").fetchone()[0])
        links: list[tuple[Any, ...]] = []
        tags: list[tuple[int, str, int, str, int]] = []
        for rid, (link_id, owner, created, status, checked, fp, terms, tag_list, doc) in enumerate(
            batch, top + 1
        ):
            body = f"{owner_token(owner)} {terms}" if terms else owner_token(owner)
            links.append(
                (rid, link_id, owner, bucket_of(owner), created, status, checked, fp, body, doc)
            )
            tags.extend((owner, tag, created, link_id, rid) for tag in dict.fromkeys(tag_list))
        counts = Counter((owner, tag) for owner, tag, *_ in tags)
        self._set_meta("bulk", "1")  # the insert triggers stand aside (never committed)
        self.conn.executemany(
            "INSERT INTO links(rid, id, owner, bucket, created, status, checked, fp, body, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            links,
        )
        self.conn.executemany(
            "INSERT INTO tags(owner, tag, created, id, rid) VALUES (?, ?, ?, ?, ?)", tags
        )
        self.conn.execute("DELETE FROM meta WHERE key = 'bulk'")
        self.conn.executemany(
            "INSERT INTO tag_counts(owner, tag, n) VALUES (?, ?, ?)"
            " ON CONFLICT(owner, tag) DO UPDATE SET n = n + excluded.n",
            [(owner, tag, n) for (owner, tag), n in counts.items()],
        )
        if words:
            self.conn.executemany(
                "INSERT INTO words(rowid, body) VALUES (?, ?)", [(r[0], r[8]) for r in links]
            )
        else:
            self.conn.executemany(
                "INSERT INTO unworded(rid, bucket) VALUES (?, ?)", [(r[0], r[3]) for r in links]
            )

    def unworded(self, bucket: int | None = None) -> int | None:
        """A bucket (this one, or any) with rows whose words are not indexed yet."""
        if bucket is None:
            row = self.conn.execute("SELECT bucket FROM unworded LIMIT 1")
        else:
            row = self.conn.execute(
                "SELECT bucket FROM unworded WHERE bucket = ? LIMIT 1", (bucket,)
            )
        found = row.fetchone()
        return None if found is None else int(found[0])

    def word(self, bucket: int) -> None:
        """Index the words of the bucket's rows stored without them (in the open
        transaction)."""
        self.conn.execute(
            "INSERT INTO words(rowid, body)"
            " SELECT l.rid, l.body FROM unworded u JOIN links l ON l.rid = u.rid"
            " WHERE u.bucket = ?",
            (bucket,),
        )
        self.conn.execute("DELETE FROM unworded WHERE bucket = ?", (bucket,))

    def drop_bucket(self, bucket: int) -> None:
        """Forget the bucket's rows and waits; other buckets' waits stay, those for links
        not written yet included (a wait whose bucket is unknown is kept too)."""
        self.conn.execute(
            "DELETE FROM unsettled WHERE bucket = ? OR id IN (SELECT id FROM links WHERE bucket = ?)",
            (bucket, bucket),
        )
        self.conn.execute("DELETE FROM links WHERE bucket = ?", (bucket,))

    # -- writes a sync could not confirm (storage/index/search.py) -------------------------

    def unsettled(self) -> list[tuple[str, int, bool, float, int | None]]:
        rows = self.conn.execute(
            "SELECT id, seq, gone, since, bucket FROM unsettled ORDER BY since"
        )
        return [
            (str(i), int(s), bool(g), float(t), None if b is None else int(b))
            for i, s, g, t, b in rows
        ]

    def hold(self, waits: dict[str, tuple[int, bool, int | None]], now: float) -> None:
        """Links whose journal entry `seq` names a write not seen yet (`gone`: a delete),
        inside the open transaction, with their bucket where known (a link not written
        yet has no row to tell it); a wait for the same link keeps its start."""
        self.conn.executemany(
            "INSERT INTO unsettled(id, seq, gone, since, bucket) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET"
            " gone = CASE WHEN excluded.seq >= seq THEN excluded.gone ELSE gone END,"
            " seq = max(seq, excluded.seq), bucket = coalesce(excluded.bucket, bucket)",
            [(i, seq, int(gone), now, bucket) for i, (seq, gone, bucket) in waits.items()],
        )

    def release(self, link_ids: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM unsettled WHERE id = ?", [(i,) for i in link_ids])

    # -- what shelves and the heal read ----------------------------------------------

    def fingerprints(self) -> tuple[dict[str, int], int]:
        """Every row's fingerprint by link id, and the highest row number now (rows
        written later have higher numbers)."""
        fps = {str(i): int(fp) for i, fp in self.conn.execute("SELECT id, fp FROM links")}
        top = self.conn.execute("SELECT coalesce(max(rid), 0) FROM links").fetchone()[0]
        return fps, int(top)

    def rows_upto(self, link_ids: Iterable[str], top: int) -> list[str]:
        """Of these ids, those whose row was written at or before row number `top`."""
        out = []
        for link_id in link_ids:
            row = self.conn.execute("SELECT rid FROM links WHERE id = ?", (link_id,)).fetchone()
            if row is not None and int(row[0]) <= top:
                out.append(link_id)
        return out

    def bucket_shelf(
        self, bucket: int, epoch: str
    ) -> tuple[list[Row], list[tuple[str, int]], tuple[int, str] | None]:
        """What a shelf of `bucket` carries: its rows, the writes they still wait for,
        and the position (and nonce) they stand at, all read from one snapshot."""
        with self._one_read():
            return self.bucket_rows(bucket), self.bucket_waits(bucket), self.state(epoch)

    @contextlib.contextmanager
    def _one_read(self) -> Iterator[None]:
        """The statements inside read one snapshot of the file (a read transaction).
        Outside one, each statement reads the file as it is then, and another process
        sharing it may commit between two of them: a row it rewrote meanwhile (a new row
        number) would be read without its tags."""
        if self.conn.in_transaction:  # already one snapshot (or this connection's writes)
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def bucket_rows(self, bucket: int) -> list[Row]:
        rows = self.conn.execute(
            "SELECT rid, id, owner, created, status, checked, fp, body, doc FROM links"
            " WHERE bucket = ?",
            (bucket,),
        ).fetchall()
        out: list[Row] = []
        for rid, link_id, owner, created, status, checked, fp, body, doc in rows:
            tags = [
                str(t) for (t,) in self.conn.execute("SELECT tag FROM tags WHERE rid = ?", (rid,))
            ]
            terms = str(body).partition(" ")[2]
            out.append(
                (
                    str(link_id),
                    int(owner),
                    int(created),
                    str(status),
                    checked,
                    int(fp),
                    terms,
                    tags,
                    bytes(doc),
                )
            )
        return out

    def bucket_waits(self, bucket: int) -> list[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT id, seq FROM unsettled"
            " WHERE bucket = ? OR id IN (SELECT id FROM links WHERE bucket = ?)",
            (bucket, bucket),
        )
        return [(str(i), int(s)) for i, s in rows]

    def changed(self) -> dict[int, int]:
        return {
            int(b): int(p) for b, p in self.conn.execute("SELECT bucket, position FROM changed")
        }

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
        return int(total), [bson.decode(doc, codec_options=CODEC) for (doc,) in rows]

    def _counts(self, owner_id: int, tags: Sequence[str]) -> list[tuple[str, int]]:
        marks = ",".join("?" * len(tags))
        rows = self.conn.execute(
            f"SELECT tag, n FROM tag_counts WHERE owner = ? AND tag IN ({marks})",
            [owner_id, *tags],
        )
        return [(str(tag), int(n)) for tag, n in rows]

    def owner_page(
        self, owner_id: int, after: tuple[int, str] | None, limit: int
    ) -> list[dict[str, Any]]:
        sql = "SELECT doc FROM links WHERE owner = ?"
        args: list[Any] = [owner_id]
        if after is not None:
            sql += " AND (created < ? OR (created = ? AND id < ?))"
            args += [after[0], after[0], after[1]]
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        rows = self.conn.execute(sql, [*args, limit])
        return [bson.decode(doc, codec_options=CODEC) for (doc,) in rows]

    def owner_counts(self, owner_id: int) -> tuple[int, int]:
        links = self.conn.execute("SELECT count(*) FROM links WHERE owner = ?", (owner_id,))
        tags = self.conn.execute("SELECT count(*) FROM tag_counts WHERE owner = ?", (owner_id,))
        return int(links.fetchone()[0]), int(tags.fetchone()[0])

    def due_for_check(
        self, statuses: Sequence[str], checked_before: datetime, limit: int
    ) -> list[str]:
        """Ids of links in `statuses` never checked (newest first), then checked before
        the time (oldest check first)."""
        marks = ",".join("?" * len(statuses))
        never = self.conn.execute(
            f"SELECT id FROM links WHERE checked IS NULL AND status IN ({marks})"
            " ORDER BY created DESC, id DESC LIMIT ?",
            [*statuses, limit],
        )
        ids = [str(link_id) for (link_id,) in never]
        if len(ids) < limit:
            stale = self.conn.execute(
                f"SELECT id FROM links WHERE checked < ? AND status IN ({marks})"
                " ORDER BY checked, id LIMIT ?",
                [micros(checked_before), *statuses, limit - len(ids)],
            )
            ids += [str(link_id) for (link_id,) in stale]
        return ids

    def gone(self, owner_id: int, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(total, listing docs) of the owner's links marked gone, newest first. No column
        says so: the owner's rows are walked in their index order and only those whose
        BSON holds `alive: false` are decoded (a byte search, ~1 µs a row)."""
        rows = self.conn.execute(
            "SELECT doc FROM links WHERE owner = ? AND instr(doc, ?) > 0"
            " ORDER BY created DESC, id DESC",
            (owner_id, _ALIVE_FALSE),
        )
        docs = [bson.decode(doc, codec_options=CODEC) for (doc,) in rows]
        gone = [d for d in docs if d.get("alive") is False]
        return len(gone), gone[offset : offset + limit]

    def count(self) -> int:
        return self._count("links")
