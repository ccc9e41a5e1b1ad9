"""ImportService: stored PDFs into a LlamaIndex index persisted under the data directory.

Importing this package makes LlamaIndex offline before anything imports it: tiktoken
reads the BPE files that ``llama_index.core`` ships, the Hugging Face libraries never ask
the hub. ``extract`` pulls the text of each page, ``index`` holds the nodes (SQLite
FTS5, optional vectors), ``service`` runs the durable queue on a bounded worker pool.
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
