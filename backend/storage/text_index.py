"""The text index's storage contract: nodes of contents, searchable by keyword and vector.

A content (a SHA-256) has nodes; each node is one passage of one page. The store keeps
them, finds the best passages among a set of contents by keyword (BM25-style ranking),
and, for the optional semantic search, keeps one vector per node and finds the nearest.
It knows nothing of LlamaIndex (the service turns its nodes into :class:`StoredNode`)
nor of owners: the caller passes the contents the searcher may see, and the store ranks
only those (inside the ranking, not after it, so ``top_k`` is never eaten by others).

Implementations: :class:`backend.storage.sqlite_index.SqliteTextIndex` (FTS5, the
embedded default) and :class:`backend.storage.postgres.text_index.PostgresTextIndex`
(full-text search on a GIN index, shared by every replica). Each runs
``tests/services/test_index_contract.py``.

Who locks: the store. Every method may be called from any thread; a write is atomic
(a search sees a content's nodes all or none) and durable when it returns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class StoredNode:
    node_id: str
    sha256: str
    page: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON values only


@dataclass(frozen=True)
class Match:
    node: StoredNode
    score: float  # higher is better; comparable within one answer only


class TextIndexStore(Protocol):
    def has(self, sha256: str) -> bool:
        """Whether the content has nodes."""
        raise NotImplementedError

    def put(self, sha256: str, nodes: Sequence[StoredNode]) -> None:
        """The content's nodes, replacing any it had (and their vectors), in one write."""
        raise NotImplementedError

    def delete(self, sha256: str) -> int:
        """Drop the content's nodes and vectors; how many nodes went (0: none were there)."""
        raise NotImplementedError

    def nodes(self, sha256: str) -> list[StoredNode]:
        """The content's nodes, in insertion order."""
        raise NotImplementedError

    def search(self, query: str, shas: Collection[str], top_k: int) -> list[Match]:
        """The best ``top_k`` nodes of the contents ``shas`` for the words of ``query``
        (free text: the store makes its own query syntax of it, so nothing in it is an
        operator), best first; only nodes sharing a word with the query."""
        raise NotImplementedError

    def put_vectors(self, sha256: str, vectors: Sequence[tuple[str, Sequence[float]]]) -> None:
        """One vector per ``node_id`` of the content (the nodes must be there)."""
        raise NotImplementedError

    def has_vectors(self, sha256: str) -> bool:
        raise NotImplementedError

    def nearest(self, vector: Sequence[float], shas: Collection[str], top_k: int) -> list[Match]:
        """The ``top_k`` nodes of ``shas`` with vectors most like ``vector`` (cosine)."""
        raise NotImplementedError

    def node_count(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
