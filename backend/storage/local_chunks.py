"""Partial uploads on local disk: one sparse file per upload, chunks written in place."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from backend.storage.full import raise_if_full

_IOV_MAX = 1024


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


class LocalChunkStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def local_path(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.part"

    def create(self, upload_id: str, size: int) -> None:
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

    def exists(self, upload_id: str) -> bool:
        return self.local_path(upload_id).exists()

    def open_chunk(self, upload_id: str, offset: int, length: int) -> LocalChunkWriter:
        fd = os.open(self.local_path(upload_id), os.O_WRONLY)
        return LocalChunkWriter(fd, offset, length)

    def read_into(self, upload_id: str, offset: int, buf: bytearray) -> int:
        try:
            fd = os.open(self.local_path(upload_id), os.O_RDONLY)
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

    def resize(self, upload_id: str, size: int) -> None:
        try:
            os.truncate(self.local_path(upload_id), size)
        except OSError as exc:
            raise_if_full(exc, "upload data")
            raise

    def copy_from(self, upload_id: str, offset: int, source_id: str, length: int) -> None:
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

    def delete(self, upload_id: str) -> None:
        self.local_path(upload_id).unlink(missing_ok=True)

    def list_uploads(self) -> list[str]:
        return [p.stem for p in self.root.glob("*.part")]

    def stats(self) -> tuple[int, int]:
        count = used = 0
        for p in self.root.glob("*.part"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            count += 1
            used += st.st_blocks * 512
        return count, used
