"""An index written by the previous version moves into the store at the first open.

:func:`write_previous_index` writes the previous on-disk format the way the previous
``DocumentIndex`` did (its calls, kept here as a fixture builder): nodes from
``split_pages`` into a LlamaIndex ``StorageContext`` docstore, with embeddings a
``VectorStoreIndex`` with id ``vectors`` over the same nodes, ``persist`` to
``<data_dir>/index`` (``index.old`` when the old writer crashed mid-swap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llama_index.core import MockEmbedding, StorageContext, VectorStoreIndex
from llama_index.core import Settings as LlamaSettings
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM

from backend.importer.index import DocumentIndex
from backend.importer.split import split_pages
from tests.services.test_index_retriever import WordModel
from tests.textpdf import page_lines, page_word

A, B = "a" * 64, "b" * 64


def contents(*seeds: int) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """sha256 -> (pages, meta) for text made with ``seeds`` (tests.textpdf words)."""
    return {(chr(ord("a") + i)) * 64: ([" ".join(page_lines(seed, p)) for p in range(3)],
                                       {"document_id": i + 1, "title": f"Doc {seed}", "filename": f"{seed}.pdf"})
            for i, seed in enumerate(seeds)}


def write_previous_index(data_dir: Path, docs: dict[str, tuple[list[str], dict[str, Any]]], *,
                         embed_model: BaseEmbedding | None = None, embedded: frozenset[str] | set[str] = frozenset(),
                         name: str = "index") -> int:
    """The previous version's ``<data_dir>/index`` holding ``docs``; how many nodes."""
    LlamaSettings.llm = MockLLM()
    LlamaSettings.embed_model = embed_model or MockEmbedding(embed_dim=1)
    storage = StorageContext.from_defaults()
    vectors = None
    if embed_model is not None:
        vectors = VectorStoreIndex(nodes=[], storage_context=storage, embed_model=embed_model,
                                   store_nodes_override=True)
        vectors.set_index_id("vectors")
    count = 0
    for sha, (pages, meta) in docs.items():
        nodes = split_pages(sha, pages, meta, 512, 32)
        storage.docstore.add_documents(nodes, allow_update=True)
        if vectors is not None and sha in embedded:
            vectors.insert_nodes(nodes)
        count += len(nodes)
    storage.persist(persist_dir=str(data_dir / name))
    return count


def test_the_previous_index_is_moved_in_once_and_kept(tmp_path: Path) -> None:
    docs = contents(1, 2)
    count = write_previous_index(tmp_path, docs, embed_model=WordModel(), embedded={A})
    index = DocumentIndex.open(tmp_path, embed_model=WordModel())
    try:
        assert index.node_count == count and index.has(A) and index.has(B)
        assert index.has_vectors(A) and not index.has_vectors(B)  # the vectors came too
        hit = index.search(page_word(2, 1, 3), {A, B}, 1)[0]
        assert (hit.sha256, hit.page) == (B, 2) and page_word(2, 1, 3) in hit.text
        node = index.store.nodes(A)[0]
        assert node.metadata == {"document_id": 1, "title": "Doc 1", "filename": "1.pdf"}
    finally:
        index.close()
    assert not (tmp_path / "index").exists() and (tmp_path / "index.migrated" / "docstore.json").is_file()
    again = DocumentIndex.open(tmp_path)  # nothing left to move: the same nodes, once
    try:
        assert again.node_count == count
        assert again.search(page_word(1, 2, 0), {A}, 1)[0].page == 3
    finally:
        again.close()


def test_the_old_writers_fallback_copy_is_moved_in(tmp_path: Path) -> None:
    count = write_previous_index(tmp_path, contents(3), name="index.old")
    index = DocumentIndex.open(tmp_path)
    try:
        assert index.node_count == count and index.search(page_word(3, 0, 1), {A}, 1)[0].page == 1
    finally:
        index.close()
    assert not (tmp_path / "index.old").exists() and (tmp_path / "index.old.migrated").is_dir()


def test_an_interrupted_migration_runs_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = write_previous_index(tmp_path, contents(4, 5))

    def crash(src: object, dst: object) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr("backend.importer.legacy.os.replace", crash)
    with pytest.raises(OSError):
        DocumentIndex.open(tmp_path)
    monkeypatch.undo()
    index = DocumentIndex.open(tmp_path)
    try:
        assert index.node_count == count  # moved twice, there once
        assert index.search(page_word(5, 2, 2), {A, B}, 1)[0].sha256 == B
    finally:
        index.close()


def test_nothing_to_move_in_a_new_install(tmp_path: Path) -> None:
    index = DocumentIndex.open(tmp_path)
    try:
        assert index.node_count == 0 and (tmp_path / "index.sqlite3").is_file()
        assert not any(p.name.startswith("index.") and p.is_dir() for p in tmp_path.iterdir())
    finally:
        index.close()
