"""Statements that explain themselves (issue 18, item 2): store names as the source, status words,
the closing-balance formula printed as the sum of the figures printed, a cross-collateralised
pool that adds up line by line, the payee's statement currency and a correction's credit note.
"""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path

import openpyxl
import pypdf
import sqlalchemy as sa

from pipelines.statements import render, render_credit_note
from pipelines.statements.data import Statement, closing_sum, iter_statements
from pipelines.statements.export import statement_files
from schemas.money import converted, format_amount
from schemas.statement_figures import (
    FIGURE_LABELS,
    FIGURES,
    FORMAT_NAMES,
    SIGNED,
    STATUS_WORDS,
    balance_formula,
)
from schemas.store.models import Payee
from tests.snapshots import Snapshots
from tests.statements.conftest import LockedPeriod, copy_locked_period, portal_page

AMOUNT = re.compile(r"-?[\d,]+\.\d\d")


def _pdf_text(body: bytes) -> str:
    return " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages)


def _squash(text: str) -> str:
    """Text without whitespace: a PDF's text layer breaks lines where it wraps them."""
    return re.sub(r"\s+", "", text)


def _by_name(statements: list[Statement]) -> dict[str, Statement]:
    return {s.payee.name: s for s in statements}


def _formula_holds(st: Statement, text: str, figures: dict[str, Decimal], ccy: str) -> None:
    """The formula ``text`` prints the figures (label and amount, in TABLE order), and its
    closing balance is their signed sum, to the cent."""
    head, _, tail = text.partition(" = ")
    assert head == f"Closing balance {figures['closing']:,.2f} {ccy}".replace("-0.00", "0.00")
    printed = [Decimal(a.replace(",", "")) for a in AMOUNT.findall(tail)]
    keys = ["opening", *SIGNED]
    assert printed == [figures[k] for k in keys]
    for key in keys:
        assert FIGURE_LABELS[key] in tail
    signs = re.findall(r"(?:^| )([+-]) [A-Z]", tail)
    total = printed[0] + sum(
        (p if s == "+" else -p for s, p in zip(signs, printed[1:], strict=True)), Decimal(0)
    )
    assert total == figures["closing"] == closing_sum(figures)


def test_a_lines_source_is_its_store_else_its_formats_name() -> None:
    import polars as pl

    from schemas.statement_figures import source_expr, status_words

    lines = pl.DataFrame(
        {
            "service": [" SPOTIFY ", "youtube", "Boomy Store", "", None, None, None],
            "source": [
                "dsr",
                "youtube",
                "distributor_csv",
                "distributor_csv",
                "dsr",
                "new_fmt",
                None,
            ],
        }
    )
    assert lines.select(source_expr())["source"].to_list() == [
        "Spotify",
        "YouTube",
        "Boomy Store",
        "Distributor statement",
        "DDEX sales report (DSR)",
        "New Fmt",
        "Unknown source",
    ]
    assert status_words("some_new_code") == "Some new code" and status_words(None) == ""


def test_converted_figures_add_up_to_the_converted_closing_balance() -> None:
    """Paid 10.00 = tax 1.50 + payable 8.50: converted one by one at 1.188777936282 it would
    close at 0.01 EUR (11.89 - 1.78 - 10.10); the terms are allocated so it closes at 0.00."""
    from pipelines.statements.data import converted_figures

    rate = Decimal("1.188777936282")
    figures = dict.fromkeys(FIGURES, Decimal("0.00"))
    figures |= {"earnings": Decimal("10.00"), "tax": Decimal("1.50"), "payable": Decimal("8.50")}
    alone = {k: converted(v, rate) for k, v in figures.items()}
    assert closing_sum(alone) == Decimal("0.01")
    shown = converted_figures(figures, rate)
    assert closing_sum(shown) == shown["closing"] == 0
    for key in ("earnings", "tax", "payable"):
        assert abs(shown[key] - alone[key]) <= Decimal("0.01")


def test_statements_explain_themselves(locked: LockedPeriod) -> None:
    """Unrecouped (a pooled payee), paid with tax withheld and below the minimum: the store
    names, the status words and the closing balance's formula in every format."""
    statements = _by_name(list(iter_statements(locked.factory, locked.data, run_id=locked.run_id)))
    # sources are the stores that reported the revenue, never a parser id
    for st in statements.values():
        sources = set(st.lines["source"].to_list()) | {a.label for a in st.by_source}
        assert sources <= {"Spotify", "Apple", "Deezer", "Amazon Music", "Tidal"}, sources
        assert not sources & set(FORMAT_NAMES)
    cases = {
        "Mara Ellison": ("unrecouped", "Unrecouped: advance not yet earned back"),
        "Kofi Mensah": ("paid", STATUS_WORDS["paid"]),
        "Northern Quay": (
            "below_minimum",
            "Below the minimum payment: carried to next period",
        ),
    }
    kofi = statements["Kofi Mensah"].figures
    assert kofi["tax"] > 0 and kofi["payable"] > 0 and kofi["closing"] == 0
    for name, (code, words) in cases.items():
        st = statements[name]
        assert (st.status, st.status_text) == (code, words)
        _formula_holds(st, st.formula(), st.figures, st.currency)
        pdf = _pdf_text(render(st, "pdf"))
        assert _squash(st.formula()) in _squash(pdf)
        assert _squash(f"Status: {words}") in _squash(pdf)
        # the footer's rule names every term, tax and payable included
        assert _squash(balance_formula()) in _squash(pdf)
        assert "- tax withheld - payable" in balance_formula()
        # the figures table prints the same amounts as the formula
        for key in ("opening", *SIGNED, "closing"):
            assert _squash(f"{FIGURE_LABELS[key]}{st.figures[key]:,.2f}{st.currency}") in _squash(
                pdf
            ).replace("-0.00", "0.00")
        body = json.loads(render(st, "json"))
        assert (body["status"], body["status_text"]) == (code, words)
        assert body["closing_formula"] == st.formula()
        assert {c["status_text"] for c in body["contracts"]} <= set(STATUS_WORDS.values())
        cells = {
            c
            for ws in openpyxl.load_workbook(io.BytesIO(render(st, "xlsx"))).worksheets[:1]
            for row in ws.iter_rows(values_only=True)
            for c in row
            if c is not None
        }
        assert words in cells and st.formula() in cells
        assert not {c["status"] for c in st.contracts} & cells  # no raw codes
    # the portal's statement page: the status, the formula and the contracts' status words
    quay = statements["Northern Quay"]
    html = portal_page(quay)
    assert f"{cases['Northern Quay'][1]}</td>" in html and quay.formula() in html
    assert "below_minimum" not in html
    mara_html = portal_page(statements["Mara Ellison"])
    assert "No invoice for a statement with nothing to pay" in mara_html
    assert "nothing_payable" not in mara_html and "unrecouped<" not in mara_html
    # the pooled statement: each contract's row adds up, the rows add up to the totals
    mara = statements["Mara Ellison"]
    assert mara.pooled
    pooled = [c for c in mara.contracts if c["pool"]]
    assert len(pooled) >= 2
    for c in mara.contracts:
        assert closing_sum(c) + c["pool_transfer"] == c["closing"]
        assert c["pooled_with"] == sorted(
            o["reference"] for o in pooled if o["reference"] != c["reference"]
        )
    for key in ("opening", *SIGNED, "closing"):
        assert sum((c[key] for c in mara.contracts), Decimal(0)) == mara.figures[key]
    pdf = _pdf_text(render(mara, "pdf"))
    assert "Cross-collateralised pool" in pdf and "Pooled with" in pdf
    assert pooled[0]["pool"] in pdf and "Pool move" in pdf
    for c in mara.contracts:  # nothing in the pool tables is cut short ("MARA-EL...")
        assert c["reference"] in pdf and (c["pool"] or "Not pooled") in pdf
        assert format_amount(c["closing"]) in pdf and format_amount(c["earnings"]) in pdf


def test_a_correction_credits_the_earlier_invoice_in_the_payees_currency(
    snapshots: Snapshots, tmp_path: Path
) -> None:
    """A locked period corrected: Kofi's earlier self-billing invoice gets a credit note, the
    re-issued invoice names it; his statement currency (EUR, changed before the correction)
    shows the figures at the run's rate beside the GBP figures of record."""
    from pipelines.royalty.run import run_period

    period = copy_locked_period(snapshots, tmp_path / "period")
    try:
        (v1,) = [
            s
            for s in iter_statements(period.factory, period.data, run_id=period.run_id)
            if s.payee.name == "Kofi Mensah"
        ]
        assert v1.invoice is not None and v1.credit_note is None and v1.conversion is None
        with period.factory.begin() as s:
            s.execute(
                sa.update(Payee).where(Payee.name == "Kofi Mensah").values(statement_currency="EUR")
            )
            s.execute(  # a currency the run has no rate for
                sa.update(Payee).where(Payee.name == "Sam Okafor").values(statement_currency="JPY")
            )
        report = run_period(
            period.factory,
            period.data,
            org_id=period.org_id,
            period=period.period,
            actor="finance",
            correction="a late report",
        )
        v2s = _by_name(
            list(iter_statements(period.factory, period.data, run_id=int(report.run_id)))
        )
        v2, sam = v2s["Kofi Mensah"], v2s["Sam Okafor"]
        assert sam.conversion is None and sam.conversion_missing is not None
        assert (
            "The run recorded no GBP/JPY rate for 2026-01 to 2026-06: the figures are shown in "
            "GBP only."
        ) in sam.notes
        # the credit note: its own number, the earlier invoice credited in full
        cn = v2.credit_note
        assert cn is not None and v2.invoice is not None
        assert cn.original == v1.invoice.number and cn.number != v1.invoice.number
        assert cn.number.startswith("CN-") and v2.invoice.credit_note == cn.number
        assert (cn.net, cn.vat, cn.to_pay) == (-v1.invoice.net, -v1.invoice.vat, -v1.invoice.to_pay)
        assert v2.invoice.number != v1.invoice.number
        assert (cn.statement_id, cn.version) == (v1.statement_id, 1)
        credit = render_credit_note(v2)
        assert credit is not None
        text = _squash(_pdf_text(credit))
        assert _squash(cn.number) in text and _squash(v1.invoice.number) in text
        assert _squash(v2.invoice.number) in text and "PREVIEW" in text  # v2 not approved
        assert _squash("issuer of this credit note") in text
        files = {kind for _, kind, _, _ in statement_files(v2, ["json"])}
        assert files == {"statement", "invoice", "credit_note"}
        # the statement currency: figures at the run's rate (EUR/GBP for 2026-01, inverted)
        conv = v2.conversion
        assert conv is not None and conv.currency == "EUR" and conv.month == "2026-01"
        assert conv.rate == (Decimal(1) / Decimal("0.8412")).quantize(Decimal("1e-12"))
        for key in FIGURES:  # each within a cent of its own rounding, the closing exact
            assert abs(conv.figures[key] - converted(v2.figures[key], conv.rate)) <= Decimal("0.01")
        assert conv.figures["closing"] == converted(v2.figures["closing"], conv.rate) == 0
        assert conv.figures["payable"] == converted(v2.figures["payable"], conv.rate)
        _formula_holds(v2, v2.formula(conv.figures, "EUR"), conv.figures, "EUR")
        pdf = _squash(_pdf_text(render(v2, "pdf")))
        assert (
            _squash(f"Payable{conv.figures['payable']:,.2f}EUR{v2.figures['payable']:,.2f}GBP")
            in pdf
        )
        assert _squash(f"1 GBP = {conv.rate_text} EUR") in pdf and "2026-01" in pdf
        body = json.loads(render(v2, "json"))
        assert body["statement_currency"]["figures"]["payable"] == str(conv.figures["payable"])
        assert body["credit_note"]["credits_invoice"] == v1.invoice.number
        assert body["self_billing_invoice"]["credit_note"] == cn.number
    finally:
        period.factory.kw["bind"].dispose()
