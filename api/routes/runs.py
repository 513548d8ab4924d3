"""``/v1/royalty-runs``: the organisation's royalty runs, what finance ops review before
approving (the preview) and a correction's per-payee diff against the locked run it replaces.

Read-only and for the label's own keys (admin, finance, analyst); runs are made, approved and
locked by ``tunemantra royalty`` and the ``royalty_run`` DAG."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DecimalRoute, LabelReaderDep, PathId, SessionDep
from api.queries import Page, filtered, page_of
from api.routes.crud import page_model
from pipelines.royalty.preview import preview
from schemas.store.runs import RoyaltyRun, RunStatus
from schemas.store.service import get_owned

router = APIRouter(route_class=DecimalRoute, prefix="/v1/royalty-runs", tags=["royalty runs"])


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    period: str
    period_start: dt.date
    period_end: dt.date
    version: int
    status: RunStatus
    currency: str = Field(description="the accounting currency")
    previous_run_id: int | None = Field(description="the run whose closing state it opened from")
    supersedes_id: int | None = Field(description="the version it corrects or replaces")
    reason: str = Field(description="why, for a correction")
    created_by: str
    created_at: dt.datetime
    approved_by: str | None
    approved_at: dt.datetime | None
    locked_by: str | None
    locked_at: dt.datetime | None


class RunDetail(RunOut):
    totals: dict[str, Any] = Field(description="per currency: revenue, payees, retained, ...")
    counts: dict[str, Any]
    manifest_sha256: str


class RunDiff(BaseModel):
    run_id: int
    supersedes_id: int | None
    reason: str
    diff: list[dict[str, Any]] = Field(
        description="per payee and currency: each figure that changed (old, new, delta) and "
        "why; empty unless the run corrects a locked one"
    )


class RunFilter(Page):
    period: str | None = Field(None, description="2026-01, 2026-Q1 or 2026-H1")
    status: RunStatus | None = None
    version: int | None = Field(None, ge=1)


def _run(session: Any, principal: Any, run_id: int) -> RoyaltyRun:
    return get_owned(session, RoyaltyRun, principal.org_id, run_id)


@router.get("", response_model=page_model(RunOut), summary="Royalty runs, every version")
def list_runs(
    session: SessionDep, principal: LabelReaderDep, q: Annotated[RunFilter, Query()]
) -> Any:
    stmt = filtered(
        sa.select(RoyaltyRun).where(RoyaltyRun.org_id == principal.org_id), RoyaltyRun, q
    )
    return page_of(session, stmt, RoyaltyRun, q, RunOut)


@router.get("/{run_id}", response_model=RunDetail, summary="One run with its totals")
def get_run(run_id: PathId, session: SessionDep, principal: LabelReaderDep) -> Any:
    return RunDetail.model_validate(_run(session, principal, run_id))


@router.get(
    "/{run_id}/preview",
    summary="What finance ops review before approving",
    description="Totals, the share of revenue in suspense, each payee's variance against the "
    "previous period and the contracts flagged, with the same text the approval screen shows.",
)
def get_preview(
    run_id: PathId, request: Request, session: SessionDep, principal: LabelReaderDep
) -> Any:
    _run(session, principal, run_id)
    session.commit()  # the preview reads in its own session
    found = preview(request.app.state.read_factory, run_id=run_id)
    return jsonable_encoder(found.as_dict() if hasattr(found, "as_dict") else found)


@router.get("/{run_id}/diff", response_model=RunDiff, summary="A correction's diff")
def get_diff(run_id: PathId, session: SessionDep, principal: LabelReaderDep) -> Any:
    run = _run(session, principal, run_id)
    return RunDiff(
        run_id=run.id, supersedes_id=run.supersedes_id, reason=run.reason, diff=run.diff or []
    )
