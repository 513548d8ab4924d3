"""The engine's rules on tiny frames, each result computed by hand in the comments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from royalty_engine.earnings import blended_rate, territory_classes
from royalty_engine.engine import RunResult, compute
from royalty_engine.periods import Period, PeriodError, parse_period
from royalty_engine.terms import ContractState, EngineError, Terms
from schemas.money import allocate, cents
from tests.royalty_engine.engine_frames import lines, terms

D = Decimal
JAN = parse_period("2026-01")


def run(
    lf: pl.LazyFrame, t: Terms, state: dict[int, ContractState] | None = None, period: Period = JAN
) -> RunResult:
    return compute(lf, t, state or {}, period, accounting_currency="GBP")


def ledger(result: RunResult, contract_id: int = 1) -> dict[str, object]:
    return result.ledger.filter(pl.col("contract_id") == contract_id).to_dicts()[0]


def one_contract(**contract: object) -> Terms:
    return terms(
        contracts=[{"contract_id": 1, **contract}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.20"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "0.5"}],
    )


# --- periods and money ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "start", "end", "months"),
    [
        ("2026-01", dt.date(2026, 1, 1), dt.date(2026, 1, 31), ["2026-01"]),
        ("2026-Q2", dt.date(2026, 4, 1), dt.date(2026, 6, 30), ["2026-04", "2026-05", "2026-06"]),
        ("2026-H2", dt.date(2026, 7, 1), dt.date(2026, 12, 31), None),
        ("2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29), ["2024-02"]),
    ],
)
def test_periods(text: str, start: dt.date, end: dt.date, months: list[str] | None) -> None:
    p = parse_period(text)
    assert (p.start, p.end, p.label) == (start, end, text)
    if months:
        assert p.months == months


@pytest.mark.parametrize("bad", ["2026-13", "2026-Q5", "2026", "26-01", "2026-H3", "", "2026-1"])
def test_not_a_period(bad: str) -> None:
    with pytest.raises(PeriodError, match="not a period"):
        parse_period(bad)


def test_period_shift_and_statement_dates() -> None:
    assert parse_period("2026-11").shift(3).label == "2027-02"
    assert parse_period("2026-Q4").shift(1).label == "2027-Q1"
    assert parse_period("2026-Q1").shift(-1).label == "2025-Q4"
    assert not parse_period("2026-01").closes_statement("quarterly")
    assert parse_period("2026-03").closes_statement("quarterly")
    assert parse_period("2026-Q1").closes_statement("quarterly")
    assert not parse_period("2026-Q1").closes_statement("half_yearly")
    assert parse_period("2026-H1").closes_statement("half_yearly")


def test_allocate_adds_up_exactly() -> None:
    # 1.00 over three equal thirds: 0.33 each, the last cent to the largest remainder (first).
    assert allocate(D("1.00"), [D(1) / 3] * 3) == [D("0.34"), D("0.33"), D("0.33")]
    assert sum(allocate(D("-2.00"), [D("-0.665"), D("-0.665"), D("-0.67")])) == D("-2.00")
    assert cents(D("0.125")) == D("0.12") and cents(D("0.135")) == D("0.14")  # half-even


def test_blended_rate_across_a_tier() -> None:
    # 100 units before, 200 now, tier at 250: 150 units at 0.20 + 50 at 0.25 = 42.5 / 200.
    tiers = [{"from_units": 250, "rate": "0.25"}]
    assert blended_rate(D("0.20"), tiers, 100, 200) == D("0.2125")
    assert blended_rate(D("0.20"), tiers, 300, 10) == D("0.25")  # already above the tier
    assert blended_rate(D("0.20"), tiers, 0, 0) == D("0.20")
    assert blended_rate(D("0.20"), tiers, 260, -5) == D("0.25")  # returns: rate in force
    # After returns the tracker is negative: the units below 0 are at the base rate too.
    assert blended_rate(D("0.50"), [], -20, 100) == D("0.50")
    # -20..250 at 0.20 (270 units = 54.00) + 250..280 at 0.25 (30 units = 7.50) = 61.5/300
    assert blended_rate(D("0.20"), tiers, -20, 300) == D("0.205")


def test_territory_classes_group_identical_territories() -> None:
    mapping, members = territory_classes(["GB", "IE", "US", "JP"], ["WW", "GB,IE", "WW,-US"])
    cls = dict(mapping.rows())
    assert cls["GB"] == cls["IE"] and cls["US"] != cls["JP"] and cls["GB"] != cls["JP"]
    us_sets = set(members.filter(pl.col("class_id") == cls["US"])["territories"])
    assert us_sets == {"WW"}


# --- earnings -------------------------------------------------------------------------------
def test_gross_and_net_receipts() -> None:
    lf = lines({"amount": "10.00"}, {"amount": "5.00", "territory": "DE"})
    # gross: 15.00 x 0.5 x 0.20 = 1.50
    assert ledger(run(lf, one_contract()))["earnings"] == D("1.50")
    # net: 15.00 x 0.5 x 0.20 x (1 - 0.15) = 1.275 -> 1.28 (half-even: 1.275 -> 1.28)
    net = run(lf, one_contract(basis="net_receipts", distribution_fee="0.15"))
    assert ledger(net)["earnings"] == D("1.28")


def test_reconciliation_totals() -> None:
    lf = lines(
        {"amount": "10.00"},
        {"amount": "3.00", "track_id": None, "release_id": None, "match_method": None},
        {"amount": "4.00", "track_id": 2, "release_id": 2},  # matched, no split: retained
    )
    r = run(lf, one_contract())
    t = r.totals["GBP"]
    # revenue 17.00 = payees 1.00 (10 x .5 x .2) + retained 13.00 (9.00 + 4.00) + suspense 3.00
    assert (t["revenue"], t["payees"], t["retained"], t["suspense"]) == (
        "17.00",
        "1.00",
        "13.00",
        "3.00",
    )
    assert t["retained_unsplit"] == "4.00"
    assert r.counts["lines"] == 3 and r.counts["suspense_lines"] == 1


def test_rate_specificity_and_missing_rate() -> None:
    t = terms(
        contracts=[{"contract_id": 1}],
        rates=[
            {"rate_id": 1, "contract_id": 1, "rate": "0.10"},
            {"rate_id": 2, "contract_id": 1, "usage_type": "download", "rate": "0.30"},
            {"rate_id": 3, "contract_id": 1, "territories": "JP", "rate": "0.05"},
            {"rate_id": 4, "contract_id": 1, "channel": "ad_supported", "rate": "0.08"},
        ],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    lf = lines(
        {"amount": "100", "usage_type": "download"},  # 0.30 -> 30
        {"amount": "100", "territory": "JP"},  # 0.05 -> 5
        {"amount": "100"},  # 0.10 -> 10
        {"amount": "100", "commercial_model": "ad_supported"},  # 0.08 -> 8
        {"amount": "100", "usage_type": "download", "territory": "JP"},  # usage beats terr: 30
    )
    assert ledger(run(lf, t))["earnings"] == D("83.00")
    only_downloads = terms(
        contracts=[{"contract_id": 1}],
        rates=[{"rate_id": 2, "contract_id": 1, "usage_type": "download", "rate": "0.30"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    with pytest.raises(EngineError) as err:
        run(lines({"amount": "1"}), only_downloads)
    assert err.value.code == "rate_missing"
    assert err.value.details[0]["usage_type"] == "stream"


def test_effective_dated_rate_and_split() -> None:
    t = terms(
        contracts=[{"contract_id": 1}],
        rates=[
            {"rate_id": 1, "contract_id": 1, "rate": "0.10", "effective_to": dt.date(2026, 1, 15)},
            {
                "rate_id": 2,
                "contract_id": 1,
                "rate": "0.20",
                "effective_from": dt.date(2026, 1, 16),
            },
        ],
        splits=[
            {
                "split_id": 1,
                "track_id": 1,
                "contract_id": 1,
                "share": "1",
                "effective_to": dt.date(2026, 1, 20),
            },
            {
                "split_id": 2,
                "track_id": 1,
                "contract_id": 1,
                "share": "0.5",
                "effective_from": dt.date(2026, 1, 21),
            },
        ],
    )
    lf = lines(
        {"amount": "100", "usage_end": dt.date(2026, 1, 10)},  # 0.10 x 1 = 10
        {"amount": "100", "usage_end": dt.date(2026, 1, 18)},  # 0.20 x 1 = 20
        {"amount": "100", "usage_end": dt.date(2026, 1, 31)},  # 0.20 x .5 = 10
    )
    assert ledger(run(lf, t))["earnings"] == D("40.00")


def test_track_splits_replace_release_splits_and_territory_limits() -> None:
    t = terms(
        contracts=[{"contract_id": 1}, {"contract_id": 2, "payee_id": 2}],
        rates=[
            {"rate_id": 1, "contract_id": 1, "rate": "1"},
            {"rate_id": 2, "contract_id": 2, "rate": "1"},
        ],
        splits=[
            {"split_id": 1, "release_id": 1, "contract_id": 1, "share": "0.5"},
            {
                "split_id": 2,
                "track_id": 1,
                "contract_id": 2,
                "payee_id": 2,
                "share": "0.25",
                "territories": "JP",
            },
        ],
    )
    lf = lines(
        {"amount": "100", "territory": "JP"},  # track-level (JP) applies: payee 2 gets 25
        {"amount": "100", "territory": "GB"},  # no track split in GB: release split, 50
        {"amount": "100", "track_id": 2},  # another track of release 1: 50
    )
    r = run(lf, t)
    assert ledger(r, 1)["earnings"] == D("100.00")
    assert ledger(r, 2)["earnings"] == D("25.00")


def test_splits_over_100_percent_are_refused() -> None:
    t = terms(
        contracts=[{"contract_id": 1}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "1"}],
        splits=[
            {"split_id": 1, "track_id": 1, "contract_id": 1, "share": "0.6"},
            {"split_id": 2, "track_id": 1, "contract_id": 1, "share": "0.5"},
        ],
    )
    with pytest.raises(EngineError) as err:
        run(lines({"amount": "1"}), t)
    assert err.value.code == "splits_over_100"
    assert err.value.details[0]["split_ids"] == [1, 2]


def test_per_unit_in_another_currency_and_missing_fx() -> None:
    t = terms(
        contracts=[{"contract_id": 1, "basis": "per_unit", "currency": "USD"}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.004"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "0.5"}],
        fx=[{"base": "USD", "quote": "GBP", "period": "2026-01", "rate": "0.8", "source": "t"}],
    )
    # 10,000 units x 0.5 x 0.004 USD = 20 USD = 16 GBP in the accounting currency.
    r = run(lines({"amount": "50", "quantity": 10_000}), t)
    assert ledger(r)["earnings"] == D("20.00") and ledger(r)["currency"] == "USD"
    assert r.totals["GBP"]["payees"] == "16.00"
    no_fx = terms(
        contracts=[{"contract_id": 1, "basis": "per_unit", "currency": "USD"}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.004"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "0.5"}],
    )
    with pytest.raises(EngineError) as err:
        run(lines({"amount": "50", "quantity": 10_000}), no_fx)
    assert err.value.code == "fx_missing"
    assert {"base": "USD", "quote": "GBP", "period": "2026-01"} in err.value.details


def test_ppd_basis() -> None:
    t = terms(
        contracts=[{"contract_id": 1, "basis": "ppd"}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "0.25"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
        ppd_prices=[
            {
                "price_id": 1,
                "usage_type": "download",
                "territories": "WW",
                "currency": "GBP",
                "price": "0.70",
                "effective_from": dt.date(2020, 1, 1),
            },
        ],
    )
    # 10 downloads x PPD 0.70 x 25% = 1.75, whatever the DSP paid.
    r = run(lines({"amount": "6.99", "quantity": 10, "usage_type": "download"}), t)
    assert ledger(r)["earnings"] == D("1.75")
    with pytest.raises(EngineError) as err:
        run(lines({"amount": "1", "quantity": 10, "usage_type": "stream"}), t)
    assert err.value.code == "ppd_price_missing"


def test_escalation_tracker_carries_over() -> None:
    t = terms(
        contracts=[{"contract_id": 1}],
        rates=[
            {
                "rate_id": 1,
                "contract_id": 1,
                "rate": "0.10",
                "tiers": '[{"from_units": 1500, "rate": "0.20"}]',
            }
        ],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    first = run(lines({"amount": "100", "quantity": 1000}), t)
    assert ledger(first)["earnings"] == D("10.00")  # 1000 units, all below 1500
    assert first.state[1].units == {"1|*|*|WW": 1000}
    second = run(
        lines(
            {
                "amount": "100",
                "quantity": 1000,
                "reporting_period": "2026-02",
                "usage_end": dt.date(2026, 2, 28),
            }
        ),
        t,
        first.state,
        parse_period("2026-02"),
    )
    # units 1000..2000: 500 at 0.10 + 500 at 0.20 = 150/1000 = 0.15 -> 100 x 0.15 = 15.00
    assert ledger(second)["earnings"] == D("15.00")
    assert second.state[1].units == {"1|*|*|WW": 2000}


# --- balances -------------------------------------------------------------------------------
def test_recoupment_reserves_tax_and_minimum() -> None:
    t = terms(
        contracts=[
            {
                "contract_id": 1,
                "reserve_rate": "0.10",
                "reserve_periods": 1,
                "minimum_payment": "50",
            }
        ],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "1"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
        payees=[
            {"payee_id": 1, "name": "A", "statement_currency": "GBP", "withholding_rate": "0.20"}
        ],
        charges=[
            {
                "charge_id": 1,
                "contract_id": 1,
                "kind": "advance",
                "amount": "100",
                "currency": "GBP",
                "incurred_on": dt.date(2025, 12, 1),
            }
        ],
    )
    jan = run(lines({"amount": "80"}), t)
    j = ledger(jan)
    # earnings 80 recoup the advance 100: 0 + 80 - 100 = -20, recouped 80. The reserve is
    # held after recoupment, out of what is left: nothing is left, so nothing is held.
    assert (j["earnings"], j["advances"], j["reserve_held"], j["balance"], j["recouped"]) == (
        D("80.00"),
        D("100.00"),
        D("0.00"),
        D("-20.00"),
        D("80.00"),
    )
    assert (j["payable"], j["carried_forward"], j["status"]) == (
        D("0.00"),
        D("-20.00"),
        "unrecouped",
    )
    feb = run(
        lines({"amount": "100", "reporting_period": "2026-02", "usage_end": dt.date(2026, 2, 28)}),
        t,
        jan.state,
        parse_period("2026-02"),
    )
    f = ledger(feb)
    # -20 + 100 = 80 left after recoupment; 10% of 100 = 10 held out of it: 70; tax 20% = 14;
    # net 56 >= 50: paid.
    assert (f["reserve_held"], f["reserve_released"], f["balance"], f["tax"], f["payable"]) == (
        D("10.00"),
        D("0.00"),
        D("70.00"),
        D("14.00"),
        D("56.00"),
    )
    assert f["closing"] == D("0.00")
    assert f["recouped"] == D("20.00") and f["advances"] == D("0.00")  # charged once only
    mar = run(
        lines({"amount": "50", "reporting_period": "2026-03", "usage_end": dt.date(2026, 3, 31)}),
        t,
        feb.state,
        parse_period("2026-03"),
    )
    m = ledger(mar)
    # 0 + 50 + 10 released (February's) - 5 held = 55; tax 11; net 44 < 50: below minimum,
    # 55 carried untaxed.
    assert (m["balance"], m["tax"], m["payable"], m["carried_forward"], m["status"]) == (
        D("55.00"),
        D("0.00"),
        D("0.00"),
        D("55.00"),
        "below_minimum",
    )


def test_cross_collateralisation_pools_contracts() -> None:
    t = terms(
        contracts=[
            {"contract_id": 1, "cross_collateral_group": "G"},
            {"contract_id": 2, "cross_collateral_group": "G"},
        ],
        rates=[
            {"rate_id": 1, "contract_id": 1, "rate": "1"},
            {"rate_id": 2, "contract_id": 2, "rate": "1"},
        ],
        splits=[
            {"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"},
            {"split_id": 2, "track_id": 2, "contract_id": 2, "share": "1"},
        ],
        charges=[
            {
                "charge_id": 1,
                "contract_id": 2,
                "kind": "advance",
                "amount": "30",
                "currency": "GBP",
                "incurred_on": dt.date(2026, 1, 1),
            }
        ],
    )
    r = run(lines({"amount": "100"}, {"amount": "10", "track_id": 2, "release_id": 2}), t)
    one, two = ledger(r, 1), ledger(r, 2)
    # pool: 100 + (10 - 30) = 80 paid; contract 2's -20 recouped from contract 1's surplus.
    assert (one["balance"], two["balance"]) == (D("100.00"), D("-20.00"))
    assert one["payable"] + two["payable"] == D("80.00")
    assert one["closing"] == two["closing"] == D("0.00")


def test_reserves_are_held_after_recoupment_out_of_what_the_pool_has_left() -> None:
    """The documented order: earnings -> recoupment -> cross-collateralised pool -> reserves.
    Contracts 1 (25% reserve) and 3 (50% reserve) are pooled with contract 2, whose advance
    the pool recoups first; the reserves come out of what is left."""

    def pool(advance: str) -> Terms:
        return terms(
            contracts=[
                {"contract_id": 1, "cross_collateral_group": "G", "reserve_rate": "0.25",
                 "reserve_periods": 1},
                {"contract_id": 2, "cross_collateral_group": "G"},
                {"contract_id": 3, "cross_collateral_group": "G", "reserve_rate": "0.50",
                 "reserve_periods": 1},
            ],
            rates=[{"rate_id": i, "contract_id": i, "rate": "1"} for i in (1, 2, 3)],
            splits=[
                {"split_id": i, "track_id": i, "contract_id": i, "share": "1"} for i in (1, 2, 3)
            ],
            charges=[
                {"charge_id": 1, "contract_id": 2, "kind": "advance", "amount": advance,
                 "currency": "GBP", "incurred_on": dt.date(2026, 1, 1)}
            ],
        )  # fmt: skip

    earned = lines(
        {"amount": "100"},
        {"amount": "60", "track_id": 3, "release_id": 3},
    )
    # Advance 200: the pool is 100 + 60 - 200 = -40 after recoupment; nothing is held.
    r = run(earned, pool("200"))
    held = [ledger(r, i)["reserve_held"] for i in (1, 2, 3)]
    assert held == [D("0.00")] * 3
    assert sum(ledger(r, i)["closing"] for i in (1, 2, 3)) == D("-40.00")
    assert {ledger(r, i)["status"] for i in (1, 2, 3)} == {"unrecouped"}
    # Advance 50: 110 left >= the 25.00 (25% of 100) + 30.00 (50% of 60) asked: all held;
    # 110 - 55 = 55 paid (tax 0, minimum 0).
    r = run(earned, pool("50"))
    assert [ledger(r, i)["reserve_held"] for i in (1, 2, 3)] == [D("25.00"), D("0.00"), D("30.00")]
    assert sum(ledger(r, i)["payable"] for i in (1, 2, 3)) == D("55.00")
    # Advance 145: 15 left < 55 asked, so 15 is held in proportion 25 : 30:
    # 15 x 25/55 = 6.8181.. and 15 x 30/55 = 8.1818..; floored 6.81 + 8.18 = 14.99, the last
    # cent to the larger remainder (contract 1): 6.82 and 8.18. Nothing is left to pay.
    r = run(earned, pool("145"))
    one, two, three = (ledger(r, i) for i in (1, 2, 3))
    assert (one["reserve_held"], three["reserve_held"]) == (D("6.82"), D("8.18"))
    assert (one["reserves_outstanding"], three["reserves_outstanding"]) == (D("6.82"), D("8.18"))
    assert one["balance"] + two["balance"] + three["balance"] == D("0.00")
    assert {one["status"], two["status"], three["status"]} == {"zero"}
    # and they come back the next month, into a pool with no other money
    later = run(
        lines({"amount": "0", "reporting_period": "2026-02", "usage_end": dt.date(2026, 2, 28)}),
        pool("145"),
        r.state,
        parse_period("2026-02"),
    )
    assert [ledger(later, i)["reserve_released"] for i in (1, 3)] == [D("6.82"), D("8.18")]
    assert sum(ledger(later, i)["payable"] for i in (1, 2, 3)) == D("15.00")


def test_quarterly_contract_not_paid_in_january_and_negative_carries() -> None:
    t = terms(
        contracts=[{"contract_id": 1, "statement_frequency": "quarterly"}],
        rates=[{"rate_id": 1, "contract_id": 1, "rate": "1"}],
        splits=[{"split_id": 1, "track_id": 1, "contract_id": 1, "share": "1"}],
    )
    jan = ledger(run(lines({"amount": "10"}), t))
    assert (jan["payable"], jan["carried_forward"], jan["status"]) == (
        D("0.00"),
        D("10.00"),
        "not_statement_date",
    )
    returns = ledger(run(lines({"amount": "-12.50"}), t, period=parse_period("2026-Q1")))
    assert (returns["earnings"], returns["closing"], returns["status"]) == (
        D("-12.50"),
        D("-12.50"),
        "unrecouped",
    )


def test_outputs_are_deterministic() -> None:
    lf = lines(
        *({"amount": f"{i}.37", "territory": t} for i, t in enumerate(["GB", "DE", "FR", "US"]))
    )
    a = run(lf, one_contract()).outputs()
    b = run(lf, one_contract()).outputs()
    assert all(a[k].equals(b[k]) for k in a)
