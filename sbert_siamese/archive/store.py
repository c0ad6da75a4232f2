"""The archive's SQLite database: the source of truth for every question, its embedding and its state.

One row per question, in insertion order (``seq``, the row the vector index knows it by)::

    questions(seq INTEGER PRIMARY KEY, id INTEGER, text TEXT, metadata TEXT (JSON) | NULL,
              deleted INTEGER 0/1, vector BLOB (float32) | NULL once compacted)
    ingests(source TEXT PRIMARY KEY, id_offset INTEGER, last_line INTEGER, rows INTEGER, done INTEGER,
            reserved INTEGER)

A live id names exactly one row (a partial unique index); a removed question stays as a tombstone, so its
id is never handed out again by the "past the largest id" rule. The database runs in WAL mode with
``synchronous=FULL``: a committed transaction is on disk before ``commit`` returns, so an acknowledged
add survives ``kill -9`` and a power cut. ``ingests`` records how far each input file has been added, in
the same transaction as its rows, so an interrupted ``archive add`` resumes without adding a row twice. A
file added without an id column reserves the ids ``id_offset + line`` of all its lines when it starts
(``reserved``: the largest), so ids counted on from the largest one never take a line's id while it waits
for a resume.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArchiveError

DATABASE = "questions.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    seq INTEGER PRIMARY KEY,
    id INTEGER NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    vector BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS questions_live_id ON questions(id) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS questions_id ON questions(id);
CREATE TABLE IF NOT EXISTS ingests (
    source TEXT PRIMARY KEY,
    id_offset INTEGER NOT NULL,
    last_line INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT -1
);
"""


@dataclass(frozen=True)
class Question:
    """One archived question. ``seq`` is its row in insertion order (internal, used by the index)."""

    id: int
    text: str
    metadata: dict | None
    seq: int

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "metadata": self.metadata}


@dataclass(frozen=True)
class NewRow:
    id: int
    text: str
    metadata: dict | None


def _metadata(raw: str | None) -> dict | None:
    return None if raw is None else json.loads(raw)


class Store:
    """The SQLite file of an archive. Not thread-safe by itself: ``Archive`` serialises access."""

    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ArchiveError(f"{self.path}: the archive's database is missing")
        try:
            self.conn = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            if create:
                self.conn.executescript(SCHEMA)
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"{self.path}: not a readable SQLite database ({exc})") from None
        if version != SCHEMA_VERSION:
            raise ArchiveError(f"{self.path}: database schema version {version}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (the write lock up front) ... ``COMMIT``, or ``ROLLBACK`` on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read inside sees the database as of its first read (WAL), or joins
        the write transaction already open."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection (another process) commits: the cue to catch up."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------------------------------ reads
    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM questions WHERE deleted = 0").fetchone()[0])

    def counts(self) -> dict:
        live, dead, stored = self.conn.execute(
            "SELECT sum(deleted = 0), sum(deleted = 1), sum(vector IS NOT NULL) FROM questions"
        ).fetchone()
        return {"questions": live or 0, "removed": dead or 0, "vectors": stored or 0}

    def max_id(self) -> int:
        """The largest id ever given (removed questions included) or reserved by a file being added; -1
        for an empty archive."""
        value = self.conn.execute(
            "SELECT max(m) FROM (SELECT max(id) AS m FROM questions "
            "UNION ALL SELECT max(reserved) FROM ingests)"
        ).fetchone()[0]
        return -1 if value is None else int(value)

    def max_seq(self) -> int:
        value = self.conn.execute("SELECT max(seq) FROM questions").fetchone()[0]
        return 0 if value is None else int(value)

    def get(self, question_id: int) -> Question | None:
        row = self.conn.execute(
            "SELECT id, text, metadata, seq FROM questions WHERE id = ? AND deleted = 0", (question_id,)
        ).fetchone()
        return None if row is None else Question(row[0], row[1], _metadata(row[2]), row[3])

    def live_texts(self, ids: Sequence[int]) -> dict[int, str]:
        """id -> text of the live questions among ``ids``."""
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id, text FROM questions WHERE deleted = 0 AND id IN ({marks})"
            found.update(self.conn.execute(query, chunk).fetchall())
        return found

    def by_seq(self, seqs: Sequence[int], vectors: bool = False) -> dict[int, tuple]:
        """seq -> (Question, vector or None) for the given rows (removed ones included)."""
        out: dict[int, tuple] = {}
        unique = sorted({int(s) for s in seqs})
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            columns = "seq, id, text, metadata" + (", vector" if vectors else "")
            for row in self.conn.execute(f"SELECT {columns} FROM questions WHERE seq IN ({marks})", chunk):
                vector = np.frombuffer(row[4], dtype=np.float32) if vectors and row[4] is not None else None
                out[row[0]] = (Question(row[1], row[2], _metadata(row[3]), row[0]), vector)
        return out

    def vectors(self, after_seq: int = 0, live_only: bool = True, batch: int = 20_000):
        """(seqs (N,) int64, vectors (N, D) float32) of the rows after ``after_seq``, in seq order."""
        where = "seq > ? AND vector IS NOT NULL" + (" AND deleted = 0" if live_only else "")
        cursor = self.conn.execute(
            f"SELECT seq, vector FROM questions WHERE {where} ORDER BY seq", (after_seq,)
        )
        seqs, blobs = [], []
        while rows := cursor.fetchmany(batch):
            seqs.extend(r[0] for r in rows)
            blobs.extend(r[1] for r in rows)
        if not seqs:
            return np.zeros(0, np.int64), None
        matrix = np.frombuffer(bytearray(b"".join(blobs)), dtype=np.float32).reshape(len(seqs), -1)
        return np.asarray(seqs, dtype=np.int64), matrix

    def removed_seqs(self, up_to_seq: int | None = None) -> np.ndarray:
        query, args = "SELECT seq FROM questions WHERE deleted = 1", ()
        if up_to_seq is not None:
            query, args = query + " AND seq <= ?", (up_to_seq,)
        return np.asarray([r[0] for r in self.conn.execute(query, args)], dtype=np.int64)

    # ------------------------------------------------------------------------------------ writes
    def insert(self, conn: sqlite3.Connection, rows: Sequence[NewRow], vectors: np.ndarray) -> list[int]:
        """Insert rows (inside a transaction); returns their seqs."""
        first = self.max_seq() + 1
        seqs = list(range(first, first + len(rows)))
        conn.executemany(
            "INSERT INTO questions (seq, id, text, metadata, vector) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    seq,
                    row.id,
                    row.text,
                    None if row.metadata is None else json.dumps(row.metadata),
                    np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
                )
                for seq, row, vector in zip(seqs, rows, vectors, strict=True)
            ],
        )
        return seqs

    def mark_removed(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[int]:
        """Tombstone the live rows of ``ids``; returns their seqs."""
        seqs = []
        for question_id in ids:
            row = conn.execute(
                "SELECT seq FROM questions WHERE id = ? AND deleted = 0", (int(question_id),)
            ).fetchone()
            if row is not None:
                conn.execute("UPDATE questions SET deleted = 1 WHERE seq = ?", (row[0],))
                seqs.append(int(row[0]))
        return seqs

    def drop_removed_vectors(self) -> int:
        """Free the embeddings of removed questions (their rows stay as tombstones); returns how many."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE questions SET vector = NULL WHERE deleted = 1 AND vector IS NOT NULL"
            )
            return cursor.rowcount

    def vacuum(self) -> None:
        self.conn.execute("VACUUM")

    # ------------------------------------------------------------------------------------ ingests
    def start_ingest(self, source: str, reserve: int | None) -> tuple[int, int, int, bool]:
        """(id offset, last line committed, rows committed, done) of ``source``; a new source is recorded
        at once with the largest id as its offset, reserving ``reserve`` ids past it (None: none)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id_offset, last_line, rows, done FROM ingests WHERE source = ?", (source,)
            ).fetchone()
            if row is not None:
                return int(row[0]), int(row[1]), int(row[2]), bool(row[3])
            offset = self.max_id()
            conn.execute(
                "INSERT INTO ingests (source, id_offset, last_line, rows, done, reserved) "
                "VALUES (?, ?, 0, 0, 0, ?)",
                (source, offset, -1 if reserve is None else offset + reserve),
            )
            return offset, 0, 0, False

    def save_ingest(
        self, conn: sqlite3.Connection, source: str, id_offset: int, last_line: int, rows: int, done: bool
    ) -> None:
        conn.execute(
            "UPDATE ingests SET last_line = ?, rows = ?, done = ? WHERE source = ? AND id_offset = ?",
            (last_line, rows, int(done), source, id_offset),
        )
