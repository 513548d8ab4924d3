"""The delivery use cases: deliver (package what is due, upload), the report of where each
release stands, takedowns, and building messages into a folder (files only, no state)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.ddex.model import (
    Problem,
    errors,
)
from connectors.ddex.package import message_name, stage_release
from connectors.ddex.profiles import DspProfile, load_profiles
from pipelines.delivery.deals import build_message, sender_party, snapshot_release
from pipelines.delivery.package import catalogue_problems, due_releases, package_one
from pipelines.delivery.state import DeliveryError
from pipelines.delivery.upload import OpenTarget, default_opener, target_url, upload_pending
from pipelines.resources import Resources
from pipelines.settings import Settings
from schemas.store import db
from schemas.store.deliveries import (
    Delivery,
    ReleaseDeal,
)
from schemas.store.models import Release


@dataclass
class Row:
    """One line of a delivery report: a release version for a DSP and where it stands."""

    upc: str
    title: str
    dsp: str
    state: str
    delivery_id: int
    reasons: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    message_path: str | None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def configured_profiles(settings: Settings) -> dict[str, DspProfile]:
    """The DSP profiles: the folder ``settings.dsp_profiles`` names, else the shipped ones."""
    return load_profiles(settings.dsp_profiles)


def _profiles(names: Iterable[str] | None, profiles: dict[str, DspProfile]) -> list[DspProfile]:
    if names is None:
        return list(profiles.values())
    out = []
    for n in names:
        if n not in profiles:
            raise DeliveryError(f"unknown DSP {n!r}; profiles: {', '.join(sorted(profiles))}")
        out.append(profiles[n])
    return out


def package(
    res: Resources,
    org_id: int,
    *,
    now: dt.datetime,
    as_of: dt.date,
    dsps: Iterable[str] | None = None,
    upc: str | None = None,
    purge: bool = False,
    profiles: dict[str, DspProfile] | None = None,
) -> list[int]:
    """Package every due release (or one, by UPC) for each DSP; the delivery ids."""
    profiles = profiles if profiles is not None else configured_profiles(res.settings)
    chosen = _profiles(dsps, profiles)
    ids = []
    with db.transaction(res.factory, actor="delivery") as session:
        cross = catalogue_problems(session, org_id)
        for profile in chosen:
            if upc is not None:
                release = session.scalar(
                    sa.select(Release).where(Release.org_id == org_id, Release.upc == upc)
                )
                if release is None:
                    raise DeliveryError(f"no release with UPC {upc!r}")
                releases = [release]
            else:
                releases = due_releases(session, org_id, profile, as_of)
            for release in releases:
                d = package_one(
                    session,
                    org_id,
                    release,
                    profile,
                    data=res.data,
                    now=now,
                    as_of=as_of,
                    extra=cross.get(release.upc, ()),
                    purge=purge,
                )
                ids.append(d.id)
    return ids


def deliver(
    res: Resources,
    org_id: int,
    *,
    now: dt.datetime,
    as_of: dt.date | None = None,
    dsps: Iterable[str] | None = None,
    upc: str | None = None,
    purge: bool = False,
    profiles: dict[str, DspProfile] | None = None,
    opener: OpenTarget | None = None,
) -> list[Row]:
    """Package what is due, upload it in batches per DSP and report each release × DSP."""
    profiles = profiles if profiles is not None else configured_profiles(res.settings)
    as_of = as_of or now.date()
    ids = package(
        res,
        org_id,
        now=now,
        as_of=as_of,
        dsps=dsps,
        upc=upc,
        purge=purge,
        profiles=profiles,
    )
    opener = opener or default_opener(res.data)
    for profile in _profiles(dsps, profiles):
        upload_pending(
            res.factory,
            org_id,
            profile,
            opener=opener,
            target=target_url(profile, res.data),
            now=now,
        )
    return report(res.factory, org_id, ids)


def report(factory: sessionmaker[Session], org_id: int, ids: list[int]) -> list[Row]:
    with factory() as session:
        rows = session.execute(
            sa.select(Delivery, Release.title)
            .join(Release, Release.id == Delivery.release_id)
            .where(Delivery.org_id == org_id, Delivery.id.in_(ids))
            .order_by(Delivery.upc, Delivery.dsp)
        ).all()
        return [
            Row(
                d.upc,
                title,
                d.dsp,
                d.state.value,
                d.id,
                list(d.reasons),
                list(d.warnings),
                d.message_path,
            )
            for d, title in rows
        ]


def takedown(
    factory: sessionmaker[Session],
    org_id: int,
    upc: str,
    dsp: str,
    *,
    on: dt.date,
    profiles: dict[str, DspProfile] | None = None,
) -> int:
    """Withdraw every deal of a release for one DSP from ``on``; the next delivery is the
    statement of truth without them. Returns how many deals were withdrawn."""
    profiles = profiles if profiles is not None else load_profiles()
    (profile,) = _profiles([dsp], profiles)
    with db.transaction(factory, actor="delivery") as session:
        release = session.scalar(
            sa.select(Release).where(Release.org_id == org_id, Release.upc == upc)
        )
        if release is None:
            raise DeliveryError(f"no release with UPC {upc!r}")
        rows = list(
            session.scalars(
                sa.select(ReleaseDeal).where(
                    ReleaseDeal.org_id == org_id,
                    ReleaseDeal.release_id == release.id,
                    sa.or_(ReleaseDeal.dsp == dsp, ReleaseDeal.dsp.is_(None)),
                )
            )
        )
        specific = [r for r in rows if r.dsp == dsp]
        if specific:
            live = [r for r in specific if r.withdrawn_on is None or r.withdrawn_on > on]
            for r in live:
                r.withdrawn_on = on
            return len(live)
        # Deals for every DSP, or the profile's defaults: this DSP gets its own copies,
        # withdrawn (the other DSPs keep theirs).
        templates = [
            (r.commercial_model, list(r.use_types), r.territories, r.start_date, r.end_date)
            for r in rows
        ] or [
            (t.commercial_model, list(t.use_types), t.territories, None, None)
            for t in profile.deals
        ]
        for model, uses, territories, start, end in templates:
            session.add(
                ReleaseDeal(
                    org_id=org_id,
                    release_id=release.id,
                    dsp=dsp,
                    commercial_model=model,
                    use_types=uses,
                    territories=territories,
                    start_date=start,
                    end_date=end,
                    withdrawn_on=on,
                )
            )
        return len(templates)


# --- ddex build (files only, no state) ------------------------------------------------------------
@dataclass
class Built:
    upc: str
    path: Path | None
    problems: list[Problem]


def build_to_folder(
    res: Resources,
    org_id: int,
    profile: DspProfile,
    out: Path,
    *,
    now: dt.datetime,
    upcs: Sequence[str] | None = None,
    assets: Path | None = None,
) -> list[Built]:
    """Write each release's message and ``resources/`` under ``out/<UPC>/`` (validated);
    releases failing QC or validation are listed with their reasons and not written."""
    built = []
    with res.factory() as session:
        sender = sender_party(session, org_id)
        stmt = sa.select(Release).where(Release.org_id == org_id).order_by(Release.id)
        if upcs is not None:
            stmt = stmt.where(Release.upc.in_(list(upcs)))
        releases = list(session.scalars(stmt))
        if upcs is not None and len(releases) != len(set(upcs)):
            missing = sorted(set(upcs) - {r.upc for r in releases})
            raise DeliveryError(f"no release with UPC {', '.join(missing)}")
        cross = catalogue_problems(session, org_id)
        for release in releases:
            prepared = snapshot_release(
                session,
                org_id,
                release,
                profile,
                assets or res.data.assets(org_id),
                now.date(),
            )
            problems = prepared.problems + cross.get(release.upc, [])
            if errors(problems):
                built.append(Built(release.upc, None, problems))
                continue
            message_id = f"TM{org_id}-{release.id}-{prepared.snapshot.fingerprint()[:12]}"
            xml, invalid = build_message(prepared, profile, sender, message_id, now)
            problems += invalid
            if errors(invalid):
                built.append(Built(release.upc, None, problems))
                continue
            folder = stage_release(out, release.upc, xml, prepared.resources)
            built.append(Built(release.upc, folder / message_name(release.upc), problems))
    return built
