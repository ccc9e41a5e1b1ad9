"""One rule for a client's file name before it is used anywhere a name could matter.

The server never names a file after a client (partial files are named by session id,
documents by SHA-256), but the name is stored, listed, put in ``Content-Disposition``
and saved by browsers and clients under it. :func:`sanitize_filename` makes it a plain
name that is safe on every common file system: the last path component only, no control
or format characters (``\\x00``, newlines, the right-to-left override), none of
``<>:"/\\|?*``, no leading or trailing dots and spaces, no Windows device name (``CON``,
``NUL``, ``COM1``... with any extension), at most 255 bytes of UTF-8 with the extension
kept. What the client sent is kept as metadata (``original_filename``) only.
"""

from __future__ import annotations

import re
import unicodedata

MAX_BYTES = 255
FALLBACK = "document.pdf"
_FORBIDDEN = re.compile(r'[<>:"|?*]')
_SPACES = re.compile(r"\s+")
RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]}
)


def sanitize_filename(name: str, fallback: str = FALLBACK) -> str:
    """A plain, portable file name for ``name`` (``fallback`` when nothing is left)."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")  # Cc Cf Cs Co Cn
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _SPACES.sub(" ", _FORBIDDEN.sub("_", name)).strip(" .")
    if not name:
        return fallback
    if name.split(".", 1)[0].rstrip(" ").upper() in RESERVED:
        name = "_" + name
    return _truncate(name, MAX_BYTES)


def _truncate(name: str, limit: int) -> str:
    """Cut the stem (never inside a character) so the whole name fits ``limit`` bytes."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode("utf-8")) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    room = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore").rstrip(" .")
    return (cut or "document") + suffix
