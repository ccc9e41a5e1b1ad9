"""IndexRetriever: a LlamaIndex retriever over the text index store.

``IndexRetriever(store, shas, top_k)`` is a ``BaseRetriever``: put it into a
``RetrieverQueryEngine`` (with an LLM of your choosing) to answer over the passages of
the contents ``shas``. It ranks by the store's keyword search (BM25-style) and, when
given an embedding model, fuses that with the nearest vectors by reciprocal rank fusion
(score = sum of 1 / (60 + rank)); contents that have no vectors simply rank by keyword.

Owner isolation is the caller's: ``shas`` are the contents the asker may see, and the
store ranks nothing else. Blocking (SQLite and the model): call from a thread.
"""

from __future__ import annotations

from collections.abc import Collection

from backend.services import importer as _offline  # noqa: F401  (environment before llama_index)

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeWithScore, QueryBundle

from backend.services.importer.nodes import to_node
from backend.storage.text_index import Match, TextIndexStore

RRF_K = 60


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
    """Reciprocal rank fusion: score = sum of 1 / (60 + rank) over the rankings."""
    scores: dict[str, float] = {}
    best: dict[str, NodeWithScore] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.node.node_id] = scores.get(hit.node.node_id, 0.0) + 1.0 / (RRF_K + rank)
            best.setdefault(hit.node.node_id, hit)
    order = sorted(scores, key=lambda i: scores[i], reverse=True)[:top_k]
    return [NodeWithScore(node=best[i].node, score=round(scores[i], 6)) for i in order]
