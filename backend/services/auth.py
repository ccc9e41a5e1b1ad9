"""API keys: who is calling.

The keys come from ``STREAMING_API_KEYS`` (``key1:alice,key2:bob``) and, for many keys,
``STREAMING_API_KEYS_FILE`` (one ``key:owner`` a line, ``#`` comments). An owner may have
several keys (rotation); a key has one owner. With no keys at all the server has one
owner, :data:`SINGLE_OWNER`, and ``python -m backend`` refuses to listen beyond loopback
unless told otherwise (:func:`bind_refusal`).

Only SHA-256 digests of the keys are kept. A presented key is hashed and its digest is
compared with every known digest by :func:`hmac.compare_digest`, without stopping at a
match: the time a check takes says nothing about any key (a thousand keys cost ~0.1 ms).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import Unauthorized
from backend.settings import Settings

SINGLE_OWNER = "local"
OWNER = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
WEAK_KEY_CHARS = 16


class KeyConfigError(ValueError):
    """The configured keys cannot be used (the server must not start with them)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass
class KeyRing:
    """Digest of each key -> its owner. Empty: single-owner mode."""

    owners_by_digest: dict[bytes, str] = field(default_factory=dict)
    weak_keys: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.owners_by_digest)

    @property
    def owners(self) -> set[str]:
        return set(self.owners_by_digest.values())

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        ring = cls()
        if settings.api_keys is not None:
            ring.add_entries(settings.api_keys.get_secret_value().split(","), "STREAMING_API_KEYS")
        if settings.api_keys_file is not None:
            try:
                lines = settings.api_keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise KeyConfigError(f"STREAMING_API_KEYS_FILE {settings.api_keys_file}: {exc.strerror}") from None
            ring.add_entries([ln for ln in lines if not ln.lstrip().startswith("#")],
                             str(settings.api_keys_file))
        return ring

    def add_entries(self, entries: list[str], source: str) -> None:
        for n, raw in enumerate(entries, 1):
            entry = raw.strip()
            if not entry:
                continue
            key, sep, owner = entry.rpartition(":")
            key, owner = key.strip(), owner.strip()
            if not sep or not key:
                raise KeyConfigError(f"{source}: entry {n} is not 'key:owner'")
            if any(c.isspace() for c in key):
                raise KeyConfigError(f"{source}: entry {n}: a key has no spaces")
            if not OWNER.match(owner):
                raise KeyConfigError(f"{source}: entry {n}: owner must be 1-64 of A-Z a-z 0-9 _ . @ + -")
            self.add(key, owner, source)

    def add(self, key: str, owner: str, source: str = "keys") -> None:
        digest = _digest(key)
        known = self.owners_by_digest.get(digest)
        if known is not None and known != owner:
            raise KeyConfigError(f"{source}: one key is given to two owners ({known}, {owner})")
        self.owners_by_digest[digest] = owner
        if len(key) < WEAK_KEY_CHARS:
            self.weak_keys += 1

    def owner_of(self, key: str | None) -> str:
        """The owner of ``key``; :data:`SINGLE_OWNER` when no keys are configured.

        Raises :class:`Unauthorized` for a missing or unknown key."""
        if not self.enabled:
            return SINGLE_OWNER
        if not key:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        digest = _digest(key)
        found: str | None = None
        for known, owner in self.owners_by_digest.items():
            if hmac.compare_digest(known, digest):
                found = owner
        if found is None:
            raise Unauthorized("the API key is not valid")
        return found


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere, so fail closed


def bind_refusal(ring: KeyRing, settings: Settings, host: str) -> str | None:
    """Why the server must not listen on ``host`` (None: it may)."""
    if ring.enabled or is_loopback(host) or settings.allow_public_without_keys:
        return None
    return (f"refusing to listen on {host}: no API keys are configured (STREAMING_API_KEYS or "
            f"STREAMING_API_KEYS_FILE), so anyone who reaches it would own every upload. Configure keys, "
            f"listen on 127.0.0.1, or set STREAMING_ALLOW_PUBLIC_WITHOUT_KEYS=true to accept that.")
