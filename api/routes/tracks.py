"""The split sheet of a track: who is paid what on a date in a territory, and the label's rest."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import DecimalRoute, PathId, PrincipalDep, SessionDep
from api.routes.crud import get_visible
from royalty_engine import splits as split_rules
from schemas import catalog as c
from schemas.errors import FieldError, ValidationFailed
from schemas.store import service
from schemas.store.models import Role
from schemas.territories import TerritoryError, require_territory

router = APIRouter(route_class=DecimalRoute, prefix="/v1/tracks", tags=["tracks"])


class SplitSheet(BaseModel):
    track_id: int
    as_of: dt.date
    territory: str
    level: str
    splits: list[c.SplitOut]
    label_share: Annotated[Any, c.DecimalOut] | None = Field(
        description="the share left to the label; hidden from payee keys"
    )


@router.get("/{track_id}/split-sheet", response_model=SplitSheet)
def split_sheet(
    track_id: PathId,
    session: SessionDep,
    principal: PrincipalDep,
    as_of: Annotated[dt.date, Query()],
    territory: Annotated[str, Query(min_length=2, max_length=2)],
) -> Any:
    get_visible(session, "tracks", principal, track_id)
    try:
        code = require_territory(territory)
    except TerritoryError as exc:
        raise ValidationFailed([FieldError("territory", exc.reason)]) from None
    candidates = service.split_candidates(session, principal.org_id, track_id, as_of)
    splits, rest_share = split_rules.split_sheet(*candidates, as_of=as_of, territory=code)
    if principal.role is Role.PAYEE:  # a payee sees its own lines, not others' or the label's
        splits = [s for s in splits if s.payee_id == principal.payee_id]
    level = "none" if not splits else ("track" if splits[0].track_id else "release")
    return SplitSheet(
        track_id=track_id,
        as_of=as_of,
        territory=code,
        level=level,
        splits=[c.SplitOut.model_validate(s) for s in splits],
        label_share=None if principal.role is Role.PAYEE else rest_share,
    )
