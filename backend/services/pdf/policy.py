"""Which findings reject an upload, which only flag it: the verdict on scan findings.

A :class:`SecurityPolicy` sorts finding kinds (:data:`FINDING_KINDS`) into *reject*
(the upload is refused: ``SecurityRejected``), *flag* (accepted, marked for people) and
the rest (ignored). It works the same on streaming findings
(:mod:`backend.services.pdf.scan`) and deep ones (:mod:`backend.services.pdf.inspect`).

The server's limits (``decompression_bomb``, ``resource_limit``) always reject: a policy
cannot flag them. Defaults: reject JavaScript, launch actions, XFA forms and executable-looking embedded
files (``embedded_executable``; plain ``embedded_file`` is only flagged), and
``password_protected`` files, whose content cannot be inspected (fail closed); flag every
other kind. A kind the policy does not know (a newer scanner) is flagged, never ignored.
Settings configure it through :meth:`SecurityPolicy.from_lists`
(``STREAMING_SECURITY_REJECT_KINDS`` / ``..._FLAG_KINDS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from backend.services.pdf.findings import FINDING_KINDS, Finding

Verdict = Literal["clean", "flagged", "rejected"]

#: Findings that report a limit of the server, not a feature of the file: always refused.
LIMIT_KINDS: Final = frozenset({"decompression_bomb", "resource_limit"})
DEFAULT_REJECT_KINDS: Final = frozenset({
    "javascript", "launch", "xfa", "embedded_executable", "password_protected",
}) | LIMIT_KINDS


def _default_flags() -> frozenset[str]:
    return frozenset(FINDING_KINDS) - DEFAULT_REJECT_KINDS


@dataclass(frozen=True)
class SecurityPolicy:
    """Finding kinds that reject or flag an upload (see the module doc for defaults)."""

    reject_kinds: frozenset[str] = DEFAULT_REJECT_KINDS
    flag_kinds: frozenset[str] = field(default_factory=_default_flags)

    @classmethod
    def from_lists(cls, reject: Iterable[str] | None = None,
                   flag: Iterable[str] | None = None) -> SecurityPolicy:
        """Build from settings lists. ``None`` means the default; ``flag=None`` means every
        known kind not rejected. Kinds in both lists reject. Unknown kinds (typos) raise
        ``ValueError`` so that a misconfiguration cannot silently disable a rule."""
        rejects = DEFAULT_REJECT_KINDS if reject is None else frozenset(k.strip() for k in reject)
        flags = frozenset(FINDING_KINDS) if flag is None else frozenset(k.strip() for k in flag)
        unknown = sorted((rejects | flags) - set(FINDING_KINDS))
        if unknown:
            raise ValueError(f"unknown finding kinds: {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(FINDING_KINDS))}")
        rejects |= LIMIT_KINDS
        return cls(rejects, flags - rejects)

    def level(self, kind: str) -> Literal["reject", "flag", "ignore"]:
        """What one finding kind does under this policy."""
        if kind in self.reject_kinds:
            return "reject"
        if kind in self.flag_kinds or kind not in FINDING_KINDS:
            return "flag"
        return "ignore"

    def rejecting(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings that reject the upload."""
        return [f for f in findings if self.level(f.kind) == "reject"]

    def flagging(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings that flag the upload."""
        return [f for f in findings if self.level(f.kind) == "flag"]

    def verdict(self, findings: Iterable[Finding]) -> Verdict:
        """``"rejected"`` if any finding rejects, ``"flagged"`` if any flags, else
        ``"clean"``."""
        levels = {self.level(f.kind) for f in findings}
        if "reject" in levels:
            return "rejected"
        return "flagged" if "flag" in levels else "clean"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description for a public configuration endpoint."""
        known = set(FINDING_KINDS)
        return {
            "reject_kinds": sorted(self.reject_kinds),
            "flag_kinds": sorted(self.flag_kinds),
            "ignored_kinds": sorted(known - self.reject_kinds - self.flag_kinds),
            "kinds": dict(sorted(FINDING_KINDS.items())),
        }
