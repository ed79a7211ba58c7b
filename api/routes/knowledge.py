"""Admin routes for the help-center knowledge: upload (JSON or a file) and search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, ServicesDep
from api.errors import ApiError
from assistant.models import Document
from assistant.services import Services
from knowledge.loaders import document_from_json, load_bytes, supported_suffixes

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])
# Models the schema refers to by hand (the JSON upload's body, read from the request itself): `create_app` adds
# them to the published components, so that every $ref of /openapi.json resolves.
OPENAPI_MODELS = (Document,)


class DocumentOut(BaseModel):
    source_id: str
    title: str
    url: str | None
    status: str  # added | updated | unchanged
    chunks: int


class SearchItem(BaseModel):
    source_id: str
    title: str
    url: str | None
    snippet: str
    score: float
    chunk_id: str
    headings: list[str]


class SearchOut(BaseModel):
    items: list[SearchItem]


@router.post(
    "/documents",
    status_code=201,
    response_model=DocumentOut,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Document"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}, "source_id": {"type": "string"}},
                        "required": ["file"],
                    }
                },
            },
            "required": True,
        }
    },
)
async def upload_document(request: Request, services: ServicesDep, _: AdminDep) -> DocumentOut:
    """JSON `{"source_id", "title", "url"?, "text"}` or a multipart `file` (.md, .html, .txt) with an optional
    `source_id` field. Re-posting a `source_id` replaces that document."""
    limit = services.settings.max_upload_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "invalid_request", "multipart upload needs a 'file' field")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes")
        sid = form.get("source_id")
        doc = load_bytes(data, upload.filename or "upload.txt", str(sid) if sid else None)
    elif ctype.startswith("application/json") or not ctype:
        body = await request.body()
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"uploads are limited to {limit} bytes")
        doc = document_from_json(body)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send application/json or multipart/form-data (files: {', '.join(supported_suffixes())})",
        )
    return await run_in_threadpool(_store_document, services, doc)


def _store_document(services: Services, doc: Document) -> DocumentOut:
    status, chunks = services.knowledge.put(doc, origin="api")
    return DocumentOut(source_id=doc.source_id, title=doc.title, url=doc.url, status=status, chunks=chunks)


@router.get("/search", response_model=SearchOut)
def search(
    services: ServicesDep,
    _: AdminDep,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="the question")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchOut:
    if not q.strip():
        raise ApiError(422, "invalid_request", "q: the query is empty")
    hits = services.knowledge.search(q, k)
    return SearchOut(
        items=[
            SearchItem(
                source_id=h.chunk.source_id,
                title=h.chunk.title,
                url=h.chunk.url,
                snippet=h.chunk.text[:300],
                score=round(h.score, 4),
                chunk_id=h.chunk.chunk_id,
                headings=h.chunk.headings,
            )
            for h in hits
        ]
    )
