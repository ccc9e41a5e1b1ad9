"""The document repository's contract: one record per stored document, per owner.

A document is one owner's copy of one content (a SHA-256): several documents may hold
the same content (dedup stores the bytes once). The repository keeps their metadata and
their import status; it knows nothing of the bytes or the index.

Implementations: :class:`backend.storage.sqlite_docs.SqliteDocumentRepository` (the
embedded default) and :class:`backend.storage.postgres.documents.PostgresDocumentRepository`.
Both run ``tests/storage/test_document_repo_contract.py``.

Who locks: the repository. Every method may be called from any thread, each is one
atomic statement or transaction, and a write is durable when it returns. A store that
cannot be reached raises :class:`~backend.errors.StorageUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class DocumentRecord:
    id: int
    owner: str
    title: str
    filename: str
    file_size: int
    sha256: str
    created_at: str
    session_id: str | None = None
    status: str = "stored"
    page_count: int | None = None
    pdf_version: str | None = None
    security: dict[str, Any] = field(default_factory=dict)
    index_status: str = "pending"
    index_error: str | None = None
    original_filename: str | None = None  # the client's name when sanitizing changed it (metadata only)


COLUMNS = [f for f in DocumentRecord.__dataclass_fields__]
BySha = dict[str, list[DocumentRecord]]


class DocumentRepository(Protocol):
    def insert(self, doc: DocumentRecord) -> DocumentRecord:
        """Insert ``doc`` (its ``id`` is ignored; the stored record, with its id, comes
        back); a second insert for the same session returns the first record, so a
        retried completion never makes two documents."""
        raise NotImplementedError

    def get(self, owner: str, doc_id: int) -> DocumentRecord | None:
        """``owner``'s document ``doc_id`` (None: not there, or someone else's)."""
        raise NotImplementedError

    def by_session(self, session_id: str) -> DocumentRecord | None:
        raise NotImplementedError

    def find_by_sha(self, owner: str, sha256: str) -> DocumentRecord | None:
        """``owner``'s oldest document holding this content."""
        raise NotImplementedError

    def list(self, owner: str, limit: int = 100, offset: int = 0) -> list[DocumentRecord]:
        """``owner``'s documents, newest first."""
        raise NotImplementedError

    def count(self, owner: str) -> int:
        raise NotImplementedError

    def delete(self, owner: str, doc_id: int) -> DocumentRecord | None:
        """Delete and return the record; None when the owner has no such document."""
        raise NotImplementedError

    def sha_in_use(self, sha256: str) -> bool:
        """Whether any document (any owner) still holds this content."""
        raise NotImplementedError

    def set_index_status(self, doc_id: int, status: str, error: str | None = None) -> None:
        """``pending`` / ``importing`` / ``indexed`` / ``no_text`` / ``failed`` (with ``error``)."""
        raise NotImplementedError

    def indexed_shas(self, owner: str) -> set[str]:
        """The contents whose text is searchable for ``owner``."""
        raise NotImplementedError

    def indexed_by_sha(self, owner: str, shas: Sequence[str]) -> BySha:
        """``owner``'s indexed documents holding each of ``shas``, oldest first."""
        raise NotImplementedError

    def sha_indexed(self, sha256: str) -> bool:
        """Whether any document (any owner) holding this content is indexed."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
