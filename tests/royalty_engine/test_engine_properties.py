"""Properties the engine must keep on any input (hypothesis)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from royalty_engine.engine import compute
from royalty_engine.periods import parse_period
from royalty_engine.terms import ContractState
from tests.conftest import examples
from tests.royalty_engine.engine_frames import lines, terms

D = Decimal
TERRITORIES = ["GB", "DE", "US", "JP", "FR"]
MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]

amounts = st.decimals(min_value=D("-50"), max_value=D("5000"), places=6, allow_nan=False)
line = st.fixed_dictionaries(
    {
        "amount": amounts,
        "quantity": st.integers(min_value=-10, max_value=100_000),
        "track_id": st.integers(min_value=1, max_value=4),
        "territory": st.sampled_from(TERRITORIES),
        "usage_type": st.sampled_from(["stream", "download"]),
        "suspense": st.booleans(),
    }
)


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    n_contracts = draw(st.integers(min_value=1, max_value=3))
    contracts = []
    for c in range(1, n_contracts + 1):
        contracts.append(
            {
                "contract_id": c,
                "payee_id": c,
                "basis": draw(st.sampled_from(["gross_receipts", "net_receipts", "per_unit"])),
                "distribution_fee": str(draw(st.sampled_from(["0", "0.15", "0.3"]))),
                "reserve_rate": str(draw(st.sampled_from(["0", "0.1", "0.25"]))),
                "reserve_periods": draw(st.integers(min_value=0, max_value=2)),
                "minimum_payment": str(draw(st.sampled_from(["0", "25", "1000"]))),
                "cross_collateral_group": draw(st.sampled_from([None, "G"])),
            }
        )
    rates = [
        {
            "rate_id": c["contract_id"],
            "contract_id": c["contract_id"],
            "rate": "0.001"
            if c["basis"] == "per_unit"
            else str(draw(st.sampled_from(["0.15", "0.2", "0.5", "1"]))),
            "tiers": '[{"from_units": 50000, "rate": "0.3"}]' if c["basis"] != "per_unit" else "[]",
        }
        for c in contracts
    ]
    splits = []
    sid = 0
    for track in range(1, 5):
        left = D(1)
        for c in contracts:
            share = draw(st.sampled_from([D("0"), D("0.1"), D("0.25"), D("0.5")]))
            if share and share <= left:
                sid += 1
                left -= share
                splits.append(
                    {
                        "split_id": sid,
                        "track_id": track,
                        "contract_id": c["contract_id"],
                        "payee_id": c["payee_id"],
                        "share": str(share),
                        "territories": draw(st.sampled_from(["WW", "WW,-US", "JP,GB"])),
                    }
                )
    charges = [
        {
            "charge_id": i,
            "contract_id": draw(st.sampled_from([c["contract_id"] for c in contracts])),
            "kind": draw(st.sampled_from(["advance", "recoupable_cost"])),
            "amount": str(draw(st.decimals(min_value=D("1"), max_value=D("3000"), places=2))),
            "currency": "GBP",
            "incurred_on": dt.date(2026, draw(st.integers(min_value=1, max_value=4)), 1),
        }
        for i in range(1, draw(st.integers(min_value=0, max_value=3)) + 1)
    ]
    periods = [draw(st.lists(line, min_size=0, max_size=12)) for _ in MONTHS]
    return {
        "terms": terms(
            contracts=contracts,
            rates=rates,
            splits=splits,
            charges=charges,
            payees=[
                {
                    "payee_id": c["payee_id"],
                    "name": f"P{c['payee_id']}",
                    "statement_currency": "GBP",
                    "withholding_rate": "0.2" if c["payee_id"] == 1 else "0",
                }
                for c in contracts
            ],
        ),
        "periods": periods,
    }


def month_lines(month: str, rows: list[dict[str, Any]]) -> pl.LazyFrame:
    year, mon = (int(x) for x in month.split("-"))
    end = (dt.date(year + mon // 12, mon % 12 + 1, 1)) - dt.timedelta(days=1)
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k != "suspense"}
        row.update(reporting_period=month, usage_end=end, amount=str(r["amount"]))
        if r["suspense"]:
            row.update(track_id=None, release_id=None, match_method=None)
        else:
            row["release_id"] = 1
        out.append(row)
    if not out:
        return lines({"amount": "0", "reporting_period": "1999-01"})  # nothing in the period
    return lines(*out)


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario())
def test_money_is_conserved_and_balances_hold(s: dict[str, Any]) -> None:
    state: dict[int, ContractState] = {}
    held_total = released_total = D(0)
    outstanding = D(0)
    for month, rows in zip(MONTHS, s["periods"], strict=True):
        period = parse_period(month)
        lf = month_lines(month, rows)
        result = compute(lf, s["terms"], state, period, accounting_currency="GBP")
        # revenue = payees + retained + suspense, to the cent, in every run
        t = result.totals["GBP"]
        revenue = sum((r["amount"] for r in rows), D(0))
        assert D(t["revenue"]) == revenue.quantize(D("0.01"))
        assert D(t["revenue"]) == D(t["payees"]) + D(t["retained"]) + D(t["suspense"])
        suspense = sum((r["amount"] for r in rows if r["suspense"]), D(0))
        assert D(t["suspense"]) == suspense.quantize(D("0.01"))
        for row in result.ledger.iter_rows(named=True):
            # the balance identity of each contract
            assert row["balance"] == (
                row["opening"]
                + row["earnings"]
                - row["advances"]
                - row["costs"]
                - row["reserve_held"]
                + row["reserve_released"]
            )
            # recoupment never pays out more than was earned (plus released reserves)
            assert row["recouped"] <= max(
                D(0), row["earnings"] - row["reserve_held"] + row["reserve_released"]
            )
            assert row["payable"] >= 0 and row["tax"] >= 0
            if row["status"] != "paid":
                assert row["payable"] == 0 and row["closing"] == row["balance"]
            held_total += row["reserve_held"]
            released_total += row["reserve_released"]
        # per pool: what is paid plus tax is exactly the pooled balance
        paid = result.ledger.filter(pl.col("status") == "paid")
        for _, pool in paid.group_by("pool"):
            assert pool["payable"].sum() + pool["tax"].sum() == pool["balance"].sum()
        # breakdowns add up to each contract's earnings, in every dimension
        if result.breakdown.height:
            sums = result.breakdown.group_by("contract_id", "dimension").agg(pl.col("amount").sum())
            earned = dict(result.ledger.select("contract_id", "earnings").rows())
            for cid, _dim, amount in sums.rows():
                assert amount == earned[cid]
        outstanding = sum(
            (D(b["amount"]) for st_ in result.state.values() for b in st_.reserves), D(0)
        )
        state = result.state
        event("statuses=" + ",".join(sorted(set(result.ledger["status"]))))
    # reserves released over their life equal reserves held (what is not yet released is
    # still outstanding)
    assert held_total == released_total + outstanding


@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_a_rerun_is_identical(s: dict[str, Any]) -> None:
    lf = month_lines("2026-01", s["periods"][0])
    a = compute(lf, s["terms"], {}, parse_period("2026-01"), accounting_currency="GBP")
    b = compute(lf, s["terms"], {}, parse_period("2026-01"), accounting_currency="GBP")
    assert a.totals == b.totals
    for name, frame in a.outputs().items():
        assert frame.equals(b.outputs()[name]), name


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario(), st.integers(min_value=2, max_value=4))
def test_payee_buckets_give_the_same_run(s: dict[str, Any], buckets: int) -> None:
    """A run spread over payee buckets (the DAG's mapped tasks) equals the run in one piece,
    over two periods so the carried state (escalation units, balances) goes through too."""
    state_one: dict[int, ContractState] = {}
    state_many: dict[int, ContractState] = {}
    for month, rows in zip(MONTHS[:2], s["periods"][:2], strict=True):
        lf = month_lines(month, rows)
        p = parse_period(month)
        one = compute(lf, s["terms"], state_one, p, accounting_currency="GBP")
        many = compute(lf, s["terms"], state_many, p, accounting_currency="GBP", buckets=buckets)
        assert one.totals == many.totals and one.counts == many.counts
        for name, frame in one.outputs().items():
            assert frame.equals(many.outputs()[name]), name
        state_one, state_many = one.state, many.state


def test_buckets_keep_track_level_splits_that_live_in_another_bucket() -> None:
    """Track 1 has a track-level split for payee 2 (bucket 0 of 2); payee 1 (bucket 1) has a
    release-level split on its release. Payee 1's bucket must still know track 1 is split at
    track level, or it would pay payee 1 on track 1 too."""
    t = terms(
        contracts=[{"contract_id": 1, "payee_id": 1}, {"contract_id": 2, "payee_id": 2}],
        rates=[
            {"rate_id": 1, "contract_id": 1, "rate": "0.5"},
            {"rate_id": 2, "contract_id": 2, "rate": "0.5"},
        ],
        splits=[
            {"split_id": 1, "release_id": 1, "contract_id": 1, "payee_id": 1, "share": "1"},
            {"split_id": 2, "track_id": 1, "contract_id": 2, "payee_id": 2, "share": "1"},
        ],
    )
    lf = lines({"track_id": 1, "amount": "100"}, {"track_id": 2, "amount": "10"})
    p = parse_period("2026-01")
    one = compute(lf, t, {}, p, accounting_currency="GBP")
    two = compute(lf, t, {}, p, accounting_currency="GBP", buckets=2)
    earned = {r["contract_id"]: r["earnings"] for r in two.ledger.iter_rows(named=True)}
    assert earned == {1: D("5.00"), 2: D("50.00")}  # payee 1: track 2 only; payee 2: track 1
    for name, frame in one.outputs().items():
        assert frame.equals(two.outputs()[name]), name
