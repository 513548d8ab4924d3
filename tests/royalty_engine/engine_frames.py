"""Tiny hand-made inputs for the engine's unit tests: canonical lines and terms frames."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl

from royalty_engine.terms import Terms
from schemas.revenue import CANONICAL

D = Decimal


def lines(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Canonical lines; defaults: GB, stream, matched to track 1 / release 1, 2026-01, GBP."""
    base = {
        "org_id": 1,
        "source": "dsr",
        "file_id": 1,
        "reporting_period": "2026-01",
        "usage_end": dt.date(2026, 1, 31),
        "territory": "GB",
        "usage_type": "stream",
        "commercial_model": "subscription",
        "quantity": 1,
        "track_id": 1,
        "release_id": 1,
        "match_method": "isrc",
        "converted_currency": "GBP",
        "currency": "GBP",
    }
    out = []
    for i, r in enumerate(rows, start=1):
        row = {**base, "line_no": i, **r}
        row["converted_amount"] = D(str(row.pop("amount")))
        row.setdefault("amount", row["converted_amount"])
        out.append(row)
    frame = pl.DataFrame(out, infer_schema_length=None)
    return frame.lazy().select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in CANONICAL.items()
        ]
    )


def terms(
    *,
    contracts: list[dict[str, Any]],
    rates: list[dict[str, Any]],
    splits: list[dict[str, Any]],
    payees: list[dict[str, Any]] | None = None,
    charges: list[dict[str, Any]] | None = None,
    fx: list[dict[str, Any]] | None = None,
    ppd_prices: list[dict[str, Any]] | None = None,
) -> Terms:
    start = dt.date(2020, 1, 1)
    contract_defaults = {
        "payee_id": 1,
        "basis": "gross_receipts",
        "currency": "GBP",
        "distribution_fee": "0",
        "reserve_rate": "0",
        "reserve_periods": 0,
        "minimum_payment": "0",
        "statement_frequency": "monthly",
        "start_date": start,
    }
    contracts = [{**contract_defaults, "reference": f"C{c['contract_id']}", **c} for c in contracts]
    rates = [
        {
            "usage_type": "*",
            "channel": "*",
            "territories": "WW",
            "tiers": "[]",
            "effective_from": start,
            **r,
        }
        for r in rates
    ]
    splits = [{"territories": "WW", "effective_from": start, "payee_id": 1, **s} for s in splits]
    payees = payees or [
        {"payee_id": p, "name": f"Payee {p}", "statement_currency": "GBP", "withholding_rate": "0"}
        for p in sorted({c["payee_id"] for c in contracts})
    ]

    def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
        return pl.DataFrame(
            [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows],
            infer_schema_length=None,
        )

    def decimals(df: pl.DataFrame, cols: tuple[str, ...]) -> pl.DataFrame:
        return df.with_columns(
            [pl.col(c).cast(pl.String).str.to_decimal(scale=12) for c in cols if c in df.columns]
        )

    frames = {
        "contracts": decimals(
            frame(contracts), ("distribution_fee", "reserve_rate", "minimum_payment")
        ),
        "rates": decimals(frame(rates), ("rate",)),
        "splits": decimals(frame(splits), ("share",)),
        "payees": decimals(frame(payees), ("withholding_rate",)),
    }
    if charges:
        frames["charges"] = decimals(frame(charges), ("amount",))
    if fx:
        frames["fx"] = decimals(frame(fx), ("rate",))
    if ppd_prices:
        frames["ppd_prices"] = decimals(frame(ppd_prices), ("price",))
    return Terms.from_frames(frames)
