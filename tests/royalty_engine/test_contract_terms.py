"""Effective-dated contract terms: a run uses the version in force on its period's first day."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl

from royalty_engine.engine import compute
from royalty_engine.periods import parse_period
from royalty_engine.terms import TERM_VERSION_SCHEMA, Terms, term_versions, terms_in_force
from tests.royalty_engine.engine_frames import lines, terms

D = Decimal
CHANGE = dt.date(2026, 4, 1)
BASE = {
    "basis": "net_receipts",
    "distribution_fee": "0.10",
    "reserve_rate": "0",
    "reserve_periods": 0,
    "minimum_payment": "0",
    "statement_frequency": "monthly",
}


def versions(*rows: dict[str, Any]) -> pl.DataFrame:
    data = [{k: str(v) if isinstance(v, D) else v for k, v in r.items()} for r in rows]
    strings = {
        k: pl.String() if isinstance(t, pl.Decimal) else t for k, t in TERM_VERSION_SCHEMA.items()
    }
    return pl.DataFrame(data, schema=strings, orient="row").cast(TERM_VERSION_SCHEMA)  # type: ignore[arg-type]


def later(**change: object) -> dict[str, Any]:
    return {"contract_id": 1, "effective_from": CHANGE, **BASE, **change}


def ledger_for(period: str, change: dict[str, Any], amount: str = "100.00") -> dict[str, Any]:
    t = terms(
        contracts=[{"contract_id": 1, **BASE}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.50"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    p = parse_period(period)
    month = p.months[-1]
    resolved = terms_in_force(t.contracts, versions(later(**change)), p.start)
    t = dataclasses.replace(t, contracts=resolved)
    result = compute(
        lines({"amount": amount, "reporting_period": month}), t, {}, p, accounting_currency="GBP"
    )
    row: dict[str, Any] = result.ledger.filter(pl.col("contract_id") == 1).to_dicts()[0]
    return row


def test_no_later_versions_leaves_the_contracts_frame_as_it_is() -> None:
    t = terms(contracts=[{"contract_id": 1, **BASE}], rates=[], splits=[])
    same = terms_in_force(t.contracts, versions(), dt.date(2026, 1, 1))
    assert same is t.contracts


def test_versions_are_dated_until_the_next_one_and_a_late_start_uses_its_first_version() -> None:
    t: Terms = terms(
        contracts=[
            {"contract_id": 1, **BASE},
            {"contract_id": 2, **BASE, "start_date": dt.date(2026, 4, 15)},
        ],
        rates=[],
        splits=[],
    )
    v = versions(later(distribution_fee="0.20"), later(contract_id=9, distribution_fee="0.30"))
    dated = term_versions(t.contracts, v)
    assert dated.select("contract_id", "effective_from", "effective_to").rows() == [
        (1, dt.date(2020, 1, 1), dt.date(2026, 3, 31)),
        (1, CHANGE, None),
        (2, dt.date(2026, 4, 15), None),  # a version for an unknown contract is ignored
    ]
    fees = terms_in_force(t.contracts, v, dt.date(2026, 4, 1))
    assert fees.schema == t.contracts.schema and fees.columns == t.contracts.columns
    # contract 2 starts after the period's first day: its first version, not "none"
    assert fees["distribution_fee"].to_list() == [D("0.20"), D("0.10")]
    before = terms_in_force(t.contracts, v, dt.date(2026, 3, 1))
    assert before["distribution_fee"].to_list() == [D("0.10"), D("0.10")]


def test_distribution_fee_change() -> None:
    # net receipts: 100 x (1 - fee) x 50%
    assert ledger_for("2026-03", {"distribution_fee": "0.20"})["earnings"] == D("45.00")
    assert ledger_for("2026-04", {"distribution_fee": "0.20"})["earnings"] == D("40.00")


def test_reserve_rate_and_periods_change() -> None:
    change = {"reserve_rate": "0.10", "reserve_periods": 2}
    assert ledger_for("2026-03", change)["reserve_held"] == D("0.00")
    after = ledger_for("2026-04", change)
    assert after["reserve_held"] == D("4.50")  # 10% of 45.00, held for two periods


def test_minimum_payment_change() -> None:
    change = {"minimum_payment": "50.00"}
    assert ledger_for("2026-03", change)["status"] == "paid"
    assert ledger_for("2026-04", change)["status"] == "below_minimum"


def test_statement_frequency_change() -> None:
    change = {"statement_frequency": "quarterly"}
    assert ledger_for("2026-04", {})["status"] == "paid"
    assert ledger_for("2026-04", change)["status"] == "not_statement_date"
    assert ledger_for("2026-06", change)["status"] == "paid"
