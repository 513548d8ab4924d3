"""Royalty runs and what they leave in the store: per-payee statement summaries and per-contract
balance movements (the numbers; the Parquet outputs beside the run hold the detail), plus the
PPD price list the ``ppd`` basis needs."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from schemas.store.models import Base, _enum, _utcnow
from schemas.store.types import Money


class RunStatus(enum.StrEnum):
    DRAFT = "draft"  # created (Airflow: snapshot taken), not computed yet
    CALCULATED = "calculated"
    APPROVED = "approved"
    LOCKED = "locked"
    SUPERSEDED = "superseded"  # replaced by a later version before it was locked


class RoyaltyRun(Base):
    __tablename__ = "royalty_runs"
    __table_args__ = (sa.UniqueConstraint("org_id", "period", "version"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    period: Mapped[str] = mapped_column(sa.String(7))  # 2026-01 | 2026-Q1 | 2026-H1
    period_start: Mapped[dt.date] = mapped_column(sa.Date)
    period_end: Mapped[dt.date] = mapped_column(sa.Date)
    version: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus))
    currency: Mapped[str] = mapped_column(sa.String(3))  # the accounting currency
    previous_run_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("royalty_runs.id", ondelete="RESTRICT")
    )  # whose closing state this run opened from
    supersedes_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("royalty_runs.id", ondelete="RESTRICT")
    )  # the version this one corrects or replaces
    reason: Mapped[str] = mapped_column(sa.String(2000), default="")  # why a correction
    output_dir: Mapped[str] = mapped_column(sa.String(2000), default="")
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64), default="")
    totals: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    diff: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    created_by: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=_utcnow)
    approved_by: Mapped[str | None] = mapped_column(sa.String(100))
    approved_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    locked_by: Mapped[str | None] = mapped_column(sa.String(100))
    locked_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


def _money() -> Mapped[Decimal]:
    return mapped_column(Money(), default=Decimal(0))


class StatementSummary(Base):
    """One payee's statement for one run, per currency (the API's statement list)."""

    __tablename__ = "statement_summaries"
    __table_args__ = (sa.UniqueConstraint("run_id", "payee_id", "currency"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("royalty_runs.id", ondelete="CASCADE"), index=True
    )
    payee_id: Mapped[int] = mapped_column(
        sa.ForeignKey("payees.id", ondelete="RESTRICT"), index=True
    )
    period: Mapped[str] = mapped_column(sa.String(7))
    currency: Mapped[str] = mapped_column(sa.String(3))
    contracts: Mapped[int] = mapped_column(sa.Integer)
    opening: Mapped[Decimal] = _money()
    earnings: Mapped[Decimal] = _money()
    advances: Mapped[Decimal] = _money()
    costs: Mapped[Decimal] = _money()
    recouped: Mapped[Decimal] = _money()
    reserve_held: Mapped[Decimal] = _money()
    reserve_released: Mapped[Decimal] = _money()
    tax: Mapped[Decimal] = _money()
    payable: Mapped[Decimal] = _money()
    closing: Mapped[Decimal] = _money()
    carried_forward: Mapped[Decimal] = _money()


class ContractBalance(Base):
    """Every movement of one contract's balance in one run (balance history)."""

    __tablename__ = "contract_balances"
    __table_args__ = (sa.UniqueConstraint("run_id", "contract_id"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("royalty_runs.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contracts.id", ondelete="RESTRICT"), index=True
    )
    payee_id: Mapped[int] = mapped_column(sa.ForeignKey("payees.id", ondelete="RESTRICT"))
    period: Mapped[str] = mapped_column(sa.String(7))
    currency: Mapped[str] = mapped_column(sa.String(3))
    opening: Mapped[Decimal] = _money()
    earnings: Mapped[Decimal] = _money()
    advances: Mapped[Decimal] = _money()
    costs: Mapped[Decimal] = _money()
    recouped: Mapped[Decimal] = _money()
    reserve_held: Mapped[Decimal] = _money()
    reserve_released: Mapped[Decimal] = _money()
    tax: Mapped[Decimal] = _money()
    payable: Mapped[Decimal] = _money()
    closing: Mapped[Decimal] = _money()
    carried_forward: Mapped[Decimal] = _money()
    reserves_outstanding: Mapped[Decimal] = _money()
    status: Mapped[str] = mapped_column(sa.String(32))


class PpdPrice(Base):
    """Published price to dealer per unit, for contracts on the ``ppd`` basis."""

    __tablename__ = "ppd_prices"
    __table_args__ = (sa.CheckConstraint("CAST(price AS NUMERIC) >= 0", name="price_sign"),)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    usage_type: Mapped[str] = mapped_column(sa.String(32), default="*")
    territories: Mapped[str] = mapped_column(sa.String(2000), default="WW")
    currency: Mapped[str] = mapped_column(sa.String(3))
    price: Mapped[Decimal] = mapped_column(Money())
    effective_from: Mapped[dt.date] = mapped_column(sa.Date)
    effective_to: Mapped[dt.date | None] = mapped_column(sa.Date)


for _table in (
    RoyaltyRun.__table__,
    StatementSummary.__table__,
    ContractBalance.__table__,
    PpdPrice.__table__,
):
    _table.dialect_kwargs["sqlite_autoincrement"] = True  # type: ignore[attr-defined]
