"""SqliteTextIndex: the text index in SQLite FTS5 (``<data_dir>/index.sqlite3``).

Nodes are rows of ``nodes``; an external-content FTS5 table (``porter unicode61``) indexes
their text, kept in step by triggers, so adding or dropping a content touches only its
own rows: FTS5 writes a small segment per transaction and merges segments incrementally
(``automerge``). Nothing is rebuilt or rewritten whole, and nothing is held in memory but
SQLite's bounded page cache.

Ranking is FTS5's ``bm25()`` (k1 1.2, b 0.75) over the text column, negated so higher
is better. The words of a query are ORed, each quoted (nothing a client types is an
operator). A word in more than half the nodes scores nothing under BM25's IDF (FTS5
floors it at 1e-6) but makes every node a candidate to score and sort, so such words are
left out of the match whenever a rarer word remains: the same order, a few milliseconds
instead of a scan; a query of common words only ranks the first 1,000 visible matches.

The owner filter is inside the ranked query, never after it: for a few visible contents
(up to 64) it is part of the FTS5 match (``sha256 : (...)``, a second column), so FTS5
walks only their nodes however large the corpus; for more it is ``sha256 IN (...)`` on
the matches. Vectors (the optional semantic search) are float32 blobs in ``vectors``;
``nearest`` scans the visible ones in batches (memory bounded by the batch, not the
corpus).

Locking: one connection writes (``SqliteStore``'s lock), another reads (its own lock);
WAL lets a search run while a write is in progress, seeing the last committed state.
"""

from __future__ import annotations

import heapq
import json
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from backend.storage.sqlite_base import SqliteStore
from backend.storage.text_index import Match, StoredNode

INDEX_FILE = "index.sqlite3"  # in the data directory
LEGACY_DIR = "index"  # the previous version's persisted StorageContext (and ``index.old``)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    id       INTEGER PRIMARY KEY,
    node_id  TEXT NOT NULL UNIQUE,
    sha256   TEXT NOT NULL,
    page     INTEGER NOT NULL,
    text     TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS nodes_sha ON nodes (sha256);
CREATE VIRTUAL TABLE IF NOT EXISTS nodes_fts USING fts5(
    text, sha256, content='nodes', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS nodes_terms USING fts5vocab(nodes_fts, 'row');
CREATE TABLE IF NOT EXISTS node_count (n INTEGER NOT NULL);
INSERT INTO node_count SELECT count(*) FROM nodes WHERE NOT EXISTS (SELECT 1 FROM node_count);
CREATE TRIGGER IF NOT EXISTS nodes_added AFTER INSERT ON nodes BEGIN
    INSERT INTO nodes_fts (rowid, text, sha256) VALUES (new.id, new.text, new.sha256);
    UPDATE node_count SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS nodes_dropped AFTER DELETE ON nodes BEGIN
    INSERT INTO nodes_fts (nodes_fts, rowid, text, sha256) VALUES ('delete', old.id, old.text, old.sha256);
    UPDATE node_count SET n = n - 1;
END;
CREATE TABLE IF NOT EXISTS vectors (
    id     INTEGER PRIMARY KEY,  -- nodes.id
    sha256 TEXT NOT NULL,
    vector BLOB NOT NULL         -- float32, unit length
);
CREATE INDEX IF NOT EXISTS vectors_sha ON vectors (sha256);
"""
_WORD = re.compile(r"\w+")
_CACHE_KIB = 16 * 1024  # per connection: the page cache is the store's memory, whatever the corpus
_VECTOR_BATCH = 4096
_COMMON = 0.5  # share of nodes above which a word's BM25 IDF is floored to nothing
_WINDOW = 1_000  # nodes ranked when every word of a query is common (see search)
_FEW = 64  # up to this many visible contents, the owner filter is in the FTS5 match itself
_BM25 = "bm25(nodes_fts, 1.0, 0.0)"  # the text column only: a node's sha256 is its filter, not its words
_TERMS_CACHED = 4096
_DRIFT = 0.05  # a cached document frequency is asked again once the corpus changed this much


class SqliteTextIndex(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._reader.row_factory = sqlite3.Row
        for db in (self._db, self._reader):
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        # FTS5's tokenizer, alone: the terms a query's words become (for the IDF check)
        self._reader.execute("CREATE VIRTUAL TABLE temp.query_fts USING fts5(text, tokenize="
                             "'porter unicode61 remove_diacritics 2')")
        self._reader.execute("CREATE VIRTUAL TABLE temp.query_terms USING fts5vocab(temp, query_fts, 'instance')")
        # term -> (nodes holding it, node count then): counting a term's nodes reads its
        # whole posting list (~10 ms for a word in 300,000 nodes), so it is asked rarely
        self._df: OrderedDict[str, tuple[int, int]] = OrderedDict()

    # -- writes ---------------------------------------------------------------------------

    def put(self, sha256: str, nodes: Sequence[StoredNode]) -> None:
        rows = [(n.node_id, sha256, n.page, n.text, json.dumps(n.metadata)) for n in nodes]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._drop(sha256)
                self._db.executemany("INSERT INTO nodes (node_id, sha256, page, text, metadata) "
                                     "VALUES (?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, sha256: str) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                count = self._drop(sha256)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return count

    def _drop(self, sha256: str) -> int:
        self._db.execute("DELETE FROM vectors WHERE sha256 = ?", (sha256,))
        return self._db.execute("DELETE FROM nodes WHERE sha256 = ?", (sha256,)).rowcount

    def put_vectors(self, sha256: str, vectors: Sequence[tuple[str, Sequence[float]]]) -> None:
        import numpy as np  # only with vectors: the upload server's search never needs it otherwise

        rows = []
        for node_id, values in vectors:
            v = np.asarray(values, dtype=np.float32)
            norm = float(np.linalg.norm(v))
            rows.append((node_id, sha256, (v / norm if norm else v).tobytes()))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO vectors (id, sha256, vector) "
                                     "SELECT id, ?2, ?3 FROM nodes WHERE node_id = ?1", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- reads ----------------------------------------------------------------------------

    def _read(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    def has(self, sha256: str) -> bool:
        return bool(self._read("SELECT 1 FROM nodes WHERE sha256 = ? LIMIT 1", sha256))

    def has_vectors(self, sha256: str) -> bool:
        return bool(self._read("SELECT 1 FROM vectors WHERE sha256 = ? LIMIT 1", sha256))

    def nodes(self, sha256: str) -> list[StoredNode]:
        return [_node(r) for r in self._read("SELECT * FROM nodes WHERE sha256 = ? ORDER BY id", sha256)]

    def node_count(self) -> int:
        return int(self._read("SELECT n FROM node_count")[0][0])

    def search(self, query: str, shas: Collection[str], top_k: int) -> list[Match]:
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
        if not words or not shas or top_k <= 0:
            return []
        visible = sorted(shas)
        with self._read_lock:
            words, common = self._choose(words)
            if not words:
                return []
            text = "text : (" + " OR ".join(_quote(w) for w in words) + ")"
            if len(visible) <= _FEW:
                # few contents: the filter is part of the match, so FTS5 walks only their nodes
                match = f"{text} AND sha256 : (" + " OR ".join(_quote(s) for s in visible) + ")"
                rows = self._reader.execute(
                    f"SELECT n.*, -{_BM25} AS score FROM nodes_fts JOIN nodes n ON n.id = nodes_fts.rowid "
                    f"WHERE nodes_fts MATCH ? ORDER BY {_BM25} LIMIT ?", (match, top_k)).fetchall()
            else:
                # all words common: every node matches and every score is ~0 (floored IDF),
                # so rank the first visible matches instead of the whole corpus
                ranked = (f"SELECT n.*, -{_BM25} AS score FROM nodes_fts JOIN nodes n ON n.id = nodes_fts.rowid "
                          "WHERE nodes_fts MATCH ?1 AND n.sha256 IN (SELECT value FROM json_each(?2))")
                if common:
                    ranked += f" LIMIT {_WINDOW}"
                rows = self._reader.execute(f"SELECT * FROM ({ranked}) ORDER BY score DESC LIMIT ?3",
                                            (text, json.dumps(visible), top_k)).fetchall()
        return [Match(_node(r), float(r["score"])) for r in rows]

    def _choose(self, words: list[str]) -> tuple[list[str], bool]:
        """The words worth matching (those in no node go; common ones go when a rarer one
        remains: see the module doc), and whether only common ones remain. A word's
        rarity is its rarest term's, as FTS5's tokenizer makes them (one word may be
        several terms: ``foo_bar``). Call with the read lock held."""
        db = self._reader
        db.executemany("INSERT INTO temp.query_fts (rowid, text) VALUES (?, ?)", enumerate(words))
        try:
            terms: dict[int, set[str]] = {}
            for i, term in db.execute("SELECT doc, term FROM temp.query_terms"):
                terms.setdefault(int(i), set()).add(str(term))
        finally:
            db.execute("DELETE FROM temp.query_fts")
        total = int(db.execute("SELECT n FROM node_count").fetchone()[0])
        rarity = {i: min(self._doc_freq(t, total) for t in ts) for i, ts in terms.items()}
        present = [i for i, df in rarity.items() if df]
        rare = [i for i in present if rarity[i] <= _COMMON * total]
        return [words[i] for i in sorted(rare or present)], not rare

    def _doc_freq(self, term: str, total: int) -> int:
        cached = self._df.get(term)
        if cached is not None and abs(total - cached[1]) <= _DRIFT * max(cached[1], 1):
            self._df.move_to_end(term)
            return cached[0]
        row = self._reader.execute("SELECT doc FROM nodes_terms WHERE term = ?", (term,)).fetchone()
        count = int(row[0]) if row else 0
        self._df[term] = (count, total)
        self._df.move_to_end(term)
        while len(self._df) > _TERMS_CACHED:
            self._df.popitem(last=False)
        return count

    def nearest(self, vector: Sequence[float], shas: Collection[str], top_k: int) -> list[Match]:
        if not shas or top_k <= 0:
            return []
        import numpy as np  # only with vectors (see put_vectors)

        q = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        q = q / norm if norm else q
        best: list[tuple[float, int]] = []
        with self._read_lock:
            cur = self._reader.execute("SELECT id, vector FROM vectors WHERE sha256 IN "
                                       "(SELECT value FROM json_each(?))", (json.dumps(sorted(shas)),))
            while batch := cur.fetchmany(_VECTOR_BATCH):
                matrix = np.frombuffer(b"".join(r[1] for r in batch), dtype=np.float32).reshape(len(batch), -1)
                scores = matrix @ q
                for i in np.argsort(-scores)[:top_k]:
                    item = (float(scores[i]), int(batch[i][0]))
                    if len(best) < top_k:
                        heapq.heappush(best, item)
                    else:
                        heapq.heappushpop(best, item)
        best.sort(reverse=True)
        ids = [i for _, i in best]
        marks = ",".join("?" * len(ids))
        rows = {int(r["id"]): r for r in self._read(f"SELECT * FROM nodes WHERE id IN ({marks})", *ids)} if ids else {}
        return [Match(_node(rows[i]), s) for s, i in best if i in rows]

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        super().close()


def _quote(text: str) -> str:
    """An FTS5 string: whatever it holds is words of a phrase, never an operator."""
    return '"' + text.replace('"', '""') + '"'


def _node(row: sqlite3.Row) -> StoredNode:
    return StoredNode(str(row["node_id"]), str(row["sha256"]), int(row["page"]), str(row["text"]),
                      json.loads(row["metadata"]))
