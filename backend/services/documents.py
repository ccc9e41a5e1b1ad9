"""DocumentService: the owner's stored documents (metadata in a repository, bytes in a
content-addressed blob store, one copy per content whoever stores it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from backend.errors import NotFound
from backend.services.models import iso
from backend.storage.base import BlobStore
from backend.storage.document_repo import DocumentRecord, DocumentRepository


def document_view(doc: DocumentRecord, available: bool) -> dict[str, Any]:
    """The document as the API shows it."""
    return {
        "id": doc.id,
        "title": doc.title,
        "filename": doc.filename,
        "file_size": doc.file_size,
        "is_file_available": available,
        "created_at": doc.created_at,
        "sha256": doc.sha256,
        "page_count": doc.page_count,
        "pdf_version": doc.pdf_version,
        "status": doc.status,
        "security": doc.security,
        "index_status": doc.index_status,
        "index_error": doc.index_error,
        "original_filename": doc.original_filename,
    }


class DocumentService:
    def __init__(self, repo: DocumentRepository, blobs: BlobStore, pool: Executor,
                 on_delete: Callable[[DocumentRecord], Awaitable[None]] | None = None) -> None:
        """``on_delete``: told after a document is deleted (the importer drops its job and,
        with the content's last holder, its searchable text)."""
        self.repo = repo
        self.blobs = blobs
        self.pool = pool
        self.on_delete = on_delete

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def view(self, doc: DocumentRecord) -> dict[str, Any]:
        return document_view(doc, await self.blobs.has(doc.sha256))

    async def find_duplicate(self, owner: str, sha256: str) -> dict[str, Any] | None:
        doc = await self._run(self.repo.find_by_sha, owner, sha256)
        return await self.view(doc) if doc is not None else None

    async def get(self, owner: str, doc_id: int) -> DocumentRecord:
        doc = await self._run(self.repo.get, owner, doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id}")
        assert isinstance(doc, DocumentRecord)
        return doc

    async def list_views(self, owner: str, limit: int, offset: int) -> list[dict[str, Any]]:
        """The owner's documents as the API shows them; the file checks run concurrently."""
        docs: list[DocumentRecord] = await self._run(self.repo.list, owner, limit, offset)
        available = await asyncio.gather(*(self.blobs.has(doc.sha256) for doc in docs))
        return [document_view(doc, ok) for doc, ok in zip(docs, available)]

    async def file(self, owner: str, doc_id: int) -> tuple[DocumentRecord, int]:
        """The owner's document and the size of its stored file; NotFound if either is gone."""
        doc = await self.get(owner, doc_id)
        size = await self.blobs.size(doc.sha256)
        if size is None:
            raise NotFound(f"the file of document {doc_id} is not available")
        return doc, size

    def content(self, doc: DocumentRecord, start: int, end: int) -> AsyncIterator[bytes]:
        """The stored file's bytes ``[start, end)``, streamed from the blob store."""
        return self.blobs.read(doc.sha256, start, end)

    async def delete(self, owner: str, doc_id: int) -> DocumentRecord:
        doc = await self._run(self.repo.delete, owner, doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id}")
        if not await self._run(self.repo.sha_in_use, doc.sha256):
            await self.blobs.delete(doc.sha256)
        assert isinstance(doc, DocumentRecord)
        if self.on_delete is not None:
            await self.on_delete(doc)
        return doc

    @staticmethod
    def new_record(**values: Any) -> DocumentRecord:
        values.setdefault("id", 0)
        values.setdefault("created_at", iso(values.pop("now")))
        return DocumentRecord(**values)
