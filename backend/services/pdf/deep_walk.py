"""Walks every object of an opened PDF and reports active content by kind.

Objects are visited one by one from ``pdf.objects`` (every object in the cross-reference
table, including those inside object streams), and within each object only its *direct*
sub-dictionaries and arrays are followed, with an explicit stack: indirect references
are not followed (their targets are visited on their own), so reference cycles and deep
reference chains cost nothing, and nesting cannot overflow the Python stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

import pikepdf

from backend.services.pdf.decoded import RawPieces, filter_names, head_bytes
from backend.services.pdf.findings import (
    looks_executable_content, looks_executable_mime, looks_executable_name, printable,
)
from backend.services.pdf.judge import ACTION_KINDS, Judge

_Container = pikepdf.Dictionary | pikepdf.Array | pikepdf.Stream
_MEDIA: Final = frozenset({"/Screen", "/Movie", "/Sound"})


def _name(value: object) -> str:
    return str(value) if isinstance(value, pikepdf.Name) else ""


def _text(value: object, limit: int = 200) -> str:
    if isinstance(value, pikepdf.String):
        return printable(str(value).strip(), limit)
    if isinstance(value, pikepdf.Stream):
        return printable(head_bytes(value, limit).decode("latin-1").strip(), limit) or "(stream)"
    return ""


class DeepWalk:
    """Collects findings (source ``"deep"``), URIs, the number of object streams and the
    largest decoded stream. ``size_of(stream)`` measures a stream (and may raise to
    refuse the file); ``on_error(message)`` is told about objects that cannot be read."""

    def __init__(self, per_kind_cap: int, size_of: Callable[[pikepdf.Stream], int],
                 on_error: Callable[[str], None], raw_pieces: RawPieces | None = None) -> None:
        self.log = Judge(per_kind_cap)
        self._raw_pieces = raw_pieces
        self.object_streams = 0
        self.largest_stream = 0
        self._size_of = size_of
        self._on_error = on_error

    def add(self, kind: str, detail: str) -> None:
        self.log.add(kind, detail, None, "deep")

    def walk(self, objects: Iterable[object]) -> None:
        """Visit every object of ``objects`` (``pdf.objects``)."""
        for obj in objects:
            if isinstance(obj, (pikepdf.Dictionary, pikepdf.Array, pikepdf.Stream)):
                try:
                    self._visit(obj)
                except pikepdf.PdfError as exc:
                    self._on_error(f"object {obj.objgen}: {exc}")

    def _visit(self, root: _Container) -> None:
        num = root.objgen[0]
        stack: list[tuple[_Container, str]] = [(root, "")]
        while stack:
            obj, key = stack.pop()
            children: Iterable[tuple[str, object]]
            if isinstance(obj, pikepdf.Stream):
                self._stream(obj, num)
                self._dict(obj.stream_dict, key, num)
                children = obj.stream_dict.items()
            elif isinstance(obj, pikepdf.Dictionary):
                self._dict(obj, key, num)
                children = obj.items()
            else:
                children = ((key, v) for v in obj)
            for k, v in children:
                if isinstance(v, (pikepdf.Dictionary, pikepdf.Array)) and not v.is_indirect:
                    stack.append((v, k))

    def _stream(self, stream: pikepdf.Stream, num: int) -> None:
        self.largest_stream = max(self.largest_stream, self._size_of(stream))
        d = stream.stream_dict
        if "/JBIG2Decode" in filter_names(stream):
            self.add("jbig2", f"JBIG2-compressed image (object {num})")
        typ = _name(d.get("/Type"))
        if typ == "/ObjStm":
            self.object_streams += 1
        elif typ == "/EmbeddedFile":
            mime = _name(d.get("/Subtype"))[1:]
            self.add("embedded_file", f"embedded file stream (object {num})"
                     + (f" of type {printable(mime, 80)}" if mime else ""))
            if mime and looks_executable_mime(mime):
                self.add("embedded_executable", f"embedded file of type {printable(mime, 80)} "
                         f"(object {num})")
            head = head_bytes(stream, 8, self._raw_pieces)
            if looks_executable_content(head):
                self.add("embedded_executable", f"embedded file content is an executable "
                         f"({printable(head[:4])}...) (object {num})")

    def _dict(self, d: pikepdf.Dictionary, key: str, num: int) -> None:
        keys = set(d.keys())
        where = f" (object {num}{', under ' + key if key else ''})"
        action = _name(d.get("/S")) if "/S" in keys else ""
        kind = ACTION_KINDS.get(action, "")
        if kind == "javascript" or "/JS" in keys:
            self.add("javascript", f"JavaScript{where}: {_text(d.get('/JS'), 100)}")
        elif kind == "uri":
            uri = _text(d.get("/URI"), 300)
            if uri and uri not in self.log.uris and len(self.log.uris) < 100:
                self.log.uris.append(uri)
            self.add("uri", f"link to {uri}" if uri else f"URI action{where}")
        elif kind:
            target = d.get("/F")
            label = _text(target.get("/F") if isinstance(target, pikepdf.Dictionary) else target)
            self.add(kind, f"{action} action{where}" + (f" -> {label}" if label else ""))
        if "/OpenAction" in keys:
            oa = d.get("/OpenAction")
            opened = _name(oa.get("/S")) if isinstance(oa, pikepdf.Dictionary) else ""
            if opened and opened != "/GoTo":
                self.add("open_action", f"OpenAction runs a {opened} action")
        if "/AA" in keys and isinstance(aa := d.get("/AA"), pikepdf.Dictionary):
            events = [f"{k} {_name(v.get('/S')) if isinstance(v, pikepdf.Dictionary) else '?'}"
                      for k, v in aa.items()]
            self.add("additional_actions", f"additional actions{where}: {', '.join(events)}")
        if "/Names" in keys and isinstance(names := d.get("/Names"), pikepdf.Dictionary) \
                and "/JavaScript" in names.keys():
            self.add("javascript", "document-level JavaScript (/Names /JavaScript)")
        if "/AcroForm" in keys:
            self.add("acroform", "interactive form (/AcroForm)")
        if "/XFA" in keys:
            self.add("xfa", f"XFA form (/XFA){where}")
        if "/EF" in keys:
            self._filespec(d, where)
        sub = _name(d.get("/Subtype")) if "/Subtype" in keys else ""
        if sub == "/FileAttachment":
            self.add("embedded_file", f"file attachment annotation{where}")
        if sub == "/RichMedia" or "/RichMediaContent" in keys:
            self.add("rich_media", f"RichMedia content{where}")
        if sub in _MEDIA:
            self.add("multimedia", f"{sub[1:]} annotation{where}")

    def _filespec(self, d: pikepdf.Dictionary, where: str) -> None:
        names = [str(v) for k in ("/UF", "/F")
                 if isinstance(v := d.get(k), pikepdf.String)]
        risky = [n for n in names if looks_executable_name(n)]
        if risky:
            self.add("embedded_executable", f"attached file {printable(risky[0], 120)!r} "
                     f"looks executable{where}")
        else:
            label = f" {printable(names[0], 120)!r}" if names else ""
            self.add("embedded_file", f"attached file{label}{where}")
