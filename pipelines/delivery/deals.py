"""What a DSP gets for one release: the snapshot (metadata, assets found by convention, QC
problems), the deals in force for that DSP, and the ERN message built from it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from connectors.ddex import ern, qc
from connectors.ddex.model import (
    Credit,
    DealInfo,
    Header,
    Party,
    Problem,
    ReleaseSnapshot,
    TrackInfo,
)
from connectors.ddex.profiles import DspProfile
from connectors.ddex.validate import validate_message
from pipelines.delivery.state import DeliveryError
from schemas.store.deliveries import (
    DdexSender,
    DeliveryKind,
    ReleaseDeal,
)
from schemas.store.models import Artist, Contributor, Release, Track
from schemas.territories import WW, TerritorySet, parse_territory_set


def _first(folder: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _intersect(*sets: TerritorySet) -> TerritorySet | None:
    if all(s.worldwide for s in sets):
        return TerritorySet((WW,), tuple(sorted({c for s in sets for c in s.exclude})))
    codes = None
    for s in sets:
        codes = s.resolve() if codes is None else codes & s.resolve()
    return TerritorySet(tuple(sorted(codes))) if codes else None


def deal_info(
    model: str,
    uses: Sequence[str],
    where: TerritorySet,
    start: dt.date,
    end: dt.date | None = None,
    preorder: bool = False,
) -> DealInfo:
    if where.worldwide:
        return DealInfo(model, tuple(uses), start, ("Worldwide",), where.exclude, end, preorder)
    return DealInfo(model, tuple(uses), start, where.include, (), end, preorder)


def resolve_deals(
    session: Session, org_id: int, release: Release, profile: DspProfile, as_of: dt.date
) -> tuple[list[DealInfo], DeliveryKind]:
    """The release's active deals for this DSP and whether this is a takedown."""
    rows = list(
        session.scalars(
            sa.select(ReleaseDeal)
            .where(
                ReleaseDeal.org_id == org_id,
                ReleaseDeal.release_id == release.id,
                sa.or_(ReleaseDeal.dsp == profile.name, ReleaseDeal.dsp.is_(None)),
            )
            .order_by(ReleaseDeal.id)
        )
    )
    rows = [r for r in rows if r.dsp == profile.name] or [r for r in rows if r.dsp is None]
    allowed = (parse_territory_set(release.territories), parse_territory_set(profile.territories))
    deals: list[DealInfo] = []
    if rows:
        active = [r for r in rows if r.withdrawn_on is None or r.withdrawn_on > as_of]
        for r in active:
            where = _intersect(*allowed, parse_territory_set(r.territories))
            if where is not None:
                start = r.start_date or release.original_release_date
                deals.append(
                    deal_info(r.commercial_model, r.use_types, where, start, r.end_date, r.preorder)
                )
        return deals, DeliveryKind.FULL if active else DeliveryKind.TAKEDOWN
    for t in profile.deals:
        where = _intersect(*allowed, parse_territory_set(t.territories))
        if where is None:
            continue
        released = release.original_release_date
        if t.preorder_days:
            deals.append(
                deal_info(
                    t.commercial_model,
                    t.use_types,
                    where,
                    released - dt.timedelta(days=t.preorder_days),
                    released - dt.timedelta(days=1),
                    preorder=True,
                )
            )
        deals.append(deal_info(t.commercial_model, t.use_types, where, released))
    return deals, DeliveryKind.FULL


@dataclass
class Prepared:
    snapshot: ReleaseSnapshot
    kind: DeliveryKind
    resources: list[tuple[Path, str]]
    problems: list[Problem]


def snapshot_release(
    session: Session,
    org_id: int,
    release: Release,
    profile: DspProfile,
    assets: Path,
    as_of: dt.date,
    *,
    purge: bool = False,
) -> Prepared:
    """Everything the DSP gets for this release, QC'd: metadata, assets, deals."""
    names = dict(
        session.execute(sa.select(Artist.id, Artist.name).where(Artist.org_id == org_id)).all()
    )
    tracks = list(
        session.scalars(
            sa.select(Track)
            .where(Track.org_id == org_id, Track.release_id == release.id)
            .order_by(Track.disc_number, Track.track_number)
        )
    )
    credits: dict[int, list[Credit]] = {}
    for c in session.scalars(
        sa.select(Contributor)
        .where(Contributor.org_id == org_id, Contributor.track_id.in_([t.id for t in tracks]))
        .order_by(Contributor.sequence, Contributor.id)
    ):
        credits.setdefault(c.track_id, []).append(Credit(names[c.artist_id], c.role.value))
    folder = assets / release.upc
    problems: list[Problem] = []
    resources: list[tuple[Path, str]] = []
    infos = []
    for t in tracks:
        audio = None
        if not purge and "audio" in profile.required_assets:
            path = _first(folder, (f"{t.isrc}.flac", f"{t.isrc}.wav"))
            ext = path.suffix if path else ".flac"
            name = f"{release.upc}_{t.disc_number:02d}_{t.track_number:03d}{ext}"
            audio, found = qc.inspect_audio(
                path or folder / f"{t.isrc}.flac",
                f"resources/{name}",
                field=f"tracks[{t.track_number}].audio",
                formats=profile.audio_formats,
            )
            problems += found
            if path is not None:
                resources.append((path, name))
        infos.append(
            TrackInfo(
                isrc=t.isrc,
                title=t.title,
                version=t.version,
                artist=names[t.artist_id],
                duration_seconds=t.duration_seconds,
                explicit=t.explicit,
                disc_number=t.disc_number,
                track_number=t.track_number,
                credits=tuple(credits.get(t.id, [])),
                audio=audio,
            )
        )
    cover = None
    if not purge and "front_cover" in profile.required_assets:
        path = _first(folder, ("cover.jpg", "cover.jpeg", "cover.png"))
        ext = ".png" if path is not None and path.suffix == ".png" else ".jpg"
        cover, found = qc.inspect_image(
            path or folder / "cover.jpg", f"resources/{release.upc}{ext}", field="front_cover"
        )
        problems += found
        if path is not None:
            resources.append((path, f"{release.upc}{ext}"))
    deals: list[DealInfo] = []
    kind = DeliveryKind.PURGE
    if not purge:
        deals, kind = resolve_deals(session, org_id, release, profile, as_of)
    snap = ReleaseSnapshot(
        upc=release.upc,
        title=release.title,
        release_type=release.release_type.value,
        label=release.label_name,
        artist=names[release.artist_id],
        release_date=release.original_release_date,
        genre=release.genre,
        p_line=release.p_line,
        c_line=release.c_line,
        tracks=tuple(infos),
        cover=cover,
        deals=tuple(deals),
    )
    if not purge:
        problems += qc.check_metadata(snap, require_deals=kind is DeliveryKind.FULL)
    return Prepared(snap, kind, resources, problems)


def sender_party(session: Session, org_id: int) -> Party:
    row = session.scalar(sa.select(DdexSender).where(DdexSender.org_id == org_id))
    if row is None:
        raise DeliveryError(
            "no DDEX sender for this organisation: tunemantra ddex sender --org ORG "
            "--dpid PADPIDA... --name NAME"
        )
    return Party(row.dpid, row.name)


def build_message(
    prepared: Prepared, profile: DspProfile, sender: Party, message_id: str, now: dt.datetime
) -> tuple[bytes, list[Problem]]:
    """The ERN message for a prepared release, and its validation problems."""
    header = Header(message_id, sender, Party(profile.dpid, profile.display_name), now)
    if prepared.kind is DeliveryKind.PURGE:
        xml = ern.build_purge_release(header, prepared.snapshot)
    else:
        xml = ern.build_new_release(
            header, prepared.snapshot, track_releases=profile.track_releases
        )
    return xml, validate_message(xml)
