"""Unfinished uploads on local disk: one sparse file per upload, chunks written in place.

The contract is :class:`~backend.storage.base.ChunkStore`'s. The blocking work runs in
the executor given (the loop's default one if none); writers (:class:`LocalChunkWriter`)
are the worker threads' and write with ``pwrite``/``pwritev`` at their range, so writers
of one file never race. :class:`LocalRangeReader` reads the files back from any thread
or process (the prefix worker's child), straight from the page cache.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from backend.storage.full import raise_if_full

_IOV_MAX = 1024
T = TypeVar("T")


class LocalChunkWriter:
    """``os.pwrite`` at the chunk's place; no seek state, so writers of one file never race."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._pos = offset
        self._end = offset + length

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if self._pos + len(view) > self._end:
            raise ValueError("write past the end of the chunk")
        try:
            while view:
                n = os.pwrite(self._fd, view, self._pos)
                self._pos += n
                view = view[n:]
        except OSError as exc:
            raise_if_full(exc, "upload data")
            raise

    def write_pieces(self, pieces: Sequence[memoryview]) -> None:
        """Write consecutive pieces with as few ``pwritev`` calls as the kernel allows."""
        total = sum(len(p) for p in pieces)
        if self._pos + total > self._end:
            raise ValueError("write past the end of the chunk")
        views = [p for p in pieces if len(p)]
        try:
            while views:
                n = os.pwritev(self._fd, views[:_IOV_MAX], self._pos)
                self._pos += n
                while views and n >= len(views[0]):
                    n -= len(views[0])
                    views.pop(0)
                if n:
                    views[0] = views[0][n:]
        except OSError as exc:
            raise_if_full(exc, "upload data")
            raise

    def close(self) -> None:
        os.close(self._fd)


class LocalRangeReader:
    """Blocking, picklable reads of the partial files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        try:
            fd = os.open(self.root / f"{upload_id}.part", os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            view, got = memoryview(buf), 0
            while got < len(buf):
                n = os.preadv(fd, [view[got:]], offset + got)
                if n == 0:
                    break
                got += n
            return got
        finally:
            os.close(fd)


class LocalChunkStore:
    def __init__(self, root: Path, pool: Executor | None = None) -> None:
        self.root = root
        self.pool = pool
        self.reader = LocalRangeReader(root)
        root.mkdir(parents=True, exist_ok=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def local_path(self, upload_id: str) -> Path:
        """The partial file (this backend's own layout; :class:`LocalBlobStore` renames it)."""
        return self.root / f"{upload_id}.part"

    def _create(self, upload_id: str, size: int) -> None:
        # Sparse: holes read back as zeros, and resume hashes tell holes from data.
        fd = os.open(self.local_path(upload_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
        except OSError as exc:
            raise_if_full(exc, "upload data")
            raise
        finally:
            os.close(fd)

    async def create(self, upload_id: str, size: int) -> None:
        await self._run(self._create, upload_id, size)

    async def exists(self, upload_id: str) -> bool:
        return await self._run(self.local_path(upload_id).exists)

    def _open(self, upload_id: str, offset: int, length: int) -> LocalChunkWriter:
        fd = os.open(self.local_path(upload_id), os.O_WRONLY)
        return LocalChunkWriter(fd, offset, length)

    async def open(self, upload_id: str, offset: int, length: int, *, read_back: bool = True) -> LocalChunkWriter:
        return await self._run(self._open, upload_id, offset, length)

    async def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        return await self._run(self.reader.read_into, upload_id, offset, buf)

    def blocking_reader(self) -> LocalRangeReader:
        return self.reader

    def _resize(self, upload_id: str, size: int) -> None:
        try:
            os.truncate(self.local_path(upload_id), size)
        except OSError as exc:
            raise_if_full(exc, "upload data")
            raise

    async def resize(self, upload_id: str, size: int) -> None:
        await self._run(self._resize, upload_id, size)

    def _copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        """``copy_file_range``: the kernel copies (or shares extents), no bytes in Python."""
        src = os.open(self.local_path(source_id), os.O_RDONLY)
        try:
            dst = os.open(self.local_path(upload_id), os.O_WRONLY)
            try:
                done = 0
                while done < length:
                    n = os.copy_file_range(src, dst, length - done, done, offset + done)
                    if n == 0:
                        raise OSError(f"upload {source_id} ends {length - done} bytes short")
                    done += n
            except OSError as exc:
                raise_if_full(exc, "upload data")
                raise
            finally:
                os.close(dst)
        finally:
            os.close(src)

    async def copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
        await self._run(self._copy_from, upload_id, offset, source_id, length)

    @asynccontextmanager
    async def materialize(self, upload_id: str) -> AsyncIterator[Path]:
        """The partial file itself: nothing is copied."""
        path = self.local_path(upload_id)
        if not await self._run(path.exists):
            raise FileNotFoundError(f"upload {upload_id} is not in the store")
        yield path

    async def delete(self, upload_id: str) -> None:
        await self._run(self.local_path(upload_id).unlink, True)

    def _list(self) -> list[str]:
        return [p.stem for p in self.root.glob("*.part")]

    async def list_uploads(self) -> list[str]:
        return await self._run(self._list)

    def _stats(self) -> tuple[int, int]:
        count = used = 0
        for p in self.root.glob("*.part"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            count += 1
            used += st.st_blocks * 512
        return count, used

    async def stats(self) -> tuple[int, int]:
        return await self._run(self._stats)
