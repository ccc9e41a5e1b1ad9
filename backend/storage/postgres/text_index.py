"""PostgresTextIndex: the text index (:mod:`backend.storage.text_index`) in PostgreSQL, one
index that every replica and importer shares.

Nodes are rows of ``index_nodes`` with a ``tsvector`` of their text (``english``:
Snowball stemming, stop words) under a GIN index, and their length in tokens. Adding or
dropping a content touches its own rows, the document frequencies of its own terms
(``index_terms``) and one row of totals (``index_stats``): nothing is rebuilt, and
nothing is held in this process.

The cost of an add must not grow with the corpus, and a B-tree keyed by term cannot
promise that: a document brings thousands of terms never seen before (names, numbers,
codes), each inserted at a random place of the GIN entry tree and of the frequencies'
key, and once those trees outgrow the buffer cache nearly every insert dirties a page
of its own, written out again (a full-page image in the WAL after each checkpoint, an
eviction by the writing backend). In one table, a 100-page document of the benchmark
(``bench/bench_index.py``: 16,000 new terms) wrote 120-170 MiB of WAL (20,000-30,000
full-page images) at 100,000 indexed pages, 10 MiB into an empty index. So the index
is cut in *generations*: ``index_nodes`` and ``index_terms`` are partitioned by
``gen``, each partition with its own GIN and B-trees. New nodes go into the newest
generation, which takes ``_GENERATION_NODES`` nodes before the next one begins (empty
partitions, attached: a few ms), so an add only writes into trees of at most one
generation's size however large the index (6-8 MiB of WAL at any size); dropping a
content writes into its own generation's. A search scans each generation's GIN (one
Append) and sums a term's frequencies over the generations (one probe each): the
ranking is that of one table, at a cost that grows with the number of generations
(~30 at 100,000 pages); merging old ones would bound it. The GIN indexes have
``fastupdate`` off: an import writes its entries into the tree itself, rather than
into a pending list that some later insert merges whole (12 s for one add).

Ranking is BM25 (k1 1.2, b 0.75, Lucene's IDF ``ln(1 + (N - n + 0.5) / (n + 0.5))``),
computed from those frequencies: ``ts_rank``/``ts_rank_cd`` know no IDF, so with them a
common word would weigh as much as a rare one. The words of a query are ORed, each made
a ``tsquery`` of its own lexemes by the server's parser (nothing a client types is an
operator). As in the SQLite store, a word in more than half the nodes is left out of the
match while a rarer one remains (its IDF is near nothing but it would make every node a
candidate), and a query of common words only ranks the first 1,000 visible matches. The
owner filter (a semi-join on the visible SHA-256s: as ``= ANY(array)`` the planner
estimated it element by element in every partition, ~30 ms for 1,000 contents) is in
the ranked query, never applied after it.

Writes (``put``, ``delete``, ``put_vectors``) take one transaction-level advisory lock:
they change shared totals, and one writer at a time keeps them exact with no deadlock
between importers. A search is one statement, so it sees a content's nodes all or none.
Vectors (the optional semantic search) are float32 ``bytea`` of unit length; ``nearest``
reads the visible ones through a server-side cursor in batches (memory bounded by the
batch). A NUL in a node's text (PostgreSQL text cannot hold one) is stored as a space.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.rows import DictRow

from backend.storage.postgres.base import PostgresStore
from backend.storage.text_index import Match, StoredNode

_SCHEMA = """
DO $$ BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('index_nodes')) = 'r' THEN
        RAISE EXCEPTION 'index_nodes has the layout before generations (one table): '
                        'drop the tables index_nodes, index_terms, index_stats and index_vectors, then re-index';
    END IF;
END $$;
CREATE SEQUENCE IF NOT EXISTS index_nodes_id_seq AS BIGINT;
CREATE TABLE IF NOT EXISTS index_nodes (
    id       BIGINT NOT NULL DEFAULT nextval('index_nodes_id_seq'),
    gen      INTEGER NOT NULL,
    node_id  TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    page     INTEGER NOT NULL,
    text     TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    tsv      TSVECTOR NOT NULL,
    len      INTEGER NOT NULL
) PARTITION BY LIST (gen);
CREATE TABLE IF NOT EXISTS index_nodes_g0 PARTITION OF index_nodes FOR VALUES IN (0);
CREATE INDEX IF NOT EXISTS index_nodes_id ON index_nodes (id);
CREATE INDEX IF NOT EXISTS index_nodes_sha ON index_nodes (sha256);
CREATE INDEX IF NOT EXISTS index_nodes_tsv ON index_nodes USING GIN (tsv) WITH (fastupdate = off);
CREATE TABLE IF NOT EXISTS index_gens (
    gen   INTEGER PRIMARY KEY,
    nodes BIGINT NOT NULL
);
INSERT INTO index_gens (gen, nodes) VALUES (0, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS index_terms (
    gen    INTEGER NOT NULL,
    lexeme TEXT NOT NULL,
    df     BIGINT NOT NULL,
    PRIMARY KEY (lexeme, gen)
) PARTITION BY LIST (gen);
CREATE TABLE IF NOT EXISTS index_terms_g0 PARTITION OF index_terms FOR VALUES IN (0);
CREATE TABLE IF NOT EXISTS index_stats (
    one       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    n         BIGINT NOT NULL,
    total_len BIGINT NOT NULL
);
INSERT INTO index_stats (n, total_len) VALUES (0, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS index_vectors (
    id     BIGINT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    vector BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS index_vectors_sha ON index_vectors (sha256);
"""
_CONFIG = "english"
_WRITE_LOCK = 0x70646669  # pg_advisory_xact_lock key of index writes ("pdfi")
_K1, _B = 1.2, 0.75
_WORD = re.compile(r"\w+")
_MAX_WORDS = 64  # a query's distinct words considered (a pasted page is not a query)
_COMMON = 0.5  # share of nodes above which a word only ranks when nothing rarer is asked
_WINDOW = 1_000  # nodes ranked when every word of a query is common
_VECTOR_BATCH = 4096
# A generation's partitions are new and empty, and autovacuum analyzes them a while after
# they fill: until then the planner's guesses make these statements look costly enough
# for JIT, whose compilation (~25 ms) would outweigh the statement itself
_NO_JIT = "SET LOCAL jit = off"
_GENERATION_NODES = 10_000  # nodes written into a generation before the next one begins

_INSERT = f"""
INSERT INTO index_nodes (gen, node_id, sha256, page, text, metadata, tsv, len)
SELECT %(gen)s, v.node_id, %(sha)s, v.page, v.text, v.metadata, t.tsv,
       (SELECT coalesce(sum(coalesce(array_length(x.positions, 1), 1)), 0) FROM unnest(t.tsv) x)
FROM unnest(%(ids)s::text[], %(pages)s::int[], %(texts)s::text[], %(metas)s::text[])
     WITH ORDINALITY AS v(node_id, page, text, metadata, ord)
CROSS JOIN LATERAL (SELECT to_tsvector('{_CONFIG}', v.text) AS tsv) t
ORDER BY v.ord
"""
# the content's nodes' terms (just written into generation ``gen``) into that generation's counts
_ADD_TERMS = """
INSERT INTO index_terms (gen, lexeme, df)
SELECT %(gen)s, x.lexeme, count(*) FROM index_nodes n, unnest(n.tsv) x
WHERE n.gen = %(gen)s AND n.sha256 = %(sha)s GROUP BY x.lexeme ORDER BY x.lexeme
ON CONFLICT (lexeme, gen) DO UPDATE SET df = index_terms.df + excluded.df
"""
# ... and out of them (a term no node of its generation has any more goes)
_DROP_TERMS = """
MERGE INTO index_terms t
USING (SELECT x.lexeme, count(*) AS k FROM index_nodes n, unnest(n.tsv) x
       WHERE n.gen = %(gen)s AND n.sha256 = %(sha)s GROUP BY x.lexeme) c
ON t.gen = %(gen)s AND t.lexeme = c.lexeme
WHEN MATCHED AND t.df <= c.k THEN DELETE
WHEN MATCHED THEN UPDATE SET df = t.df - c.k
"""
# the content's nodes and lengths into (or out of) the totals; ``sign`` 1 or -1
_COUNT_NODES = """
UPDATE index_stats SET n = n + %(sign)s * s.c, total_len = total_len + %(sign)s * s.l
FROM (SELECT count(*) AS c, coalesce(sum(len), 0) AS l FROM index_nodes WHERE sha256 = %(sha)s) s
RETURNING s.c
"""
# a word's lexemes and their document frequencies: the sum over the generations
_WORDS = f"""
SELECT w.ord, x.lexeme,
       coalesce((SELECT sum(t.df)::bigint FROM index_terms t WHERE t.lexeme = x.lexeme), 0) AS df
FROM unnest(%(words)s::text[]) WITH ORDINALITY AS w(word, ord)
CROSS JOIN LATERAL unnest(tsvector_to_array(to_tsvector('{_CONFIG}', w.word))) AS x(lexeme)
"""
_RANK = """
WITH q(lexeme, idf) AS (SELECT * FROM unnest(%(lexemes)s::text[], %(idfs)s::float8[])),
cand AS (SELECT n.gen, n.id, n.tsv, n.len FROM index_nodes n
         WHERE n.tsv @@ %(tsq)s::tsquery AND n.sha256 IN (SELECT unnest(%(shas)s::text[])) {window}),
scored AS (
    SELECT c.gen, c.id, sum(q.idf * u.tf * %(k1p1)s / (u.tf + %(k1)s * (1 - %(b)s + %(b)s * c.len / %(avgdl)s))) AS score
    FROM cand c
    CROSS JOIN LATERAL (SELECT x.lexeme, coalesce(array_length(x.positions, 1), 1) AS tf FROM unnest(c.tsv) x) u
    JOIN q ON q.lexeme = u.lexeme
    GROUP BY c.gen, c.id ORDER BY score DESC, c.id LIMIT %(top_k)s)
SELECT n.node_id, n.sha256, n.page, n.text, n.metadata, s.score
FROM scored s CROSS JOIN LATERAL (SELECT * FROM index_nodes n WHERE n.gen = s.gen AND n.id = s.id LIMIT 1) n
ORDER BY s.score DESC, n.id
"""


class PostgresTextIndex(PostgresStore):
    def __init__(self, url: str, **pool: Any) -> None:
        super().__init__(url, _SCHEMA, what="the search index", **pool)

    # -- writes ---------------------------------------------------------------------------

    def put(self, sha256: str, nodes: Sequence[StoredNode]) -> None:
        params = {"sha": sha256, "ids": [n.node_id for n in nodes], "pages": [n.page for n in nodes],
                  "texts": [n.text.replace("\x00", " ") for n in nodes],
                  "metas": [json.dumps(n.metadata) for n in nodes]}
        if len(set(params["ids"])) != len(nodes):
            raise ValueError(f"node ids repeat within the nodes of {sha256}")
        with self.tx() as db:
            db.execute(_NO_JIT)
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            _drop(db, sha256)
            if nodes:
                gen = _generation(db, len(nodes))
                db.execute(_INSERT, params | {"gen": gen})
                db.execute(_ADD_TERMS, {"sha": sha256, "gen": gen})
                db.execute(_COUNT_NODES, {"sha": sha256, "sign": 1})

    def delete(self, sha256: str) -> int:
        with self.tx() as db:
            db.execute(_NO_JIT)
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            return _drop(db, sha256)

    def put_vectors(self, sha256: str, vectors: Sequence[tuple[str, Sequence[float]]]) -> None:
        ids, blobs = [], []
        for node_id, values in vectors:
            v = np.asarray(values, dtype=np.float32)
            norm = float(np.linalg.norm(v))
            ids.append(node_id)
            blobs.append((v / norm if norm else v).tobytes())
        with self.tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            db.execute("INSERT INTO index_vectors (id, sha256, vector) "
                       "SELECT n.id, n.sha256, v.vector FROM unnest(%s::text[], %s::bytea[]) AS v(node_id, vector) "
                       "JOIN index_nodes n ON n.node_id = v.node_id AND n.sha256 = %s "
                       "ON CONFLICT (id) DO UPDATE SET vector = excluded.vector", (ids, blobs, sha256))

    # -- reads ----------------------------------------------------------------------------

    def has(self, sha256: str) -> bool:
        return self.fetchone("SELECT 1 FROM index_nodes WHERE sha256 = %s LIMIT 1", sha256) is not None

    def has_vectors(self, sha256: str) -> bool:
        return self.fetchone("SELECT 1 FROM index_vectors WHERE sha256 = %s LIMIT 1", sha256) is not None

    def nodes(self, sha256: str) -> list[StoredNode]:
        rows = self.fetchall("SELECT node_id, sha256, page, text, metadata FROM index_nodes "
                             "WHERE sha256 = %s ORDER BY id", sha256)
        return [_node(r) for r in rows]

    def node_count(self) -> int:
        row = self.fetchone("SELECT n FROM index_stats")
        return int(row["n"]) if row else 0

    def search(self, query: str, shas: Collection[str], top_k: int) -> list[Match]:
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:_MAX_WORDS]
        if not words or not shas or top_k <= 0:
            return []
        with self.tx() as db:
            # one snapshot for every statement; no JIT (see _NO_JIT)
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; " + _NO_JIT)
            stats = db.execute("SELECT n, total_len FROM index_stats").fetchone()
            total, length = (int(stats["n"]), int(stats["total_len"])) if stats else (0, 0)
            lexemes: dict[int, dict[str, int]] = {}
            for row in db.execute(_WORDS, {"words": words}):
                lexemes.setdefault(int(row["ord"]), {})[str(row["lexeme"])] = int(row["df"])
            chosen, common = _choose(lexemes, total)
            if not chosen or not total:
                return []
            idf = {lx: math.log(1 + (total - df + 0.5) / (df + 0.5)) for w in chosen for lx, df in w.items()}
            tsq = " | ".join("(" + " & ".join(_quote(lx) for lx in w) + ")" for w in chosen)
            rows = db.execute(_RANK.format(window=f"LIMIT {_WINDOW}" if common else ""), {
                "lexemes": list(idf), "idfs": list(idf.values()), "tsq": tsq, "shas": sorted(shas),
                "k1": _K1, "k1p1": _K1 + 1, "b": _B, "avgdl": max(length / total, 1.0), "top_k": top_k,
            }).fetchall()
        return [Match(_node(r), float(r["score"])) for r in rows]

    def nearest(self, vector: Sequence[float], shas: Collection[str], top_k: int) -> list[Match]:
        if not shas or top_k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        q = q / norm if norm else q
        best: list[tuple[float, int]] = []
        with self.tx() as db:
            with db.cursor(name="nearest") as cur:  # server-side: batches, never the whole set
                cur.execute("SELECT id, vector FROM index_vectors WHERE sha256 = ANY(%s::text[])", (sorted(shas),))
                while batch := cur.fetchmany(_VECTOR_BATCH):
                    matrix = np.frombuffer(b"".join(bytes(r["vector"]) for r in batch),
                                           dtype=np.float32).reshape(len(batch), -1)
                    scores = matrix @ q
                    for i in np.argsort(-scores)[:top_k]:
                        item = (float(scores[i]), int(batch[i]["id"]))
                        if len(best) < top_k:
                            heapq.heappush(best, item)
                        else:
                            heapq.heappushpop(best, item)
            best.sort(reverse=True)
            ids = [i for _, i in best]
            rows = {int(r["id"]): r for r in db.execute(
                "SELECT id, node_id, sha256, page, text, metadata FROM index_nodes WHERE id = ANY(%s)", (ids,))}
        return [Match(_node(rows[i]), s) for s, i in best if i in rows]


def _drop(db: Any, sha256: str) -> int:
    """Take the content's nodes out of the totals, then delete them and their vectors;
    how many went. Call inside a write transaction holding the lock."""
    for row in db.execute("SELECT DISTINCT gen FROM index_nodes WHERE sha256 = %s", (sha256,)).fetchall():
        db.execute(_DROP_TERMS, {"sha": sha256, "gen": row["gen"]})  # one: a put writes into one
    row = db.execute(_COUNT_NODES, {"sha": sha256, "sign": -1}).fetchone()
    db.execute("DELETE FROM index_vectors WHERE sha256 = %s", (sha256,))
    db.execute("DELETE FROM index_nodes WHERE sha256 = %s", (sha256,))
    return int(row["c"]) if row else 0


def _generation(db: Any, count: int) -> int:
    """The generation that ``count`` more nodes go into: the newest, or a new one (its
    own empty partition, attached) once the newest has had its share. Call inside a
    write transaction holding the lock."""
    row = db.execute("SELECT gen, nodes FROM index_gens ORDER BY gen DESC LIMIT 1").fetchone()
    gen, written = (int(row["gen"]), int(row["nodes"])) if row else (0, 0)
    if written and written + count > _GENERATION_NODES:
        gen += 1
        for parent in ("index_nodes", "index_terms"):
            table = sql.Identifier(f"{parent}_g{gen}")
            db.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(table, sql.Identifier(parent)))
            # ATTACH (unlike CREATE ... PARTITION OF) does not lock searches out of the parent
            db.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
                sql.Identifier(parent), table, sql.Literal(gen)))
        db.execute("INSERT INTO index_gens (gen, nodes) VALUES (%s, 0)", (gen,))
    db.execute("UPDATE index_gens SET nodes = nodes + %s WHERE gen = %s", (count, gen))
    return gen


def _choose(lexemes: dict[int, dict[str, int]], total: int) -> tuple[list[dict[str, int]], bool]:
    """The words worth matching, each as its lexemes and their document frequencies
    (words in no node go; common ones go when a rarer one remains), and whether only
    common ones remain. A word's rarity is its rarest lexeme's; a word of stop words only
    has no lexemes and goes."""
    present = {i: lx for i, lx in lexemes.items() if lx and min(lx.values()) > 0}
    rare = {i: lx for i, lx in present.items() if min(lx.values()) <= _COMMON * total}
    pick = rare or present
    return [pick[i] for i in sorted(pick)], not rare


def _quote(lexeme: str) -> str:
    """A ``tsquery`` lexeme, quoted: taken as is, never an operator."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _node(row: DictRow) -> StoredNode:
    return StoredNode(str(row["node_id"]), str(row["sha256"]), int(row["page"]), str(row["text"]),
                      json.loads(row["metadata"]))
