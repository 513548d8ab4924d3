"""Statement data for a locked run: figures from the run, detail that adds up, breakdowns,
history, the self-billing decision; CSV and JSON that are exact and reproducible."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pipelines.statements import render
from pipelines.statements.data import (
    DETAIL_COLUMNS,
    StatementError,
    iter_statements,
    load_statement,
)
from pipelines.statements.tabular import defuse
from tests.statements.conftest import HOSTILE_TITLE, LockedPeriod


def test_every_statement_adds_up_to_the_run(locked: LockedPeriod) -> None:
    statements = list(iter_statements(locked.factory, locked.data, run_id=locked.run_id))
    assert len(statements) == len(locked.statement_ids())
    for st in statements:
        total = sum(st.lines["amount"].to_list(), Decimal(0))
        assert total == st.figures["earnings"]
        assert sum((a.amount for a in st.by_source), Decimal(0)) == total
        assert sum((a.amount for a in st.by_territory), Decimal(0)) == total
        assert st.history[-1].period == "2026-H1"
        assert st.history[-1].closing == st.figures["closing"]
        assert st.run_status == "final" and st.issued.tzinfo is not None


def test_self_billing_invoice_only_with_a_valid_agreement(locked: LockedPeriod) -> None:
    mara = locked.payee_id("Mara Ellison")
    lena = locked.payee_id("Lena Brandt")
    by_payee = {
        st.payee_id: st
        for st in iter_statements(
            locked.factory, locked.data, run_id=locked.run_id, payee_ids=[mara, lena]
        )
    }
    # Mara agreed to self-billing but is still unrecouped: nothing payable, no invoice.
    assert by_payee[mara].invoice is None
    assert by_payee[mara].invoice_refused is not None
    assert by_payee[mara].invoice_refused.startswith("nothing_payable")
    assert by_payee[lena].invoice is None and by_payee[lena].invoice_refused is None


def test_unknown_or_foreign_statement_is_missing(locked: LockedPeriod) -> None:
    sid = next(iter(locked.statement_ids().values()))
    with pytest.raises(StatementError) as err:
        load_statement(locked.factory, locked.data, org_id=locked.org_id + 999, statement_id=sid)
    assert err.value.code == "statement_missing"
    with pytest.raises(StatementError):
        load_statement(locked.factory, locked.data, org_id=locked.org_id, statement_id=10**9)


def test_csv_is_documented_exact_and_defused(locked: LockedPeriod) -> None:
    mara = locked.payee_id("Mara Ellison")
    st = load_statement(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        statement_id=locked.statement_ids()[mara],
    )
    body = render(st, "csv")
    assert body == render(st, "csv")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
    assert list(rows[0]) == list(DETAIL_COLUMNS)
    assert sum(Decimal(r["amount"]) for r in rows) == st.figures["earnings"]
    hostile = [r for r in rows if HOSTILE_TITLE in r["track_title"]]
    assert hostile and all(r["track_title"] == "'" + HOSTILE_TITLE for r in hostile)
    assert defuse("-1") == "'-1" and defuse("Plain") == "Plain"


def test_json_keeps_decimals_as_strings(locked: LockedPeriod) -> None:
    mara = locked.payee_id("Mara Ellison")
    st = load_statement(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        statement_id=locked.statement_ids()[mara],
    )
    doc = json.loads(render(st, "json"))
    assert doc["figures"]["earnings"] == str(st.figures["earnings"])
    assert doc["currency"] == st.currency == "GBP"
    assert sum(Decimal(x["amount"]) for x in doc["lines"]) == st.figures["earnings"]
    assert any(x["track_title"] == HOSTILE_TITLE for x in doc["lines"])


def test_export_never_replaces_a_folder_it_did_not_write(
    locked: LockedPeriod, tmp_path: Path
) -> None:
    from pipelines.statements.export import export_run

    out = tmp_path / "statements"
    out.mkdir()
    (out / "taxes-2025.txt").write_text("keep me")
    with pytest.raises(StatementError) as err:
        export_run(locked.factory, locked.data, run_id=locked.run_id, out_dir=out, formats=["csv"])
    assert err.value.code == "out_dir_not_empty"
    assert sorted(p.name for p in out.iterdir()) == ["taxes-2025.txt"]
    fresh = tmp_path / "fresh"
    first = export_run(
        locked.factory, locked.data, run_id=locked.run_id, out_dir=fresh, formats=["csv"]
    )
    again = export_run(
        locked.factory, locked.data, run_id=locked.run_id, out_dir=fresh, formats=["csv"]
    )
    assert not first.unchanged and again.unchanged and first.files == again.files


def test_a_self_billing_payee_gets_an_invoice_on_the_full_consideration(
    locked: LockedPeriod,
) -> None:
    kofi = locked.payee_id("Kofi Mensah")
    (st,) = iter_statements(locked.factory, locked.data, run_id=locked.run_id, payee_ids=[kofi])
    inv = st.invoice
    assert inv is not None and st.invoice_refused is None
    assert inv.number == f"SB-{st.org_slug}-2026-H1-v1-{kofi}-GBP"
    assert st.figures["tax"] > 0 and inv.withheld == st.figures["tax"]
    assert inv.net == st.figures["payable"] + st.figures["tax"] > 0
    assert inv.vat == (inv.net * Decimal("0.20")).quantize(Decimal("0.01"))
    assert inv.to_pay == st.figures["payable"] + inv.vat and inv.vat_gbp is None


def test_statements_of_a_run_do_not_change_when_the_store_does(locked: LockedPeriod) -> None:
    """Names, addresses, VAT details and release titles are frozen with the run: editing
    the payee or a release after the lock leaves its statements byte for byte the same."""
    import sqlalchemy as sa

    from schemas.store import db
    from schemas.store.models import Payee, Release

    quay = locked.payee_id("Northern Quay")

    def bodies() -> dict[str, bytes]:
        (st,) = iter_statements(locked.factory, locked.data, run_id=locked.run_id, payee_ids=[quay])
        return {f: render(st, f) for f in ("json", "csv", "pdf")}

    before = bodies()
    with db.transaction(locked.factory, actor="test") as s:
        payee = s.get(Payee, quay)
        assert payee is not None
        old = (payee.name, payee.address, payee.vat_rate)
        payee.name, payee.address, payee.vat_rate = "Renamed Later", "Elsewhere", Decimal("0.05")
        titles = {r.id: r.title for r in s.scalars(sa.select(Release))}
        for r in s.scalars(sa.select(Release)):
            r.title = "Retitled"
    try:
        assert bodies() == before
    finally:
        with db.transaction(locked.factory, actor="test") as s:
            payee = s.get(Payee, quay)
            assert payee is not None
            payee.name, payee.address, payee.vat_rate = old
            for r in s.scalars(sa.select(Release)):
                r.title = titles[r.id]


def test_a_cross_collateralised_pool_is_named_with_its_movements(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Scenario ``cross_collateral`` (figures computed in its header), February: XP-A's
    -730.00 cleared by XP-B; every format names the pool and shows its movements."""
    from pipelines.royalty.run import run_period
    from pipelines.royalty.transitions import transition
    from pipelines.scenario import load_scenario
    from tests.royalty_engine.test_worked_examples import SCENARIOS

    data = tmp_path / "var"
    org_id = int(
        load_scenario(factory, data, SCENARIOS / "cross_collateral.yaml", org="xena")["org_id"]
    )
    run_period(factory, data, org_id=org_id, period="2026-01", actor="t")
    transition(factory, data, org_id=org_id, period="2026-01", actor="t", to="approved")
    feb = run_period(factory, data, org_id=org_id, period="2026-02", actor="t")
    (st,) = iter_statements(factory, data, run_id=feb.run_id)
    f = st.figures
    assert (f["opening"], f["earnings"], f["recouped"], f["tax"], f["payable"]) == (
        Decimal("-370.00"),
        Decimal("450.00"),
        Decimal("370.00"),
        Decimal("8.00"),
        Decimal("72.00"),
    )
    assert f["earnings"] - f["recouped"] - f["tax"] == f["payable"]
    moves = {
        c["reference"]: (
            c["pool"],
            c["recouped_from_pool"],
            c["recouped_for_pool"],
            c["pool_transfer"],
        )
        for c in st.contracts
    }
    assert moves == {
        "XP-A": ("XENA", Decimal("280.00"), Decimal("0.00"), Decimal("730.00")),
        "XP-B": ("XENA", Decimal("0.00"), Decimal("280.00"), Decimal("-730.00")),
    }
    note = (
        "Cross-collateralised pool XENA: contracts XP-A, XP-B are settled as one account "
        "(a surplus on one recoups another). Recouped from the pool: XP-A 280.00 (by the "
        "earnings of XP-B 280.00). Moved within the pool when it was paid: XP-A +730.00, "
        "XP-B -730.00 (adds up to 0.00)."
    )
    assert st.notes == [note]
    body = json.loads(render(st, "json"))
    assert body["notes"] == [note]
    assert {c["reference"]: c["pool_transfer"] for c in body["contracts"]} == {
        "XP-A": "730.00",
        "XP-B": "-730.00",
    }
    import pypdf

    pdf = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(render(st, "pdf"))).pages)
    assert "Recouped from pool" in pdf and "XENA" in pdf and "+730.00" in pdf
    assert "Pooled with" in pdf and "Pool move" in pdf
    # the paid pool adds up line by line: each contract's terms, with what moved within the
    # pool, reach its closing balance, and the contracts add up to the statement
    from pipelines.statements.data import closing_sum

    for c in st.contracts:
        assert closing_sum(c) + c["pool_transfer"] == c["closing"]
    assert closing_sum(f) == f["closing"]
    assert {c["reference"]: c["pooled_with"] for c in st.contracts} == {
        "XP-A": ["XP-B"],
        "XP-B": ["XP-A"],
    }
    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(render(st, "xlsx"))).worksheets[0]
    cells = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert "Moved within the pool" in cells and "XENA" in cells and note in cells
    from tests.statements.conftest import portal_page

    html = portal_page(st)
    assert "Recouped from the pool" in html and "<td>XENA</td>" in html
    assert '<td class="num">-730.00</td>' in html and note in html
