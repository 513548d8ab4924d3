"""Upload: packaged deliveries of one DSP in batches to its drop, the batch manifest last;
failures retried with exponential back-off into the same batch folder."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.ddex.package import batch_name, message_name, upload_batch
from connectors.ddex.profiles import DspProfile
from connectors.drops import Drop, LocalDrop
from pipelines.delivery.state import S, move
from pipelines.layout import DataDir
from schemas.store import db
from schemas.store.deliveries import (
    BatchState,
    Delivery,
    DeliveryBatch,
)

log = logging.getLogger(__name__)
OpenTarget = Callable[[DspProfile], Drop]


def target_url(profile: DspProfile, data: DataDir) -> str:
    """The profile's drop URL; a local path is relative to the data dir."""
    if profile.protocol == "local":
        path = Path(profile.url)
        return str(path if path.is_absolute() else data.resolve(profile.url))
    return profile.url


def default_opener(data: DataDir) -> OpenTarget:
    """Open a profile's drop with credentials from the environment variable it names."""
    from pipelines.connections import connect

    def opener(profile: DspProfile) -> Drop:
        url = target_url(profile, data)
        if profile.protocol == "local":
            Path(url).mkdir(parents=True, exist_ok=True)
            return LocalDrop(url)
        return connect(url, profile.secret_env)

    return opener


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
