"""Finished documents on local disk, content-addressed: ``<root>/ab/cd/<sha256>.pdf``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from backend.errors import InsufficientStorage

_SHA = re.compile(r"^[0-9a-f]{64}$")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.pdf"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def adopt(self, source: Path, sha256: str) -> bool:
        dest = self.path(sha256)
        if dest.exists():
            source.unlink(missing_ok=True)
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, dest)  # same filesystem: a rename, no copy
        except OSError:
            tmp = dest.with_suffix(".tmp")
            try:
                shutil.copyfile(source, tmp)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise InsufficientStorage("no space left to store the document") from exc
            os.replace(tmp, dest)
            source.unlink(missing_ok=True)
        os.chmod(dest, 0o444)
        return True

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
