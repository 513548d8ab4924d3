"""Worked examples: scenario files (``scenarios/*.yaml``) loaded into a fresh store, run period by
period, and every contract's statement compared with a statement computed by hand.

Each test's comments are the hand computation, following the rules in the engine's module
docstrings: royalty = basis x share x rate (``royalty_engine.earnings``), rounded to the cent
once per contract and period (``schemas.money``), then per contract: opening ->
earnings -> advances/costs -> cross-collateral pool -> reserve released/held -> statement date
-> withholding tax -> minimum payment -> payable or carried forward
(``royalty_engine.balances``). A statement row lists every figure (zeros included), so each
assertion checks the whole statement, not just the number the example is about. Runs
reconcile per currency: revenue = payees + retained + suspense.

The end of the file checks the scenario format itself: YAML paths in errors, floats refused
for money, a second load refused.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from pipelines import resources
from pipelines.royalty import audit_ledger
from pipelines.royalty.run import run_period
from pipelines.royalty.transitions import transition
from pipelines.scenario import ScenarioError, load_scenario
from pipelines.settings import get_settings
from royalty_engine.periods import PeriodError, RunError
from royalty_engine.terms import EngineError
from schemas.statement_figures import FIGURES, POOL_FIGURES
from schemas.store import db
from schemas.store.models import (
    Artist,
    AuditEntry,
    Contract,
    ContractCharge,
    ContractRate,
    FxRate,
    IngestFile,
    Organisation,
    Payee,
    Release,
    Split,
    Track,
)
from schemas.store.runs import PpdPrice, RoyaltyRun

SCENARIOS = Path(__file__).parent / "scenarios"
# every figure of a contract's balance row (the one table of statement figures)
FIELDS = (*FIGURES, *POOL_FIGURES)


def stmt(status: str, **money: str) -> dict[str, str]:
    """A contract's whole statement for one period: every figure not given is 0.00."""
    assert not set(money) - set(FIELDS), set(money) - set(FIELDS)
    return {**dict.fromkeys(FIELDS, "0.00"), **money, "status": status}


def figures(**money: str) -> dict[str, str]:
    """A statement's figures without a status (a payee's statement sums its contracts)."""
    return {k: v for k, v in stmt("", **money).items() if k != "status"}


def recon(revenue: str, payees: str, retained: str, suspense: str = "0.00") -> dict[str, str]:
    """A run's reconciliation line (checked here first: the hand computation must add up)."""
    assert Decimal(revenue) == Decimal(payees) + Decimal(retained) + Decimal(suspense)
    return {"revenue": revenue, "payees": payees, "retained": retained, "suspense": suspense}


@dataclass
class Label:
    factory: sessionmaker[Session]
    data: Path
    org_id: int
    loaded: dict[str, Any]

    def run(self, period: str) -> dict[str, Any]:
        return run_period(
            self.factory, self.data, org_id=self.org_id, period=period, actor="t"
        ).as_dict()

    def move(self, period: str, to: str) -> None:
        transition(self.factory, self.data, org_id=self.org_id, period=period, actor="t", to=to)

    @staticmethod
    def statement(report: dict[str, Any]) -> dict[str, dict[str, str]]:
        ledger = pl.read_parquet(report["outputs"]["ledger"])
        return {
            row["reference"]: {
                **{f: str(row[f]) for f in FIELDS},
                "status": row["status"],
            }
            for row in ledger.iter_rows(named=True)
        }

    @staticmethod
    def currencies(report: dict[str, Any]) -> dict[str, str]:
        ledger = pl.read_parquet(report["outputs"]["ledger"])
        return dict(ledger.select("reference", "currency").rows())

    @staticmethod
    def reconciliation(report: dict[str, Any], currency: str = "GBP") -> dict[str, str]:
        t = report["totals"][currency]
        return {k: t[k] for k in ("revenue", "payees", "retained", "suspense")}

    @staticmethod
    def slots(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """Escalation trackers used: rate slot (without the contract id) -> (prior, units)."""
        frame = pl.read_parquet(report["outputs"]["slots"])
        return {
            r["slot"].split("|", 1)[1]: (r["prior_units"], r["units"])
            for r in frame.iter_rows(named=True)
        }

    @staticmethod
    def breakdown(report: dict[str, Any], reference: str, dimension: str) -> dict[str, str]:
        ledger = pl.read_parquet(report["outputs"]["ledger"])
        (cid,) = ledger.filter(pl.col("reference") == reference)["contract_id"].to_list()
        frame = pl.read_parquet(report["outputs"]["breakdown"]).filter(
            (pl.col("contract_id") == cid) & (pl.col("dimension") == dimension)
        )
        return {k: str(v) for k, v in frame.select("key", "amount").rows()}

    def run_rows(self) -> list[tuple[str, int, str]]:
        with self.factory() as s:
            return [
                (r.period, r.version, r.status.value)
                for r in s.scalars(
                    sa.select(RoyaltyRun)
                    .where(RoyaltyRun.org_id == self.org_id)
                    .order_by(RoyaltyRun.id)
                )
            ]

    def run_files(self) -> list[str]:
        """Everything under the runs folder (temporary stage folders included)."""
        root = self.data / "runs"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []

    def ledger_events(self) -> list[str]:
        return [e["event"] for e in audit_ledger.read(self.data, self.org_id)]


Loader = Callable[[str], Label]


@pytest.fixture
def load(factory: sessionmaker[Session], tmp_path: Path) -> Loader:
    data = tmp_path / "var"

    def _load(name: str) -> Label:
        loaded = load_scenario(
            factory, data, SCENARIOS / f"{name}.yaml", org=name.replace("_", "-")
        )
        return Label(factory, data, int(loaded["org_id"]), loaded)

    return _load


# --- bases ---------------------------------------------------------------------------------
def test_gross_net_ppd_and_per_unit_in_another_currency(load: Loader) -> None:
    label = load("basis")
    assert [r["status"] for r in label.loaded["revenue"]] == ["ingested"]
    report = label.run("2026-01")
    # Revenue in GBP: track A's $12.50 at 0.80 = 10.00 (converted at ingestion), + 10.00 +
    # 14.00 + 30.00 = 64.00.
    # GROSS-1: 10.00 x 100% x 0.50 = 5.00
    # NET-1:   10.00 x 100% x 0.50 x (1 - 0.20 distribution fee) = 4.00
    # PPD-1:   20 downloads x 10% x PPD 5.00 = 10.00 (the line's 14.00 plays no part)
    # UNIT-1:  1,000 streams x $0.02 = $20.00 = 16.00 GBP at USD/GBP 0.80 for the run's totals;
    #          the statement is in the contract's currency: 16.00 GBP x (1 / 0.80) = $20.00
    # Payees 5 + 4 + 10 + 16 = 35.00; retained 64 - 35 = 29.00. Monthly, no minimum, no tax:
    # everything is paid.
    assert label.statement(report) == {
        "GROSS-1": stmt("paid", earnings="5.00", payable="5.00"),
        "NET-1": stmt("paid", earnings="4.00", payable="4.00"),
        "PPD-1": stmt("paid", earnings="10.00", payable="10.00"),
        "UNIT-1": stmt("paid", earnings="20.00", payable="20.00"),
    }
    assert label.currencies(report)["UNIT-1"] == "USD"
    assert label.reconciliation(report) == recon("64.00", "35.00", "29.00")
    assert report["totals"]["USD"]["payable"] == "20.00"
    assert report["totals"]["GBP"]["payable"] == "19.00"  # 5 + 4 + 10


# --- effective-dated contract terms ---------------------------------------------------------
def test_contract_terms_in_force_on_the_period_start(load: Loader) -> None:
    label = load("terms")
    jan = label.run("2026-01")
    # January, the first terms: 100.00 x (1 - 0.20 fee) x 0.50 = 40.00 < 50.00 minimum.
    assert label.statement(jan) == {
        "TERMS-1": stmt("below_minimum", earnings="40.00", carried_forward="40.00", closing="40.00")
    }
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # February, the terms from 1 February: 100.00 x (1 - 0.10) x 0.50 = 45.00; with the
    # 40.00 brought forward 85.00, and no minimum any more: paid.
    assert label.statement(feb) == {
        "TERMS-1": stmt("paid", opening="40.00", earnings="45.00", payable="85.00")
    }


# --- which rate ----------------------------------------------------------------------------
def test_rates_by_usage_type_territory_channel_and_effective_date(load: Loader) -> None:
    label = load("rates")
    jan = label.run("2026-01")
    # January, each line 100% to RATE-1 (gross receipts):
    #   DE stream      100.00 -> stream WW,-GB 0.20                          = 20.00
    #   GB stream      100.00 -> stream GB 0.25                              = 25.00
    #   DE download     10.00 -> download 0.30 (the rate until 31 January)   =  3.00
    #   DE ugc          10.00 -> no ugc rate: the * fallback 0.10            =  1.00
    #   GB subscription 100.00 -> stream GB 0.25 (no subscription rate)     = 25.00
    #   GB ad_supported 100.00 -> stream/ad_supported 0.15: an exact channel (2) outranks
    #                            a territory list (1)                        = 15.00
    # Earnings 89.00; revenue 420.00; retained 331.00.
    assert label.statement(jan) == {"RATE-1": stmt("paid", earnings="89.00", payable="89.00")}
    assert label.reconciliation(jan) == recon("420.00", "89.00", "331.00")
    # The slot each line was priced in, with its units, shows each choice above.
    assert label.slots(jan) == {
        "stream|*|WW,-GB": (0, 1000),
        "stream|*|GB": (0, 2000),  # the distributor's GB stream + the subscription line
        "stream|ad_supported|WW": (0, 4000),
        "download|*|WW": (0, 10),
        "*|*|WW": (0, 500),
    }
    assert label.breakdown(jan, "RATE-1", "usage_type") == {
        "stream": "85.00",  # 20 + 25 + 25 + 15
        "download": "3.00",
        "ugc": "1.00",
    }
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # February: DE download 10.00 at the new download rate 0.40 = 4.00.
    assert label.statement(feb) == {"RATE-1": stmt("paid", earnings="4.00", payable="4.00")}
    assert label.reconciliation(feb) == recon("10.00", "4.00", "6.00")


def test_escalation_crosses_a_tier_and_the_tracker_carries_over(load: Loader) -> None:
    label = load("escalation")
    jan = label.run("2026-01")
    # Stream rate 0.20, 0.30 from the 1,000th unit. January: 1,000 (GB) + 600 (FR) = 1,600
    # units in one slot, from 0: 1,000 at 0.20 and 600 at 0.30, a period rate of
    # (1000 x 0.20 + 600 x 0.30) / 1600 = 380 / 1600 = 0.2375.
    # Royalty: (200.00 + 120.00) x 0.2375 = 76.00.
    assert label.statement(jan) == {"ESC-1": stmt("paid", earnings="76.00", payable="76.00")}
    assert label.reconciliation(jan) == recon("320.00", "76.00", "244.00")
    assert label.slots(jan) == {"stream|*|WW": (0, 1600)}
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # February opens at 1,600 units: all 400 at 0.30; 80.00 x 0.30 = 24.00.
    assert label.statement(feb) == {"ESC-1": stmt("paid", earnings="24.00", payable="24.00")}
    assert label.reconciliation(feb) == recon("80.00", "24.00", "56.00")
    assert label.slots(feb) == {"stream|*|WW": (1600, 400)}


def test_escalation_is_rounded_once_from_the_exact_blended_rate(load: Loader) -> None:
    label = load("escalation_tie")
    jan = label.run("2026-01")
    # 1,200 units from 0: 1,000 at 0.20 + 200 at 0.30 = 260, a rate of 260 / 1200 = 13/60.
    # (75.00 + 52.50) x 13/60 = 27.625 exactly: half-even gives 27.62. The rate rounded to
    # 12 places first (0.216666666667) would give 27.625000000043 -> 27.63.
    assert label.statement(jan) == {"TIE-1": stmt("paid", earnings="27.62", payable="27.62")}
    assert label.reconciliation(jan) == recon("127.50", "27.62", "99.88")
    assert label.slots(jan) == {"stream|*|WW": (0, 1200)}
    assert label.breakdown(jan, "TIE-1", "reporting_period") == {"2026-01": "27.62"}


# --- who gets what -------------------------------------------------------------------------
def test_splits_track_over_release_territory_dates_retained_and_suspense(load: Loader) -> None:
    label = load("splits")
    assert [r["status"] for r in label.loaded["revenue"]] == ["ingested", "ingested"]
    report = label.run("2026-Q1")
    # Every contract pays 100% of gross receipts, so royalty = share x amount. Q1 lines:
    #   T1 GB 100.00  release-level split Ava 50%                  Ava 50.00,  label  50.00
    #   T2 GB 100.00  track-level Pete 30% replaces Ava's 50%      Pete 30.00, label  70.00
    #   T3 GB  50.00  Bo 40% in GB                                 Bo 20.00,   label  30.00
    #   T3 US  50.00  Bo's split is GB only: no split              label  50.00 (unsplit)
    #   T4 GB 100.00  January: Bo 20%                              Bo 20.00,   label  80.00
    #   T4 GB 100.00  February (report file): Bo 60%               Bo 60.00,   label  40.00
    #   T5 GB  20.00  no split                                     label  20.00 (unsplit)
    #   USXXX2600099 GB 7.00: not in the catalogue                 suspense 7.00
    # Revenue 527.00 = payees 180.00 + retained 340.00 + suspense 7.00; of the retained,
    # 70.00 had no split at all.
    assert label.statement(report) == {
        "AVA-1": stmt("paid", earnings="50.00", payable="50.00"),
        "PETE-1": stmt("paid", earnings="30.00", payable="30.00"),
        "BO-1": stmt("paid", earnings="100.00", payable="100.00"),
    }
    assert label.reconciliation(report) == recon("527.00", "180.00", "340.00", "7.00")
    assert report["totals"]["GBP"]["retained_unsplit"] == "70.00"
    assert report["counts"]["suspense_lines"] == 1
    # Bo by month: January 20.00 (T3) + 20.00 (T4 at 20%), February 60.00 (T4 at 60%).
    assert label.breakdown(report, "BO-1", "reporting_period") == {
        "2026-01": "40.00",
        "2026-02": "60.00",
    }


# --- balances ------------------------------------------------------------------------------
def test_recoupment_over_two_periods_costs_and_cross_collateral(load: Loader) -> None:
    label = load("recoupment")
    jan = label.run("2026-01")
    # ADV-1: 160.00 x 0.50 = 80.00 against a 100.00 advance: balance 80 - 100 = -20.00,
    #        recouped 80.00 (all earnings went to the advance); unrecouped, -20.00 carried.
    # XA-1:  60.00 x 0.50 = 30.00 - 100.00 advance = -70.00, recouped 30.00;
    # XB-1: 180.00 x 0.50 = 90.00. Pool CARA = -70 + 90 = 20.00 > 0: paid. The payment goes to
    #        the contract with the positive balance (XB-1: 20.00); both close at zero.
    #        The pool owed 100.00 and earned 120.00: 100.00 recouped, XA-1's own 30.00 and
    #        70.00 of XB-1's earnings for XA-1 (XB-1 recouped 70.00, for the pool); settling
    #        moves XB-1's 70.00 to clear XA-1.
    assert label.statement(jan) == {
        "ADV-1": stmt(
            "unrecouped",
            earnings="80.00",
            advances="100.00",
            recouped="80.00",
            carried_forward="-20.00",
            closing="-20.00",
        ),
        "XA-1": stmt(
            "paid",
            earnings="30.00",
            advances="100.00",
            recouped="30.00",
            recouped_from_pool="70.00",
            pool_transfer="70.00",
        ),
        "XB-1": stmt(
            "paid",
            earnings="90.00",
            payable="20.00",
            recouped="70.00",
            recouped_for_pool="70.00",
            pool_transfer="-70.00",
        ),
    }
    assert label.reconciliation(jan) == recon("400.00", "200.00", "200.00")
    label.move("2026-01", "approved")
    label.move("2026-01", "locked")
    feb = label.run("2026-02")
    # ADV-1: opening -20.00 + 120.00 x 0.50 = 60.00 - the 20.00 video cost (10 February)
    #        = 20.00; debt was 20 + 20 = 40.00, so 40.00 recouped; 20.00 paid.
    # XA-1:  20.00 x 0.50 = 10.00, the advance was charged in January (and pooled away):
    #        paid 10.00. XB-1: nothing earned, pool paid, 0.00.
    assert label.statement(feb) == {
        "ADV-1": stmt(
            "paid",
            opening="-20.00",
            earnings="60.00",
            costs="20.00",
            recouped="40.00",
            payable="20.00",
        ),
        "XA-1": stmt("paid", earnings="10.00", payable="10.00"),
        "XB-1": stmt("paid"),
    }
    assert label.reconciliation(feb) == recon("140.00", "70.00", "70.00")


def payee_statement(report: dict[str, Any]) -> dict[str, str]:
    """The run's one payee statement (every contract of the payee summed)."""
    (row,) = pl.read_parquet(report["outputs"]["statements"]).iter_rows(named=True)
    return {f: str(row[f]) for f in FIELDS}


def adds_up(figures: dict[str, str]) -> bool:
    """opening + earnings - advances - costs + released - held - tax - payable = closing."""
    d = {k: Decimal(v) for k, v in figures.items() if k in FIELDS}
    moved = (
        d["opening"]
        + d["earnings"]
        - d["advances"]
        - d["costs"]
        + d["reserve_released"]
        - d["reserve_held"]
        + d["pool_transfer"]
        - d["tax"]
        - d["payable"]
    )
    return moved == d["closing"]


def test_a_cross_collateralised_pool_shows_every_movement(load: Loader) -> None:
    label = load("cross_collateral")
    jan = label.run("2026-01")
    # Pool -820.00 + 450.00 = -370.00: unrecouped. 450.00 recouped, all of it XP-B's
    # earnings recouping XP-A's advance; each contract carries its own balance.
    assert label.statement(jan) == {
        "XP-A": stmt(
            "unrecouped",
            advances="820.00",
            recouped_from_pool="450.00",
            carried_forward="-820.00",
            closing="-820.00",
        ),
        "XP-B": stmt(
            "unrecouped",
            earnings="450.00",
            recouped="450.00",
            recouped_for_pool="450.00",
            carried_forward="450.00",
            closing="450.00",
        ),
    }
    # The payee's statement: 0.00 + 450.00 - 820.00 = -370.00; recouped 450.00.
    assert payee_statement(jan) == figures(
        earnings="450.00",
        advances="820.00",
        recouped="450.00",
        recouped_from_pool="450.00",
        recouped_for_pool="450.00",
        carried_forward="-370.00",
        closing="-370.00",
    )
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # Pool -730.00 + 810.00 = 80.00: tax 8.00, 72.00 paid. 370.00 recouped: XP-A's own
    # 90.00 and 280.00 of XP-B's earnings; settling moves 730.00 from XP-B to XP-A.
    assert label.statement(feb) == {
        "XP-A": stmt(
            "paid",
            opening="-820.00",
            earnings="90.00",
            recouped="90.00",
            recouped_from_pool="280.00",
            pool_transfer="730.00",
        ),
        "XP-B": stmt(
            "paid",
            opening="450.00",
            earnings="360.00",
            recouped="280.00",
            recouped_for_pool="280.00",
            pool_transfer="-730.00",
            tax="8.00",
            payable="72.00",
        ),
    }
    summary = payee_statement(feb)
    assert {k: summary[k] for k in ("opening", "earnings", "recouped", "tax", "payable")} == {
        "opening": "-370.00",
        "earnings": "450.00",
        "recouped": "370.00",
        "tax": "8.00",
        "payable": "72.00",
    }
    assert summary["pool_transfer"] == "0.00"  # moves inside the pool cancel out
    # earnings - recouped - tax = payable: 450.00 - 370.00 - 8.00 = 72.00
    assert Decimal(summary["earnings"]) - Decimal(summary["recouped"]) - Decimal(
        summary["tax"]
    ) == Decimal(summary["payable"])
    assert adds_up(summary)
    assert all(adds_up(row) for row in label.statement(feb).values())
    assert label.reconciliation(feb) == recon("900.00", "450.00", "450.00")
    label.move("2026-02", "approved")
    mar = label.run("2026-03")
    # 20.00 - 2.00 tax = 18.00 < 50.00: below the minimum, carried forward untaxed.
    assert label.statement(mar) == {
        "XP-A": stmt("below_minimum"),
        "XP-B": stmt("below_minimum", earnings="20.00", carried_forward="20.00", closing="20.00"),
    }
    assert all(adds_up(row) for row in label.statement(mar).values())


def test_a_pool_with_reserves_tax_and_a_minimum(load: Loader) -> None:
    label = load("pool_reserves")
    jan = label.run("2026-01")
    # PR-A's own 100.00 recouped its advance; reserves 20.00 + 6.00 held out of the 60.00
    # the pool had left; pool 34.00, net of tax 27.20 < 30.00: carried untaxed.
    assert label.statement(jan) == {
        "PR-A": stmt(
            "below_minimum",
            earnings="100.00",
            advances="100.00",
            recouped="100.00",
            reserve_held="20.00",
            carried_forward="-20.00",
            closing="-20.00",
            reserves_outstanding="20.00",
        ),
        "PR-B": stmt(
            "below_minimum",
            earnings="60.00",
            reserve_held="6.00",
            carried_forward="54.00",
            closing="54.00",
            reserves_outstanding="6.00",
        ),
    }
    assert payee_statement(jan) == figures(
        earnings="160.00",
        advances="100.00",
        recouped="100.00",
        reserve_held="26.00",
        carried_forward="34.00",
        closing="34.00",
        reserves_outstanding="26.00",
    )
    assert label.reconciliation(jan) == recon("320.00", "160.00", "160.00")
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # Released 20.00 + 6.00; PR-B holds 1.00; pool 69.00, tax 13.80, 55.20 paid.
    assert label.statement(feb) == {
        "PR-A": stmt("paid", opening="-20.00", recouped="20.00", reserve_released="20.00"),
        "PR-B": stmt(
            "paid",
            opening="54.00",
            earnings="10.00",
            reserve_held="1.00",
            reserve_released="6.00",
            tax="13.80",
            payable="55.20",
            reserves_outstanding="1.00",
        ),
    }
    summary = payee_statement(feb)
    assert adds_up(summary) and summary["closing"] == "0.00"
    assert all(adds_up(row) for row in label.statement(feb).values())
    assert label.reconciliation(feb) == recon("20.00", "10.00", "10.00")


def test_reserves_tax_minimum_and_quarterly_statements(load: Loader) -> None:
    label = load("balances")
    jan = label.run("2026-01")
    # RES-1: 80.00 x 0.50 = 40.00; 25% held = 10.00 (to be released in 2026-03); 30.00 paid.
    # TAX-1: 50.06 x 0.50 = 25.03; 20% tax = 5.006 -> 5.01 (half-even); 20.02 paid.
    # MIN-1: 60.00 x 0.50 = 30.00 < 50.00 minimum: carried forward.
    # QTR-1: 30.00 x 0.50 = 15.00; January closes no quarter: carried forward.
    assert label.statement(jan) == {
        "RES-1": stmt(
            "paid",
            earnings="40.00",
            reserve_held="10.00",
            payable="30.00",
            reserves_outstanding="10.00",
        ),
        "TAX-1": stmt("paid", earnings="25.03", tax="5.01", payable="20.02"),
        "MIN-1": stmt("below_minimum", earnings="30.00", carried_forward="30.00", closing="30.00"),
        "QTR-1": stmt(
            "not_statement_date", earnings="15.00", carried_forward="15.00", closing="15.00"
        ),
    }
    # Revenue 80 + 50.06 + 60 + 30 = 220.06; payees 40 + 25.03 + 30 + 15 = 110.03.
    assert label.reconciliation(jan) == recon("220.06", "110.03", "110.03")
    assert jan["totals"]["GBP"]["tax_withheld"] == "5.01"
    assert jan["totals"]["GBP"]["reserves_held"] == "10.00"
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # RES-1: 40.00 x 0.50 = 20.00; held 5.00 (until 2026-04); nothing due for release; 15.00.
    # TAX-1: nothing: zero.  MIN-1: 30.00 + 50.00 x 0.50 = 55.00 >= 50.00: paid.
    # QTR-1: 15.00 brought forward, February closes no quarter either.
    assert label.statement(feb) == {
        "RES-1": stmt(
            "paid",
            earnings="20.00",
            reserve_held="5.00",
            payable="15.00",
            reserves_outstanding="15.00",
        ),
        "TAX-1": stmt("zero"),
        "MIN-1": stmt("paid", opening="30.00", earnings="25.00", payable="55.00"),
        "QTR-1": stmt(
            "not_statement_date", opening="15.00", carried_forward="15.00", closing="15.00"
        ),
    }
    assert label.reconciliation(feb) == recon("90.00", "45.00", "45.00")  # 40 + 50
    label.move("2026-02", "approved")
    mar = label.run("2026-03")
    # RES-1: 16.00 x 0.50 = 8.00; held 2.00; January's 10.00 released (two periods later):
    #        8 - 2 + 10 = 16.00 paid; still held 5.00 (Feb) + 2.00 (Mar) = 7.00.
    # QTR-1: 15.00 + 10.00 x 0.50 = 20.00; March closes Q1: paid.
    assert label.statement(mar) == {
        "RES-1": stmt(
            "paid",
            earnings="8.00",
            reserve_held="2.00",
            reserve_released="10.00",
            payable="16.00",
            reserves_outstanding="7.00",
        ),
        "TAX-1": stmt("zero"),
        "MIN-1": stmt("zero"),
        "QTR-1": stmt("paid", opening="15.00", earnings="5.00", payable="20.00"),
    }
    assert label.reconciliation(mar) == recon("26.00", "13.00", "13.00")  # 16 + 10; 8 + 5
    assert mar["totals"]["GBP"]["reserves_released"] == "10.00"


def test_returns_make_earnings_negative_and_the_balance_carries(load: Loader) -> None:
    label = load("returns")
    jan = label.run("2026-01")
    # 40.00 x 0.50 = 20.00, paid.
    assert label.statement(jan) == {"NEG-1": stmt("paid", earnings="20.00", payable="20.00")}
    label.move("2026-01", "approved")
    feb = label.run("2026-02")
    # A return of -60.00 x 0.50 = -30.00: balance -30.00, unrecouped, carried forward.
    assert label.statement(feb) == {
        "NEG-1": stmt("unrecouped", earnings="-30.00", carried_forward="-30.00", closing="-30.00")
    }
    assert label.reconciliation(feb) == recon("-60.00", "-30.00", "-30.00")
    label.move("2026-02", "approved")
    mar = label.run("2026-03")
    # 100.00 x 0.50 = 50.00: the contract's one rate has no escalation tiers, so every unit
    # is at 0.50, whatever the cumulative unit count (40 - 60 = -20 before March).
    # Opening -30.00 + 50.00 = 20.00; 30.00 of the earnings recouped the negative balance;
    # 20.00 paid.
    assert label.statement(mar) == {
        "NEG-1": stmt("paid", opening="-30.00", earnings="50.00", recouped="30.00", payable="20.00")
    }
    assert label.reconciliation(mar) == recon("100.00", "50.00", "50.00")


# --- bad input: a clear error, and nothing left behind --------------------------------------
def _refused(label: Label, period: str, code: str) -> EngineError:
    runs, files, events = label.run_rows(), label.run_files(), label.ledger_events()
    with pytest.raises(EngineError) as err:
        label.run(period)
    assert err.value.code == code, err.value.as_dict()
    assert label.run_rows() == runs  # no run row
    assert label.run_files() == files  # no run folder (nor a temporary one)
    assert label.ledger_events() == events  # nothing in the audit ledger
    return err.value


def test_splits_over_100_are_refused_when_loading(factory: sessionmaker[Session]) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario(
            factory, Path("unused"), SCENARIOS / "bad_splits_over_100.yaml", org="over-100"
        )
    message = str(err.value)
    assert "splits[1].share: shares of track" in message and "120" in message and "GB" in message
    with factory() as s:  # one transaction: not even the organisation was created
        assert s.scalar(sa.select(Organisation).where(Organisation.slug == "over-100")) is None
        assert s.scalar(sa.select(sa.func.count()).select_from(Artist)) == 0


def test_splits_over_100_in_the_store_stop_the_run(load: Loader) -> None:
    label = load("basis")
    # Written around the service (as old data or a bad migration could): 100% + 50% on GBBAS-1.
    with db.transaction(label.factory, actor="t") as s:
        track = s.scalars(sa.select(Track).where(Track.isrc == "GBBAS2600001")).one()
        contract = s.scalars(sa.select(Contract).where(Contract.reference == "NET-1")).one()
        s.add(
            Split(
                org_id=label.org_id,
                track_id=track.id,
                payee_id=contract.payee_id,
                contract_id=contract.id,
                share=Decimal("0.5"),
                territories="WW",
                effective_from=dt.date(2026, 1, 1),
            )
        )
    error = _refused(label, "2026-01", "splits_over_100")
    assert [d["total_share"] for d in error.details] == ["1.500000000000"]


def test_a_usage_type_without_a_rate_stops_the_run(load: Loader) -> None:
    label = load("bad_rate_missing")
    error = _refused(label, "2026-01", "rate_missing")
    assert [(d["usage_type"], d["channel"]) for d in error.details] == [("download", "")]


def test_a_missing_fx_rate_stops_the_run(load: Loader) -> None:
    label = load("bad_fx_missing")
    error = _refused(label, "2026-01", "fx_missing")
    assert "USD->GBP in 2026-01" in error.message
    assert {"base": "USD", "quote": "GBP", "period": "2026-01"} in error.details


def test_a_locked_period_is_not_run_again(load: Loader) -> None:
    label = load("basis")
    label.run("2026-01")
    label.move("2026-01", "approved")
    label.move("2026-01", "locked")
    error = _refused(label, "2026-01", "period_locked")
    assert isinstance(error, RunError)
    assert label.run_rows() == [("2026-01", 1, "locked")]


def test_a_bad_period_string_is_refused(load: Loader) -> None:
    label = load("basis")  # one label for every string: a refusal leaves nothing behind
    for period in ("2026-13", "2026-Q5", "2026-H3", "Jan 2026", "2026-1"):
        with pytest.raises(PeriodError, match="not a period"):
            label.run(period)
        assert label.run_rows() == [], period
        assert label.run_files() == [], period
        assert label.ledger_events() == [], period


# --- the scenario format -------------------------------------------------------------------
BASE = """
organisation: {currency: GBP}
artists: [{name: Ana}]
payees: [{name: Ana}]
contracts:
  - {reference: A-1, payee: Ana, basis: net_receipts, start_date: 2026-01-01,
     rates: [{rate: "0.2"}]}
  - {reference: A-2, payee: Ana, basis: net_receipts, start_date: 2026-01-01,
     rates: [{rate: "0.2"}]}
  - {reference: A-3, payee: Ana, basis: net_receipts, start_date: 2026-01-01,
     rates: [{rate: %s}]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def _count_content(factory: sessionmaker[Session]) -> dict[str, int]:
    models = (Artist, Release, Track, Payee, Contract, ContractRate, ContractCharge, Split)
    with factory() as s:
        counts = {
            m.__tablename__: int(s.scalar(sa.select(sa.func.count()).select_from(m)) or 0)
            for m in (*models, FxRate, PpdPrice, IngestFile)
        }
    return counts


def test_store_errors_name_the_yaml_path(factory: sessionmaker[Session], tmp_path: Path) -> None:
    path = _write(tmp_path, BASE % '"1.5"')  # a net-receipts rate is a fraction
    with pytest.raises(ScenarioError) as err:
        load_scenario(factory, tmp_path / "var", path, org="paths")
    assert "contracts[2].rates[0].rate: a net_receipts rate is a fraction" in str(err.value)
    assert set(_count_content(factory).values()) == {0}


def test_every_store_problem_is_reported_at_once_and_each_row_audited(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Issue 22: the whole label is checked before anything is written (not the first
    refusal after minutes of writes); a good label is written in bulk, one audit entry a row."""
    text = BASE % '"1.5"' + (
        "releases:\n"
        "  - {upc: '5063450000018', title: X, artist: Ana, original_release_date: 2025-01-01,\n"
        "     tracks: [{isrc: GBAAA2600001, title: A}, {isrc: GBAAA2600002, title: B,\n"
        "              track_number: 1}]}\n"
        "splits:\n"
        "  - {isrc: GBAAA2600001, payee: Ana, contract: A-1, share: '0.7'}\n"
        "  - {isrc: GBAAA2600001, payee: Ana, contract: A-2, share: '0.7'}\n"
        "  - {isrc: GBAAA2600002, payee: Ana, contract: A-1, share: '0.5',\n"
        "     effective_from: 2025-01-01}\n"
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(factory, tmp_path / "var", _write(tmp_path, text), org="all-at-once")
    errors = err.value.errors
    assert [e.split(":")[0] for e in errors] == [
        "releases[0].tracks[1].track_number",
        "contracts[2].rates[0].rate",
        "splits[1].share",
        "splits[2].effective_from",
    ], errors
    assert "shares of track GBAAA2600001 would total 140%" in errors[2]
    assert "within contract A-1's term" in errors[3]
    assert set(_count_content(factory).values()) == {0}

    good = (
        text.replace('"1.5"', '"0.2"')
        .replace("track_number: 1", "track_number: 2")
        .replace("share: '0.7'}", "share: '0.3'}")
        .replace("effective_from: 2025-01-01", "effective_from: 2026-02-01")
    )
    loaded = load_scenario(factory, tmp_path / "var", _write(tmp_path, good), org="audited")
    assert loaded["created"] == {
        "artists": 1,
        "charges": 0,
        "contracts": 3,
        "payees": 1,
        "rates": 3,
        "releases": 1,
        "splits": 3,
        "tracks": 2,
    }
    with factory() as s:
        entries = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.org_id == loaded["org_id"])
        ).all()
        by_entity = Counter(e.entity for e in entries if e.action == "create")
        assert by_entity["splits"] == loaded["created"]["splits"]
        assert by_entity["tracks"] == loaded["created"]["tracks"]
        assert by_entity["contract_rates"] == loaded["created"]["rates"]
        split = s.scalars(sa.select(Split).where(Split.org_id == loaded["org_id"])).first()
        assert split is not None
        entry = next(e for e in entries if e.entity == "splits" and e.entity_id == split.id)
        assert entry.after is not None and entry.after["share"] == format(split.share, "f")
        assert entry.actor == "scenario:s.yaml" and entry.before is None


def test_floats_for_money_and_unquoted_identifiers_are_refused(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    text = BASE % "0.2" + (
        "releases:\n"
        "  - {upc: 0602435000015, title: X, artist: Ana, original_release_date: 2025-01-01}\n"
        "fx: [{base: USD, quote: GBP, period: 2026-01, rate: 0.8}]\n"
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(factory, tmp_path / "var", _write(tmp_path, text), org="floats")
    errors = err.value.errors
    assert any(
        e.startswith("contracts[2].rates[0].rate: 0.2 is a YAML float") and "'0.2'" in e
        for e in errors
    ), errors
    assert any(e.startswith("fx[0].rate: 0.8 is a YAML float") for e in errors), errors
    assert any(e.startswith("releases[0].upc:") and "quote it" in e for e in errors), errors
    assert set(_count_content(factory).values()) == {0}


def test_names_that_refer_to_nothing_are_reported(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    text = BASE % '"0.2"' + (
        "splits: [{upc: '5063450000018', payee: Bob, share: '0.5'}]\n"
        "revenue: [{period: '2026-01', lines: [{isrc: GBAAA2600001, territory: GB,"
        " amount: '1.00', currency: GBP, channel: subscription}]}, {file: missing.csv}]\n"
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(factory, tmp_path / "var", _write(tmp_path, text), org="names")
    assert err.value.errors == [
        "splits[0].upc: no release with UPC 5063450000018 in releases",
        "splits[0].payee: no payee named 'Bob' in payees",
        "revenue[1].file: missing.csv not found next to the scenario",
    ]


def test_a_second_load_is_refused_and_duplicates_nothing(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    first = load_scenario(factory, tmp_path / "var", SCENARIOS / "splits.yaml", org="twice")
    assert first["created"]["splits"] == 5 and first["created"]["tracks"] == 5
    before = _count_content(factory)
    lake = sorted((tmp_path / "var" / "lake").rglob("*.parquet"))
    with pytest.raises(ScenarioError, match="already has content"):
        load_scenario(factory, tmp_path / "var", SCENARIOS / "splits.yaml", org="twice")
    assert _count_content(factory) == before
    assert sorted((tmp_path / "var" / "lake").rglob("*.parquet")) == lake


def test_cli_loads_a_scenario(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import app

    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", db_url)
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["scenario", "load", str(SCENARIOS / "basis.yaml"), "--org", "cli"])
        assert ok.exit_code == 0, ok.output
        assert '"tracks": 4' in ok.output and '"status": "ingested"' in ok.output
        again = runner.invoke(
            app, ["scenario", "load", str(SCENARIOS / "basis.yaml"), "--org", "cli"]
        )
        assert again.exit_code == 2 and "already has content" in again.output
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()
