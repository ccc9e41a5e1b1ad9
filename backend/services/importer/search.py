"""Search over the text index, as the upload server runs it: keyword ranking (BM25-style,
the store's), fused with vector similarity when the server was given a query embedder.

Reciprocal rank fusion (score = sum over the rankings of 1 / (60 + rank)) is here, on
node ids, so the server and the importer's LlamaIndex retriever
(:mod:`backend.importer.retriever`) rank alike without the server loading LlamaIndex.
Contents without vectors simply rank by keyword. Blocking (SQLite, the model): call from
a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from backend.storage.text_index import Match, TextIndexStore

RRF_K = 60
QueryEmbedder = Callable[[str], Sequence[float]]


def rrf(rankings: Sequence[Sequence[str]], top_k: int) -> list[tuple[str, float]]:
    """The ``top_k`` ids of ``rankings`` (each best first) by reciprocal rank fusion, with
    their fused score (rounded to 6 places), best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, node_id in enumerate(ranking, start=1):
            scores[node_id] = scores.get(node_id, 0.0) + 1.0 / (RRF_K + rank)
    order = sorted(scores, key=lambda i: scores[i], reverse=True)[:top_k]
    return [(i, round(scores[i], 6)) for i in order]


def search(store: TextIndexStore, query: str, shas: Collection[str], top_k: int,
           embed_query: QueryEmbedder | None = None) -> list[Match]:
    """The best ``top_k`` nodes of the contents ``shas`` for ``query`` (see the module doc)."""
    if not shas:
        return []
    keyword = store.search(query, shas, top_k)
    if embed_query is None:
        return keyword
    semantic = store.nearest(embed_query(query), shas, top_k)
    if not semantic:
        return keyword
    nodes = {m.node.node_id: m.node for m in (*keyword, *semantic)}
    fused = rrf([[m.node.node_id for m in keyword], [m.node.node_id for m in semantic]], top_k)
    return [Match(nodes[i], score) for i, score in fused]
