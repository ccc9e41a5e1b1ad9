"""PDF lexical rules for the streaming scanner: the name regexes and name decoding.

Two compiled regexes do the per-byte work. Both start with the literal ``/`` so that
``re`` runs its fast literal-prefix search and only stops at slashes; everything else
happens on the few matches, in Python:

* :data:`STREAM_NAMES_RE` runs over stream bodies (binary data: the bulk of big PDFs) and
  finds the pdfid vocabulary names, plus candidates for ``#xx``-escaped names.
* :data:`OBJECT_NAMES_RE` runs over object syntax (dictionaries, the trailer, inflated
  object streams) and adds the context names. Structural words (``obj``, ``stream``,
  ``%%EOF``...) are counted apart (:func:`~backend.services.pdf.structure.count_words`):
  a regex alternation that does not start with one literal byte is slow in ``re``.

Names are counted with pdfid's notion of a word (an alphanumeric run after ``/`` with
``#xx`` decoded), so counts compare with pdfid; findings use PDF's notion of a name (a
token that ends at a delimiter), so ``/JSX`` is not ``/JS``.

Companions: :mod:`backend.services.pdf.values` reads the value after a name,
:mod:`backend.services.pdf.structure` knows objects, words, stream dictionaries and cuts
the input into windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

#: What the scanner reads: ``bytes``, or the prefix worker's reused ``bytearray`` block,
#: scanned in place (so nothing may keep a slice of it without copying it to ``bytes``).
Buf: TypeAlias = bytes | bytearray

WHITESPACE: Final = b"\x00\t\n\x0c\r "
DELIMITERS: Final = frozenset(WHITESPACE + b"()<>[]{}/%")
_ALNUM: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
HEX_DIGITS: Final = frozenset(b"0123456789ABCDEFabcdef")
_D: Final = r"\x00\t\n\x0c\r ()<>\[\]{}/%"  # regex class body: the PDF delimiters
#: The PDF delimiters as the body of a bytes regex character class.
DELIMITER_CLASS: Final = _D.encode()

#: Lookahead and lookback (bytes) that ``pdf_structure.Windowed`` guarantees around each position.
CONTEXT: Final = 16384
#: How far value peeking and context judgement look (bytes); at most :data:`CONTEXT`.
LOOK: Final = 4096

#: pdfid 0.2.7's keywords, then the action names the issue adds. Order is pdfid's.
PDFID_KEYWORDS: Final[tuple[str, ...]] = (
    "obj", "endobj", "stream", "endstream", "xref", "trailer", "startxref",
    "/Page", "/Encrypt", "/ObjStm", "/JS", "/JavaScript", "/AA", "/OpenAction", "/AcroForm",
    "/JBIG2Decode", "/RichMedia", "/Launch", "/EmbeddedFile", "/XFA",
    "/URI", "/SubmitForm", "/GoToR", "/GoToE", "/ImportData",
)
KEYWORD_NAMES: Final = frozenset(k for k in PDFID_KEYWORDS if k.startswith("/"))
#: Names that are not counted but give context to findings in object syntax.
CONTEXT_NAMES: Final = frozenset({
    "/EF", "/EmbeddedFiles", "/Rendition", "/RichMediaExecute", "/Screen", "/Sound", "/Movie",
})


def _trie(words: list[str]) -> str:
    """A regex alternation of ``words`` as a trie of literals (fast ``re`` branches)."""
    node: dict[str, list[str]] = {}
    ends = False
    for w in words:
        if w:
            node.setdefault(w[0], []).append(w[1:])
        else:
            ends = True
    alts = [re.escape(c) + _trie(rest) for c, rest in sorted(node.items())]
    if not alts:
        return ""
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return "(?:" + body + ")?" if ends else body


_END: Final = r"(?![A-Za-z0-9]|#[0-9A-Fa-f]{2})"  # where pdfid's word ends


def _data_names_pattern(names: frozenset[str]) -> str:
    """For binary data: ``/[first letters#]`` then a lookbehind-keyed trie, so that most
    slashes fail one character-set test; or a name with a ``#xx`` escape."""
    by_first: dict[str, list[str]] = {}
    for n in names:
        by_first.setdefault(n[1], []).append(n[2:])
    firsts = "".join(sorted(by_first))
    keyed = "|".join(f"(?<={re.escape(c)}){_trie(rest)}" for c, rest in sorted(by_first.items()))
    hexed = r"(?<=#)[0-9A-Fa-f]{2}|[^" + _D + r"#]{0,40}+#[0-9A-Fa-f]{2}"
    return f"/[{firsts}#](?:(?:{keyed}){_END}|{hexed})"


def _syntax_names_pattern(names: frozenset[str]) -> str:
    """For object syntax (text, mostly names): ``/`` then a plain literal trie, or a name
    with a ``#xx`` escape."""
    firsts = "".join(sorted({n[1] for n in names}))
    return ("/(?:" + _trie(sorted(n[1:] for n in names)) + _END + r"|#[0-9A-Fa-f]{2}|["
            + firsts + r"][^" + _D + r"#]{0,40}+#[0-9A-Fa-f]{2})")


#: Judged names: vocabulary and context names except the merely structural ones.
JUDGED_NAMES: Final = (KEYWORD_NAMES | CONTEXT_NAMES) - {"/Page", "/ObjStm"}
STREAM_NAMES_RE: Final = re.compile(_data_names_pattern(KEYWORD_NAMES).encode())
OBJECT_NAMES_RE: Final = re.compile(_syntax_names_pattern(KEYWORD_NAMES | CONTEXT_NAMES).encode())
ENDSTREAM: Final = b"endstream"
NAME_TOKEN_RE: Final = re.compile(rb"/[^" + DELIMITER_CLASS + rb"]{0,127}")
_HEX_ESCAPE_RE: Final = re.compile(rb"#([0-9A-Fa-f]{2})")


def is_word_at(buf: Buf, start: int, end: int) -> bool:
    """pdfid's word test for a structural keyword at ``buf[start:end]``: not glued to
    letters or digits on either side, and not a name (no ``/`` right before)."""
    if start > 0 and (buf[start - 1] in _ALNUM or buf[start - 1] == 0x2F):
        return False
    return end >= len(buf) or buf[end] not in _ALNUM


def name_token(buf: Buf, start: int) -> bytes:
    """The whole name token starting with the ``/`` at ``start`` (at most 128 bytes)."""
    m = NAME_TOKEN_RE.match(buf, start)
    return m.group() if m else b"/"


def pdfid_word(token: bytes) -> tuple[str, bool]:
    """pdfid's reading of a name token: the alphanumeric run after ``/`` with ``#xx``
    escapes decoded, and whether an escape was used (``/J#61vaScript`` is
    ``("/JavaScript", True)``; ``/JS_x`` is ``("/JS", False)``)."""
    out = ["/"]
    hexed = False
    i, n = 1, len(token)
    while i < n:
        c = token[i]
        if c in _ALNUM:
            out.append(chr(c))
            i += 1
        elif c == 0x23 and i + 2 < n and token[i + 1] in HEX_DIGITS and token[i + 2] in HEX_DIGITS:
            out.append(chr(int(token[i + 1:i + 3], 16)))
            hexed = True
            i += 3
        else:
            break
    return "".join(out), hexed


def decode_name(token: bytes) -> str:
    """A PDF name token with every ``#xx`` escape decoded (latin-1)."""
    return _HEX_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), token).decode("latin-1")


@dataclass(frozen=True)
class NameHit:
    """A name token matched by one of the regexes.

    ``word`` is pdfid's reading (what gets counted) and ``hexed`` whether it used
    ``#xx`` escapes; ``name`` is the decoded PDF name when the token is complete (ends
    at a delimiter or at the end of the data), else ``None``; ``raw`` the token bytes;
    ``end`` the index after the token in the buffer.
    """

    word: str
    hexed: bool
    name: str | None
    raw: bytes
    end: int


def count_keyword(keywords: dict[str, int], word: str, hexed: bool) -> None:
    """Count one vocabulary name as pdfid does: the name, and ``<name>_hexcode_count``
    when it was written with ``#xx`` escapes."""
    keywords[word] = keywords.get(word, 0) + 1
    if hexed:
        key = word + "_hexcode_count"
        keywords[key] = keywords.get(key, 0) + 1


def read_name(buf: Buf, start: int, end: int, final: bool) -> NameHit:
    """Classify the name matched at ``buf[start:end]`` (see :class:`NameHit`)."""
    raw = bytes(buf[start:end])
    if b"#" in raw:
        raw = name_token(buf, start)
        word, hexed = pdfid_word(raw)
        stop = start + len(raw)
        complete = len(raw) < 128 and (stop < len(buf) or final)
        return NameHit(word, hexed, decode_name(raw) if complete else None, raw, stop)
    word = raw.decode("latin-1")
    if end < len(buf):
        complete = buf[end] in DELIMITERS
    else:
        complete = final
    return NameHit(word, False, word if complete else None, raw, end)
