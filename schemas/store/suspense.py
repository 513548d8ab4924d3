"""Resolving suspense: a manual match is remembered as a ``MatchRule`` and applies to every
future line with the same key (and to past lines at the next rematch)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from schemas.errors import Conflict, FieldError, NotFound, ValidationFailed
from schemas.store.models import MatchRule, Release, SuspenseItem, SuspenseStatus, Track
from schemas.store.service import get_owned


def resolve(
    session: Session,
    org_id: int,
    item_id: int,
    *,
    track_id: int | None = None,
    release_id: int | None = None,
    note: str = "",
) -> MatchRule:
    if (track_id is None) == (release_id is None):
        raise ValidationFailed(
            [FieldError("track_id", "give exactly one of track_id or release_id")]
        )
    item = get_owned(session, SuspenseItem, org_id, item_id)
    if item.status is SuspenseStatus.RESOLVED:
        raise Conflict(f"suspense item {item_id} is already resolved by rule {item.rule_id}")
    try:
        if track_id is not None:
            track = get_owned(session, Track, org_id, track_id)
            target: dict[str, int | None] = {"track_id": track.id, "release_id": track.release_id}
        else:
            assert release_id is not None
            target = {
                "track_id": None,
                "release_id": get_owned(session, Release, org_id, release_id).id,
            }
    except NotFound as exc:  # a field error on the request, not a 404 of the item
        name = "track_id" if track_id is not None else "release_id"
        raise ValidationFailed([FieldError(name, str(exc), "not_found")]) from None
    rule = MatchRule(org_id=org_id, kind=item.kind, key=item.key, note=note, **target)
    session.add(rule)
    session.flush()
    item.status, item.rule_id = SuspenseStatus.RESOLVED, rule.id
    session.flush()
    return rule
