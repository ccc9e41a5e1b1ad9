"""IndexRetriever: a LlamaIndex retriever over the text index store.

``IndexRetriever(store, shas, top_k)`` is a ``BaseRetriever``: put it into a
``RetrieverQueryEngine`` (with an LLM of your choosing) to answer over the passages of
the contents ``shas``. It ranks by the store's keyword search (BM25-style) and, when
given an embedding model, fuses that with the nearest vectors by reciprocal rank fusion
(:func:`~backend.services.importer.search.rrf`, as the server's search); contents that have no vectors simply rank by keyword.

Owner isolation is the caller's: ``shas`` are the contents the asker may see, and the
store ranks nothing else. Blocking (SQLite and the model): call from a thread.
"""

from __future__ import annotations

from collections.abc import Collection

from backend import importer as _offline  # noqa: F401  (environment before llama_index)

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeWithScore, QueryBundle

from backend.importer.nodes import to_node
from backend.services.importer.search import rrf
from backend.storage.text_index import Match, TextIndexStore


class IndexRetriever(BaseRetriever):
    def __init__(self, store: TextIndexStore, shas: Collection[str], top_k: int = 5, *,
                 embed_model: BaseEmbedding | None = None) -> None:
        super().__init__()
        self.store = store
        self.shas = frozenset(shas)
        self.top_k = top_k
        self.embed_model = embed_model

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        keyword = _scored(self.store.search(query_bundle.query_str, self.shas, self.top_k))
        if self.embed_model is None or not self.shas:
            return keyword
        vector = query_bundle.embedding or self.embed_model.get_query_embedding(query_bundle.query_str)
        semantic = _scored(self.store.nearest(vector, self.shas, self.top_k))
        if not semantic:
            return keyword
        return fuse([keyword, semantic], self.top_k)


def _scored(matches: list[Match]) -> list[NodeWithScore]:
    return [NodeWithScore(node=to_node(m.node), score=m.score) for m in matches]


def fuse(rankings: list[list[NodeWithScore]], top_k: int) -> list[NodeWithScore]:
    """Reciprocal rank fusion (:func:`backend.services.importer.search.rrf`)."""
    best: dict[str, NodeWithScore] = {}
    for ranking in rankings:
        for hit in ranking:
            best.setdefault(hit.node.node_id, hit)
    fused = rrf([[hit.node.node_id for hit in ranking] for ranking in rankings], top_k)
    return [NodeWithScore(node=best[i].node, score=score) for i, score in fused]
