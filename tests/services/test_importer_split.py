"""Sentences and nodes (:mod:`backend.importer.split`): linear on hostile text,
the same sentences and nodes as before on ordinary text."""

from __future__ import annotations

import re
import time
from pathlib import Path

from backend.importer.extract import extract_pages
from backend.importer.split import sentences, split_pages
from tests.textpdf import make_text_pdf, page_lines

# The pattern the splitter used until it was found quadratic: the reference for ordinary text.
_OLD = re.compile(r"[^.!?]*(?:[.!?]+(?:\s+|$)|$)")

_ORDINARY = [
    "Hello there. How are you? I am fine! Thanks.",
    "Wait... what?! Really?? Yes.\n\nA new paragraph starts here. It ends\nwith a line break.\n",
    "  Leading spaces. Trailing spaces.   ",
    "No punctuation at all",
    "One sentence. And a tail without a stop",
    "Tabs\tand. newlines.\nmixed!\r\nend",
    "",
]


def _old(text: str) -> list[str]:
    return [m.group(0) for m in _OLD.finditer(text) if m.group(0)]


def test_same_sentences_as_before_on_ordinary_text() -> None:
    texts = _ORDINARY + [" ".join(page_lines(seed, p)) for seed in range(3) for p in range(4)]
    texts += ["\n".join(page_lines(7, 1, lines=40))]
    for text in texts:
        assert sentences(text) == _old(text), text


def test_sentences_keep_every_character() -> None:
    """The old pattern dropped text before a mark not followed by a space ("3.14")."""
    for text in ["Pi is 3.14 exactly. Next one.", "See e.g. this.Then that", "a" * 50 + ".b", "!!!x", ". . ."]:
        assert "".join(sentences(text)) == text, text
    assert sentences("Pi is 3.14 exactly. Next one.") == ["Pi is 3.14 exactly. ", "Next one."]


def test_sentences_are_linear_on_hostile_text() -> None:
    """One long word then ``.b`` took ~4 s at 16,000 letters (quadratic backtracking).
    20,000 letters first: a quadratic pattern fails there in seconds, not minutes."""
    for text in ("a" * 20_000 + ".b", "a" * 100_000 + ".b", "!" * 100_000 + "b", ". " * 50_000 + "b", "a." * 50_000):
        start = time.perf_counter()
        pieces = sentences(text)
        took = time.perf_counter() - start
        assert took < 0.1, (text[:8], took)
        assert "".join(pieces) == text


def test_split_pages_nodes_keep_their_ids_and_metadata(tmp_path: Path) -> None:
    make_text_pdf(tmp_path / "t.pdf", 3, seed=4, lines=60)
    pages = extract_pages(tmp_path / "t.pdf")
    nodes = split_pages("c" * 64, pages, {"document_id": 9, "title": "T", "filename": "t.pdf"}, 128, 16)
    assert len(nodes) > 3
    assert [n.node_id for n in nodes if n.metadata["page"] == 1][:2] == [f"{'c' * 64}:p1:0", f"{'c' * 64}:p1:1"]
    assert all(n.metadata["sha256"] == "c" * 64 and n.metadata["document_id"] == 9 for n in nodes)
    assert split_pages("c" * 64, ["", "  "], {}, 128, 16) == []
