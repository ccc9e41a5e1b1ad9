"""The vectorised name search in stream data finds what ``finditer`` finds, less the
matches that can never be counted (no vocabulary name begins with their letters)."""

from __future__ import annotations

import random

import pytest

from backend.services.pdf.data_names import VECTOR_MIN, stream_name_matches
from backend.services.pdf.syntax import KEYWORD_NAMES, STREAM_NAMES_RE, name_token, pdfid_word

TRICKY = [b"/JS", b"/JavaScript", b"/J#61vaScript", b"/JSX", b"/AA", b"/#41A", b"/URI/URI", b"//JS",
          b"/Launch#20", b"/XFA", b"/OpenAction(", b"/E", b"/#", b"/J#6", b"/Page", b"/Pages",
          b"/Jx#41", b"/JS_x#41", b"/J_S#41", b"/Ja#76aScript", b"/A#41", b"/Ex#20"]


def _spans(buf: bytes, start: int, end: int) -> list[tuple[int, int]]:
    return [m.span() for m in stream_name_matches(buf, start, end)]


def _reference(buf: bytes, start: int, end: int) -> list[tuple[int, int]]:
    return [m.span() for m in STREAM_NAMES_RE.finditer(buf, start, end)]


def _counted(buf: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, str]]:
    """Where a vocabulary name is counted, and which (as the scanner reads a match)."""
    out = []
    for s, e in spans:
        word = pdfid_word(name_token(buf, s))[0] if b"#" in buf[s:e] else buf[s:e].decode("latin-1")
        if word in KEYWORD_NAMES:
            out.append((s, word))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_same_matches_as_finditer_on_binary_data_with_names(seed: int) -> None:
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(3 * VECTOR_MIN + rng.randrange(1000)))
    names = TRICKY + [n.encode() for n in sorted(KEYWORD_NAMES)]
    for _ in range(300):
        name = rng.choice(names)
        at = rng.randrange(len(data) - len(name))
        data[at:at + len(name)] = name
    data[:3] = b"/JS"  # a match at the very start
    data[-4:] = b"/AA/"  # and one cut by the end
    buf = bytes(data)
    for start, end in [(0, len(buf)), (1, len(buf) - 1), (5, VECTOR_MIN + 7), (100, 2 * VECTOR_MIN + 333)]:
        got, ref = _spans(buf, start, end), _reference(buf, start, end)
        assert set(got) <= set(ref)
        assert _counted(buf, got) == _counted(buf, ref)
    assert len(_counted(buf, _spans(buf, 0, len(buf)))) > 100


def test_small_spans_take_the_plain_path_with_the_same_result() -> None:
    buf = b"xx/JavaScript yy /AA " * 10
    assert _spans(buf, 0, len(buf)) == _reference(buf, 0, len(buf)) != []


@pytest.mark.parametrize("tail", [b"/J", b"/#", b"/x", b"x/", b"/JS", b"/#4", b"//A", b"/AA"])
@pytest.mark.parametrize("pad", range(8))
def test_names_cut_off_by_the_end_of_any_length(tail: bytes, pad: int) -> None:
    """Whatever the span's length modulo a word, a name at its very end is not lost."""
    rng = random.Random(pad)
    buf = rng.randbytes(VECTOR_MIN + pad) + tail
    got, ref = _spans(buf, 0, len(buf)), _reference(buf, 0, len(buf))
    assert set(got) <= set(ref)
    assert _counted(buf, got) == _counted(buf, ref)
