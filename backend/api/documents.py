"""``/api/documents``: the owner's stored documents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from backend.api.deps import owner, services
from backend.api.schemas import SQLITE_INT_MAX, DocId, DocumentOut, ErrorBody
from backend.composition import Services
from backend.services.filenames import sanitize_filename

router = APIRouter(prefix="/api/documents", tags=["documents"], dependencies=[Depends(owner)])
NOT_FOUND: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody}, 404: {"model": ErrorBody}}


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


@router.get("/{doc_id}/file", response_class=FileResponse, responses=NOT_FOUND)
async def get_file(doc_id: DocId, svc: Services = Depends(services), who: str = Depends(owner)) -> FileResponse:
    """The stored PDF, byte-exact, with `Range` support. `HEAD` answers the same headers
    (size, `ETag`, `Content-Disposition`) without the body."""
    doc, path = await svc.documents.file_path(who, doc_id)
    # sanitized again: records stored before names were sanitized reach a header here
    return FileResponse(path, media_type="application/pdf", filename=sanitize_filename(doc.filename),
                        headers={"ETag": f'"{doc.sha256}"', "Cache-Control": "private, max-age=0"})


# Out of the schema: GET's operation documents it, and one path with two operations of
# the same response would only repeat it. FileResponse sends no body for HEAD.
router.add_api_route("/{doc_id}/file", get_file, methods=["HEAD"], response_class=FileResponse,
                     include_in_schema=False, name="head_file")


@router.delete("/{doc_id}", responses=NOT_FOUND)
async def delete_document(doc_id: DocId, svc: Services = Depends(services), who: str = Depends(owner)) -> dict[str, Any]:
    doc = await svc.documents.delete(who, doc_id)
    return {"success": True, "id": doc.id, "status": "deleted"}
