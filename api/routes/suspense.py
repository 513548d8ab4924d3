"""``/v1/suspense``: unmatched revenue by identifier; resolving one remembers the match."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DecimalRoute, PathId, PrincipalDep, SessionDep, WriterDep
from api.queries import DbId, Page, filtered, page_of
from api.routes.crud import page_model
from schemas.errors import Forbidden
from schemas.store import suspense
from schemas.store.models import MatchKind, MatchRule, Role, SuspenseItem, SuspenseStatus
from schemas.store.service import get_owned

router = APIRouter(route_class=DecimalRoute, prefix="/v1/suspense", tags=["suspense"])


class SuspenseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: MatchKind
    key: str
    reason: str
    title: str | None
    artist: str | None
    sources: list[str]
    lines: int
    quantity: int
    amounts: dict[str, str] = Field(description="unmatched amount per currency, as text")
    first_period: str | None
    last_period: str | None
    status: SuspenseStatus
    rule_id: int | None


class SuspenseFilter(Page):
    status: SuspenseStatus | None = None
    kind: MatchKind | None = None
    key: str | None = None


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    track_id: DbId | None = None
    release_id: DbId | None = None
    note: str = Field("", max_length=500)


class Resolved(BaseModel):
    item: SuspenseOut
    rule_id: int
    detail: str


def _no_payees(principal: Any) -> None:
    if principal.role is Role.PAYEE:
        raise Forbidden("suspense is the label's ledger; payee keys cannot read it")


@router.get("", response_model=page_model(SuspenseOut), summary="Unmatched revenue by key")
def list_suspense(
    session: SessionDep, principal: PrincipalDep, q: Annotated[SuspenseFilter, Query()]
) -> Any:
    _no_payees(principal)
    stmt = filtered(
        sa.select(SuspenseItem).where(SuspenseItem.org_id == principal.org_id), SuspenseItem, q
    )
    return page_of(session, stmt, SuspenseItem, q, SuspenseOut)


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: MatchKind
    key: str
    track_id: int | None
    release_id: int | None
    note: str
    created_at: dt.datetime


class RuleFilter(Page):
    kind: MatchKind | None = None
    key: str | None = None
    track_id: DbId | None = None
    release_id: DbId | None = None


@router.get(
    "/rules",
    response_model=page_model(RuleOut),
    summary="Remembered matches (made by resolving suspense)",
)
def list_rules(
    session: SessionDep, principal: PrincipalDep, q: Annotated[RuleFilter, Query()]
) -> Any:
    _no_payees(principal)
    stmt = filtered(sa.select(MatchRule).where(MatchRule.org_id == principal.org_id), MatchRule, q)
    return page_of(session, stmt, MatchRule, q, RuleOut)


@router.get("/rules/{rule_id}", response_model=RuleOut)
def get_rule(rule_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
    _no_payees(principal)
    return RuleOut.model_validate(get_owned(session, MatchRule, principal.org_id, rule_id))


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a remembered match",
    description="Future lines with its key are unmatched again (suspense); lines it already "
    "matched keep their match. A suspense item it resolved is open again.",
)
def forget_rule(rule_id: PathId, session: SessionDep, principal: WriterDep) -> Response:
    suspense.forget(session, principal.org_id, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{item_id}", response_model=SuspenseOut)
def get_suspense(item_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
    _no_payees(principal)
    item = get_owned(session, SuspenseItem, principal.org_id, item_id)
    return SuspenseOut.model_validate(item)


@router.post(
    "/{item_id}/resolve",
    response_model=Resolved,
    summary="Match a suspense item to a track or release, for good",
)
def resolve_suspense(
    item_id: PathId, body: Resolve, session: SessionDep, principal: WriterDep
) -> Any:
    rule = suspense.resolve(
        session,
        principal.org_id,
        item_id,
        track_id=body.track_id,
        release_id=body.release_id,
        note=body.note,
    )
    item = session.get(SuspenseItem, item_id)
    return Resolved(
        item=SuspenseOut.model_validate(item),
        rule_id=rule.id,
        detail="remembered: future lines with this key match at ingestion; "
        "past lines are re-matched by the next rematch",
    )
