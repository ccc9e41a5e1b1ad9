"""Turns names seen in object syntax into findings, judging them by their context.

The streaming scanner calls :meth:`Judge.on_name` for every security-relevant name it
meets *in object syntax* (dictionaries outside stream bodies, and inflated object
streams). Names inside stream bodies are only counted, never judged: an image whose
pixels happen to spell ``/JavaScript`` is not JavaScript.

Judgement uses bounded look-around (:data:`~backend.services.pdf.syntax.LOOK` bytes):
``/OpenAction`` counts only when its action is not a plain ``/GoTo`` (an inline action
dictionary, or an indirect one resolved through the ``/S`` types recorded per object);
``/URI`` reports the link; ``/EF`` and ``/EmbeddedFiles`` report executable-looking
attachment names.
"""

from __future__ import annotations

import re
from typing import Final

from backend.services.pdf.findings import Finding, looks_executable_name, printable
from backend.services.pdf.syntax import LOOK, Buf, decode_name
from backend.services.pdf.values import peek_value, read_string, text_of

#: Action types (``/S`` values) by finding kind; types not listed (GoTo, Named, ...) are
#: harmless navigation.
ACTION_KINDS: Final[dict[str, str]] = {
    "/JavaScript": "javascript", "/Launch": "launch", "/SubmitForm": "submit_form",
    "/ImportData": "import_data", "/GoToR": "goto_remote", "/GoToE": "goto_remote",
    "/URI": "uri", "/RichMediaExecute": "rich_media", "/Rendition": "multimedia",
    "/Sound": "multimedia", "/Movie": "multimedia",
}
_PLAIN_KINDS: Final[dict[str, tuple[str, str]]] = {
    "/AA": ("additional_actions", "additional actions (/AA) run on viewer events"),
    "/AcroForm": ("acroform", "interactive form (/AcroForm)"),
    "/XFA": ("xfa", "XFA form (/XFA)"),
    "/JBIG2Decode": ("jbig2", "JBIG2-compressed image (/JBIG2Decode)"),
    "/RichMedia": ("rich_media", "RichMedia content (/RichMedia)"),
    "/EmbeddedFile": ("embedded_file", "embedded file stream (/EmbeddedFile)"),
    "/Screen": ("multimedia", "Screen annotation (media playback)"),
}
_S_BEFORE_RE: Final = re.compile(rb"/(?:S|#53)[\x00\t\n\x0c\r ]*\Z")
_S_VALUE_RE: Final = re.compile(rb"/(?:S|#53)[\x00\t\n\x0c\r ]*(/[^\x00\t\n\x0c\r ()<>\[\]{}/%]+)")
_FILE_KEY_RE: Final = re.compile(rb"/(?:UF|F|#55#46|#46)[\x00\t\n\x0c\r ]*[(<]")
_STRING_START_RE: Final = re.compile(rb"[(<](?!<)")
_MAX_ACTIONS: Final = 10_000
_MAX_URIS: Final = 100


class Judge:
    """Collects findings (capped per kind, exact duplicates dropped), the URIs seen, and
    the action type per object number for resolving indirect ``/OpenAction``."""

    def __init__(self, per_kind_cap: int) -> None:
        self.per_kind_cap = per_kind_cap
        self.findings: list[Finding] = []
        self.fresh: list[Finding] = []  # added since the caller last drained it
        self.kind_counts: dict[str, int] = {}
        self.uris: list[str] = []
        self._seen: set[tuple[str, str, str]] = set()
        self._actions: dict[int, str] = {}
        self._pending_open: dict[int, tuple[int | None, str]] = {}

    def add(self, kind: str, detail: str, offset: int | None, source: str) -> None:
        """Record a finding (kept if under the per-kind cap and not a duplicate)."""
        self.kind_counts[kind] = self.kind_counts.get(kind, 0) + 1
        key = (kind, detail, source)
        if key in self._seen or self.kind_counts[kind] > self.per_kind_cap:
            return
        self._seen.add(key)
        finding = Finding(kind, detail, offset, source)
        self.findings.append(finding)
        self.fresh.append(finding)

    def drain(self) -> list[Finding]:
        """The findings added since the last drain."""
        out, self.fresh = self.fresh, []
        return out

    def record_action(self, obj: int | None, action: str, offset: int | None, source: str) -> None:
        """Object ``obj`` is an action of type ``action`` (``/JavaScript``...)."""
        if obj is None:
            return
        if len(self._actions) < _MAX_ACTIONS:
            self._actions.setdefault(obj, action)
        pending = self._pending_open.pop(obj, None)
        if pending is not None:
            self.add("open_action", f"OpenAction runs a {action} action (object {obj})",
                     pending[0], pending[1])

    def on_name(self, buf: Buf, s: int, e: int, name: str, raw: bytes, hexed: bool,
                offset: int | None, obj: int | None, obj_start: int, source: str) -> None:
        """Judge the name ``name`` (decoded) found at ``buf[s:e]`` in object syntax.

        ``obj`` is the number of the object it is in (if known) and ``obj_start`` the
        index in ``buf`` where that object's text starts (bounds look-back).
        """
        if hexed:
            self.add("obfuscated_name", f"{printable(raw)} is {name} hidden with #xx escapes",
                     offset, source)
        end = min(len(buf), e + LOOK)
        after_s = _S_BEFORE_RE.search(buf, max(0, s - 24), s) is not None
        if name in ACTION_KINDS and after_s:
            self.record_action(obj, name, offset, source)
        if name in _PLAIN_KINDS:
            kind, detail = _PLAIN_KINDS[name]
            self.add(kind, detail, offset, source)
        elif name == "/JS":
            self.add("javascript", self._js_detail(buf, e, end), offset, source)
        elif name == "/JavaScript":
            what = "JavaScript action (/S /JavaScript)" if after_s else \
                "document-level JavaScript (/Names /JavaScript)"
            self.add("javascript", what, offset, source)
        elif name == "/OpenAction":
            self._open_action(buf, e, end, offset, source)
        elif name == "/URI":
            self._uri(buf, e, end, after_s, offset, source)
        elif name in ACTION_KINDS:
            target = self._file_target(buf, e, end)
            label = f"{name} action" if after_s else name
            label += f" -> {target}" if target else ""
            self.add(ACTION_KINDS[name], label, offset, source)
        elif name == "/EF":
            self._attachments(buf, max(obj_start, s - LOOK), end, offset, source, "attached file")
        elif name == "/EmbeddedFiles":
            self._attachments(buf, e, end, offset, source, "embedded files entry",
                              report_plain=False)
        elif name == "/Encrypt":
            v = peek_value(buf, e, end)
            if v is not None and v.kind in ("ref", "dict"):
                self.add("encrypted", "document is encrypted (/Encrypt in the trailer)", offset,
                         source)

    @staticmethod
    def _js_detail(buf: Buf, e: int, end: int) -> str:
        v = peek_value(buf, e, end)
        if v is None:
            return "JavaScript (/JS)"
        if v.kind == "string":
            return "JavaScript (/JS): " + printable(text_of(v.text).strip(), 100)
        if v.kind == "ref":
            return f"JavaScript (/JS) in object {v.ref}"
        return "JavaScript (/JS)"

    def _open_action(self, buf: Buf, e: int, end: int, offset: int | None, source: str) -> None:
        v = peek_value(buf, e, end)
        if v is None or v.kind not in ("ref", "dict"):
            return  # an explicit destination array: go to a page
        if v.kind == "ref" and v.ref is not None:
            action = self._actions.get(v.ref)
            if action is None:
                self._pending_open.setdefault(v.ref, (offset, source))
            else:
                self.add("open_action", f"OpenAction runs a {action} action (object {v.ref})",
                         offset, source)
            return
        close = buf.find(b">>", v.pos + 2, end)
        m = _S_VALUE_RE.search(buf, v.pos, close if close > 0 else end)
        action = decode_name(m.group(1)) if m else ""
        if action and action != "/GoTo":
            self.add("open_action", f"OpenAction runs a {action} action", offset, source)

    def _uri(self, buf: Buf, e: int, end: int, after_s: bool, offset: int | None,
             source: str) -> None:
        if after_s:
            return  # the action type; its /URI entry reports the link
        v = peek_value(buf, e, end)
        if v is None:
            return
        if v.kind == "string":
            uri = printable(text_of(v.text).strip(), 300)
            if len(self.uris) < _MAX_URIS and uri not in self.uris:
                self.uris.append(uri)
            self.add("uri", f"link to {uri}", offset, source)
        elif v.kind == "ref":
            self.add("uri", f"link to a URI in object {v.ref}", offset, source)

    @staticmethod
    def _file_target(buf: Buf, e: int, end: int) -> str:
        """The first file specification string (``/F (...)``) after an action name."""
        for m in _FILE_KEY_RE.finditer(buf, e, min(end, e + 512)):
            raw = read_string(buf, m.end() - 1, end)
            if raw:
                return printable(text_of(raw), 120)
        return ""

    def _attachments(self, buf: Buf, lo: int, hi: int, offset: int | None, source: str,
                     what: str, report_plain: bool = True) -> None:
        names: list[str] = []
        pattern = _FILE_KEY_RE if report_plain else _STRING_START_RE
        for m in pattern.finditer(buf, lo, hi):
            raw = read_string(buf, m.end() - 1, hi)
            if raw:
                names.append(text_of(raw).strip("\x00"))
            if len(names) >= 32:
                break
        risky = [n for n in names if looks_executable_name(n)]
        for n in risky[:4]:
            self.add("embedded_executable", f"{what} {printable(n, 120)!r} looks executable",
                     offset, source)
        if report_plain and not risky:
            label = f"{what} {printable(names[0], 120)!r}" if names else what
            self.add("embedded_file", label, offset, source)
