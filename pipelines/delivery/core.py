"""DSP delivery: catalogue -> QC -> ERN 4.3 -> staged package -> batch upload -> ACKs.

One :class:`schemas.store.deliveries.Delivery` per release *version* and DSP (the snapshot's
fingerprint), moving along ``queued -> qc_failed | packaged -> uploading -> uploaded ->
acknowledged | rejected`` (and ``failed`` when upload retries run out or no ACK comes in
time). Every move is recorded as a ``DeliveryEvent``. Reruns are idempotent: a version that
already has a delivery is never packaged or batched again; a failed upload is retried into
the *same* batch folder, after an exponential back-off (``retry_base_seconds`` × 2^(n-1)).

Assets are found by convention under ``<data dir>/assets/org=<id>/<UPC>/``: ``cover.jpg``
(or ``.jpeg``/``.png``) and ``<ISRC>.flac`` (or ``.wav``). Deals are the release's explicit
``release_deals`` for the DSP, else the DSP profile's defaults, in the territories both the
release and the profile allow. Times come in as arguments (``now``, ``as_of``): nothing here
reads the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.ddex import ern, qc
from connectors.ddex.ack import ACK_FOLDER, AckError, ack_xml, parse_ack
from connectors.ddex.model import (
    Credit,
    DealInfo,
    Header,
    Party,
    Problem,
    ReleaseSnapshot,
    TrackInfo,
    errors,
)
from connectors.ddex.package import batch_name, message_name, stage_release, upload_batch
from connectors.ddex.profiles import DspProfile, load_profiles
from connectors.ddex.validate import validate_message
from connectors.drops import Drop, LocalDrop
from schemas.store import db
from schemas.store.deliveries import (
    TRANSITIONS,
    BatchState,
    DdexSender,
    Delivery,
    DeliveryAck,
    DeliveryBatch,
    DeliveryEvent,
    DeliveryKind,
    DeliveryState,
    ReleaseDeal,
)
from schemas.store.models import Artist, Contributor, Organisation, Release, Track
from schemas.territories import WW, TerritorySet, parse_territory_set

S = DeliveryState
log = logging.getLogger(__name__)
OpenTarget = Callable[[DspProfile], Drop]


class IllegalTransition(RuntimeError):
    """A delivery asked to move to a state its state machine does not allow from here."""


class DeliveryError(ValueError):
    """A delivery request that cannot start (unknown DSP or release, no DDEX sender)."""


# --- where things are ---------------------------------------------------------------------------
def assets_dir(data_dir: Path, org_id: int) -> Path:
    return data_dir / "assets" / f"org={org_id}"


def staging_dir(data_dir: Path, org_id: int) -> Path:
    return data_dir / "deliveries" / f"org={org_id}"


def _first(folder: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def target_url(profile: DspProfile, data_dir: Path) -> str:
    """The profile's drop URL; a local path is relative to the data dir."""
    if profile.protocol == "local":
        path = Path(profile.url)
        return str(path if path.is_absolute() else data_dir / path)
    return profile.url


def default_opener(data_dir: Path) -> OpenTarget:
    """Open a profile's drop with credentials from the environment variable it names."""
    from pipelines.connections import connect

    def opener(profile: DspProfile) -> Drop:
        url = target_url(profile, data_dir)
        if profile.protocol == "local":
            Path(url).mkdir(parents=True, exist_ok=True)
            return LocalDrop(url)
        return connect(url, profile.secret_env)

    return opener


# --- state machine ------------------------------------------------------------------------------
def move(session: Session, d: Delivery, to: DeliveryState, now: dt.datetime, **detail: Any) -> None:
    """Change a delivery's state along TRANSITIONS, recording the event."""
    if to not in TRANSITIONS[d.state]:
        raise IllegalTransition(f"delivery {d.id}: {d.state.value} -> {to.value} is not allowed")
    session.add(
        DeliveryEvent(
            org_id=d.org_id,
            delivery_id=d.id,
            at=now,
            from_state=d.state.value,
            to_state=to.value,
            detail=detail,
        )
    )
    d.state = to
    d.updated_at = now


# --- snapshot of a release for one DSP ----------------------------------------------------------
def _intersect(*sets: TerritorySet) -> TerritorySet | None:
    if all(s.worldwide for s in sets):
        return TerritorySet((WW,), tuple(sorted({c for s in sets for c in s.exclude})))
    codes = None
    for s in sets:
        codes = s.resolve() if codes is None else codes & s.resolve()
    return TerritorySet(tuple(sorted(codes))) if codes else None


def _deal(
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
                    _deal(r.commercial_model, r.use_types, where, start, r.end_date, r.preorder)
                )
        return deals, DeliveryKind.FULL if active else DeliveryKind.TAKEDOWN
    for t in profile.deals:
        where = _intersect(*allowed, parse_territory_set(t.territories))
        if where is None:
            continue
        released = release.original_release_date
        if t.preorder_days:
            deals.append(
                _deal(
                    t.commercial_model,
                    t.use_types,
                    where,
                    released - dt.timedelta(days=t.preorder_days),
                    released - dt.timedelta(days=1),
                    preorder=True,
                )
            )
        deals.append(_deal(t.commercial_model, t.use_types, where, released))
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


# --- packaging ------------------------------------------------------------------------------------
def _reasons(problems: list[Problem], upc: str, dsp: str, severity: str) -> list[dict[str, Any]]:
    return [p.as_dict(release=upc, dsp=dsp) for p in problems if p.severity == severity]


def package_one(
    session: Session,
    org_id: int,
    release: Release,
    profile: DspProfile,
    *,
    data_dir: Path,
    now: dt.datetime,
    as_of: dt.date,
    extra: Sequence[Problem] = (),
    purge: bool = False,
) -> Delivery:
    """QC, build, validate and stage one release for one DSP; idempotent per version."""
    sender = sender_party(session, org_id)
    prepared = snapshot_release(
        session, org_id, release, profile, assets_dir(data_dir, org_id), as_of, purge=purge
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
    root = staging_dir(data_dir, org_id) / profile.name / fingerprint[:16]
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


# --- upload ---------------------------------------------------------------------------------------
@dataclass
class UploadResult:
    dsp: str
    batches: list[str] = field(default_factory=list)
    uploaded: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def upload_pending(
    factory: sessionmaker[Session],
    org_id: int,
    profile: DspProfile,
    *,
    opener: OpenTarget,
    target: str,
    now: dt.datetime,
) -> UploadResult:
    """Upload every packaged delivery of one DSP that is due, in batches; the manifest of a
    batch only after all its files. A failure puts the batch's deliveries back to
    ``packaged`` with a back-off (or ``failed`` after ``max_attempts``)."""
    result = UploadResult(profile.name)
    with db.transaction(factory, actor="delivery") as session:
        pending = list(
            session.scalars(
                sa.select(Delivery)
                .where(
                    Delivery.org_id == org_id,
                    Delivery.dsp == profile.name,
                    Delivery.state == S.PACKAGED,
                    sa.or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                )
                .order_by(Delivery.id)
            )
        )
        groups: dict[int, list[int]] = {}
        fresh = [d for d in pending if d.batch_id is None]
        for d in pending:
            if d.batch_id is not None:
                groups.setdefault(d.batch_id, []).append(d.id)
        for i in range(0, len(fresh), profile.batch_size):
            name = batch_name(now + dt.timedelta(milliseconds=i // profile.batch_size))
            batch = DeliveryBatch(
                org_id=org_id, dsp=profile.name, name=name, target=target, created_at=now
            )
            session.add(batch)
            session.flush()
            for d in fresh[i : i + profile.batch_size]:
                d.batch_id = batch.id
                d.message_path = f"{name}/{d.upc}/{message_name(d.upc)}"
                groups.setdefault(batch.id, []).append(d.id)
    for batch_id, ids in groups.items():
        _upload_one_batch(factory, org_id, profile, batch_id, ids, opener, now, result)
    return result


def _upload_one_batch(
    factory: sessionmaker[Session],
    org_id: int,
    profile: DspProfile,
    batch_id: int,
    ids: list[int],
    opener: OpenTarget,
    now: dt.datetime,
    result: UploadResult,
) -> None:
    with db.transaction(factory, actor="delivery") as session:
        batch = session.get_one(DeliveryBatch, batch_id)
        name = batch.name
        staged = []
        for d in _deliveries(session, org_id, ids):
            d.attempts += 1
            move(session, d, S.UPLOADING, now, batch=name, attempt=d.attempts)
            staged.append(Path(d.staged_path or ""))
    try:
        for folder in staged:
            if not (folder / message_name(folder.name)).is_file():
                raise FileNotFoundError(f"staged package {folder} is missing")
        with opener(profile) as drop:
            manifest = upload_batch(drop, name, staged, created=now)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        result.errors.append(error)
        with db.transaction(factory, actor="delivery") as session:
            for d in _deliveries(session, org_id, ids):
                d.last_error = error
                if d.attempts >= profile.max_attempts:
                    move(session, d, S.FAILED, now, error=error, code="upload_failed")
                    d.reasons = [
                        {
                            "release": d.upc,
                            "dsp": d.dsp,
                            "field": "upload",
                            "code": "upload_failed",
                            "message": f"{d.attempts} attempts failed; last: {error}",
                            "severity": "error",
                        }
                    ]
                    result.failed += 1
                else:
                    delay = profile.retry_base_seconds * 2 ** (d.attempts - 1)
                    d.next_attempt_at = now + dt.timedelta(seconds=delay)
                    move(session, d, S.PACKAGED, now, error=error, retry_in_seconds=delay)
                    result.retrying += 1
            batch = session.get_one(DeliveryBatch, batch_id)
            if all(d.state is S.FAILED for d in _deliveries(session, org_id, ids)):
                batch.state = BatchState.FAILED
        return
    with db.transaction(factory, actor="delivery") as session:
        for d in _deliveries(session, org_id, ids):
            d.uploaded_at = now
            d.next_attempt_at = None
            d.last_error = None
            move(session, d, S.UPLOADED, now, batch=name)
            result.uploaded += 1
        batch = session.get_one(DeliveryBatch, batch_id)
        batch.state = BatchState.COMPLETE
        batch.manifest = manifest
        batch.completed_at = now
    result.batches.append(name)


def _deliveries(session: Session, org_id: int, ids: list[int]) -> list[Delivery]:
    return list(
        session.scalars(
            sa.select(Delivery)
            .where(Delivery.org_id == org_id, Delivery.id.in_(ids))
            .order_by(Delivery.id)
        )
    )


# --- acknowledgements -----------------------------------------------------------------------------
@dataclass
class AckResult:
    dsp: str
    applied: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    unmatched: int = 0
    timed_out: int = 0


def poll_acks(
    factory: sessionmaker[Session],
    org_id: int,
    profile: DspProfile,
    *,
    opener: OpenTarget,
    now: dt.datetime,
) -> AckResult:
    """Read new ACK files from the DSP's ``acknowledgements/`` folder, apply them, and fail
    uploaded deliveries that waited longer than the profile's ``ack_timeout_hours``."""
    result = AckResult(profile.name)
    with factory() as session:
        seen = set(
            session.scalars(
                sa.select(DeliveryAck.name).where(
                    DeliveryAck.org_id == org_id, DeliveryAck.dsp == profile.name
                )
            )
        )
    with opener(profile) as drop:
        files = [
            (e.name, drop.read(e.name))
            for e in drop.list()
            if e.name.startswith(f"{ACK_FOLDER}/") and e.name not in seen
        ]
    for name, data in files:
        with db.transaction(factory, actor="delivery") as session:
            record = DeliveryAck(
                org_id=org_id, dsp=profile.name, name=name, outcome="applied", received_at=now
            )
            session.add(record)
            try:
                items = parse_ack(data)
            except AckError as exc:
                record.outcome, record.code, record.detail = "refused", exc.code, exc.message
                result.refused.append({"file": name, "code": exc.code, "message": exc.message})
                continue
            matched = 0
            for item in items:
                d = session.scalar(
                    sa.select(Delivery).where(
                        Delivery.org_id == org_id,
                        Delivery.dsp == profile.name,
                        Delivery.message_path == item.message_path,
                    )
                )
                if d is None or d.state is not S.UPLOADED:
                    continue
                matched += 1
                d.ack_status, d.ack_text = item.raw_status, item.text
                if item.status == "ingested":
                    d.acknowledged_at = now
                    move(session, d, S.ACKNOWLEDGED, now, ack=name)
                else:
                    d.reasons = [
                        {
                            "release": d.upc,
                            "dsp": d.dsp,
                            "field": "acknowledgement",
                            "code": "dsp_rejected",
                            "message": f"{item.raw_status}: {item.text or ''}".strip(),
                            "severity": "error",
                        }
                    ]
                    move(session, d, S.REJECTED, now, ack=name, status=item.raw_status)
            result.applied += matched
            if matched < len(items):
                result.unmatched += len(items) - matched
                record.outcome = "applied" if matched else "unmatched"
                record.detail = f"{len(items) - matched} acknowledgement(s) matched no upload"
    deadline = now - dt.timedelta(hours=profile.ack_timeout_hours)
    with db.transaction(factory, actor="delivery") as session:
        for d in session.scalars(
            sa.select(Delivery).where(
                Delivery.org_id == org_id,
                Delivery.dsp == profile.name,
                Delivery.state == S.UPLOADED,
                Delivery.uploaded_at < deadline,
            )
        ):
            d.reasons = [
                {
                    "release": d.upc,
                    "dsp": d.dsp,
                    "field": "acknowledgement",
                    "code": "ack_timeout",
                    "message": f"no acknowledgement within {profile.ack_timeout_hours} h",
                    "severity": "error",
                }
            ]
            move(session, d, S.FAILED, now, code="ack_timeout")
            result.timed_out += 1
    return result


def poll_every_dsp(
    factory: sessionmaker[Session],
    org_id: int,
    profiles: Iterable[DspProfile],
    *,
    opener: OpenTarget,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """``poll_acks`` for each DSP in turn, one outcome each: ``status`` ``ok`` with the counts,
    or ``failed`` with the ``error`` when the DSP could not be polled (host unknown, connection
    refused, credentials). One DSP down never stops the acknowledgements of the others; its
    uploads are not timed out meanwhile (nobody could see whether an ACK arrived)."""
    out: list[dict[str, Any]] = []
    for profile in profiles:
        try:
            r = poll_acks(factory, org_id, profile, opener=opener, now=now)
        except Exception as exc:
            log.warning("acknowledgements of %s cannot be read: %r", profile.name, exc)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            out.append({"dsp": profile.name, "status": "failed", "error": error})
            continue
        out.append({"dsp": r.dsp, "status": "ok", **asdict(r)})
    return out


# --- the use case ---------------------------------------------------------------------------------
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
    factory: sessionmaker[Session],
    data_dir: Path,
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
    profiles = profiles if profiles is not None else load_profiles()
    chosen = _profiles(dsps, profiles)
    ids = []
    with db.transaction(factory, actor="delivery") as session:
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
                    data_dir=data_dir,
                    now=now,
                    as_of=as_of,
                    extra=cross.get(release.upc, ()),
                    purge=purge,
                )
                ids.append(d.id)
    return ids


def deliver(
    factory: sessionmaker[Session],
    data_dir: Path,
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
    profiles = profiles if profiles is not None else load_profiles()
    as_of = as_of or now.date()
    ids = package(
        factory,
        data_dir,
        org_id,
        now=now,
        as_of=as_of,
        dsps=dsps,
        upc=upc,
        purge=purge,
        profiles=profiles,
    )
    opener = opener or default_opener(data_dir)
    for profile in _profiles(dsps, profiles):
        upload_pending(
            factory,
            org_id,
            profile,
            opener=opener,
            target=target_url(profile, data_dir),
            now=now,
        )
    return report(factory, org_id, ids)


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
    factory: sessionmaker[Session],
    data_dir: Path,
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
    with factory() as session:
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
                assets or assets_dir(data_dir, org_id),
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


# --- the demo -------------------------------------------------------------------------------------
DEMO_SENDER = Party("PADPIDA2026NBREC0B", "Northbound Records")
DEMO_BROKEN = "Tideline"  # its cover art is 1400×1400 and its audio 22.05 kHz: QC stops it


def deliver_demo(
    factory: sessionmaker[Session],
    data_dir: Path,
    org_id: int,
    *,
    now: dt.datetime,
    seed: int = 2026,
) -> list[Row]:
    """The sample label's releases to every DSP profile, each into a local folder
    ``<data dir>/dsp/<name>`` (standing in for its SFTP server or bucket), then ACKs written
    as each DSP would, and read back. One release fails QC on purpose."""
    from demo.assets import release_assets, write_audio, write_cover

    profiles = load_profiles()
    assets = assets_dir(data_dir, org_id)
    with db.transaction(factory, actor="demo") as session:
        # the assets and staged packages of purged organisations (earlier demo runs) go
        live = {f"org={i}" for i in session.scalars(sa.select(Organisation.id))}
        for root in (data_dir / "assets", data_dir / "deliveries"):
            for folder in root.glob("org=*") if root.is_dir() else ():
                if folder.name not in live:
                    shutil.rmtree(folder, ignore_errors=True)
        session.add(DdexSender(org_id=org_id, dpid=DEMO_SENDER.dpid, name=DEMO_SENDER.name))
        for n, release in enumerate(
            session.scalars(sa.select(Release).where(Release.org_id == org_id))
        ):
            isrcs = list(
                session.scalars(sa.select(Track.isrc).where(Track.release_id == release.id))
            )
            if release.title == DEMO_BROKEN:
                folder = assets / release.upc
                write_cover(folder / "cover.jpg", seed=n, size=1400)
                for isrc in isrcs:
                    write_audio(folder / f"{isrc}.flac", rate=22_050)
            else:
                release_assets(assets, release.upc, isrcs, seed=seed + n)
    for name in profiles:
        shutil.rmtree(data_dir / "dsp" / name, ignore_errors=True)
    shutil.rmtree(staging_dir(data_dir, org_id), ignore_errors=True)

    def local(profile: DspProfile) -> Drop:
        folder = data_dir / "dsp" / profile.name
        folder.mkdir(parents=True, exist_ok=True)
        return LocalDrop(folder)

    rows = deliver(
        factory, data_dir, org_id, now=now, as_of=now.date(), profiles=profiles, opener=local
    )
    for row in rows:  # each DSP ingests what arrived
        if row.state == S.UPLOADED.value and row.message_path:
            drop = local(profiles[row.dsp])
            drop.put(
                f"{ACK_FOLDER}/ACK_{row.upc}.xml",
                ack_xml(row.message_path, "FileOK", ack_id=f"ACK-{row.dsp}-{row.upc}"),
            )
    later = now + dt.timedelta(minutes=5)
    for profile in profiles.values():
        poll_acks(factory, org_id, profile, opener=local, now=later)
    return report(factory, org_id, [r.delivery_id for r in rows])


def print_delivery(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    dsps = sorted({r.dsp for r in rows})
    table = Table(title="DSP delivery (DDEX ERN 4.3, local DSP folders under var/dsp/)")
    table.add_column("release")
    for dsp in dsps:
        table.add_column(dsp)
    table.add_column("why not delivered")
    by_release: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_release.setdefault(f"{r.upc} {r.title}", {})[r.dsp] = r
    for name, cells in sorted(by_release.items()):
        reasons = sorted({x["code"] for r in cells.values() for x in r.reasons})
        table.add_row(
            name,
            *(cells[d].state if d in cells else "-" for d in dsps),
            ", ".join(reasons),
        )
    Console(width=150).print(table)


# --- Airflow task bodies (settings from the environment; small JSON-able results) -----------------
def configured_profiles() -> dict[str, DspProfile]:
    """The DSP profiles: ``schemas/dsp_profiles``, or the folder ``TUNEMANTRA_DSP_PROFILES``
    names (entry points only: the CLI and the Airflow task bodies)."""
    folder = os.environ.get("TUNEMANTRA_DSP_PROFILES")
    return load_profiles(Path(folder) if folder else None)


def _env() -> tuple[sessionmaker[Session], Path]:
    from pipelines.resources import get_session_factory
    from pipelines.settings import get_settings

    return get_session_factory(), get_settings().data_dir


def _org_id(factory: sessionmaker[Session], slug: str) -> int:
    with factory() as session:
        org_id = session.scalar(sa.select(Organisation.id).where(Organisation.slug == slug))
    if org_id is None:
        raise DeliveryError(f"no organisation {slug!r}")
    return org_id


def plan_task(org: str, as_of: str) -> list[dict[str, str]]:
    """(release, DSP) pairs due on ``as_of`` (YYYY-MM-DD) for every profile."""
    factory, _ = _env()
    org_id = _org_id(factory, org)
    day = dt.date.fromisoformat(as_of)
    with factory() as session:
        return [
            {"upc": r.upc, "dsp": p.name}
            for p in configured_profiles().values()
            for r in due_releases(session, org_id, p, day)
        ]


def package_task(org: str, item: dict[str, str], now: str) -> dict[str, Any]:
    factory, data_dir = _env()
    org_id = _org_id(factory, org)
    moment = dt.datetime.fromisoformat(now)
    (delivery_id,) = package(
        factory,
        data_dir,
        org_id,
        now=moment,
        as_of=moment.date(),
        dsps=[item["dsp"]],
        upc=item["upc"],
        profiles=configured_profiles(),
    )
    (row,) = report(factory, org_id, [delivery_id])
    return {"upc": row.upc, "dsp": row.dsp, "state": row.state, "delivery_id": row.delivery_id}


def upload_task(org: str, now: str) -> dict[str, Any]:
    factory, data_dir = _env()
    org_id = _org_id(factory, org)
    opener = default_opener(data_dir)
    out = {}
    for profile in configured_profiles().values():
        r = upload_pending(
            factory,
            org_id,
            profile,
            opener=opener,
            target=target_url(profile, data_dir),
            now=dt.datetime.fromisoformat(now),
        )
        out[profile.name] = {
            "batches": r.batches,
            "uploaded": r.uploaded,
            "retrying": r.retrying,
            "failed": r.failed,
        }
    return out


def poll_task(org: str, now: str) -> dict[str, Any]:
    factory, data_dir = _env()
    org_id = _org_id(factory, org)
    outcomes = poll_every_dsp(
        factory,
        org_id,
        configured_profiles().values(),
        opener=default_opener(data_dir),
        now=dt.datetime.fromisoformat(now),
    )
    failed = [o for o in outcomes if o["status"] == "failed"]
    if failed:  # after every other DSP was polled: the run shows the outage, never green
        raise AckPollFailed("; ".join(f"{o['dsp']}: {o['error']}" for o in failed))
    return {
        o["dsp"]: {
            "applied": o["applied"],
            "refused": len(o["refused"]),
            "unmatched": o["unmatched"],
            "timed_out": o["timed_out"],
        }
        for o in outcomes
    }


class AckPollFailed(RuntimeError):
    """Some DSPs could not be polled (the others were); the message names each and why."""


# --- benchmark ------------------------------------------------------------------------------------
def bench(
    tracks: int, workdir: Path, *, per_release: int = 10, pool: int = 32, seed: int = 7
) -> dict[str, Any]:
    """QC + ERN build + XSD validation + packaging to a local folder for ``tracks`` tracks.

    Inputs are generated first (not timed): ``pool`` distinct FLAC files and 8 covers, shared
    round-robin by the tracks (every track's file is still opened, checked, hashed and copied
    on its own). Timed: per release, audio and artwork QC, metadata and cross-release checks,
    building the NewReleaseMessage, validating it against the XSD plus the extra checks, and
    staging the release folder (message + resources).
    """
    import time

    from connectors.ddex.validate import schema
    from demo.assets import write_audio, write_cover
    from schemas.territories import WORLDWIDE

    src = workdir / "inputs"
    audio_pool = [
        write_audio(src / f"a{i}.flac", freq=200.0 + 13.0 * i) for i in range(min(pool, tracks))
    ]
    covers = [write_cover(src / f"c{i}.jpg", seed=seed + i) for i in range(8)]
    out = workdir / "out"
    sender = Party("PADPIDA2026BENCH0R", "Bench Records")
    recipient = Party("PADPIDA2026AURORAN", "Aurora Music")
    schema()  # compiled once per process, as in a long-running worker
    deal = _deal("SubscriptionModel", ["OnDemandStream"], WORLDWIDE, dt.date(2026, 1, 1))
    started = time.perf_counter()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    done = failed = 0
    snapshots: list[tuple[ReleaseSnapshot, list[tuple[Path, str]], list[Problem]]] = []
    from stdnum import ean

    n_releases = (tracks + per_release - 1) // per_release
    for r in range(n_releases):
        body = f"50634599{r:04d}"
        upc = body + ean.calc_check_digit(body)
        problems: list[Problem] = []
        resources: list[tuple[Path, str]] = []
        infos = []
        for t in range(min(per_release, tracks - r * per_release)):
            isrc = f"GBBEN26{r * per_release + t:05d}"
            path = audio_pool[(r * per_release + t) % len(audio_pool)]
            name = f"{upc}_01_{t + 1:03d}.flac"
            audio, found = qc.inspect_audio(path, f"resources/{name}", field=f"tracks[{t + 1}]")
            problems += found
            resources.append((path, name))
            infos.append(
                TrackInfo(
                    isrc,
                    f"Track {t + 1}",
                    None,
                    "Bench Artist",
                    31,
                    False,
                    1,
                    t + 1,
                    (Credit("Bench Artist", "MainArtist"),),
                    audio,
                )
            )
        cover_path = covers[r % len(covers)]
        cover, found = qc.inspect_image(cover_path, f"resources/{upc}.jpg", field="front_cover")
        problems += found
        resources.append((cover_path, f"{upc}.jpg"))
        snap = ReleaseSnapshot(
            upc,
            f"Bench Release {r}",
            "Album",
            "Bench Records",
            "Bench Artist",
            dt.date(2026, 1, 1),
            "Pop",
            "2026 Bench",
            "2026 Bench",
            tuple(infos),
            cover,
            (deal,),
        )
        snapshots.append((snap, resources, problems + qc.check_metadata(snap)))
    cross = qc.check_catalogue(s for s, _, _ in snapshots)
    for snap, resources, problems in snapshots:
        problems = problems + cross.get(snap.upc, [])
        if not errors(problems):
            header = Header(f"BENCH-{snap.upc}", sender, recipient, now)
            xml = ern.build_new_release(header, snap, track_releases=True)
            problems += validate_message(xml)
        if errors(problems):
            failed += len(snap.tracks)
            continue
        stage_release(out, snap.upc, xml, resources)
        done += len(snap.tracks)
    seconds = time.perf_counter() - started
    return {
        "tracks": tracks,
        "releases": n_releases,
        "packaged_tracks": done,
        "failed_tracks": failed,
        "seconds": round(seconds, 3),
        "tracks_per_minute": round(tracks / seconds * 60) if seconds else None,
        "distinct_audio_files": len(audio_pool),
    }
