"""DocumentIndex: the nodes of every imported content, searchable by keyword (and meaning).

The nodes live in a :class:`~backend.storage.text_index.TextIndexStore` (SQLite FTS5 in
``<data_dir>/index.sqlite3`` by default): adding or removing a content writes that
content's rows and nothing else, and the process holds no copy of the corpus, so an
import costs the same at any corpus size and memory does not grow with it.

Nodes are keyed by content: node ``{sha256}:p{page}:{n}`` carries ``sha256``, ``page``,
and the ``document_id``/``title``/``filename`` of the document that brought the content
first; who may see a content, and under which document, is the caller's business (the
repository), so one content is indexed once however many documents hold it.

Search goes through :class:`~backend.importer.retriever.IndexRetriever`, a
LlamaIndex retriever (``retriever(shas, top_k)`` gives one for a ``RetrieverQueryEngine``):
BM25-style keyword ranking among the contents ``shas`` (the owner filter is inside the
ranking), fused with vector similarity when an embedding model is configured.

Thread-safety: the store's (every method may run in any thread; a write is atomic and
durable when it returns). ``open`` migrates an index left by the previous version
(:mod:`backend.importer.legacy`) before anything else touches it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import importer as _offline  # noqa: F401  (environment before llama_index)

from llama_index.core import MockEmbedding
from llama_index.core import Settings as LlamaSettings
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from backend.importer.nodes import embed_text, to_node, to_stored
from backend.importer.retriever import IndexRetriever
from backend.importer.split import split_pages
from backend.storage.sqlite_index import INDEX_FILE, LEGACY_DIR, SqliteTextIndex
from backend.storage.text_index import TextIndexStore

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Hit:
    sha256: str
    page: int
    score: float
    text: str
    node_id: str


class DocumentIndex:
    def __init__(self, store: TextIndexStore, *, chunk_tokens: int = 512, chunk_overlap: int = 32,
                 embed_model: BaseEmbedding | None = None) -> None:
        """Over an open ``store`` (see :meth:`open` for the data directory's)."""
        self.store = store
        self.embed_model = embed_model
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        # Nothing here may call a language model. MockLLM itself, not None: given None,
        # llama-index prints a line on stdout, which breaks the one-JSON-object-a-line log.
        LlamaSettings.llm = MockLLM()
        # explicit: never the default OpenAI model (a mock one when there is no real one)
        LlamaSettings.embed_model = embed_model or MockEmbedding(embed_dim=1)

    @classmethod
    def open(cls, data_dir: Path, store: TextIndexStore | None = None, **kw: Any) -> DocumentIndex:
        """The index over ``store`` (default: ``data_dir``'s ``index.sqlite3``, made if
        missing), with the nodes of a previous version's ``data_dir/index`` moved in first."""
        from backend.importer.legacy import migrate

        if store is None:
            store = SqliteTextIndex(data_dir / INDEX_FILE)
        try:
            migrate(data_dir / LEGACY_DIR, store)
        except BaseException:
            store.close()
            raise
        index = cls(store, **kw)
        log.info("document index: %d nodes", index.node_count)
        return index

    def close(self) -> None:
        self.store.close()

    # -- writes -------------------------------------------------------------------------

    def has(self, sha256: str) -> bool:
        return self.store.has(sha256)

    def has_vectors(self, sha256: str) -> bool:
        return self.embed_model is not None and self.store.has_vectors(sha256)

    def split(self, sha256: str, pages: list[str], meta: dict[str, Any]) -> list[BaseNode]:
        """Nodes for the pages that have text (none: the content has no text), split in
        this process (:func:`split.split_pages`; the import service splits in a child)."""
        return split_pages(sha256, pages, meta, self.chunk_tokens, self.chunk_overlap)

    def add(self, sha256: str, nodes: list[BaseNode], *, embed: bool = False) -> None:
        """Store the nodes of one content (replacing any it had); with ``embed`` and a
        model, their vectors too."""
        self.store.put(sha256, [to_stored(sha256, n) for n in nodes])
        if embed:
            self._embed(sha256, nodes)

    def add_vectors(self, sha256: str) -> None:
        """Embed an already indexed content (no-op without a model, or if it has vectors)."""
        if self.embed_model is None or self.store.has_vectors(sha256):
            return
        self._embed(sha256, [to_node(n) for n in self.store.nodes(sha256)])

    def _embed(self, sha256: str, nodes: list[BaseNode]) -> None:
        if self.embed_model is None or not nodes:
            return
        vectors = self.embed_model.get_text_embedding_batch([embed_text(n) for n in nodes])
        self.store.put_vectors(sha256, [(n.node_id, v) for n, v in zip(nodes, vectors)])

    def remove(self, sha256: str) -> int:
        """Remove a content's nodes (and vectors); how many went."""
        return self.store.delete(sha256)

    # -- reads --------------------------------------------------------------------------

    def retriever(self, shas: set[str], top_k: int) -> IndexRetriever:
        """A LlamaIndex retriever over the contents ``shas`` (see the module doc)."""
        return IndexRetriever(self.store, shas, top_k, embed_model=self.embed_model)

    def search(self, query: str, shas: set[str], top_k: int) -> list[Hit]:
        """The best ``top_k`` nodes among the contents ``shas``: BM25, fused with vector
        similarity (reciprocal rank fusion) when the index has an embedding model."""
        if not shas:
            return []
        return [_hit(r) for r in self.retriever(shas, top_k).retrieve(QueryBundle(query))]

    @property
    def node_count(self) -> int:
        return self.store.node_count()


def _hit(result: NodeWithScore) -> Hit:
    node = result.node
    return Hit(str(node.metadata["sha256"]), int(node.metadata["page"]), float(result.score or 0.0),
               node.get_content(metadata_mode=MetadataMode.NONE), node.node_id)
