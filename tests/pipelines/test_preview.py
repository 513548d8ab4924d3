"""The approval screen: amounts, variance flags and their wording (pure, no store), and one
small scenario run end to end: the preview of a period made negative by a return, and the
approver's comment kept with approve and reject in the audit log and the audit ledger."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from pipelines.royalty.preview import (
    ContractFlag,
    Preview,
    VarianceThreshold,
    negative_cause,
    render_markdown,
    variance,
)
from royalty_engine.warnings import RunWarning
from schemas.money import format_amount

D = Decimal


def test_amounts_have_separators_two_decimals_and_their_currency() -> None:
    assert format_amount(D("-19282.490000"), "GBP") == "-19,282.49 GBP"
    assert format_amount(D("1234567.005")) == "1,234,567.00"  # half-even, once
    assert format_amount(D("-0.001"), "EUR") == "0.00 EUR"  # never -0.00
    assert format_amount("2.5", "USD", minus="\u2212") == "2.50 USD"
    assert format_amount(D("-2.94"), "GBP", minus="\u2212") == "\u22122.94 GBP"


@pytest.mark.parametrize(
    ("previous", "now", "flag"),
    [
        (None, D("500"), None),  # no previous run: nothing to compare with
        (D("100"), D("124"), None),  # under 25 %
        (D("100"), D("160"), "rose"),
        (D("1000"), D("700"), "fell"),
        (D("10"), D("30"), None),  # +200 % but only 20.00: under the minimum
        (D("0"), D("80"), "new"),
        (D("0"), D("20"), None),
        (D("90"), D("0"), "stopped"),
        (D("-40"), D("20"), "rose"),  # from a negative period: % of its size
    ],
)
def test_variance_is_flagged_by_percentage_and_minimum(
    previous: Decimal | None, now: Decimal, flag: str | None
) -> None:
    v = variance(1, "Mara Ellison", "GBP", previous, now, VarianceThreshold(D(25), D(50)))
    assert v.flag == flag


def test_flags_are_worded_for_people() -> None:
    up = variance(1, "Mara Ellison", "GBP", D("150"), D("222"))
    assert up.message("2026-01") == (
        "Mara Ellison: royalties up +48.0 % (150.00 GBP in 2026-01 → 222.00 GBP)"
    )
    gone = variance(2, "Sam Okafor", "EUR", D("90.5"), D("0"))
    assert gone.message("2026-01") == "Sam Okafor: no royalties this period (90.50 EUR in 2026-01)"
    returned = SimpleNamespace(currency="GBP", earnings=D("-2.94"), advances=0, costs=0)
    cause = negative_cause(returned, ("Apple", "2026-07", D("-3.10")))
    flag = ContractFlag("NB-009", "newly_negative", "GBP", D("-2.94"), cause)
    assert flag.message() == ("NB-009: newly negative (\u22122.94 GBP), Apple return on 2026-07")
    advance = SimpleNamespace(
        currency="EUR", earnings=D("177.25"), advances=D("2500"), costs=0, recouped=D("177.25")
    )
    assert negative_cause(advance) == (
        "advance of 2,500.00 EUR not yet recouped (177.25 EUR recouped)"
    )


def _preview(**kw: object) -> Preview:
    base: dict[str, object] = {
        "run_id": 7,
        "period": "2026-02",
        "version": 1,
        "status": "calculated",
        "currency": "GBP",
        "previous_period": "2026-01",
        "totals": {
            "GBP": {
                "revenue": "4564.17",
                "payees": "938.51",
                "retained": "3623.27",
                "suspense": "2.39",
                "royalties": "371.12",
                "payable": "90.14",
            },
            "EUR": {"royalties": "504.42", "payable": "121.30", "tax_withheld": "28.62"},
        },
        "variance": [variance(1, "Mara Ellison", "GBP", D("150"), D("222"))],
        "flags": [],
    }
    return Preview(**(base | kw))  # type: ignore[arg-type]


def test_the_markdown_has_labelled_columns_and_no_raw_values() -> None:
    text = render_markdown(_preview())
    assert "| Currency | Revenue | Payees | Retained by the label |" in text
    assert "| Currency | Royalties | Reserves held |" in text
    assert "| Payee | Flag | Royalties 2026-01 | Royalties 2026-02 | Change | Change % |" in text
    assert "| GBP | 4,564.17 GBP | 938.51 GBP | 3,623.27 GBP |" in text
    assert "| 0.05 % |" in text  # the suspense share of revenue
    assert "| 504.42 EUR |" in text
    assert "**Payees** is what the payees earned, in the accounting currency (GBP)" in text
    assert "- Mara Ellison: royalties up +48.0 %" in text
    assert "| Mara Ellison | ⚑ rose | 150.00 GBP | 222.00 GBP | 72.00 GBP | +48.0 % |" in text
    for raw in ("{'", "none %", "None", "_withheld", "change_pct"):
        assert raw not in text, raw
    assert "Warnings" not in text  # none given: no section


def test_warnings_are_listed_when_the_preview_has_them() -> None:
    shown = _preview(
        warnings=[
            RunWarning("W-RATE-AMBIGUOUS", "two rates match NB-001's lines", {"contract": "NB-001"})
        ]
    )
    text = render_markdown(shown)
    assert "### Warnings (1)\n- **W-RATE-AMBIGUOUS**: two rates match NB-001's lines" in text
    assert shown.as_dict()["warnings"] == [
        {
            "code": "W-RATE-AMBIGUOUS",
            "message": "two rates match NB-001's lines",
            "subject": {"contract": "NB-001"},
        }
    ]
    first = render_markdown(_preview(previous_period=None))  # the first period: no variance
    assert "nothing to compare with" in first and "Change %" not in first


# --- one small scenario, end to end ----------------------------------------------------------
@pytest.mark.slow  # two royalty runs and the CLI
def test_a_return_is_flagged_and_the_approvers_comment_is_audited(
    db_url: str, factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli.main import app
    from pipelines import resources
    from pipelines.royalty import audit_ledger
    from pipelines.royalty.preview import preview
    from pipelines.royalty.run import run_period
    from pipelines.royalty.transitions import transition
    from pipelines.royalty.verification import verify_store
    from pipelines.scenario import load_scenario
    from pipelines.settings import get_settings
    from schemas.store.models import AuditEntry
    from tests.royalty_engine.test_worked_examples import SCENARIOS

    data = tmp_path / "var"
    org_id = int(load_scenario(factory, data, SCENARIOS / "returns.yaml", org="neg")["org_id"])
    run_period(factory, data, org_id=org_id, period="2026-01", actor="t")
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", db_url)
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(data))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    runner = CliRunner()
    cli = ["royalty", "approve", "--org", "neg", "--period", "2026-01", "--actor", "fin"]
    try:
        ok = runner.invoke(app, [*cli, "--comment", "matches the January report"])
        assert ok.exit_code == 0, ok.output
        transition(factory, data, org_id=org_id, period="2026-01", actor="fin", to="locked")
        feb = run_period(factory, data, org_id=org_id, period="2026-02", actor="t").run_id
        no = runner.invoke(
            app,
            [
                *("royalty", "reject", "--org", "neg", "--period", "2026-02", "--actor", "fin"),
                *("--run", str(feb), "--comment", "the return looks doubled"),
            ],
        )
        assert no.exit_code == 0 and "rejected" in no.output, no.output
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()

    with factory() as s:
        decisions = [
            (e.action, e.actor, e.after["period"], e.after["comment"])
            for e in s.scalars(sa.select(AuditEntry).where(AuditEntry.entity == "royalty_runs"))
            if e.action in ("approved", "rejected")
        ]
        assert verify_store(s, data, org_id) == []
    assert decisions == [
        ("approved", "fin", "2026-01", "matches the January report"),
        ("rejected", "fin", "2026-02", "the return looks doubled"),
    ]
    ledger = [(e["event"], e.get("comment")) for e in audit_ledger.read(data, org_id)]
    assert ("approved", "matches the January report") in ledger
    assert ledger[-1] == ("rejected", "the return looks doubled")
    assert audit_ledger.verify(data, org_id) == []

    shown = preview(factory, run_id=feb, data_dir=data)  # still calculated: reviewable again
    text = shown["markdown"]
    # the return (60.00 against 40.00 sold in January, at 50 %) makes the balance negative
    assert re.search(r"- NEG-1: newly negative \(−30\.00 GBP\), \w.* return on 2026-02\n", text)
    assert "- Nora Neg: royalties down −250.0 % (20.00 GBP in 2026-01 → −30.00 GBP)" in text
    assert shown["variance"][0]["flag"] == "fell"
    for raw in ("{'", "none %", "None"):
        assert raw not in text
