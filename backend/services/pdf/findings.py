"""What the PDF scanners report: :class:`Finding`, the finding kinds, executable checks.

Shared by the streaming scanner (:mod:`backend.services.pdf.scan`), the deep inspection
on completion (:mod:`backend.services.pdf.inspect`) and the verdict
(:mod:`backend.services.pdf.policy`). Pure data and pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

#: Every kind a scanner may report, with what it means. Kinds are stable snake_case
#: identifiers: settings and API clients refer to them.
FINDING_KINDS: dict[str, str] = {
    "javascript": "JavaScript code or a JavaScript action",
    "open_action": "an action run when the document opens (other than going to a page)",
    "additional_actions": "actions triggered by viewer events (/AA)",
    "launch": "an action that launches an application or a file (/Launch)",
    "embedded_file": "an embedded file or file attachment",
    "embedded_executable": "an embedded file that looks executable (name, MIME type or content)",
    "rich_media": "RichMedia (Flash) content or action",
    "multimedia": "media playback: Screen, Sound or Movie annotations, Rendition actions",
    "xfa": "an XFA form",
    "acroform": "an interactive form (AcroForm)",
    "submit_form": "a form that submits data (/SubmitForm)",
    "goto_remote": "a jump into another file (/GoToR, /GoToE)",
    "import_data": "imports form data from a file (/ImportData)",
    "uri": "a link to a URI",
    "jbig2": "a JBIG2-compressed image (a history of decoder exploits)",
    "object_stream": "an object stream whose content the streaming scan could not inspect",
    "encrypted": "the document is encrypted",
    "password_protected": "the document needs a password, so its content cannot be inspected",
    "obfuscated_name": "a security-relevant PDF name written with #xx escapes",
    "trailing_data": "data after the last %%EOF beyond a little whitespace",
    "missing_eof": "no %%EOF marker outside stream data",
    "header_offset": "bytes before the %PDF- header",
    "damaged": "the file is damaged; qpdf repaired it when reading it",
    "huge_image": "an image that declares a huge unpacked size (width x height x colours)",
    "decompression_bomb": "a stream that decodes past the size limits (a limit: always refused)",
    "resource_limit": "more pages or objects than the server's limits (a limit: always refused)",
}


@dataclass(frozen=True)
class Finding:
    """One security-relevant observation.

    ``kind`` is one of :data:`FINDING_KINDS`; ``detail`` is for people; ``offset`` is the
    byte offset in the file where the streaming scan saw it (``None`` for deep findings);
    ``source`` is ``"stream"`` (raw bytes), ``"inflated"`` (inside an inflated object
    stream) or ``"deep"`` (the pikepdf inspection on completion).
    """

    kind: str
    detail: str
    offset: int | None = None
    source: str = "stream"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        offset = data.get("offset")
        return cls(str(data["kind"]), str(data.get("detail", "")),
                   None if offset is None else int(offset), str(data.get("source", "stream")))


#: File name extensions treated as executable or script content.
EXECUTABLE_EXTENSIONS: frozenset[str] = frozenset({
    "exe", "com", "bat", "cmd", "scr", "pif", "msi", "msp", "msc", "dll", "cpl", "sys",
    "js", "jse", "vbs", "vbe", "wsf", "wsh", "hta", "ps1", "psm1", "psd1", "lnk", "reg",
    "sh", "bash", "zsh", "csh", "ksh", "command", "run", "elf", "so", "dylib",
    "jar", "class", "apk", "app", "dmg", "pkg", "deb", "rpm", "appimage", "py", "pyw",
    "vb", "scf", "gadget", "application", "xbap",
})

#: MIME types (lowercase) treated as executable or script content.
EXECUTABLE_MIME_TYPES: frozenset[str] = frozenset({
    "application/x-msdownload", "application/x-msdos-program", "application/x-dosexec",
    "application/vnd.microsoft.portable-executable", "application/x-ms-installer",
    "application/x-msi", "application/x-ms-shortcut", "application/x-executable",
    "application/x-elf", "application/x-mach-binary", "application/x-sharedlib",
    "application/x-sh", "application/x-shellscript", "text/x-shellscript", "application/x-csh",
    "application/x-bat", "application/bat", "application/x-msbatch",
    "application/javascript", "application/x-javascript", "text/javascript",
    "application/ecmascript", "text/vbscript", "application/x-vbscript", "application/hta",
    "application/java-archive", "application/x-java-archive", "application/x-java-applet",
    "application/vnd.android.package-archive", "application/x-apple-diskimage",
    "application/x-powershell", "application/x-python-code", "text/x-python",
})

_MAGIC: tuple[bytes, ...] = (
    b"MZ",  # DOS/Windows PE
    b"\x7fELF",
    b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",  # Mach-O, Java class
    b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
    b"#!",  # script with an interpreter line
)

_EXT_RE = re.compile(r"\.([A-Za-z0-9]{1,12})[\s.\x00]*$")


def looks_executable_name(name: str) -> bool:
    """True if a file name ends with an executable or script extension (``a.pdf.exe``)."""
    m = _EXT_RE.search(name.strip().strip("\x00"))
    return m is not None and m.group(1).lower() in EXECUTABLE_EXTENSIONS


def looks_executable_mime(mime: str) -> bool:
    """True for MIME types of executables and scripts (``application/x-msdownload``)."""
    return mime.strip().lower().split(";")[0].strip() in EXECUTABLE_MIME_TYPES


def looks_executable_content(head: bytes) -> bool:
    """True if the first bytes of a file carry an executable or script signature."""
    return any(head.startswith(magic) for magic in _MAGIC)


def printable(data: bytes | str, limit: int = 120) -> str:
    """A short, single-line, printable rendering of untrusted bytes for ``detail``."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    out = "".join(c if " " <= c <= "~" else "\\x%02x" % ord(c) for c in text[:limit])
    return out + ("..." if len(text) > limit else "")
