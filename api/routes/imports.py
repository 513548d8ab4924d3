"""``POST /v1/imports/catalog``: a catalogue file, validated whole, applied all or nothing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import DecimalRoute, SessionDep, WriterDep
from schemas.errors import FieldError, ValidationFailed
from schemas.store.imports import COLUMNS, import_catalog

router = APIRouter(route_class=DecimalRoute, prefix="/v1/imports", tags=["imports"])
MAX_BYTES = 20 * 1024 * 1024


@router.post(
    "/catalog",
    summary="Import a catalogue (one row per track)",
    description=(
        "Body: `text/csv` with a header row, or `application/json` (a list of row objects, or "
        '`{"rows": [...]}`). Columns: ' + ", ".join(f"`{c}`" for c in COLUMNS) + ". "
        "Every row is validated before anything is written; any error rejects the whole "
        "file with a 422 listing each row and field. `dry_run=true` validates only."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def import_catalog_route(
    request: Request,
    session: SessionDep,
    principal: WriterDep,
    dry_run: Annotated[bool, Query()] = False,
) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:  # refuse before reading it
        raise ValidationFailed([FieldError("file", f"larger than {MAX_BYTES} bytes", "too_large")])
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise ValidationFailed([FieldError("file", f"larger than {MAX_BYTES} bytes", "too_large")])
    content_type = request.headers.get("content-type", "").lower()
    result = await run_in_threadpool(
        import_catalog, session, principal.org_id, body, content_type, dry_run=dry_run
    )
    return result.as_dict()
