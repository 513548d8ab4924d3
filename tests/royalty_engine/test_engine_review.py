"""Money rules found wrong in review, each with the figure a royalty accountant computes by
hand (in the comments) and the engine must match."""

from __future__ import annotations

import calendar
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from royalty_engine.earnings import blended_rate
from royalty_engine.engine import RunResult, compute
from royalty_engine.periods import parse_period
from royalty_engine.terms import ContractState, EngineError, Terms
from tests.royalty_engine.engine_frames import lines, terms

D = Decimal


def run(
    lf: pl.LazyFrame,
    t: Terms,
    state: dict[int, ContractState] | None = None,
    period: str = "2026-01",
) -> RunResult:
    return compute(lf, t, state or {}, parse_period(period), accounting_currency="GBP")


def ledger(result: RunResult, contract_id: int = 1) -> dict[str, Any]:
    return result.ledger.filter(pl.col("contract_id") == contract_id).to_dicts()[0]


def in_month(month: str, **line: object) -> dict[str, object]:
    year, m = map(int, month.split("-"))
    end = dt.date(year, m, calendar.monthrange(year, m)[1])
    return {"reporting_period": month, "usage_end": end, **line}


def two_contracts(group_1: str | None, group_2: str | None, **second: object) -> dict[str, Any]:
    return {
        "contracts": [
            {"contract_id": 1, "cross_collateral_group": group_1},
            {"contract_id": 2, "cross_collateral_group": group_2, **second},
        ],
        "rates": [
            {"rate_id": 1, "contract_id": 1, "rate": "1"},
            {"rate_id": 2, "contract_id": 2, "rate": "1"},
        ],
        "splits": [
            {"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"},
            {"split_id": 2, "track_id": 2, "contract_id": 2, "share": "1"},
        ],
    }


# --- cross-collateralisation -----------------------------------------------------------------
def test_a_group_name_never_pools_a_contract_outside_the_group() -> None:
    # Contract 1 is in a group whose free-text name happens to read "contract:2"; contract 2
    # is in no group. Contract 1 earns 100 and is paid 100.00; contract 2 earns 10 against an
    # advance of 80 and carries -70.00. Pooling them would pay 30.00 and wipe the debt.
    t = terms(
        **two_contracts("contract:2", None),
        charges=[
            {
                "charge_id": 1,
                "contract_id": 2,
                "kind": "advance",
                "amount": "80",
                "currency": "GBP",
                "incurred_on": dt.date(2026, 1, 1),
            }
        ],
    )
    r = run(lines({"amount": "100"}, {"amount": "10", "track_id": 2, "release_id": 2}), t)
    one, two = ledger(r, 1), ledger(r, 2)
    assert one["pool"] != two["pool"]
    assert (one["payable"], one["status"]) == (D("100.00"), "paid")
    assert (two["closing"], two["status"]) == (D("-70.00"), "unrecouped")


def test_a_cross_collateral_group_across_currencies_is_refused() -> None:
    # A GBP and a USD contract in one group cannot be one account: a surplus in pounds
    # cannot recoup an advance in dollars without a conversion nobody agreed on.
    t = terms(
        **two_contracts("G", "G", currency="USD"),
        fx=[{"base": "GBP", "quote": "USD", "period": "2026-01", "rate": "1.25", "source": "t"}],
    )
    with pytest.raises(EngineError) as caught:
        run(lines({"amount": "100"}, {"amount": "10", "track_id": 2, "release_id": 2}), t)
    assert caught.value.code == "pool_currency"
    assert {d["currency"] for d in caught.value.details} == {"GBP", "USD"}
    assert {d["contract_id"] for d in caught.value.details} == {1, 2}


# --- charges in another currency -------------------------------------------------------------
def eur_advance(incurred_on: dt.date, rates: dict[str, str]) -> Terms:
    return terms(
        contracts=[{"contract_id": 1}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "1"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
        charges=[
            {
                "charge_id": 1,
                "contract_id": 1,
                "kind": "advance",
                "amount": "100",
                "currency": "EUR",
                "incurred_on": incurred_on,
            }
        ],
        fx=[
            {"base": "EUR", "quote": "GBP", "period": p, "rate": r, "source": "t"}
            for p, r in rates.items()
        ],
    )


def test_a_charge_is_converted_at_the_rate_of_the_month_it_was_incurred() -> None:
    # EUR 100 incurred on 5 January at 0.85 is GBP 85.00, whether the run is January alone
    # or the whole first quarter (whose last month's rate is 0.90).
    t = eur_advance(dt.date(2026, 1, 5), {"2026-01": "0.85", "2026-02": "0.87", "2026-03": "0.90"})
    assert ledger(run(lines({"amount": "10"}), t))["advances"] == D("85.00")
    assert ledger(run(lines({"amount": "10"}), t, period="2026-Q1"))["advances"] == D("85.00")


def test_a_charge_needs_no_rate_once_charged_or_before_it_is_due() -> None:
    # January charges the advance (85.00); February has no EUR rate and needs none.
    t = eur_advance(dt.date(2026, 1, 5), {"2026-01": "0.85"})
    jan = run(lines({"amount": "10"}), t)
    feb = run(lines(in_month("2026-02", amount="10")), t, jan.state, "2026-02")
    assert ledger(feb)["advances"] == D("0.00")
    assert ledger(feb)["opening"] == D("-75.00")  # 10 - 85
    # An advance due in 2027 is not charged in January 2026, so it needs no rate yet either.
    later = eur_advance(dt.date(2027, 6, 1), {})
    assert ledger(run(lines({"amount": "10"}), later))["advances"] == D("0.00")


def test_a_missing_rate_for_a_charge_due_now_names_its_month() -> None:
    t = eur_advance(dt.date(2025, 11, 20), {"2026-01": "0.85"})
    with pytest.raises(EngineError) as caught:
        run(lines({"amount": "10"}), t)
    assert caught.value.code == "fx_missing"
    assert caught.value.details == [{"base": "EUR", "quote": "GBP", "period": "2025-11"}]


# --- escalations and returns -----------------------------------------------------------------
TIERS = [{"from_units": 1000, "rate": "0.20"}]


@pytest.mark.parametrize(
    ("prior", "units", "rate"),
    [
        # 100 of 1,000 units sold at 0.10 come back: they were sold at 0.10
        (1000, -100, D("0.10")),
        # from 1,200 back to 900: 200 units at 0.20 and 100 at 0.10 -> 50 / 300
        (1200, -300, D("0.166666666667")),
        # returns above the tier only: at 0.20
        (1500, -200, D("0.20")),
    ],
)
def test_returned_units_are_priced_at_the_tiers_they_were_sold_in(
    prior: int, units: int, rate: Decimal
) -> None:
    assert blended_rate(D("0.10"), TIERS, prior, units) == rate


def test_sales_returns_and_sales_again_add_up_to_the_tier_schedule() -> None:
    # per unit 0.10, 0.20 from the 1,000th unit. January +1,200: 1,000 x 0.10 + 200 x 0.20
    # = 140.00. February -300 takes the tracker from 1,200 back to 900: 200 x 0.20 + 100 x
    # 0.10 = -50.00 (not 300 x 0.20, the rate in force at 1,200). March +300, 900 to 1,200:
    # 100 x 0.10 + 200 x 0.20 = 50.00. In all 140.00, what 1,200 net units earn by the
    # schedule.
    t = terms(
        contracts=[{"contract_id": 1, "basis": "per_unit"}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.10", "tiers": json.dumps(TIERS)}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    state: dict[int, ContractState] = {}
    earned = []
    for month, quantity in (("2026-01", 1200), ("2026-02", -300), ("2026-03", 300)):
        r = run(lines(in_month(month, amount="0", quantity=quantity)), t, state, month)
        earned.append(ledger(r)["earnings"])
        state = r.state
    assert earned == [D("140.00"), D("-50.00"), D("50.00")]


# --- rates that cannot be right --------------------------------------------------------------
@pytest.mark.parametrize("basis", ["gross_receipts", "net_receipts"])
def test_a_receipts_rate_above_100_percent_is_refused(basis: str) -> None:
    # 1.5 (a typo for 0.15) would pay 150.00 of 100.00 received, the label paying 50.00 out of
    # its own pocket while the run still "reconciles".
    t = terms(
        contracts=[{"contract_id": 1, "basis": basis}],
        rates=[{"rate_id": 7, "contract_id": 1, "rate": "1.5"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    with pytest.raises(EngineError) as caught:
        run(lines({"amount": "100"}), t)
    assert caught.value.code == "rate_over_100_percent"
    assert [d["rate_id"] for d in caught.value.details] == [7]


# --- per-unit royalties and FX -------------------------------------------------------------
@pytest.mark.parametrize(
    "fx",
    [
        [("USD", "GBP", "0.79"), ("GBP", "USD", "1.26")],  # both directions, independently
        [("USD", "GBP", "0.79")],
        [("GBP", "USD", "1.26")],
    ],
)
def test_a_per_unit_royalty_is_what_the_contract_says_in_its_currency(
    fx: list[tuple[str, str, str]],
) -> None:
    # 10,000 units x 50% x USD 0.004 = USD 20.00, whatever the rates to the accounting
    # currency: they must not lose money on the way there and back (0.79 then 1.26 gave 19.91).
    t = terms(
        contracts=[{"contract_id": 1, "basis": "per_unit", "currency": "USD"}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.004"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "0.5"}],
        fx=[
            {"base": b, "quote": q, "period": "2026-01", "rate": r, "source": "t"} for b, q, r in fx
        ],
    )
    assert ledger(run(lines({"amount": "50", "quantity": 10_000}), t))["earnings"] == D("20.00")


# --- reserves ------------------------------------------------------------------------------
def test_a_reserve_is_held_for_the_contracts_periods_whatever_the_run_cadence() -> None:
    # Half-yearly contract, 20% reserve held for one (half-yearly) period, 100.00 earned
    # each month of H1 2026. Run as one H1 period or as six monthly runs, June's statement
    # is the same: 600.00 earned, 120.00 held until H2, 480.00 payable.
    t = terms(
        contracts=[
            {
                "contract_id": 1,
                "statement_frequency": "half_yearly",
                "reserve_rate": "0.20",
                "reserve_periods": 1,
            }
        ],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "1"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    months = [f"2026-{m:02d}" for m in range(1, 7)]
    whole = ledger(run(lines(*[in_month(m, amount="100") for m in months]), t, {}, "2026-H1"))
    assert (whole["reserve_held"], whole["payable"]) == (D("120.00"), D("480.00"))
    state: dict[int, ContractState] = {}
    released = D(0)
    for m in months:
        r = run(lines(in_month(m, amount="100")), t, state, m)
        released += ledger(r)["reserve_released"]
        state = r.state
    june = ledger(r)
    assert released == D("0.00")
    assert (june["payable"], june["reserves_outstanding"]) == (D("480.00"), D("120.00"))
    # the first run of H2 releases all of it
    july = ledger(run(lines(in_month("2026-07", amount="0")), t, state, "2026-07"))
    assert july["reserve_released"] == D("120.00")


def test_an_unmatched_line_without_an_fx_rate_stays_in_suspense_and_does_not_block() -> None:
    """Unmatched lines never block the period, even before their currency has a rate: the
    run pays the matched lines and counts the unconverted one in suspense. A matched line
    without a rate still stops the run (its royalty cannot be computed)."""

    def one_contract() -> Terms:  # 100% of the receipts
        return terms(
            contracts=[{"contract_id": 1}],
            rates=[{"rate_id": 1, "contract_id": 1, "rate": "1"}],
            splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
        )

    stray = {"amount": "2", "currency": "JPY", "match_method": None, "track_id": None,
             "release_id": None, "suspense_reason": "unknown_isrc"}  # fmt: skip

    def unconverted(line_no: int) -> pl.Expr:
        return pl.when(pl.col("line_no") == line_no)

    lf = lines({"amount": "10.00"}, stray).with_columns(
        unconverted(2).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("converted_amount", "converted_currency")
    )
    result = run(lf, one_contract())
    assert ledger(result)["earnings"] == D("10.00")
    assert result.counts["suspense_unconverted_lines"] == 1
    assert result.counts["lines"] == 2 and result.counts["suspense_lines"] == 1
    assert set(result.totals) == {"GBP"}
    assert (result.totals["GBP"]["revenue"], result.totals["GBP"]["suspense"]) == ("10.00", "0.00")
    matched_too = lines({"amount": "10.00"}, {"amount": "3", "currency": "JPY"}).with_columns(
        unconverted(2).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("converted_amount", "converted_currency")
    )
    with pytest.raises(EngineError) as caught:
        run(matched_too, one_contract())
    assert caught.value.code == "unconverted_lines"
