"""UploadService: the one upload core that every protocol's router calls.

An upload is a session (:mod:`backend.services.sessions`): its bytes, state, checks,
progress room and completion are the same whichever dialect opened it. The core offers:

- ``create``: open an upload of a known length, with the client's metadata;
- ``info``: its offset (the contiguous bytes from the start), length and expiry;
- ``write_chunk``: a range of known length at ``chunk_id x chunk_size`` (the chunk API
  of ``API.md``; any order, in parallel; :class:`AssemblyService`);
- ``append``: bytes at the offset, for as long as the body runs; a cut-off body keeps
  what arrived (tus, the IETF draft; :class:`AppendService`);
- ``finish``: verify, inspect, store and record the file (:class:`CompletionService`);
- ``terminate``: drop the upload, bytes and state.

Every refusal is an :class:`~backend.errors.UploadError` with a code; each router maps
codes to its protocol's answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from backend.services.appends import AppendService, Checksum
from backend.services.assembly import AssemblyService, ChunkResult
from backend.services.completion import Completed, CompletionService
from backend.services.live import LiveSession
from backend.services.models import COMPLETED, UPLOADING
from backend.services.sessions import InitiateRequest, SessionService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    offset: int
    length: int
    expires_at: float
    status: str
    metadata: dict[str, str]
    document_id: int | None


class UploadService:
    def __init__(self, sessions: SessionService, assembly: AssemblyService, appends: AppendService,
                 completion: CompletionService) -> None:
        self.sessions = sessions
        self.assembly = assembly
        self.appends = appends
        self.completion = completion

    async def create(self, owner: str, request: InitiateRequest) -> LiveSession:
        return await self.sessions.initiate(owner, request)

    async def info(self, owner: str, upload_id: str) -> UploadInfo:
        """Raises NotFound (also for a terminated upload) or SessionExpired. After a
        restart the bytes decide: the recorded chunks and tail are verified first."""
        live = self.sessions.get(owner, upload_id)
        s = live.session
        if live.prefix is None and s.status == UPLOADING:
            await self.sessions.prefix.rebuild(live)
            await self.sessions.save(live)
        offset = s.file_size if s.status == COMPLETED else s.offset
        return UploadInfo(s.session_id, offset, s.file_size, s.expires_at, s.status, dict(s.metadata),
                          s.document_id)

    async def write_chunk(self, owner: str, upload_id: str, chunk_id: int, offset: int | None,
                          checksum: Callable[[], str | None],
                          data: AsyncIterator[bytes | memoryview]) -> ChunkResult:
        return await self.assembly.write_chunk(owner, upload_id, chunk_id, offset, checksum, data)

    async def append(self, owner: str, upload_id: str, offset: int, data: AsyncIterator[bytes | memoryview],
                     checksum: Checksum | None = None) -> int:
        """The new offset. At the end of the file, call :meth:`finish` next."""
        live = self.sessions.get(owner, upload_id)
        return await self.appends.append(live, offset, data, checksum)

    async def finish(self, owner: str, upload_id: str) -> Completed:
        return await self.completion.complete(owner, upload_id)

    async def terminate(self, owner: str, upload_id: str, reason: str | None = None) -> None:
        await self.sessions.cancel(owner, upload_id, reason)
