"""Imported first by the reader's child process (:mod:`backend.importer.reader`):
PDFium, pikepdf, the splitter and the tokenizer's tables, loaded before the child takes
its memory baseline. Loaded later, the tokenizer's ~40 MiB would count as growth, and the
sandbox would retire the child after every split."""

from __future__ import annotations

import pikepdf  # noqa: F401
import pypdfium2  # noqa: F401
from llama_index.core.utils import get_tokenizer

from backend.importer import extract, split  # noqa: F401

get_tokenizer()
