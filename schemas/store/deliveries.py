"""DSP delivery state in the store: senders, deals, batches, deliveries, their history, ACKs.

A :class:`Delivery` is one *release version* for one DSP: unique on (org, release, DSP,
fingerprint), where the fingerprint covers everything the DSP receives but the message header
(metadata, asset bytes, deals). A rerun finds the existing row instead of making another batch.
Its state moves only along :data:`TRANSITIONS`; every move is a :class:`DeliveryEvent`.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from schemas.store.models import Base, _enum, _utcnow


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    QC_FAILED = "qc_failed"
    PACKAGED = "packaged"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    FAILED = "failed"  # upload retries exhausted, or no acknowledgement in time


S = DeliveryState
TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    S.QUEUED: frozenset({S.QC_FAILED, S.PACKAGED}),
    S.QC_FAILED: frozenset({S.QUEUED}),  # re-checked on the next run (a catalogue fix)
    S.PACKAGED: frozenset({S.UPLOADING, S.QUEUED}),
    S.UPLOADING: frozenset({S.UPLOADED, S.PACKAGED, S.FAILED}),  # PACKAGED = retry later
    S.UPLOADED: frozenset({S.ACKNOWLEDGED, S.REJECTED, S.FAILED}),
    S.ACKNOWLEDGED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset({S.PACKAGED}),  # an operator's explicit retry
}
ACTIVE = frozenset({S.QUEUED, S.PACKAGED, S.UPLOADING, S.UPLOADED})


class DeliveryKind(enum.StrEnum):
    FULL = "full"  # NewReleaseMessage with its active deals
    TAKEDOWN = "takedown"  # NewReleaseMessage without the withdrawn deals (none left)
    PURGE = "purge"  # PurgeReleaseMessage


class BatchState(enum.StrEnum):
    OPEN = "open"  # being uploaded, or waiting for a retry
    COMPLETE = "complete"  # manifest written
    FAILED = "failed"


class DdexSender(Base):
    """Who the organisation is in DDEX messages (MessageSender)."""

    __tablename__ = "ddex_senders"
    __table_args__ = (sa.UniqueConstraint("org_id"),)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id", ondelete="CASCADE"))
    dpid: Mapped[str] = mapped_column(sa.String(18))
    name: Mapped[str] = mapped_column(sa.String(300))


class ReleaseDeal(Base):
    """An explicit deal for a release (``dsp`` NULL: every DSP). Where a release has none for
    a DSP, the DSP profile's default deals apply. ``withdrawn_on`` set = taken down."""

    __tablename__ = "release_deals"
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    release_id: Mapped[int] = mapped_column(
        sa.ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    dsp: Mapped[str | None] = mapped_column(sa.String(64))
    commercial_model: Mapped[str] = mapped_column(sa.String(64))
    use_types: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    territories: Mapped[str] = mapped_column(sa.String(2000), default="WW")
    start_date: Mapped[dt.date | None] = mapped_column(sa.Date)  # None: the release date
    end_date: Mapped[dt.date | None] = mapped_column(sa.Date)
    preorder: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    withdrawn_on: Mapped[dt.date | None] = mapped_column(sa.Date)


class DeliveryBatch(Base):
    __tablename__ = "delivery_batches"
    __table_args__ = (sa.UniqueConstraint("org_id", "dsp", "name"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    dsp: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(32))
    target: Mapped[str] = mapped_column(sa.String(2000))  # drop URL, without credentials
    state: Mapped[BatchState] = mapped_column(_enum(BatchState), default=BatchState.OPEN)
    manifest: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (sa.UniqueConstraint("org_id", "release_id", "dsp", "fingerprint"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    release_id: Mapped[int] = mapped_column(
        sa.ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    upc: Mapped[str] = mapped_column(sa.String(14))
    dsp: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[DeliveryKind] = mapped_column(_enum(DeliveryKind))
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState), index=True)
    message_id: Mapped[str] = mapped_column(sa.String(64))
    batch_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("delivery_batches.id", ondelete="SET NULL"), index=True
    )
    message_path: Mapped[str | None] = mapped_column(sa.String(500))  # inside the drop
    staged_path: Mapped[str | None] = mapped_column(sa.String(2000))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(sa.String(2000))
    ack_status: Mapped[str | None] = mapped_column(sa.String(64))
    ack_text: Mapped[str | None] = mapped_column(sa.String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


class DeliveryEvent(Base):
    """One state change of a delivery: the history the API shows."""

    __tablename__ = "delivery_events"
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int] = mapped_column(
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
    from_state: Mapped[str | None] = mapped_column(sa.String(32))
    to_state: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class DeliveryAck(Base):
    """An ACK file seen in a DSP's acknowledgements/ folder (read once, outcome kept)."""

    __tablename__ = "delivery_acks"
    __table_args__ = (sa.UniqueConstraint("org_id", "dsp", "name"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    dsp: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(1000))
    outcome: Mapped[str] = mapped_column(sa.String(32))  # applied, unmatched, refused
    code: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[str | None] = mapped_column(sa.String(2000))
    received_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))


# As for every table of the store (see models.py): ids are never reused on SQLite.
for _model in (DdexSender, ReleaseDeal, DeliveryBatch, Delivery, DeliveryEvent, DeliveryAck):
    Base.metadata.tables[_model.__tablename__].dialect_kwargs["sqlite_autoincrement"] = True
