"""Read queries for the API: tenancy scoping, payee scoping, filters, cursor pagination."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Principal
from schemas import identifiers
from schemas.catalog import MAX_ID
from schemas.errors import FieldError, ValidationFailed
from schemas.store.models import (
    Artist,
    Base,
    Contract,
    ContractCharge,
    ContractRate,
    ContractTerms,
    Payee,
    Release,
    Role,
    Split,
    Track,
)
from schemas.store.service import effective_on

MAX_LIMIT = 500
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="next_cursor of the previous page")


class ArtistFilter(Page):
    name: str | None = Field(None, description="case-insensitive substring")
    isni: str | None = None


class ReleaseFilter(Page):
    upc: str | None = None
    title: str | None = Field(None, description="case-insensitive substring")
    artist_id: DbId | None = None


class TrackFilter(Page):
    isrc: str | None = None
    title: str | None = Field(None, description="case-insensitive substring")
    release_id: DbId | None = None
    artist_id: DbId | None = None


class PayeeFilter(Page):
    name: str | None = Field(None, description="case-insensitive substring")
    artist_id: DbId | None = None


class ContractFilter(Page):
    payee_id: DbId | None = None
    reference: str | None = None
    cross_collateral_group: str | None = None


class SplitFilter(Page):
    track_id: DbId | None = None
    release_id: DbId | None = None
    payee_id: DbId | None = None
    contract_id: DbId | None = None
    as_of: dt.date | None = Field(None, description="only splits in effect on this date")


class DatedFilter(Page):
    as_of: dt.date | None = Field(None, description="only rows in effect on this date")


SUBSTRING = frozenset({"name", "title"})
NORMALISE = {
    "isrc": identifiers.normalise_isrc,
    "upc": identifiers.normalise_gtin,
    "isni": identifiers.normalise_isni,
}


def _payee_splits(payee_id: int) -> sa.Select[Any]:
    return sa.select(Split).where(Split.payee_id == payee_id)


def payee_scope(model: type[Base], payee_id: int) -> sa.ColumnElement[bool]:
    """What a payee key may read: its own payee, contracts and splits, the tracks and
    releases those splits cover, and the artist the payee is."""
    splits = _payee_splits(payee_id).subquery()
    if model is Payee:
        return Payee.id == payee_id
    if model is Contract:
        return Contract.payee_id == payee_id
    if model in (ContractRate, ContractCharge, ContractTerms):
        own = sa.select(Contract.id).where(Contract.payee_id == payee_id)
        return model.contract_id.in_(own)  # type: ignore[attr-defined]
    if model is Split:
        return Split.payee_id == payee_id
    if model is Track:
        return sa.or_(
            Track.id.in_(sa.select(splits.c.track_id)),
            Track.release_id.in_(sa.select(splits.c.release_id)),
        )
    if model is Release:
        return sa.or_(
            Release.id.in_(sa.select(splits.c.release_id)),
            Release.id.in_(
                sa.select(Track.release_id).where(Track.id.in_(sa.select(splits.c.track_id)))
            ),
        )
    if model is Artist:
        return Artist.id.in_(sa.select(Payee.artist_id).where(Payee.id == payee_id))
    return sa.false()


def scoped(model: type[Base], principal: Principal) -> sa.Select[Any]:
    """Every read starts here: rows of the caller's organisation (and payee, for payee keys)."""
    stmt = sa.select(model).where(model.org_id == principal.org_id)  # type: ignore[attr-defined]
    if principal.role is Role.PAYEE:
        assert principal.payee_id is not None
        stmt = stmt.where(payee_scope(model, principal.payee_id))
    return stmt


def _decode_cursor(cursor: str) -> int:
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
        if not isinstance(after, int) or not 0 <= after <= MAX_ID:
            raise ValueError
        return after
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValidationFailed([FieldError("cursor", "not a cursor this API issued")]) from None


def _encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def filtered(stmt: sa.Select[Any], model: type[Base], filters: Page) -> sa.Select[Any]:
    for name, value in filters.model_dump(exclude={"limit", "cursor"}, exclude_none=True).items():
        if name == "as_of":
            stmt = effective_on(stmt, model, value)
        elif name in SUBSTRING:
            stmt = stmt.where(getattr(model, name).icontains(value, autoescape=True))
        else:
            stmt = stmt.where(getattr(model, name) == NORMALISE.get(name, lambda v: v)(value))
    return stmt


def page_of(
    session: sa.orm.Session,
    stmt: sa.Select[Any],
    model: type[Base],
    page: Page,
    out: type[BaseModel],
) -> dict[str, Any]:
    """One page of ``stmt`` as a list response: ``{"items": [...], "next_cursor": ...}``."""
    rows, cursor = paginate(session, stmt, model, page)
    return {"items": [out.model_validate(r) for r in rows], "next_cursor": cursor}


def paginate(
    session: sa.orm.Session, stmt: sa.Select[Any], model: type[Base], page: Page
) -> tuple[list[Any], str | None]:
    pk = model.id
    if page.cursor:
        stmt = stmt.where(pk > _decode_cursor(page.cursor))
    rows = list(session.scalars(stmt.order_by(pk).limit(page.limit + 1)))
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return rows, _encode_cursor(rows[-1].id) if more else None
