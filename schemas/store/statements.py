"""Where payee statements go and what was sent there.

A *statement target* is an outbound folder (local path, ``sftp://`` or ``s3://`` URL) for the
whole label (every payee's statements, one sub-folder per payee) or for one payee (only that
payee's statements: an artist's manager, a distributor partner). Credentials are never stored:
``secret_env`` names the environment variable that holds them, as for inbound drops.

A *publication* records one run published to one target: the files and their SHA-256 (the
drop's manifest), attempts and the last error, so a re-publish can prove it changes nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from schemas.store.models import Base, _enum, _utcnow


class StatementTarget(Base):
    __tablename__ = "statement_targets"
    __table_args__ = (sa.UniqueConstraint("org_id", "name"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(64))
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret_env: Mapped[str | None] = mapped_column(sa.String(100))
    # None: the label's own outbound folder (all payees); else only this payee's statements.
    payee_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("payees.id", ondelete="CASCADE"), index=True
    )
    formats: Mapped[list[str]] = mapped_column(sa.JSON, default=lambda: ["pdf", "xlsx", "csv"])
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class PublicationStatus(enum.StrEnum):
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"  # retries ran out; the manifest was not written, so the drop is not done


class StatementPublication(Base):
    __tablename__ = "statement_publications"
    __table_args__ = (sa.UniqueConstraint("run_id", "target_id"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("royalty_runs.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[int] = mapped_column(
        sa.ForeignKey("statement_targets.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[PublicationStatus] = mapped_column(_enum(PublicationStatus))
    folder: Mapped[str] = mapped_column(sa.String(2000))  # inside the target
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64), default="")
    files: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_by: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


for _table in (StatementTarget.__table__, StatementPublication.__table__):
    _table.dialect_kwargs["sqlite_autoincrement"] = True  # type: ignore[attr-defined]
