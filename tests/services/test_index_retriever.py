"""The index's LlamaIndex side: a retriever a RetrieverQueryEngine takes, and the semantic
path (vectors stored, nearest fused with keywords) run with a tiny offline embedding
model, so it is tested whether or not the embeddings extra is installed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle, TextNode

from backend.importer.index import DocumentIndex
from backend.importer.retriever import IndexRetriever

A, B = "a" * 64, "b" * 64
META = {"document_id": 1, "title": "T", "filename": "f.pdf"}
# words that mean the same to this model (its whole "semantics")
_SAME = {"kitten": "cat", "kittens": "cat", "cats": "cat", "revenue": "money", "income": "money"}


class WordModel(BaseEmbedding):
    """Bag of words hashed into 32 dimensions, with a few synonyms folded together."""

    def _vector(self, text: str) -> list[float]:
        v = [0.0] * 32
        for word in text.lower().replace(".", " ").split():
            word = _SAME.get(word, word)
            v[hashlib.sha256(word.encode()).digest()[0] % 32] += 1.0
        return v

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


def test_the_retriever_drives_a_query_engine(tmp_path: Path) -> None:
    index = DocumentIndex.open(tmp_path)
    try:
        index.add(A, index.split(A, ["Nothing here.", "The walrus sleeps on the ice floe."], META))
        retriever = index.retriever({A}, 2)
        assert isinstance(retriever, IndexRetriever)
        nodes = retriever.retrieve("walrus")
        assert [(n.node.metadata["page"], n.node.metadata["title"]) for n in nodes] == [(2, "T")]
        assert nodes[0].node.node_id == f"{A}:p2:0" and isinstance(nodes[0].node, TextNode)
        assert nodes[0].node.get_content() == nodes[0].node.text
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
        response = engine.query("walrus")
        assert [n.node.metadata["page"] for n in response.source_nodes] == [2]
        assert IndexRetriever(index.store, {B}, 2).retrieve("walrus") == []  # another's content: nothing
    finally:
        index.close()


def test_semantic_fusion_with_a_model(tmp_path: Path) -> None:
    index = DocumentIndex.open(tmp_path, embed_model=WordModel())
    try:
        pages = ["The cat sat on the warm windowsill.", "Quarterly income grew by twelve percent."]
        index.add(A, index.split(A, pages, META), embed=True)
        index.add(B, index.split(B, ["The cat food supplier."], META))  # keyword only (not embedded)
        assert index.has_vectors(A) and not index.has_vectors(B)
        # no page says "kitten": only the vectors can find the cat
        hits = index.search("kitten", {A, B}, 2)
        assert hits and (hits[0].sha256, hits[0].page) == (A, 1)
        assert index.search("revenue", {A, B}, 1)[0].page == 2
        # both rankings agree on A's cat page; B's has the keyword only
        hits = index.search("cat", {A, B}, 3)
        assert (hits[0].sha256, hits[0].page) == (A, 1) and B in {h.sha256 for h in hits}
        assert index.search("kitten", {B}, 2) == []  # vectors obey the owner filter too
        index.add_vectors(B)
        assert index.has_vectors(B)
        index.remove(A)
        assert not index.has_vectors(A) and {h.sha256 for h in index.search("kitten", {A, B}, 3)} == {B}
    finally:
        index.close()


def test_without_a_model_there_are_no_vectors(tmp_path: Path) -> None:
    index = DocumentIndex.open(tmp_path)
    try:
        index.add(A, index.split(A, ["The cat sat."], META), embed=True)
        index.add_vectors(A)
        assert not index.has_vectors(A) and index.search("kitten", {A}, 2) == []
        assert [h.page for h in index.search("cat", {A}, 2)] == [1]
        hit: Any = index.retriever({A}, 1).retrieve(QueryBundle("cat"))[0]
        assert hit.score > 0
    finally:
        index.close()
