"""What a royalty run computes from: the terms snapshot and the contracts' carried state.

The run's snapshot is a set of plain frames (one per table below), written to Parquet beside
the run's outputs with their SHA-256, so the same snapshot and the same lines reproduce the
run byte for byte. Nothing in this package reads a database or a path.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

from schemas.effective import CONTRACT_TERM_FIELDS, in_force_expr
from schemas.money import EXACT, RATE

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "payees": {
        "payee_id": pl.Int64(),
        "name": pl.String(),
        "statement_currency": pl.String(),
        "withholding_rate": RATE,
        "vat_number": pl.String(),
        "self_billing": pl.Boolean(),
    },
    "contracts": {
        "contract_id": pl.Int64(),
        "payee_id": pl.Int64(),
        "reference": pl.String(),
        "basis": pl.String(),  # net_receipts | gross_receipts | ppd | per_unit
        "currency": pl.String(),
        "distribution_fee": RATE,
        "cross_collateral_group": pl.String(),
        "reserve_rate": RATE,
        "reserve_periods": pl.Int64(),
        "minimum_payment": EXACT,
        "statement_frequency": pl.String(),
        "start_date": pl.Date(),
        "end_date": pl.Date(),
    },
    "rates": {
        "rate_id": pl.Int64(),
        "contract_id": pl.Int64(),
        "usage_type": pl.String(),  # "*" = any
        "channel": pl.String(),  # matched against the line's commercial model; "*" = any
        "territories": pl.String(),  # a territory set: "WW", "GB,IE", "WW,-US"
        "rate": RATE,
        "tiers": pl.String(),  # JSON: [{"from_units": N, "rate": "0.22"}, ...]
        "effective_from": pl.Date(),
        "effective_to": pl.Date(),
    },
    "charges": {
        "charge_id": pl.Int64(),
        "contract_id": pl.Int64(),
        "kind": pl.String(),  # advance | recoupable_cost
        "amount": EXACT,
        "currency": pl.String(),
        "incurred_on": pl.Date(),
        "description": pl.String(),
    },
    "splits": {
        "split_id": pl.Int64(),
        "track_id": pl.Int64(),  # exactly one of track_id / release_id
        "release_id": pl.Int64(),
        "payee_id": pl.Int64(),
        "contract_id": pl.Int64(),
        "share": RATE,
        "territories": pl.String(),
        "effective_from": pl.Date(),
        "effective_to": pl.Date(),
    },
    "ppd_prices": {
        "price_id": pl.Int64(),
        "usage_type": pl.String(),
        "territories": pl.String(),
        "currency": pl.String(),
        "price": EXACT,
        "effective_from": pl.Date(),
        "effective_to": pl.Date(),
    },
    "fx": {
        "base": pl.String(),
        "quote": pl.String(),
        "period": pl.String(),  # YYYY-MM
        "rate": RATE,  # 1 base = rate quote
        "source": pl.String(),
    },
    "tracks": {
        "track_id": pl.Int64(),
        "release_id": pl.Int64(),
        "isrc": pl.String(),
        "title": pl.String(),
    },
}


TERM_FIELDS = CONTRACT_TERM_FIELDS
TERM_VERSION_SCHEMA: dict[str, pl.DataType] = {
    "contract_id": pl.Int64(),
    "effective_from": pl.Date(),
    **{f: SCHEMAS["contracts"][f] for f in TERM_FIELDS},
}


def term_versions(contracts: pl.DataFrame, versions: pl.DataFrame) -> pl.DataFrame:
    """Every version of every contract's terms, dated: the contract's own columns from its
    start date, then each later version, each in force until the day before the next one's
    ``effective_from`` (the last one open-ended)."""
    first = contracts.select(
        "contract_id", pl.col("start_date").alias("effective_from"), *TERM_FIELDS
    ).cast(TERM_VERSION_SCHEMA)  # type: ignore[arg-type]
    later = versions.select(list(TERM_VERSION_SCHEMA)).cast(TERM_VERSION_SCHEMA)  # type: ignore[arg-type]
    return (
        pl.concat([first, later.filter(pl.col("contract_id").is_in(first["contract_id"]))])
        .sort("contract_id", "effective_from", maintain_order=True)
        .unique(["contract_id", "effective_from"], keep="last", maintain_order=True)
        .with_columns(
            effective_to=(pl.col("effective_from").shift(-1) - pl.duration(days=1)).over(
                "contract_id"
            )
        )
    )


def terms_in_force(contracts: pl.DataFrame, versions: pl.DataFrame, on: dt.date) -> pl.DataFrame:
    """``contracts`` (the snapshot's ``contracts`` frame) with the effective-dated terms
    (``TERM_FIELDS``) of the version in force on ``on`` (a period's first day), or on the
    contract's start date when it starts later. With no later versions the frame is returned
    as it is, so runs of contracts whose terms never changed are what they always were."""
    if versions.is_empty():
        return contracts
    as_of = pl.max_horizontal(pl.lit(on, pl.Date()), pl.col("start_date")).alias("as_of")
    chosen = (
        term_versions(contracts, versions)
        .join(contracts.select("contract_id", as_of), on="contract_id")
        .filter(in_force_expr("as_of"))
        .select("contract_id", *TERM_FIELDS)
    )
    return (
        contracts.drop(TERM_FIELDS)
        .join(chosen, on="contract_id", how="left", maintain_order="left")
        .select(contracts.columns)
        .cast(contracts.schema)
    )


class EngineError(ValueError):
    """Input the run cannot be computed from; ``code`` is machine-readable, ``details`` lists
    every offending item (contract, currency, track...)."""

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


@dataclass
class Terms:
    """The snapshot: one DataFrame per ``SCHEMAS`` entry, in exactly that schema."""

    payees: pl.DataFrame
    contracts: pl.DataFrame
    rates: pl.DataFrame
    charges: pl.DataFrame
    splits: pl.DataFrame
    ppd_prices: pl.DataFrame
    fx: pl.DataFrame
    tracks: pl.DataFrame

    @classmethod
    def from_frames(cls, frames: dict[str, pl.DataFrame]) -> Terms:
        """Conform each frame to its schema (columns, order, types) and sort it by its key,
        so the snapshot's bytes depend only on its content."""
        out = {}
        for name, schema in SCHEMAS.items():
            frame = frames.get(name, pl.DataFrame(schema=schema))
            if not frame.columns:  # no rows and no columns: an empty table
                frame = pl.DataFrame(schema=schema)
            frame = frame.select(
                [
                    (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
                    for c, t in schema.items()
                ]
            )
            out[name] = frame.sort(list(schema)[:4], nulls_last=True)
        return cls(**out)

    def frames(self) -> dict[str, pl.DataFrame]:
        return {name: getattr(self, name) for name in SCHEMAS}


@dataclass
class ContractState:
    """What a contract carries from one period to the next (in the contract's currency)."""

    balance: Decimal = Decimal("0.00")  # > 0 owed to the payee, < 0 unrecouped
    # Reserves still held: [{"held_in": "2026-01", "release_in": "2026-03", "amount": "1.20"}]
    reserves: list[dict[str, str]] = field(default_factory=list)
    charged: list[int] = field(default_factory=list)  # charge ids already applied
    units: dict[str, int] = field(default_factory=dict)  # escalation tracker per rate slot

    def to_row(self, contract_id: int) -> dict[str, Any]:
        return {
            "contract_id": contract_id,
            "balance": str(self.balance),
            "reserves": json.dumps(self.reserves, sort_keys=True),
            "charged": json.dumps(sorted(self.charged)),
            "units": json.dumps(self.units, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ContractState:
        return cls(
            balance=Decimal(row["balance"]),
            reserves=json.loads(row["reserves"]),
            charged=[int(x) for x in json.loads(row["charged"])],
            units={k: int(v) for k, v in json.loads(row["units"]).items()},
        )


STATE_SCHEMA = {
    "contract_id": pl.Int64(),
    "balance": pl.String(),
    "reserves": pl.String(),
    "charged": pl.String(),
    "units": pl.String(),
}


def state_frame(state: dict[int, ContractState]) -> pl.DataFrame:
    rows = [state[c].to_row(c) for c in sorted(state)]
    return pl.DataFrame(rows, schema=STATE_SCHEMA, orient="row")


def state_from_frame(frame: pl.DataFrame) -> dict[int, ContractState]:
    return {int(r["contract_id"]): ContractState.from_row(r) for r in frame.iter_rows(named=True)}
