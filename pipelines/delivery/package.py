"""Packaging: QC, build, validate and stage one release version for one DSP (idempotent per
version); which releases are due; cross-release checks over the catalogue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connectors.ddex import qc
from connectors.ddex.model import (
    Problem,
    ReleaseSnapshot,
    TrackInfo,
    errors,
)
from connectors.ddex.package import stage_release
from connectors.ddex.profiles import DspProfile
from pipelines.delivery.deals import build_message, sender_party, snapshot_release
from pipelines.delivery.state import S, move
from pipelines.layout import DataDir
from schemas.store.deliveries import (
    Delivery,
    DeliveryEvent,
)
from schemas.store.models import Release, Track


def _reasons(problems: list[Problem], upc: str, dsp: str, severity: str) -> list[dict[str, Any]]:
    return [p.as_dict(release=upc, dsp=dsp) for p in problems if p.severity == severity]


def package_one(
    session: Session,
    org_id: int,
    release: Release,
    profile: DspProfile,
    *,
    data: DataDir,
    now: dt.datetime,
    as_of: dt.date,
    extra: Sequence[Problem] = (),
    purge: bool = False,
) -> Delivery:
    """QC, build, validate and stage one release for one DSP; idempotent per version."""
    sender = sender_party(session, org_id)
    prepared = snapshot_release(
        session, org_id, release, profile, data.assets(org_id), as_of, purge=purge
    )
    prepared.problems += list(extra)
    fingerprint = prepared.snapshot.fingerprint()
    if purge:
        fingerprint = "purge-" + fingerprint[:58]
    d = session.scalar(
        sa.select(Delivery).where(
            Delivery.org_id == org_id,
            Delivery.release_id == release.id,
            Delivery.dsp == profile.name,
            Delivery.fingerprint == fingerprint,
        )
    )
    if d is not None and d.state is not S.QC_FAILED:
        return d  # this version is packaged, on its way or delivered already
    if d is None:
        d = Delivery(
            org_id=org_id,
            release_id=release.id,
            upc=release.upc,
            dsp=profile.name,
            kind=prepared.kind,
            fingerprint=fingerprint,
            state=S.QUEUED,
            message_id=f"TM{org_id}-{release.id}-{profile.name}-{fingerprint[:12]}"[:64],
            reasons=[],
            warnings=[],
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(d)
        session.flush()
        session.add(
            DeliveryEvent(
                org_id=org_id, delivery_id=d.id, at=now, from_state=None, to_state="queued"
            )
        )
    else:
        move(session, d, S.QUEUED, now, why="re-checked")
    problems = prepared.problems
    d.warnings = _reasons(problems, release.upc, profile.name, "warning")
    if not errors(problems):
        xml, invalid = build_message(prepared, profile, sender, d.message_id, now)
        problems = problems + invalid
    d.reasons = _reasons(problems, release.upc, profile.name, "error")
    d.warnings = _reasons(problems, release.upc, profile.name, "warning")
    if d.reasons:
        move(session, d, S.QC_FAILED, now, reasons=len(d.reasons))
        return d
    root = data.deliveries(org_id) / profile.name / fingerprint[:16]
    d.staged_path = str(stage_release(root, release.upc, xml, prepared.resources))
    move(session, d, S.PACKAGED, now)
    return d


def due_releases(
    session: Session, org_id: int, profile: DspProfile, as_of: dt.date
) -> list[Release]:
    """Releases whose date minus the DSP's lead time has come."""
    last = as_of + dt.timedelta(days=profile.lead_time_days)
    return list(
        session.scalars(
            sa.select(Release)
            .where(Release.org_id == org_id, Release.original_release_date <= last)
            .order_by(Release.id)
        )
    )


def catalogue_problems(session: Session, org_id: int) -> dict[str, list[Problem]]:
    """Cross-release checks (UPC and ISRC reuse) over the organisation's catalogue."""
    rows = session.execute(
        sa.select(Release.upc, Track.isrc, Track.title, Track.version, Track.duration_seconds)
        .join(Track, Track.release_id == Release.id)
        .where(Release.org_id == org_id)
    ).all()
    snaps: dict[str, list[TrackInfo]] = {}
    for upc, isrc, title, version, seconds in rows:
        snaps.setdefault(upc, []).append(
            TrackInfo(isrc, title, version, "", seconds, False, 1, len(snaps.get(upc, [])) + 1)
        )
    releases = [
        ReleaseSnapshot(upc, "", "", "", "", dt.date.min, None, None, None, tuple(tracks))
        for upc, tracks in snaps.items()
    ]
    return qc.check_catalogue(releases)
