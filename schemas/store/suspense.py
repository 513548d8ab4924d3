"""Resolving suspense: a manual match is remembered as a ``MatchRule`` and applies to every
future line with the same key (and to past lines at the next rematch). ``forget`` deletes a
remembered match: future lines with its key are unmatched again (lines it already matched
keep their match; the audit log keeps the rule)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemas.errors import Conflict, FieldError, NotFound, ValidationFailed
from schemas.identifiers import gtin_forms
from schemas.store.models import (
    MatchKind,
    MatchRule,
    Release,
    SuspenseItem,
    SuspenseStatus,
    Track,
)
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
    owner = _catalogue_owner(session, org_id, item)
    if owner is not None:
        raise Conflict(
            f"{item.key} is now the code of {owner} in the catalogue, which matches its lines "
            "before any remembered match would: run rematch (tunemantra rematch) to take them "
            "there; to send them elsewhere, correct the catalogue first"
        )
    rule = MatchRule(org_id=org_id, kind=item.kind, key=item.key, note=note, **target)
    session.add(rule)
    session.flush()
    item.status, item.rule_id = SuspenseStatus.RESOLVED, rule.id
    session.flush()
    return rule


def _catalogue_owner(session: Session, org_id: int, item: SuspenseItem) -> str | None:
    """The track or release whose own ISRC or UPC an item's key has become since its lines
    went to suspense (added to the catalogue, not rematched yet)."""
    if item.kind is MatchKind.ISRC:
        track = session.scalar(
            sa.select(Track.id).where(Track.org_id == org_id, Track.isrc == item.key)
        )
        return None if track is None else f"track {track}"
    if item.kind is MatchKind.UPC and item.key.isdigit():
        release = session.scalar(
            sa.select(Release.id)
            .where(Release.org_id == org_id, Release.upc.in_(gtin_forms(item.key)))
            .limit(1)
        )
        return None if release is None else f"release {release}"
    return None


def forget(session: Session, org_id: int, rule_id: int) -> None:
    """Delete a remembered match. A suspense item it resolved is open again."""
    rule = get_owned(session, MatchRule, org_id, rule_id)
    for item in session.scalars(
        sa.select(SuspenseItem).where(
            SuspenseItem.org_id == org_id, SuspenseItem.rule_id == rule.id
        )
    ):
        item.status, item.rule_id = SuspenseStatus.OPEN, None
    session.delete(rule)
    session.flush()
