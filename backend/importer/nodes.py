"""LlamaIndex nodes to and from the store's rows (:class:`~backend.storage.text_index.StoredNode`).

A stored node keeps what search needs and what a LlamaIndex user expects back: the id
(``{sha256}:p{page}:{n}``), the text, ``sha256`` and ``page`` as columns, and the rest of
the metadata (``document_id``, ``title``, ``filename``) as JSON. A node read back is a
``TextNode`` with the same id, text and metadata, the metadata kept out of embeddings and
prompts as :mod:`split` made it, and its page (``{sha256}:p{page}``) as its source.
"""

from __future__ import annotations

from typing import Any

from backend import importer as _offline  # noqa: F401  (environment before llama_index)

from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode

from backend.importer.split import META
from backend.storage.text_index import StoredNode

_COLUMNS = ("sha256", "page")


def to_stored(sha256: str, node: BaseNode) -> StoredNode:
    meta: dict[str, Any] = {k: v for k, v in node.metadata.items() if k not in _COLUMNS}
    return StoredNode(node.node_id, sha256, int(node.metadata["page"]), node.get_content(MetadataMode.NONE), meta)


def to_node(stored: StoredNode) -> TextNode:
    return TextNode(
        id_=stored.node_id, text=stored.text,
        metadata={**stored.metadata, "sha256": stored.sha256, "page": stored.page},
        excluded_embed_metadata_keys=list(META), excluded_llm_metadata_keys=list(META),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"{stored.sha256}:p{stored.page}")},
    )


def embed_text(node: BaseNode) -> str:
    """What an embedding model sees of a node (the text: its metadata is excluded)."""
    return node.get_content(metadata_mode=MetadataMode.EMBED)
