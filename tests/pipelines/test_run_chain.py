"""The periods of an organisation form one chain: each opens from the closing balances of
the approved or locked run before it. Runs, approvals, locks and corrections that would
break the chain (and so charge an advance twice, or pay from balances nobody approved)
are refused with a reason.

Scenario ``recoupment``: Rob's ADV-1 (50% of gross) carries a 100.00 advance (January) and a
20.00 cost (10 February). January earns 80.00 (160.00 x 50%): closing -20.00. February earns
60.00: -20.00 + 60.00 - 20.00 = 20.00 payable.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.resources import Resources
from pipelines.royalty import audit_ledger
from pipelines.royalty.run import run_period
from pipelines.scenario import load_scenario
from royalty_engine.periods import RunError
from schemas.store import db
from schemas.store.models import Contract, ContractCharge
from tests.royalty_engine.test_worked_examples import SCENARIOS, Label


@pytest.fixture
def label(factory: sessionmaker[Session], tmp_path: Path) -> Label:
    data = tmp_path / "var"
    loaded = load_scenario(factory, data, SCENARIOS / "recoupment.yaml", org="recoupment")
    return Label(factory, data, int(loaded["org_id"]), loaded)


def adv(report: dict[str, Any]) -> dict[str, str]:
    ledger = pl.read_parquet(report["outputs"]["ledger"]).filter(pl.col("reference") == "ADV-1")
    (row,) = ledger.iter_rows(named=True)
    return {k: str(row[k]) for k in ("opening", "advances", "costs", "payable", "closing")}


def late_cost(label: Label, amount: str) -> None:
    """A recoupable cost on ADV-1 dated in January, entered after January was run."""
    with db.transaction(label.factory, actor="t") as s:
        contract = s.scalars(
            sa.select(Contract).where(
                Contract.org_id == label.org_id, Contract.reference == "ADV-1"
            )
        ).one()
        s.add(
            ContractCharge(
                org_id=label.org_id,
                contract_id=contract.id,
                kind="recoupable_cost",
                amount=Decimal(amount),
                currency="GBP",
                incurred_on=dt.date(2026, 1, 15),
                description="late invoice",
            )
        )


def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(RunError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return str(caught.value)


def correct(label: Label, period: str, reason: str) -> dict[str, Any]:
    return run_period(
        label.factory, label.data, org_id=label.org_id, period=period, actor="t", correction=reason
    ).as_dict()


def settle(label: Label, period: str) -> dict[str, Any]:
    report = label.run(period)
    label.move(period, "approved")
    label.move(period, "locked")
    return report


def test_a_period_opens_only_from_the_approved_period_just_before_it(label: Label) -> None:
    label.run("2026-01")
    # January is only calculated: February would open from nothing and charge the advance
    # a second time
    message = refused("previous_not_approved", label.run, "2026-02")
    assert "2026-01" in message
    label.move("2026-01", "approved")
    # March with February never run: a gap
    refused("period_gap", label.run, "2026-03")
    feb = label.run("2026-02")
    # opens from January: -20.00 + 60.00 - 20.00 = 20.00 paid; the advance charged once
    assert adv(feb) == {
        "opening": "-20.00",
        "advances": "0.00",
        "costs": "20.00",
        "payable": "20.00",
        "closing": "0.00",
    }
    # January cannot be rerun under an approved February (only corrected after its lock)
    label.move("2026-02", "approved")
    refused("later_period_settled", label.run, "2026-01")
    assert label.run_rows() == [("2026-01", 1, "approved"), ("2026-02", 1, "approved")]


def test_a_rerun_of_the_previous_period_makes_the_next_one_stale(label: Label) -> None:
    label.run("2026-01")
    label.move("2026-01", "approved")
    label.run("2026-02")  # from January v1 (closing -20.00)
    late_cost(label, "50.00")
    label.run("2026-01")  # February is only calculated: January may be rerun (v2: -70.00)
    label.move("2026-01", "approved")
    # February was computed from January v1, superseded: it cannot be approved
    refused("stale_opening", label.move, "2026-02", "approved")
    feb = label.run("2026-02")  # from January v2
    assert adv(feb)["opening"] == "-70.00"
    label.move("2026-02", "approved")
    assert label.run_rows()[-1] == ("2026-02", 2, "approved")


def test_corrections_go_down_the_chain_in_order(label: Label) -> None:
    settle(label, "2026-01")
    settle(label, "2026-02")
    late_cost(label, "50.00")
    jan = correct(label, "2026-01", "late video invoice")
    assert adv(jan)["closing"] == "-70.00"
    # February cannot be corrected from a January correction nobody approved yet
    refused("previous_not_approved", correct, label, "2026-02", "follow January")
    label.move("2026-01", "approved")
    label.move("2026-01", "locked")
    # March would open from February v1, which opened from January v1: the 50.00 cost
    # would be charged again in March
    refused("stale_previous", label.run, "2026-03")
    feb = correct(label, "2026-02", "opening balance from corrected January")
    # from January v2: -70.00 + 60.00 - 20.00 = -30.00, nothing paid
    assert adv(feb) == {
        "opening": "-70.00",
        "advances": "0.00",
        "costs": "20.00",
        "payable": "0.00",
        "closing": "-30.00",
    }
    label.move("2026-02", "approved")
    label.move("2026-02", "locked")
    mar = label.run("2026-03")
    assert adv(mar)["opening"] == "-30.00" and adv(mar)["costs"] == "0.00"


def test_overlapping_periods_cannot_both_be_approved(label: Label) -> None:
    label.run("2026-01")
    label.run("2026-Q1")  # computed, as an alternative to monthly runs
    label.move("2026-Q1", "approved")
    refused("period_overlaps", label.move, "2026-01", "approved")
    assert [r[2] for r in label.run_rows()] == ["calculated", "approved"]


def test_an_approval_names_the_run_that_was_reviewed(label: Label) -> None:
    from functools import partial

    from pipelines.royalty.transitions import transition

    approve = partial(
        transition,
        label.factory,
        label.data,
        org_id=label.org_id,
        period="2026-01",
        actor="finance",
        to="approved",
    )
    reviewed = label.run("2026-01")
    late_cost(label, "50.00")
    rerun = label.run("2026-01")  # someone changed a term and ran it again meanwhile
    refused("run_changed", approve, run_id=reviewed["run_id"])
    approved = approve(run_id=rerun["run_id"])
    assert (approved.run_id, approved.status) == (rerun["run_id"], "approved")
    assert audit_ledger.read(label.data, label.org_id)[-1]["run_id"] == rerun["run_id"]


def late_revenue(label: Label, amount: str) -> None:
    """A January report for ADV-1's track that arrives after January was locked."""
    from pipelines.ingest.files import ingest_path
    from pipelines.scenario import LineSpec, RevenueSpec, inline_files

    spec = RevenueSpec(
        period="2026-01",
        lines=[
            LineSpec(
                isrc="GBREC2600001",
                territory="GB",
                units=40,
                amount=Decimal(amount),
                currency="GBP",
            )
        ],
    )
    ((name, fmt, data),) = inline_files("late", 9, spec)
    path = label.data.parent / name
    path.write_bytes(data)
    got = ingest_path(
        Resources.of(label.factory, label.data),
        org_id=label.org_id,
        path=path,
        name=name,
        format=fmt,
        period="2026-01",
        actor="t",
    )
    assert got.status == "ingested" and got.matched == 1


def test_a_correction_names_the_corrected_period_before_it_as_the_reason(label: Label) -> None:
    settle(label, "2026-01")
    settle(label, "2026-02")
    # A late January report: 40.00 x 50% = 20.00 more for ADV-1, which recoups the 20.00
    # left of its advance: January closes at 0.00 instead of -20.00.
    late_revenue(label, "40.00")
    jan = correct(label, "2026-01", "late January report")
    assert adv(jan)["closing"] == "0.00"
    assert any("revenue files added" in why for d in jan["diff"] for why in d["why"])
    label.move("2026-01", "approved")
    label.move("2026-01", "locked")
    feb = correct(label, "2026-02", "opening balance from corrected January")
    # February's own lines and terms did not change; its opening did: 0.00 + 60.00 - 20.00
    # = 40.00 paid (was -20.00 + 60.00 - 20.00 = 20.00).
    assert adv(feb)["opening"] == "0.00" and adv(feb)["payable"] == "40.00"
    (rob,) = [d for d in feb["diff"] if "payable" in d["changes"]]
    assert rob["changes"]["opening"] == {"old": "-20.00", "new": "0.00", "delta": "20.00"}
    assert rob["why"] == [
        f"opening balances changed: the previous period 2026-01 was corrected "
        f"(run {jan['run_id']}, version 2, 'late January report'): "
        "ADV-1 opening -20.00 -> 0.00"
    ]


def test_a_moved_escalation_position_is_named_only_for_tiered_rates() -> None:
    from pipelines.royalty.diff import opening_reasons as _opening_reasons
    from royalty_engine.terms import ContractState, Terms
    from schemas.store.runs import RoyaltyRun

    terms = Terms.from_frames(
        {
            "contracts": pl.DataFrame(
                {"contract_id": [1], "payee_id": [5], "reference": ["ESC-1"]}
            ),
            "rates": pl.DataFrame(
                {
                    "rate_id": [1, 2],
                    "contract_id": [1, 1],
                    "usage_type": ["stream", "download"],
                    "channel": ["*", "*"],
                    "territories": ["WW", "WW"],
                    "tiers": ['[{"from_units": 1000, "rate": "0.30"}]', "[]"],
                }
            ),
        }
    )
    # January's correction added 100 streams and 4 downloads; only streams escalate.
    old = {1: ContractState(units={"1|stream|*|WW": 1600, "1|download|*|WW": 5})}
    new = {1: ContractState(units={"1|stream|*|WW": 1700, "1|download|*|WW": 9})}
    locked = RoyaltyRun(previous_run_id=3)
    previous = RoyaltyRun(id=7, period="2026-01", version=2, reason="late report")
    assert _opening_reasons(old, new, terms, locked, previous) == {
        5: "escalation positions changed: the previous period 2026-01 was corrected "
        "(run 7, version 2, 'late report'): ESC-1 escalation position stream|*|WW "
        "1600 -> 1700 units"
    }
    assert _opening_reasons(old, old, terms, locked, previous) == {}
