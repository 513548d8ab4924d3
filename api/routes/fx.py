"""``GET /v1/fx-rates``: the organisation's currency rates (1 base = rate quote, per month),
as ``tunemantra fx import`` loaded them; the label's own keys only."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DecimalRoute, LabelReaderDep, SessionDep
from api.queries import Page, filtered, page_of
from api.routes.crud import page_model
from schemas.store.models import FxRate

router = APIRouter(route_class=DecimalRoute, prefix="/v1/fx-rates", tags=["fx"])


class FxRateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    base: str
    quote: str
    period: str = Field(description="the reporting month it applies to, YYYY-MM")
    rate: Decimal = Field(description="1 base = rate quote")
    source: str


class FxFilter(Page):
    base: str | None = Field(None, min_length=3, max_length=3)
    quote: str | None = Field(None, min_length=3, max_length=3)
    period: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


@router.get("", response_model=page_model(FxRateOut), summary="Currency rates by month")
def list_rates(
    session: SessionDep, principal: LabelReaderDep, q: Annotated[FxFilter, Query()]
) -> Any:
    q = q.model_copy(update={k: getattr(q, k).upper() for k in ("base", "quote") if getattr(q, k)})
    stmt = filtered(sa.select(FxRate).where(FxRate.org_id == principal.org_id), FxRate, q)
    return page_of(session, stmt, FxRate, q, FxRateOut)
