"""The previous version's index, moved into the store once, on the first start after an upgrade.

The previous ``DocumentIndex`` kept its nodes in a LlamaIndex ``StorageContext``
persisted whole in ``<data_dir>/index`` (written to ``index.tmp`` and swapped in, so a
crash could leave the last good copy as ``index.old``), with a ``VectorStoreIndex`` over
the same nodes when embeddings were on. :func:`migrate` reads that directory (``index``,
else ``index.old``, the old loader's order), puts every content's nodes, and vectors
when it has them, into the store, and then renames the directories to
``index.migrated`` / ``index.old.migrated``: nothing is deleted, and the next start finds
nothing to migrate. The nodes keep their ids, text and metadata, so no PDF is read again.

Interrupted (a crash before the rename), it simply runs again at the next start: ``put``
replaces a content's nodes, so a content moved twice is there once. Reading the old
directory takes the memory the old version took at every start (it held it all); this
happens once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backend import importer as _offline  # noqa: F401  (environment before llama_index)

from llama_index.core import StorageContext
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores import SimpleVectorStore

from backend.importer.nodes import to_stored
from backend.storage.text_index import TextIndexStore

log = logging.getLogger(__name__)

MIGRATED = ".migrated"


def legacy_source(legacy: Path) -> Path | None:
    """The directory the old loader would have opened, if any."""
    old = legacy.with_name(legacy.name + ".old")
    return legacy if legacy.is_dir() else old if old.is_dir() else None


def migrate(legacy: Path, store: TextIndexStore) -> int:
    """Move the nodes (and vectors) of the old index at ``legacy`` into ``store``; how
    many nodes moved (0: nothing to migrate)."""
    source = legacy_source(legacy)
    if source is None:
        return 0
    log.info("document index: moving the previous version's index (%s) into the new store", source)
    storage = StorageContext.from_defaults(persist_dir=str(source))
    by_sha: dict[str, list[BaseNode]] = {}
    for node in storage.docstore.docs.values():
        by_sha.setdefault(str(node.metadata["sha256"]), []).append(node)
    embeddings: dict[str, list[float]] = {}
    vectors = storage.vector_stores.get("default")
    if isinstance(vectors, SimpleVectorStore):
        embeddings = vectors.data.embedding_dict
    moved = 0
    for sha256, nodes in by_sha.items():
        store.put(sha256, [to_stored(sha256, n) for n in nodes])
        found = [(n.node_id, embeddings[n.node_id]) for n in nodes if n.node_id in embeddings]
        if found:
            store.put_vectors(sha256, found)
        moved += len(nodes)
    for directory in (legacy, legacy.with_name(legacy.name + ".old")):
        if directory.is_dir():
            os.replace(directory, _free_name(directory))
    log.info("document index: %d nodes of %d contents moved; the old files are kept in %s", moved, len(by_sha),
             legacy.name + MIGRATED)
    return moved


def _free_name(directory: Path) -> Path:
    target = directory.with_name(directory.name + MIGRATED)
    n = 1
    while target.exists():
        n += 1
        target = directory.with_name(f"{directory.name}{MIGRATED}.{n}")
    return target
