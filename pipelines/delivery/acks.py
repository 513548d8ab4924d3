"""Acknowledgements: ACK files in each DSP's ``acknowledgements/`` folder move uploaded
deliveries to ``acknowledged`` or ``rejected``; uploads without one in time fail."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.ddex.ack import ACK_FOLDER, AckError, parse_ack
from connectors.ddex.profiles import DspProfile
from pipelines.delivery.state import S, move
from pipelines.delivery.upload import OpenTarget
from schemas.store import db
from schemas.store.deliveries import (
    Delivery,
    DeliveryAck,
)

log = logging.getLogger(__name__)


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
