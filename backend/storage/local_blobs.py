"""Finished documents on local disk, content-addressed: ``<root>/ab/cd/<sha256>.pdf``.

The contract is :class:`~backend.storage.base.BlobStore`'s. From a
:class:`~backend.storage.local_chunks.LocalChunkStore` an upload is adopted by a rename
(the same filesystem: no copy); from any other chunk store, through a materialized file.
Stored files are read-only (0444).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from backend.errors import InsufficientStorage
from backend.storage.base import ChunkStore
from backend.storage.local_chunks import LocalChunkStore

_SHA = re.compile(r"^[0-9a-f]{64}$")
READ_PIECE = 512 << 10
T = TypeVar("T")


class LocalBlobStore:
    def __init__(self, root: Path, pool: Executor | None = None) -> None:
        self.root = root
        self.pool = pool
        root.mkdir(parents=True, exist_ok=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def path(self, sha256: str) -> Path:
        """Where the content lives (this backend's own layout). ValueError if not a SHA-256."""
        if not _SHA.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.pdf"

    async def has(self, sha256: str) -> bool:
        return await self._run(self.path(sha256).exists)

    async def size(self, sha256: str) -> int | None:
        try:
            return (await self._run(self.path(sha256).stat)).st_size
        except FileNotFoundError:
            return None

    async def adopt(self, chunks: ChunkStore, upload_id: str, sha256: str) -> bool:
        dest = self.path(sha256)
        if isinstance(chunks, LocalChunkStore):
            return await self._run(self._take, chunks.local_path(upload_id), dest)
        if await self._run(dest.exists):
            await chunks.delete(upload_id)
            return False
        async with chunks.materialize(upload_id) as source:
            await self._run(self._copy_in, source, dest)
        await chunks.delete(upload_id)
        return True

    def _take(self, source: Path, dest: Path) -> bool:
        if dest.exists():
            source.unlink(missing_ok=True)
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, dest)  # same filesystem: a rename, no copy
        except OSError:
            self._copy_in(source, dest)
            source.unlink(missing_ok=True)
            return True
        os.chmod(dest, 0o444)
        return True

    @staticmethod
    def _copy_in(source: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InsufficientStorage("no space left to store the document") from exc
        os.replace(tmp, dest)
        os.chmod(dest, 0o444)

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        fd = await self._run(os.open, self.path(sha256), os.O_RDONLY)
        try:
            if end is None:
                end = (await self._run(os.fstat, fd)).st_size
            pos = start
            while pos < end:
                piece = await self._run(os.pread, fd, min(READ_PIECE, end - pos), pos)
                if not piece:
                    return
                pos += len(piece)
                yield piece
        finally:
            os.close(fd)

    @asynccontextmanager
    async def materialize(self, sha256: str) -> AsyncIterator[Path]:
        """The stored file itself: nothing is copied."""
        path = self.path(sha256)
        if not await self._run(path.exists):
            raise FileNotFoundError(f"content {sha256} is not stored")
        yield path

    async def delete(self, sha256: str) -> None:
        await self._run(self.path(sha256).unlink, True)
