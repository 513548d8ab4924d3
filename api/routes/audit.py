"""``GET /v1/audit-log``: every write to the store, newest last; admin and finance keys only."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DecimalRoute, SessionDep, WriterDep
from api.queries import DbId, Page, filtered, page_of
from api.routes.crud import page_model
from schemas.store.models import AuditEntry

router = APIRouter(route_class=DecimalRoute, prefix="/v1/audit-log", tags=["audit"])


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: dt.datetime
    actor: str
    api_key_id: int | None
    entity: str
    entity_id: int | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditFilter(Page):
    entity: str | None = Field(None, description="table name, e.g. splits")
    entity_id: DbId | None = None
    actor: str | None = None


@router.get("", response_model=page_model(AuditOut), summary="The audit log of this organisation")
def audit_log(session: SessionDep, principal: WriterDep, q: Annotated[AuditFilter, Query()]) -> Any:
    stmt = filtered(
        sa.select(AuditEntry).where(AuditEntry.org_id == principal.org_id), AuditEntry, q
    )
    return page_of(session, stmt, AuditEntry, q, AuditOut)
