"""``/v1/deliveries``: where each release stands at each DSP, and how it got there."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import DecimalRoute, PathId, Principal, PrincipalDep, SessionDep
from api.queries import DbId, Page, filtered, page_of
from api.routes.crud import page_model
from schemas.errors import Forbidden
from schemas.store.deliveries import (
    Delivery,
    DeliveryBatch,
    DeliveryEvent,
    DeliveryKind,
    DeliveryState,
)
from schemas.store.models import Role
from schemas.store.service import get_owned

router = APIRouter(route_class=DecimalRoute, prefix="/v1/deliveries", tags=["deliveries"])


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    release_id: int
    upc: str
    dsp: str
    kind: DeliveryKind
    state: DeliveryState
    fingerprint: str = Field(description="the release version (metadata, assets, deals)")
    message_id: str
    message_path: str | None = Field(description="the message inside the DSP's drop")
    reasons: list[dict[str, Any]] = Field(description="why it failed: release, dsp, field, code")
    warnings: list[dict[str, Any]]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    ack_status: str | None
    ack_text: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    uploaded_at: dt.datetime | None
    acknowledged_at: dt.datetime | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: dt.datetime
    from_state: str | None
    to_state: str
    detail: dict[str, Any]


class DeliveryDetail(DeliveryOut):
    batch: str | None = Field(description="the batch folder on the DSP's side")
    history: list[EventOut]


class DeliveryFilter(Page):
    dsp: str | None = None
    state: DeliveryState | None = None
    upc: str | None = None
    release_id: DbId | None = None


def _no_payees(principal: Principal) -> None:
    if principal.role is Role.PAYEE:
        raise Forbidden("deliveries are the label's operations; payee keys cannot read them")


@router.get(
    "", response_model=page_model(DeliveryOut), summary="Delivery status per release and DSP"
)
def list_deliveries(
    session: SessionDep, principal: PrincipalDep, q: Annotated[DeliveryFilter, Query()]
) -> Any:
    _no_payees(principal)
    stmt = filtered(sa.select(Delivery).where(Delivery.org_id == principal.org_id), Delivery, q)
    return page_of(session, stmt, Delivery, q, DeliveryOut)


@router.get("/{delivery_id}", response_model=DeliveryDetail, summary="One delivery and its history")
def get_delivery(delivery_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
    _no_payees(principal)
    d = get_owned(session, Delivery, principal.org_id, delivery_id)
    events = session.scalars(
        sa.select(DeliveryEvent)
        .where(DeliveryEvent.org_id == principal.org_id, DeliveryEvent.delivery_id == d.id)
        .order_by(DeliveryEvent.id)
    )
    batch = None
    if d.batch_id is not None:
        batch = session.scalar(
            sa.select(DeliveryBatch.name).where(
                DeliveryBatch.org_id == principal.org_id, DeliveryBatch.id == d.batch_id
            )
        )
    return DeliveryDetail(
        **DeliveryOut.model_validate(d).model_dump(),
        batch=batch,
        history=[EventOut.model_validate(e) for e in events],
    )
