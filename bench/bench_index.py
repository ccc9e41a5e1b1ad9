#!/usr/bin/env python
"""Index benchmark: the cost of one more 100-page document as the corpus grows.

    .venv/bin/python bench/bench_index.py                              # every engine, 0 / 10,000 / 100,000 pages
    .venv/bin/python bench/bench_index.py --engines index --levels 0 10000
    PYTHONPATH=/tmp/tantivy-site .venv/bin/python bench/bench_index.py --engines tantivy   # if installed aside

Engines (each measured the same way, each level in fresh processes):

- ``index``: the shipped :class:`DocumentIndex` (SQLite FTS5, ``<data_dir>/index.sqlite3``).
- ``postgres``: the same DocumentIndex over PostgreSQL full-text search
  (:class:`~backend.storage.postgres.text_index.PostgresTextIndex`, a GIN index), on a
  server this script starts (Debian's ``postgresql``, as the tests do).
- ``fts5``: bare SQLite FTS5 (external-content table, ``bm25()``), the candidate as such.
- ``tantivy``: the ``tantivy`` package (en_stem, a commit per document), when importable.
- ``bm25s``: the path before (a LlamaIndex docstore persisted whole, the ``bm25s``
  matrix rebuilt whole after every change), reproduced here as it was; it needs the
  ``[bench]`` extra (``llama-index-retrievers-bm25``), which nothing else uses.

Documents are 100 pages of ~480 words (``tests/textpdf.page_lines``: words unique to the
page among common ones, as ``bench/bench_import.py`` makes them). For each level a
*fill* process bulk-loads the corpus up to that many pages (not timed; three nodes a
page; for ``postgres`` it then runs the vacuum, analyze and checkpoint that the fill
owes, which would otherwise run during the measurement), then a fresh *measure* process
opens it and times ``add`` of ``--docs`` more documents (nodes from LlamaIndex's
``SentenceSplitter``, split beforehand: the split runs in a child and costs the same at
any size) and their ``remove``, runs ``--searches`` searches (a page's word plus "report", every content visible: the widest owner mask) for
p50/p95 and whether the right page came first, and reports its RSS. A level whose fill
or measure passes ``--timeout`` seconds is reported as such. Results:
``bench/results/index.json`` and a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from backend import importer as _offline  # noqa: E402,F401  (environment before llama_index)
from tests.textpdf import page_lines, page_word  # noqa: E402

PAGES_PER_DOC = 100
LINES, WORDS_PER_LINE = 40, 12
MEASURE_SEED_BASE = 1_000_000  # measured documents never collide with fill documents


def doc_sha(seed: int) -> str:
    return hashlib.sha256(f"bench-doc-{seed}".encode()).hexdigest()


def doc_pages(seed: int) -> list[str]:
    return [" ".join(page_lines(seed, p, LINES, WORDS_PER_LINE)) for p in range(PAGES_PER_DOC)]


def fill_nodes(seed: int) -> list[Any]:
    """Three nodes a page, cut by lines (cheap: the fill is not what is measured)."""
    from llama_index.core.schema import TextNode

    sha = doc_sha(seed)
    out = []
    for p in range(PAGES_PER_DOC):
        lines = page_lines(seed, p, LINES, WORDS_PER_LINE)
        third = len(lines) // 3 + 1
        for i in range(3):
            out.append(TextNode(id_=f"{sha}:p{p + 1}:{i}", text=" ".join(lines[i * third:(i + 1) * third]),
                                metadata={"sha256": sha, "page": p + 1, "document_id": seed, "title": "t",
                                          "filename": f"doc{seed}.pdf"}))
    return out


def split_nodes(seed: int) -> list[Any]:
    from backend.importer.split import split_pages

    return split_pages(doc_sha(seed), doc_pages(seed), {"document_id": seed, "title": "t",
                                                        "filename": f"doc{seed}.pdf"}, 512, 32)


# -- engines ---------------------------------------------------------------------------------


class Engine(Protocol):
    def bulk(self, docs: list[tuple[str, list[Any]]]) -> None: ...
    def add(self, sha: str, nodes: list[Any]) -> None: ...
    def remove(self, sha: str) -> None: ...
    def search(self, query: str, shas: set[str], top_k: int) -> list[tuple[str, int]]: ...
    def close(self) -> None: ...


class IndexEngine:
    """The shipped DocumentIndex."""

    def __init__(self, root: Path) -> None:
        from backend.importer.index import DocumentIndex

        self.index = DocumentIndex.open(root)

    def bulk(self, docs: list[tuple[str, list[Any]]]) -> None:
        for sha, nodes in docs:
            self.index.add(sha, nodes)

    def add(self, sha: str, nodes: list[Any]) -> None:
        self.index.add(sha, nodes)

    def remove(self, sha: str) -> None:
        self.index.remove(sha)

    def search(self, query: str, shas: set[str], top_k: int) -> list[tuple[str, int]]:
        return [(h.sha256, h.page) for h in self.index.search(query, shas, top_k)]

    def close(self) -> None:
        self.index.close()


class PostgresEngine(IndexEngine):
    """The shipped DocumentIndex over PostgreSQL full-text search (STREAMING_DATABASE_URL),
    on the server that :func:`run` starts (its URL in ``BENCH_DATABASE_URL``)."""

    def __init__(self, root: Path) -> None:
        from backend.importer.index import DocumentIndex
        from backend.storage.postgres.text_index import PostgresTextIndex

        self.index = DocumentIndex(PostgresTextIndex(os.environ["BENCH_DATABASE_URL"]))


class Fts5Engine:
    """Bare FTS5: a rows table and an external-content FTS5 table over its text."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(root / "fts.sqlite3", isolation_level=None)
        self.db.executescript("""
            PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
            CREATE TABLE IF NOT EXISTS nodes (rowid INTEGER PRIMARY KEY, node_id TEXT UNIQUE, sha256 TEXT,
                                              page INTEGER, text TEXT);
            CREATE INDEX IF NOT EXISTS nodes_sha ON nodes (sha256);
            CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text, content='nodes', content_rowid='rowid',
                                                              tokenize='porter unicode61');
        """)

    def _insert(self, sha: str, nodes: list[Any]) -> None:
        for n in nodes:
            cur = self.db.execute("INSERT INTO nodes (node_id, sha256, page, text) VALUES (?, ?, ?, ?)",
                                  (n.node_id, sha, n.metadata["page"], n.text))
            self.db.execute("INSERT INTO fts (rowid, text) VALUES (?, ?)", (cur.lastrowid, n.text))

    def bulk(self, docs: list[tuple[str, list[Any]]]) -> None:
        self.db.execute("BEGIN")
        for sha, nodes in docs:
            self._insert(sha, nodes)
        self.db.execute("COMMIT")

    def add(self, sha: str, nodes: list[Any]) -> None:
        self.bulk([(sha, nodes)])

    def remove(self, sha: str) -> None:
        self.db.execute("BEGIN")
        for rowid, text in self.db.execute("SELECT rowid, text FROM nodes WHERE sha256 = ?", (sha,)).fetchall():
            self.db.execute("INSERT INTO fts (fts, rowid, text) VALUES ('delete', ?, ?)", (rowid, text))
        self.db.execute("DELETE FROM nodes WHERE sha256 = ?", (sha,))
        self.db.execute("COMMIT")

    def search(self, query: str, shas: set[str], top_k: int) -> list[tuple[str, int]]:
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in query.split())
        rows = self.db.execute(
            "SELECT n.sha256, n.page FROM fts JOIN nodes n ON n.rowid = fts.rowid WHERE fts MATCH ? "
            "AND n.sha256 IN (SELECT value FROM json_each(?)) ORDER BY bm25(fts) LIMIT ?",
            (match, json.dumps(sorted(shas)), top_k)).fetchall()
        return [(str(s), int(p)) for s, p in rows]

    def close(self) -> None:
        self.db.close()


class TantivyEngine:
    def __init__(self, root: Path) -> None:
        import tantivy

        self.t = tantivy
        root.mkdir(parents=True, exist_ok=True)
        b = tantivy.SchemaBuilder()
        b.add_text_field("text", stored=False, tokenizer_name="en_stem")
        b.add_text_field("sha", stored=True, tokenizer_name="raw")
        b.add_integer_field("page", stored=True)
        self.schema = b.build()
        self.index = tantivy.Index(self.schema, path=str(root))
        self.writer = self.index.writer(heap_size=50_000_000, num_threads=1)

    def bulk(self, docs: list[tuple[str, list[Any]]]) -> None:
        for sha, nodes in docs:
            for n in nodes:
                self.writer.add_document(self.t.Document(text=n.text, sha=sha, page=int(n.metadata["page"])))
        self.writer.commit()
        self.writer.wait_merging_threads()
        self.writer = self.index.writer(heap_size=50_000_000, num_threads=1)

    def add(self, sha: str, nodes: list[Any]) -> None:
        for n in nodes:
            self.writer.add_document(self.t.Document(text=n.text, sha=sha, page=int(n.metadata["page"])))
        self.writer.commit()
        self.index.reload()

    def remove(self, sha: str) -> None:
        self.writer.delete_documents_by_term("sha", sha)
        self.writer.commit()
        self.index.reload()

    def search(self, query: str, shas: set[str], top_k: int) -> list[tuple[str, int]]:
        t = self.t
        text = self.index.parse_query(" ".join(w for w in query.split() if w.isalnum()), ["text"])
        q = t.Query.boolean_query([(t.Occur.Must, text),
                                   (t.Occur.Must, t.Query.term_set_query(self.schema, "sha", sorted(shas)))])
        searcher = self.index.searcher()
        out = []
        for _score, address in searcher.search(q, top_k).hits:
            doc = searcher.doc(address)
            out.append((str(doc["sha"][0]), int(doc["page"][0])))
        return out

    def close(self) -> None:
        self.writer.wait_merging_threads()


class Bm25sEngine:
    """The path before: docstore in memory persisted whole, BM25 matrix rebuilt whole."""

    def __init__(self, root: Path) -> None:
        import Stemmer
        from llama_index.core import StorageContext

        self.root = root / "index"
        self.stemmer = Stemmer.Stemmer("english")
        self.storage = (StorageContext.from_defaults(persist_dir=str(self.root)) if self.root.is_dir()
                        else StorageContext.from_defaults())
        self.by_sha: dict[str, list[str]] = {}
        self.tokens: dict[str, list[str]] = {}
        self.corpus: dict[str, dict[str, Any]] = {}
        nodes = list(self.storage.docstore.docs.values())
        for n in nodes:
            self.by_sha.setdefault(str(n.metadata["sha256"]), []).append(n.node_id)
        self._cache(nodes)
        self._rebuild()

    def _cache(self, nodes: list[Any]) -> None:
        import bm25s
        from llama_index.core.schema import MetadataMode
        from llama_index.core.vector_stores.utils import node_to_metadata_dict

        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        toks = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, token_pattern=r"(?u)\b\w\w+\b",
                              return_ids=False, show_progress=False)
        for n, t in zip(nodes, toks):
            self.tokens[n.node_id] = list(t)
            self.corpus[n.node_id] = node_to_metadata_dict(n) | {"node_id": n.node_id}

    def _rebuild(self) -> None:
        import bm25s
        import numpy as np

        ids = list(self.corpus)
        if not ids:
            self.snap = None
            return
        bm = bm25s.BM25(corpus=[self.corpus[i] for i in ids])
        bm.index([self.tokens[i] or ["\x00"] for i in ids], show_progress=False)
        self.snap = (bm, np.array([i.split(":", 1)[0] for i in ids]), len(ids))

    def _persist(self) -> None:
        tmp = self.root.with_name("index.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.storage.persist(persist_dir=str(tmp))
        shutil.rmtree(self.root, ignore_errors=True)
        os.replace(tmp, self.root)

    def bulk(self, docs: list[tuple[str, list[Any]]]) -> None:
        for sha, nodes in docs:
            self.storage.docstore.add_documents(nodes, allow_update=True)
            self.by_sha[sha] = [n.node_id for n in nodes]
            self._cache(nodes)
        self._rebuild()
        self._persist()

    def add(self, sha: str, nodes: list[Any]) -> None:
        self.bulk([(sha, nodes)])

    def remove(self, sha: str) -> None:
        for i in self.by_sha.pop(sha, []):
            self.storage.docstore.delete_document(i, raise_error=False)
            self.tokens.pop(i, None)
            self.corpus.pop(i, None)
        self._rebuild()
        self._persist()

    def search(self, query: str, shas: set[str], top_k: int) -> list[tuple[str, int]]:
        import numpy as np
        from llama_index.core.schema import QueryBundle
        from llama_index.retrievers.bm25 import BM25Retriever

        if self.snap is None:
            return []
        bm, row_shas, size = self.snap
        mask = np.isin(row_shas, list(shas)).astype(np.int32)
        r = BM25Retriever(existing_bm25=bm, similarity_top_k=min(top_k, size), stemmer=self.stemmer,
                          token_pattern=r"(?u)\b\w\w+\b", corpus_weight_mask=mask.tolist())
        return [(str(x.node.metadata["sha256"]), int(x.node.metadata["page"]))
                for x in r.retrieve(QueryBundle(query)) if (x.score or 0) > 0]

    def close(self) -> None:
        pass


ENGINES: dict[str, type] = {"index": IndexEngine, "postgres": PostgresEngine, "fts5": Fts5Engine,
                            "tantivy": TantivyEngine, "bm25s": Bm25sEngine}


def rss_mib() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


# -- the two worker steps (each its own process) --------------------------------------------


def fill(engine: str, root: Path, have_docs: int, want_docs: int, batch: int = 20) -> dict[str, Any]:
    e = ENGINES[engine](root)
    if engine == "bm25s":  # one rebuild and one persist for the whole fill, or the fill alone is quadratic
        batch = want_docs - have_docs
    start = time.perf_counter()
    for first in range(have_docs, want_docs, batch):
        e.bulk([(doc_sha(s), fill_nodes(s)) for s in range(first, min(first + batch, want_docs))])
    e.close()
    out = {"fill_s": round(time.perf_counter() - start, 1)}
    if engine == "postgres":
        out["settle_s"] = settle_postgres()
    return out


def settle_postgres() -> float:
    """After a bulk fill, the work PostgreSQL owes it in the background (autovacuum's
    vacuum and analyze of every table just filled, the checkpoint of its WAL), done now
    and untimed: otherwise it would run during the measured adds, on the same cores."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(os.environ["BENCH_DATABASE_URL"], autocommit=True) as db:
        db.execute("VACUUM (ANALYZE)")
        db.execute("CHECKPOINT")
    return round(time.perf_counter() - start, 1)


def measure(engine: str, root: Path, corpus_docs: int, docs: int, searches: int) -> dict[str, Any]:
    nodes, splits = [], []
    for k in range(docs):
        start = time.perf_counter()
        nodes.append((MEASURE_SEED_BASE + k, split_nodes(MEASURE_SEED_BASE + k)))
        splits.append(time.perf_counter() - start)
    start = time.perf_counter()
    e = ENGINES[engine](root)
    open_s = time.perf_counter() - start
    rss_open = rss_mib()
    adds, removes = [], []
    for seed, ns in nodes:
        start = time.perf_counter()
        e.add(doc_sha(seed), ns)
        adds.append(time.perf_counter() - start)
    rss_added = rss_mib()
    shas = {doc_sha(s) for s in range(corpus_docs)} | {doc_sha(s) for s, _ in nodes}
    seeds = list(range(corpus_docs)) + [s for s, _ in nodes]
    rng = random.Random(0)
    latencies: list[float] = []
    right = 0
    own: list[float] = []  # an owner of one document among all the others
    for _ in range(searches):
        seed, page = rng.choice(seeds), rng.randrange(PAGES_PER_DOC)
        query = f"{page_word(seed, page, rng.randrange(40))} report"
        start = time.perf_counter()
        hits = e.search(query, shas, 5)
        latencies.append((time.perf_counter() - start) * 1000)
        right += bool(hits) and hits[0] == (doc_sha(seed), page + 1)
        start = time.perf_counter()
        mine = e.search(query, {doc_sha(seed)}, 5)
        own.append((time.perf_counter() - start) * 1000)
        right_own = bool(mine) and mine[0] == (doc_sha(seed), page + 1)
        if not right_own:
            raise AssertionError(f"one owner's search missed: {query!r} -> {mine}")
    for seed, _ in nodes:
        start = time.perf_counter()
        e.remove(doc_sha(seed))
        removes.append(time.perf_counter() - start)
    rss_end = rss_mib()
    e.close()
    latencies.sort()
    return {
        "nodes_per_doc": len(nodes[0][1]), "open_s": round(open_s, 2),
        "add_s": [round(a, 3) for a in adds], "add_median_s": round(statistics.median(adds), 3),
        "split_median_s": round(statistics.median(splits), 3),
        "split_and_add_median_s": round(statistics.median(a + b for a, b in zip(adds, splits)), 3),
        "remove_median_s": round(statistics.median(removes), 3),
        "search_p50_ms": round(statistics.median(latencies), 2),
        "search_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "top1_right": f"{right}/{searches}",
        "one_doc_owner_p95_ms": round(sorted(own)[int(0.95 * (len(own) - 1))], 2),
        "rss_mib": {"opened": rss_open, "after_adds": rss_added, "end": rss_end},
    }


def _postgres() -> Any:
    """A PostgreSQL of its own (initdb into a temp dir, as the tests start it) with its
    default, durable settings; its URL goes to the worker processes in ``BENCH_DATABASE_URL``."""
    from tests.realservers.postgres import pg_bin, start_postgres

    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed: run `make postgres`")
    server = start_postgres(bindir, durable=True)
    os.environ["BENCH_DATABASE_URL"] = server.url()
    return server


def _worker(args: list[str], timeout: float) -> dict[str, Any]:
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:g} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(engines: list[str], levels: list[int], docs: int, searches: int, timeout: float) -> dict[str, Any]:
    results: dict[str, Any] = {"pages_per_doc": PAGES_PER_DOC, "words_per_page": LINES * WORDS_PER_LINE,
                               "measured_docs": docs, "searches": searches, "engines": {}}
    for engine in engines:
        if engine == "tantivy":
            try:
                import tantivy  # noqa: F401
            except ImportError:
                results["engines"][engine] = {"error": "tantivy is not installed"}
                print("tantivy: not installed, skipped", flush=True)
                continue
        if engine == "bm25s":
            try:
                import bm25s  # noqa: F401
            except ImportError:
                results["engines"][engine] = {"error": "bm25s is not installed (pip install -e '.[bench]')"}
                print("bm25s: not installed (the [bench] extra), skipped", flush=True)
                continue
        root = Path(tempfile.mkdtemp(prefix=f"bench-index-{engine}-"))
        server = _postgres() if engine == "postgres" else None
        rows: dict[str, Any] = {}
        have = 0
        for pages in levels:
            want = pages // PAGES_PER_DOC
            row: dict[str, Any] = {}
            if want > have:
                row |= _worker(["fill", engine, str(root), str(have), str(want)], timeout)
                if "error" in row:
                    rows[str(pages)] = row
                    print(f"{engine} @ {pages:,} pages: fill {row['error']}", flush=True)
                    break
                have = want
            row |= _worker(["measure", engine, str(root), str(want), str(docs), str(searches)], timeout)
            rows[str(pages)] = row
            print(f"{engine} @ {pages:,} pages: {json.dumps(row)}", flush=True)
            if "error" in row:
                break
        results["engines"][engine] = rows
        shutil.rmtree(root, ignore_errors=True)
        if server is not None:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| engine | indexed pages | add one 100-page doc (median) | split + add | remove | search p50 / p95 | "
             "p95, owner of one doc | top-1 right | RSS after adds |", "|---|---|---|---|---|---|---|---|---|"]
    for engine, rows in results["engines"].items():
        if "error" in rows:
            lines.append(f"| {engine} | - | {rows['error']} | | | | | | |")
            continue
        for pages, r in rows.items():
            if "error" in r:
                lines.append(f"| {engine} | {int(pages):,} | {r['error']} | | | | | | |")
                continue
            lines.append(f"| {engine} | {int(pages):,} | {r['add_median_s']:.3f} s | "
                         f"{r.get('split_and_add_median_s', float('nan')):.2f} s | {r['remove_median_s']:.3f} s | "
                         f"{r['search_p50_ms']:.1f} / {r['search_p95_ms']:.1f} ms | {r.get('one_doc_owner_p95_ms', float('nan')):.1f} ms | "
                         f"{r['top1_right']} | "
                         f"{r['rss_mib']['after_adds']:.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        step, engine, root = sys.argv[2], sys.argv[3], Path(sys.argv[4])
        nums = [int(x) for x in sys.argv[5:]]
        out = fill(engine, root, *nums) if step == "fill" else measure(engine, root, *nums)
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["index", "fts5", "tantivy", "bm25s"], choices=list(ENGINES))
    parser.add_argument("--levels", nargs="+", type=int, default=[0, 10_000, 100_000])
    parser.add_argument("--docs", type=int, default=3, help="documents added (and removed) per level")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per fill or measure step")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "index.json")
    args = parser.parse_args()
    results = run(args.engines, args.levels, args.docs, args.searches, args.timeout)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"raw figures: {args.out}")


if __name__ == "__main__":
    main()
