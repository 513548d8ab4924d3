"""The XLSX statement read back with openpyxl: numbers are numbers with the currency format,
the detail adds up to the earnings, and text from DSP metadata never becomes a formula."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from decimal import Decimal
from typing import Any

import openpyxl
import polars as pl
import pytest

from pipelines.statements import render, xlsx
from pipelines.statements.data import (
    DETAIL_COLUMNS,
    Statement,
    iter_statements,
    load_statement,
)
from pipelines.statements.xlsx import money_format, render_xlsx
from schemas.statement_figures import FIGURE_LABELS, FIGURES
from tests.statements.conftest import HOSTILE_TITLE, LockedPeriod

FORMULA_TITLES = ["-1 Minus", "+44 Plus", "@mention", "=SUM(A1:A9)", "\tTabbed", "\rReturn"]


def _statement(locked: LockedPeriod, name: str = "Mara Ellison") -> Statement:
    return load_statement(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        statement_id=locked.statement_ids()[locked.payee_id(name)],
    )


def _book(body: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(body))


def test_xlsx_is_byte_for_byte_reproducible(locked: LockedPeriod) -> None:
    bodies = {}
    for st in iter_statements(locked.factory, locked.data, run_id=locked.run_id):
        body = render(st, "xlsx")
        assert body == render_xlsx(st)
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        bodies[st.statement_id] = body
    assert len(set(bodies.values())) == len(bodies)


def test_summary_sheet_has_the_figures_as_formatted_numbers(locked: LockedPeriod) -> None:
    st = _statement(locked)
    book = _book(render_xlsx(st))
    assert book.sheetnames == ["Summary", "Detail"]
    assert book.properties.created.replace(microsecond=0) == st.issued.replace(
        tzinfo=None, microsecond=0
    )
    ws = book["Summary"]
    facts = {r[0].value: r[1].value for r in ws.iter_rows(min_row=1, max_col=2)}
    assert facts["Payee"] == "Mara Ellison"
    assert facts["Payee VAT number"] == st.payee.vat_number
    assert facts["Label"] == st.label.name
    assert facts["Period"] == "2026-H1" and facts["Currency"] == "GBP"
    assert facts["Statement"] == st.statement_id
    figures = {
        row[1].value: row[3]
        for row in ws.iter_rows(min_col=1, max_col=4)
        if row[0].value in FIGURE_LABELS.values() and row[1].value in FIGURES
    }
    assert list(figures) == list(FIGURES)
    for key, cell in figures.items():
        assert cell.data_type == "n"
        assert cell.number_format == money_format("GBP") == '#,##0.00 "GBP";-#,##0.00 "GBP"'
        assert Decimal(str(cell.value)) == st.figures[key]
    # Breakdowns: every source with its total equal to the earnings.
    labels = [r[0].value for r in ws.iter_rows(max_col=1)]
    start = labels.index("Earnings by source") + 2
    rows = list(ws.iter_rows(min_row=start + 1, max_row=start + len(st.by_source) + 1))
    assert [r[0].value for r in rows[:-1]] == [a.key for a in st.by_source]
    assert rows[-1][0].value == "Total"
    assert Decimal(str(rows[-1][3].value)) == st.figures["earnings"]
    assert isinstance(rows[0][2].value, int)
    for contract in st.contracts:
        assert contract["reference"] in labels


def test_detail_sheet_lines_add_up_to_the_earnings(locked: LockedPeriod) -> None:
    st = _statement(locked)
    ws = _book(render_xlsx(st))["Detail"]
    header = [c.value for c in next(ws.iter_rows(max_row=1))]
    assert header == list(DETAIL_COLUMNS)
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:L{st.lines.height + 1}"
    amount_col = header.index("amount")
    qty_col = header.index("quantity")
    rows = list(ws.iter_rows(min_row=2, max_row=st.lines.height + 1))
    assert len(rows) == st.lines.height
    total = Decimal(0)
    for row, line in zip(rows, st.lines.iter_rows(named=True), strict=True):
        amount = row[amount_col]
        assert amount.data_type == "n" and amount.number_format == money_format("GBP")
        assert Decimal(str(amount.value)) == line["amount"]  # exact round trip
        assert row[qty_col].value == line["quantity"] and isinstance(row[qty_col].value, int)
        assert row[header.index("isrc")].value == line["isrc"]
        total += Decimal(str(amount.value))
    assert total == st.figures["earnings"]
    last = next(ws.iter_rows(min_row=ws.max_row, max_row=ws.max_row))
    assert last[0].value == "Total"
    assert last[amount_col].data_type == "n"  # a number, not a formula
    assert Decimal(str(last[amount_col].value)) == st.figures["earnings"]


def test_text_that_looks_like_a_formula_stays_text(locked: LockedPeriod) -> None:
    st = _statement(locked)
    titles = st.lines["track_title"].to_list()
    assert HOSTILE_TITLE in titles
    n = st.lines.height
    swapped = [
        FORMULA_TITLES[i % len(FORMULA_TITLES)] if t != HOSTILE_TITLE else t
        for i, t in enumerate(titles)
    ]
    hostile = dataclasses.replace(
        st, lines=st.lines.with_columns(pl.Series("track_title", swapped, dtype=pl.String))
    )
    body = render_xlsx(hostile)
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in z.read(name), name  # no formula anywhere
    ws = _book(body)["Detail"]
    col = list(DETAIL_COLUMNS).index("track_title")
    cells = [row[col] for row in ws.iter_rows(min_row=2, max_row=n + 1)]
    # XML cannot hold a bare CR: the file stores it as Excel's escape _x000D_, which Excel
    # reads back as CR (openpyxl leaves the escape as it is).
    values = [c.value.replace("_x000D_", "\r") for c in cells]
    assert values == swapped
    for cell, value in zip(cells, values, strict=True):
        assert cell.data_type == "s"
        assert cell.quotePrefix == value.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert {v for c, v in zip(cells, values, strict=True) if c.quotePrefix} >= {
        HOSTILE_TITLE,
        *FORMULA_TITLES,
    }
    # The top tracks on the summary carry the same literal title.
    summary = _book(body)["Summary"]
    found = [c for row in summary.iter_rows() for c in row if c.value == HOSTILE_TITLE]
    assert found and all(c.data_type == "s" and c.quotePrefix for c in found)


def test_unicode_names_are_kept(locked: LockedPeriod) -> None:
    st = _statement(locked, "Inês Duarte")
    ws = _book(render_xlsx(st))["Summary"]
    assert any(c.value == "Inês Duarte" for row in ws.iter_rows() for c in row)


def test_a_statement_without_lines_has_a_zero_total(locked: LockedPeriod) -> None:
    st = _statement(locked, "Kofi Mensah")
    empty = dataclasses.replace(st, lines=st.lines.clear(), by_source=[], top_tracks=[])
    ws = _book(render_xlsx(empty))["Detail"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert rows[0] == list(DETAIL_COLUMNS)
    assert rows[-1][0] == "Total" and rows[-1][list(DETAIL_COLUMNS).index("amount")] == 0


def test_detail_too_long_for_one_sheet_spreads_over_several(
    locked: LockedPeriod, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Excel's limit is 1,048,576 rows a sheet; a 5-row limit shows the split on a small run.
    monkeypatch.setattr(xlsx, "SHEET_ROWS", 5)
    st = _statement(locked)
    per_sheet = 5 - 2  # header and total rows
    expected = -(-st.lines.height // per_sheet)
    assert expected >= 3, "the fixture needs enough lines to fill several sheets"
    book = _book(render_xlsx(st))
    names = ["Detail", *(f"Detail ({i})" for i in range(2, expected + 1))]
    assert book.sheetnames == ["Summary", *names]
    header = list(DETAIL_COLUMNS)
    amount_col = header.index("amount")
    seen: list[tuple[Any, ...]] = []
    total = Decimal(0)
    for name in names:
        ws = book[name]
        rows = [[c.value for c in row] for row in ws.iter_rows()]
        assert ws.max_row <= 5
        assert rows[0] == header
        assert ws.freeze_panes == "A2"
        lines = rows[1:-1] if name == names[-1] else rows[1:]
        assert ws.auto_filter.ref == f"A1:L{len(lines) + 1}"
        assert all(r[0] != "Total" for r in lines)
        seen.extend(tuple(r) for r in lines)
        total += sum((Decimal(str(r[amount_col])) for r in lines), Decimal(0))
    # Every line once, in order; together they add up to the earnings.
    want = [
        tuple(
            None if v is None else float(v) if isinstance(v, Decimal) else v for v in line.values()
        )
        for line in st.lines.iter_rows(named=True)
    ]
    assert seen == want
    assert total == st.figures["earnings"]
    # The grand total is the last row of the last sheet, and only there.
    last = [c.value for c in next(book[names[-1]].iter_rows(min_row=book[names[-1]].max_row))]
    assert last[0] == "Total"
    assert Decimal(str(last[amount_col])) == st.figures["earnings"]
    # The summary says how many detail sheets there are.
    facts = {r[0].value: r[1].value for r in book["Summary"].iter_rows(max_col=2)}
    assert facts["Detail sheets"] == expected
    assert facts["Line-level detail"].startswith(f"{expected} sheets, Detail to {names[-1]}")


def test_a_statement_that_fits_says_one_detail_sheet(locked: LockedPeriod) -> None:
    st = _statement(locked)
    assert xlsx.SHEET_ROWS == 1_048_576  # Excel's limit
    facts = {r[0].value: r[1].value for r in _book(render_xlsx(st))["Summary"].iter_rows(max_col=2)}
    assert facts["Detail sheets"] == 1
    assert facts["Line-level detail"].startswith("sheet Detail ")


def test_top_tracks_total_says_it_is_only_the_top(locked: LockedPeriod) -> None:
    st = _statement(locked)
    ws = _book(render_xlsx(st))["Summary"]
    labels = [r[0].value for r in ws.iter_rows(max_col=1)]
    start = labels.index(f"Top {len(st.top_tracks)} tracks")
    total_row = start + 2 + len(st.top_tracks)
    assert labels[total_row] == f"Total of the top {len(st.top_tracks)}"
    cell = ws.cell(row=total_row + 1, column=4)
    assert Decimal(str(cell.value)) == sum((t.amount for t in st.top_tracks), Decimal(0))
    # Only "Total" rows that really are totals of everything remain labelled "Total".
    assert "Total" not in labels[start : total_row + 1]
