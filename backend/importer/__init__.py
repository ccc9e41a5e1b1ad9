"""The importer: its own service, ``python -m backend.importer`` (:mod:`.__main__`).

It takes documents off the durable import queue (:mod:`backend.storage.import_queue`)
and imports each into the document index: ``extract`` reads the pages' text (PDFium)
and ``split`` cuts it into LlamaIndex nodes, both in a sandboxed child (``reader``);
``index`` stores the nodes (SQLite FTS5 by default, optional vectors from
``embeddings``) and ``retriever`` is the LlamaIndex retriever over them; ``legacy``
moves the previous version's persisted index in once. ``worker`` runs the queue: leased
claims, so any number of importers share one queue, and an event per change of state,
which the upload servers turn into ``upload_status`` on the WebSocket.

The upload server never imports this package's LlamaIndex or PDFium modules: it queues
jobs and searches the text index directly (:mod:`backend.services.importer`).

Importing this package makes LlamaIndex offline before anything imports it: tiktoken
reads the BPE files that ``llama_index.core`` ships, the Hugging Face libraries never ask
the hub.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def _offline() -> None:
    spec = importlib.util.find_spec("llama_index.core")
    if spec is not None and spec.submodule_search_locations:
        cache = Path(next(iter(spec.submodule_search_locations))) / "_static" / "tiktoken_cache"
        if cache.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


_offline()
