"""DocumentIndex: the nodes of every imported content, searchable by keyword (and meaning).

One LlamaIndex ``StorageContext`` (docstore, and with an embedding model a
``VectorStoreIndex`` over the same nodes) persisted under ``root``. Nodes are keyed by
content: node ``{sha256}:p{page}:{n}`` carries ``sha256``, ``page``, and the
``document_id``/``title``/``filename`` of the document that brought the content first;
who may see a content, and under which document, is the caller's business (the
repository), so one content is indexed once however many documents hold it.

Keyword search is BM25 (``llama-index-retrievers-bm25`` over ``bm25s``): the BM25 matrix
is rebuilt after every change from tokens cached per node, and swapped in whole, so a
search never waits for a writer and never sees half an update. The owner filter is a
weight mask over the corpus, applied inside the BM25 ranking (not after it).

Thread-safety: writers (``add``, ``add_vectors``, ``remove``) serialise on one lock and
persist before returning; ``search`` reads the current snapshot and takes no lock.
Persisting writes a fresh directory and swaps it in, so a crash leaves the old one.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.services import importer as _offline  # noqa: F401  (environment before llama_index)

import bm25s
import numpy as np
import Stemmer
from llama_index.core import Settings as LlamaSettings
from llama_index.core import MockEmbedding, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import node_to_metadata_dict
from llama_index.retrievers.bm25 import BM25Retriever

from backend.services.importer.split import split_pages

log = logging.getLogger(__name__)

VECTOR_INDEX_ID = "vectors"
_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    sha256: str
    page: int
    score: float
    text: str
    node_id: str


@dataclass(frozen=True)
class _Snapshot:
    bm25: bm25s.BM25
    shas: np.ndarray[Any, Any]  # the content of each corpus row, for the owner mask
    size: int


class DocumentIndex:
    def __init__(self, root: Path, *, chunk_tokens: int = 512, chunk_overlap: int = 32,
                 embed_model: BaseEmbedding | None = None) -> None:
        self.root = root
        self.embed_model = embed_model
        self._lock = threading.RLock()
        self._stemmer = Stemmer.Stemmer("english")
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self._storage: StorageContext | None = None
        self._vectors: VectorStoreIndex | None = None
        self._by_sha: dict[str, list[str]] = {}
        self._tokens: dict[str, list[str]] = {}
        self._corpus: dict[str, dict[str, Any]] = {}
        self._snapshot: _Snapshot | None = None

    # -- lifecycle --------------------------------------------------------------------

    def load(self) -> None:
        """Open the persisted index (or start an empty one) and build the BM25 snapshot."""
        # Nothing here may call a language model. MockLLM itself, not None: given None,
        # llama-index prints a line on stdout, which breaks the one-JSON-object-a-line log.
        LlamaSettings.llm = MockLLM()
        # explicit: never the default OpenAI model (a mock one when there is no real one)
        LlamaSettings.embed_model = self.embed_model or MockEmbedding(embed_dim=1)
        with self._lock:
            old = self.root.with_name(self.root.name + ".old")
            source = self.root if self.root.is_dir() else old if old.is_dir() else None
            if source is not None:
                self._storage = StorageContext.from_defaults(persist_dir=str(source))
            else:
                self._storage = StorageContext.from_defaults()
            if self.embed_model is not None:
                self._vectors = self._open_vectors()
            nodes = list(self._storage.docstore.docs.values())
            for node in nodes:
                self._by_sha.setdefault(str(node.metadata["sha256"]), []).append(node.node_id)
            self._cache(nodes)
            self._rebuild()
        log.info("document index: %d nodes of %d contents", len(self._corpus), len(self._by_sha))

    def _open_vectors(self) -> VectorStoreIndex:
        assert self._storage is not None
        if any(s.index_id == VECTOR_INDEX_ID for s in self._storage.index_store.index_structs()):
            index = load_index_from_storage(self._storage, index_id=VECTOR_INDEX_ID, embed_model=self.embed_model)
            assert isinstance(index, VectorStoreIndex)
            return index
        index = VectorStoreIndex(nodes=[], storage_context=self._storage, embed_model=self.embed_model,
                                 store_nodes_override=True)
        index.set_index_id(VECTOR_INDEX_ID)
        return index

    @property
    def storage(self) -> StorageContext:
        if self._storage is None:
            raise RuntimeError("the document index is not loaded")
        return self._storage

    # -- writes -------------------------------------------------------------------------

    def has(self, sha256: str) -> bool:
        return sha256 in self._by_sha

    def has_vectors(self, sha256: str) -> bool:
        if self._vectors is None:
            return False
        ids = self._by_sha.get(sha256, [])
        return bool(ids) and ids[0] in self._vectors.index_struct.nodes_dict

    def split(self, sha256: str, pages: list[str], meta: dict[str, Any]) -> list[BaseNode]:
        """Nodes for the pages that have text (none: the content has no text), split in
        this process (:func:`split.split_pages`; the import service splits in a child)."""
        return split_pages(sha256, pages, meta, self.chunk_tokens, self.chunk_overlap)

    def add(self, sha256: str, nodes: list[BaseNode], *, embed: bool = False) -> None:
        """Add the nodes of one content (replacing any it had) and persist."""
        with self._lock:
            if sha256 in self._by_sha:
                self._drop(sha256)
            self.storage.docstore.add_documents(nodes, allow_update=True)
            self._by_sha[sha256] = [n.node_id for n in nodes]
            self._cache(nodes)
            if embed and self._vectors is not None:
                self._vectors.insert_nodes(nodes)
            self._rebuild()
            self._persist()

    def add_vectors(self, sha256: str) -> None:
        """Embed an already indexed content into the vector index (no-op without a model)."""
        with self._lock:
            if self._vectors is None or self.has_vectors(sha256):
                return
            nodes = self.storage.docstore.get_nodes(self._by_sha.get(sha256, []))
            if nodes:
                self._vectors.insert_nodes(nodes)
                self._persist()

    def remove(self, sha256: str) -> int:
        """Remove a content's nodes (docstore, vectors, BM25) and persist; how many went."""
        with self._lock:
            if sha256 not in self._by_sha:
                return 0
            count = self._drop(sha256)
            self._rebuild()
            self._persist()
            return count

    def _drop(self, sha256: str) -> int:
        ids = self._by_sha.pop(sha256, [])
        if self._vectors is not None:
            present = [i for i in ids if i in self._vectors.index_struct.nodes_dict]
            if present:
                self._vectors.delete_nodes(present, delete_from_docstore=False)
        for node_id in ids:
            self.storage.docstore.delete_document(node_id, raise_error=False)
            self._tokens.pop(node_id, None)
            self._corpus.pop(node_id, None)
        return len(ids)

    def _cache(self, nodes: list[BaseNode]) -> None:
        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, token_pattern=_TOKEN_PATTERN,
                                return_ids=False, show_progress=False)
        for node, toks in zip(nodes, tokens):
            self._tokens[node.node_id] = list(toks)
            self._corpus[node.node_id] = node_to_metadata_dict(node) | {"node_id": node.node_id}

    def _rebuild(self) -> None:
        ids = list(self._corpus)
        if not ids:
            self._snapshot = None
            return
        bm25 = bm25s.BM25(corpus=[self._corpus[i] for i in ids])
        bm25.index([self._tokens[i] or ["\x00"] for i in ids], show_progress=False)
        shas = np.array([i.split(":", 1)[0] for i in ids])
        self._snapshot = _Snapshot(bm25, shas, len(ids))

    def _persist(self) -> None:
        tmp = self.root.with_name(self.root.name + ".tmp")
        old = self.root.with_name(self.root.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        self.storage.persist(persist_dir=str(tmp))
        if self.root.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.root, old)
        os.replace(tmp, self.root)
        shutil.rmtree(old, ignore_errors=True)

    # -- reads --------------------------------------------------------------------------

    def search(self, query: str, shas: set[str], top_k: int) -> list[Hit]:
        """The best ``top_k`` nodes among the contents ``shas``: BM25, fused with vector
        similarity (reciprocal rank fusion) when the index has an embedding model."""
        keyword = self._bm25(query, shas, top_k)
        if self._vectors is None or not any(self.has_vectors(s) for s in shas):
            return keyword
        return _fuse([keyword, self._semantic(query, shas, top_k)], top_k)

    def _bm25(self, query: str, shas: set[str], top_k: int) -> list[Hit]:
        snap = self._snapshot
        if snap is None or not shas:
            return []
        mask = np.isin(snap.shas, list(shas)).astype(np.int32)
        if not mask.any():
            return []
        retriever = BM25Retriever(existing_bm25=snap.bm25, similarity_top_k=min(top_k, snap.size),
                                  stemmer=self._stemmer, token_pattern=_TOKEN_PATTERN,
                                  corpus_weight_mask=mask.tolist())
        return [_hit(r) for r in retriever.retrieve(QueryBundle(query)) if (r.score or 0) > 0]

    def _semantic(self, query: str, shas: set[str], top_k: int) -> list[Hit]:
        assert self._vectors is not None
        filters = MetadataFilters(filters=[MetadataFilter(key="sha256", value=sorted(shas), operator=FilterOperator.IN)])
        retriever = self._vectors.as_retriever(similarity_top_k=top_k, filters=filters)
        return [_hit(r) for r in retriever.retrieve(QueryBundle(query))]

    @property
    def node_count(self) -> int:
        return len(self._corpus)


def _hit(result: NodeWithScore) -> Hit:
    node = result.node
    return Hit(str(node.metadata["sha256"]), int(node.metadata["page"]), float(result.score or 0.0),
               node.get_content(metadata_mode=MetadataMode.NONE), node.node_id)


def _fuse(rankings: list[list[Hit]], top_k: int) -> list[Hit]:
    """Reciprocal rank fusion: score = sum of 1 / (60 + rank) over the rankings."""
    scores: dict[str, float] = {}
    best: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.node_id] = scores.get(hit.node_id, 0.0) + 1.0 / (RRF_K + rank)
            best.setdefault(hit.node_id, hit)
    order = sorted(scores, key=lambda i: scores[i], reverse=True)[:top_k]
    return [Hit(best[i].sha256, best[i].page, round(scores[i], 6), best[i].text, i) for i in order]
