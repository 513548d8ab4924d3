"""``/v1/royalty/warnings``: what an accountant should look at before approving a period
(``royalty_engine.warnings``), from the terms and the lake as a run of the period would
read them now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.deps import DecimalRoute, PrincipalDep
from pipelines.royalty.warnings import warnings_for_period
from royalty_engine.periods import PeriodError, parse_period
from schemas.errors import FieldError, Forbidden, ValidationFailed
from schemas.store.models import Role

router = APIRouter(route_class=DecimalRoute, prefix="/v1/royalty", tags=["royalty"])


class WarningOut(BaseModel):
    code: str = Field(description="stable: W-RATE-AMBIGUOUS, W-SPLIT-OVERRIDE, W-SHARE-DROP")
    message: str
    subject: dict[str, Any] = Field(description="what it is about: ids, names, shares, dates")


@router.get(
    "/warnings",
    response_model=list[WarningOut],
    summary="Warnings for a period: ambiguous rates, track splits, shares under 100%",
    description=(
        "Rates of a contract that both match a line of the period with neither more specific "
        "in every dimension; track-level splits that leave release-level payees out of a "
        "track; a track whose shares fall under 100% for a payee who had all of it the day "
        "before the period. Computed as a run of the period would read the terms (those in "
        "force on its first day) and the lake now. Not for payee keys."
    ),
)
def royalty_warnings(
    request: Request,
    principal: PrincipalDep,
    period: Annotated[str, Query(description="2026-01, 2026-Q1 or 2026-H1")],
) -> Any:
    if principal.role is Role.PAYEE:
        raise Forbidden("warnings are about the label's terms; payee keys cannot read them")
    try:
        parse_period(period)
    except PeriodError as exc:
        raise ValidationFailed([FieldError("period", str(exc), "bad_period")]) from None
    found = warnings_for_period(
        request.app.state.read_factory,
        request.app.state.data_dir,
        org_id=principal.org_id,
        period=period,
    )
    return [w.as_dict() for w in found]
