"""``/api/documents/search`` and the import queue's failures: search over imported text.

Included before the documents router, so ``/search`` and ``/import-failures`` are never
taken for a ``{doc_id}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from backend.api.deps import owner, services
from backend.api.schemas import SQLITE_INT_MAX, DocId, ErrorBody
from backend.composition import Services

router = APIRouter(prefix="/api/documents", tags=["search"], dependencies=[Depends(owner)])
# Passages of all the owner's documents that a search within one document looks through.
# The importer's search has no document filter yet: the owner's best passages are asked
# for and those of the document kept, which misses a document's passages only when more
# than this many of other documents rank above them.
WITHIN_DOCUMENT_WINDOW = 1000


class SearchHitOut(BaseModel):
    document_id: int
    title: str
    filename: str
    page: int = Field(description="1-based page of the passage")
    score: float = Field(description="BM25 score, or the reciprocal-rank-fusion score with embeddings")
    text: str = Field(description="The matching passage")


class SearchOut(BaseModel):
    query: str
    hits: list[SearchHitOut]


class ImportFailureOut(BaseModel):
    document_id: int
    title: str
    filename: str
    error: str | None
    attempts: int
    failed_at: str


class ReimportOut(BaseModel):
    success: bool
    document_id: int
    index_status: str


@router.get("/search", response_model=SearchOut, responses={404: {"model": ErrorBody}})
async def search(
    q: str = Query(..., min_length=1, max_length=1000, description="Words to look for"),
    top_k: int = Query(5, ge=1, le=100),
    document_id: int | None = Query(None, ge=1, le=SQLITE_INT_MAX,
                                    description="Only passages of this document (404 if it is not yours)"),
    svc: Services = Depends(services), who: str = Depends(owner),
) -> dict[str, Any]:
    """The caller's best passages for `q` (keyword BM25; fused with vector similarity
    when the embeddings extra is installed), each with its document and page; with
    `document_id`, within that document only."""
    if document_id is None:
        hits = await svc.importer.search(who, q, top_k)
    else:
        await svc.documents.get(who, document_id)  # not_found for another owner's or no document
        wide = await svc.importer.search(who, q, WITHIN_DOCUMENT_WINDOW)
        hits = [h for h in wide if h.document_id == document_id][:top_k]
    return {"query": q, "hits": [h.__dict__ for h in hits]}


@router.get("/import-failures", response_model=list[ImportFailureOut])
async def import_failures(svc: Services = Depends(services), who: str = Depends(owner)) -> list[dict[str, Any]]:
    """The caller's documents whose import failed, with the reason; retry with `reimport`."""
    return await svc.importer.failures(who)


@router.post("/{doc_id}/reimport", response_model=ReimportOut, responses={404: {"model": ErrorBody}})
async def reimport(doc_id: DocId, svc: Services = Depends(services), who: str = Depends(owner)) -> dict[str, Any]:
    """Queue the document's import again (a failed import is retried from scratch)."""
    doc = await svc.importer.reimport(who, doc_id)
    return {"success": True, "document_id": doc.id, "index_status": doc.index_status}
