"""Pages into nodes: LlamaIndex's ``SentenceSplitter`` over sentences found in linear time.

Node ``{sha256}:p{page}:{n}`` is the ``n``-th chunk of page ``page`` (1-based) and carries
``sha256``, ``page`` and the caller's ``meta``; none of them is embedded or shown to a
model (they are excluded keys), so they never eat into a chunk's tokens.

The text is untrusted: every step here must stay linear in its length (a backtracking
sentence regex took seconds on one line of letters). The import service runs
:func:`split_pages` in a child process (:mod:`backend.importer.reader`), so
even a slow page costs the server no time under its GIL.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from backend import importer as _offline  # noqa: F401  (environment before llama_index)

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, Document

META = ["sha256", "document_id", "title", "filename", "page"]
# A sentence ends after a run of .!? followed by whitespace. The lookbehind lets a match
# start only at the first mark of a run, so no position is scanned twice (a pattern that
# starts with ``[^.!?]*`` retried every start of a long word: quadratic).
_BOUNDARY = re.compile(r"(?<![.!?])[.!?]+\s+")


def sentences(text: str) -> list[str]:
    """``text`` cut after each ``[.!?]+`` followed by whitespace (kept with its sentence).

    The pieces join back to ``text`` exactly; linear time."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        out.append(text[start:m.end()])
        start = m.end()
    if start < len(text):
        out.append(text[start:])
    return out


def _node_id(i: int, doc: BaseNode) -> str:
    return f"{doc.id_}:{i}"


@functools.lru_cache(maxsize=4)
def splitter(chunk_tokens: int, chunk_overlap: int) -> SentenceSplitter:
    """The one splitter configuration for a chunk size (stateless between calls)."""
    return SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=chunk_overlap, chunking_tokenizer_fn=sentences,
                            id_func=_node_id)


def split_pages(sha256: str, pages: list[str], meta: dict[str, Any], chunk_tokens: int,
                chunk_overlap: int) -> list[BaseNode]:
    """Nodes for the pages that have text (none: the content has no text)."""
    docs = [
        Document(text=text, id_=f"{sha256}:p{n}", metadata={**meta, "sha256": sha256, "page": n},
                 excluded_embed_metadata_keys=META, excluded_llm_metadata_keys=META)
        for n, text in enumerate(pages, start=1) if text.strip()
    ]
    nodes: list[BaseNode] = splitter(chunk_tokens, chunk_overlap).get_nodes_from_documents(docs)
    return nodes
