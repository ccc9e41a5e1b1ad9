"""``/api/documents``: the owner's stored documents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from backend.api.blob_response import blob_response, content_disposition
from backend.api.deps import owner, services
from backend.api.schemas import SQLITE_INT_MAX, DocId, DocumentOut, ErrorBody
from backend.composition import Services
from backend.services.filenames import sanitize_filename

router = APIRouter(prefix="/api/documents", tags=["documents"], dependencies=[Depends(owner)])
NOT_FOUND: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 404: {"model": ErrorBody}}
FILE: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND, 200: {"content": {"application/pdf": {}}}, 206: {"description": "The requested byte range"},
    416: {"description": "The range starts past the end of the file"},
}


@router.get("", response_model=list[DocumentOut])
async def list_documents(
    limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=SQLITE_INT_MAX),
    svc: Services = Depends(services), who: str = Depends(owner),
) -> list[dict[str, Any]]:
    """The caller's documents, newest first."""
    return await svc.documents.list_views(who, limit, offset)


@router.get("/{doc_id}", response_model=DocumentOut, responses=NOT_FOUND)
async def get_document(doc_id: DocId, svc: Services = Depends(services), who: str = Depends(owner)) -> dict[str, Any]:
    return await svc.documents.view(await svc.documents.get(who, doc_id))


@router.get("/{doc_id}/file", response_class=StreamingResponse, responses=FILE)
async def get_file(doc_id: DocId, request: Request, svc: Services = Depends(services),
                   who: str = Depends(owner)) -> Response:
    """The stored PDF, byte-exact, streamed from the store, with `Range` support (one range).
    `HEAD` answers the same headers (size, `ETag`, `Content-Disposition`) without the body."""
    doc, size = await svc.documents.file(who, doc_id)
    headers = {
        "etag": f'"{doc.sha256}"', "cache-control": "private, max-age=0",
        # sanitized again: records stored before names were sanitized reach a header here
        "content-disposition": content_disposition(sanitize_filename(doc.filename)),
    }
    return blob_response(request, lambda start, end: svc.documents.content(doc, start, end), size,
                         "application/pdf", headers)


# Out of the schema: GET's operation documents it, and one path with two operations of
# the same response would only repeat it.
router.add_api_route("/{doc_id}/file", get_file, methods=["HEAD"], response_class=StreamingResponse,
                     include_in_schema=False, name="head_file")


@router.delete("/{doc_id}", responses=NOT_FOUND)
async def delete_document(doc_id: DocId, svc: Services = Depends(services), who: str = Depends(owner)) -> dict[str, Any]:
    doc = await svc.documents.delete(who, doc_id)
    return {"success": True, "id": doc.id, "status": "deleted"}
