"""``/v1/ingest-files``: the ingestion ledger (one row per distinct file delivered), and one
file's findings: every line-level problem validation found (file, line, field, code), as
``reports/ingest/org=/file=/findings.json`` holds them. The label's own keys only."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DecimalRoute, LabelReaderDep, PathId, SessionDep
from api.queries import MAX_LIMIT, Page, filtered, page_of
from api.routes.crud import page_model
from pipelines.layout import DataDir
from schemas.store.models import IngestFile, IngestStatus
from schemas.store.service import get_owned

router = APIRouter(route_class=DecimalRoute, prefix="/v1/ingest-files", tags=["ingestion"])


class IngestFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    original_name: str
    other_names: list[str] = Field(description="where the same content arrived again")
    source_url: str
    sha256: str
    size: int
    format: str | None
    status: IngestStatus
    reporting_period: str | None
    period_start: dt.date | None
    period_end: dt.date | None
    lines_read: int
    lines_accepted: int
    lines_rejected: int
    lines_matched: int
    lines_suspense: int
    totals: dict[str, Any] = Field(description="per currency: accepted, rejected, declared")
    error_count: int = Field(description="findings of every severity")
    quarantine_code: str | None
    quarantine_reason: str | None
    received_at: dt.datetime


class Finding(BaseModel):
    model_config = ConfigDict(extra="allow")  # the columns validation writes, as written
    line_no: int | None = None
    field: str | None = None
    code: str | None = None
    severity: str | None = None


class IngestFileDetail(IngestFileOut):
    drift: list[str] = Field(description="how the file's layout differed from its format")
    expectations: dict[str, Any] | None = Field(
        description="the batch expectations (Great Expectations): success, failed"
    )
    findings_by_code: dict[str, int] = Field(description="'severity field code' -> findings")
    findings: list[Finding] = Field(description="the first `limit` findings, in line order")
    findings_total: int


class IngestFilter(Page):
    status: IngestStatus | None = None
    reporting_period: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    format: str | None = None


@router.get("", response_model=page_model(IngestFileOut), summary="Files ingested or refused")
def list_files(
    session: SessionDep, principal: LabelReaderDep, q: Annotated[IngestFilter, Query()]
) -> Any:
    stmt = filtered(
        sa.select(IngestFile).where(IngestFile.org_id == principal.org_id), IngestFile, q
    )
    return page_of(session, stmt, IngestFile, q, IngestFileOut)


@router.get(
    "/{file_id}",
    response_model=IngestFileDetail,
    summary="One file with its findings",
    description="A quarantined file has its reason and no findings file; an ingested file's "
    "findings are every problem found, rejected lines and warnings alike.",
)
def get_file(
    file_id: PathId,
    request: Request,
    session: SessionDep,
    principal: LabelReaderDep,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 100,
) -> Any:
    row = get_owned(session, IngestFile, principal.org_id, file_id)
    found = _findings(request.app.state.data_dir, row)
    by_code = Counter(f"{f.get('severity')} {f.get('field')} {f.get('code')}" for f in found)
    return IngestFileDetail.model_validate(
        {
            **IngestFileOut.model_validate(row).model_dump(),
            "drift": row.drift,
            "expectations": (row.outputs or {}).get("expectations"),
            "findings_by_code": dict(by_code.most_common()),
            "findings": found[:limit],
            "findings_total": len(found),
        }
    )


def _findings(data_dir: Path, row: IngestFile) -> list[dict[str, Any]]:
    """The file's findings report, or the sample kept on its row when there is none."""
    path = DataDir(data_dir).ingest_report(row.org_id, row.id) / "findings.json"
    if path.is_file():
        found: list[dict[str, Any]] = json.loads(path.read_text())
        return found
    return list(row.errors_sample or [])
