"""The XLSX statement: a "Summary" sheet (who, which period, the figures and every breakdown)
and a "Detail" sheet with one row per line (``DETAIL_COLUMNS``, a filter, a frozen header and
a total that equals the earnings).

A worksheet holds at most ``SHEET_ROWS`` rows (Excel's limit; xlsxwriter silently drops any
beyond it), so a statement with more lines than fit spreads its detail over "Detail",
"Detail (2)", ... each with the header row, filter and frozen header; the grand total is on
the last of them and the Summary sheet says how many there are.

Amounts are number cells with a currency format; quantities are integers. Every text cell is
written as a string, never as a formula, URL or number (titles and names come from DSP
metadata), and text beginning with a formula character (``= + - @``, tab, CR) also carries
Excel's quote prefix, so editing the cell in Excel keeps it text.

Bytes are deterministic: the document's created date is the statement's ``issued`` time and
xlsxwriter's in-memory zip entries carry a fixed timestamp.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import xlsxwriter  # type: ignore[import-untyped]

from pipelines.statements.data import (
    DETAIL_COLUMNS,
    Amount,
    Statement,
    pool_notes,
)
from pipelines.statements.tabular import FORMULA_START
from schemas.statement_figures import FIGURE_LABELS, FIGURES, POOL_FIGURES, status_words

# Rows in one worksheet: Excel's limit (1,048,576). Each detail sheet keeps one row for its
# header and one for the total, so it holds at most ``SHEET_ROWS - 2`` lines.
SHEET_ROWS = 1_048_576
DETAIL_SHEET = "Detail"
AMOUNT_COLUMNS = {"amount"}
INTEGER_COLUMNS = {"quantity"}
WIDTHS = {
    "contract": 12,
    "isrc": 14,
    "track_title": 40,
    "upc": 15,
    "release_title": 30,
    "source": 16,
    "territory": 9,
    "usage_type": 11,
    "reporting_period": 11,
    "quantity": 11,
    "amount": 16,
    "currency": 9,
}


def money_format(currency: str) -> str:
    """``#,##0.00 "GBP";-#,##0.00 "GBP"``: two decimals, separators and the code."""
    code = currency.replace('"', "")
    return f'#,##0.00 "{code}";-#,##0.00 "{code}"'


def lines_per_sheet() -> int:
    """Lines on one detail sheet (read at call time, so a test can make ``SHEET_ROWS`` small)."""
    if SHEET_ROWS < 3:
        raise ValueError(
            f"SHEET_ROWS must leave room for a header, a line and a total: {SHEET_ROWS}"
        )
    return SHEET_ROWS - 2


def detail_sheet_names(lines: int) -> list[str]:
    """The detail sheets' names, "Detail", "Detail (2)", ...: as many as ``lines`` detail lines
    need (at least one, which holds the header and a zero total when there are no lines)."""
    count = max(1, -(-lines // lines_per_sheet()))
    return [DETAIL_SHEET, *(f"{DETAIL_SHEET} ({i})" for i in range(2, count + 1))]


def number(amount: Decimal) -> float:
    # XLSX stores every number as an IEEE double: the float is made here, at the xlsxwriter
    # boundary only. Amounts have two decimals and far fewer than 15 significant digits, so
    # they read back as exactly the same decimal.
    return float(amount)


class _Sheet:
    """A worksheet with the workbook's formats and a text writer that never makes formulas."""

    def __init__(self, book: Any, ws: Any, formats: dict[str, Any]) -> None:
        self.book = book
        self.ws = ws
        self.f = formats

    def text(self, row: int, col: int, value: object, fmt: str | None = None) -> None:
        if value is None:
            return
        text = str(value)
        if text.startswith(FORMULA_START):
            key = f"{fmt}+quote" if fmt else "quote"
            self.ws.write_string(row, col, text, self.f[key])
        elif fmt:
            self.ws.write_string(row, col, text, self.f[fmt])
        else:
            self.ws.write_string(row, col, text)

    def amount(self, row: int, col: int, value: Decimal, bold: bool = False) -> None:
        self.ws.write_number(row, col, number(value), self.f["money_bold" if bold else "money"])

    def integer(self, row: int, col: int, value: int, bold: bool = False) -> None:
        self.ws.write_number(row, col, value, self.f["int_bold" if bold else "int"])


def _formats(book: Any, currency: str, other: str | None = None) -> dict[str, Any]:
    money = money_format(currency)
    conv = money_format(other or currency)
    specs: dict[str, dict[str, Any]] = {
        "conv": {"num_format": conv},
        "conv_bold": {"num_format": conv, "bold": True},
        "title": {"bold": True, "font_size": 14},
        "bold": {"bold": True},
        "head": {"bold": True, "bg_color": "#F1F3F5", "bottom": 1},
        "muted": {"font_color": "#6C757D"},
        "money": {"num_format": money},
        "money_bold": {"num_format": money, "bold": True},
        "int": {"num_format": "#,##0"},
        "int_bold": {"num_format": "#,##0", "bold": True},
        "date": {"num_format": "yyyy-mm-dd", "align": "left"},
    }
    for name in ("title", "bold", "head", "muted"):
        specs[f"{name}+quote"] = {**specs[name], "quote_prefix": True}
    specs["quote"] = {"quote_prefix": True}
    return {name: book.add_format(spec) for name, spec in specs.items()}


def _block(
    sheet: _Sheet,
    row: int,
    title: str,
    head: Sequence[str],
    rows: Sequence[Amount],
    *,
    key_label: bool,
    total_label: str = "Total",
) -> int:
    """A breakdown (code, name, quantity, amount) with its total; the next free row."""
    sheet.text(row, 0, title, "bold")
    row += 1
    for col, name in enumerate(head):
        if name:
            sheet.text(row, col, name, "head")
    row += 1
    for r in rows:
        sheet.text(row, 0, r.key)
        if key_label:
            sheet.text(row, 1, r.label)
        sheet.integer(row, 2, r.quantity)
        sheet.amount(row, 3, r.amount)
        row += 1
    sheet.text(row, 0, total_label, "bold")
    sheet.integer(row, 2, sum(r.quantity for r in rows), bold=True)
    sheet.amount(row, 3, sum((r.amount for r in rows), Decimal(0)), bold=True)
    return row + 2


def _summary(sheet: _Sheet, s: Statement) -> None:
    ws = sheet.ws
    ws.set_column(0, 0, 26)
    ws.set_column(1, 1, 44)
    ws.set_column(2, 2, 14)
    ws.set_column(3, 3 + len(FIGURES) + (len(POOL_FIGURES) if s.pooled else 0), 17)
    sheet.text(0, 0, "Royalty statement", "title")
    facts: list[tuple[str, object]] = [
        ("Statement", s.statement_id),
        ("Label", s.label.name),
        ("Label address", s.label.address),
        ("Label VAT number", s.label.vat_number),
        ("Payee", s.payee.name),
        ("Payee address", s.payee.address),
        ("Payee VAT number", s.payee.vat_number),
        ("Period", s.period),
        ("Period start", s.period_start),
        ("Period end", s.period_end),
        ("Run version", s.version),
        ("Run status", s.run_status),
        ("Status", s.status_text),
        ("Currency", s.currency),
        ("Issued", s.issued.astimezone(dt.UTC).date()),
    ]
    if s.conversion is not None:
        cv = s.conversion
        facts += [
            ("Statement currency", cv.currency),
            ("Exchange rate", f"1 {s.currency} = {cv.rate_text} {cv.currency}"),
            ("Rate for", f"{cv.month} (the run's rate; {cv.source})"),
        ]
    row = 2
    for name, value in facts:
        sheet.text(row, 0, name, "muted")
        if isinstance(value, dt.date):
            ws.write_datetime(row, 1, dt.datetime.combine(value, dt.time()), sheet.f["date"])
        elif isinstance(value, int):
            ws.write_number(row, 1, value, sheet.f["int"])
        else:
            sheet.text(row, 1, value)
        row += 1
    if s.invoice is not None:
        sheet.text(row, 0, "Self-billing invoice", "muted")
        sheet.text(row, 1, f"{s.invoice.number} ({s.invoice_stem}.pdf)")
        row += 1
    if s.credit_note is not None:
        sheet.text(row, 0, "Credit note", "muted")
        sheet.text(
            row,
            1,
            f"{s.credit_note.number} credits invoice {s.credit_note.original} "
            f"({s.credit_note_stem}.pdf)",
        )
        row += 1
    sheets = detail_sheet_names(s.lines.height)
    sheet.text(row, 0, "Line-level detail", "muted")
    if len(sheets) == 1:
        sheet.text(row, 1, "sheet Detail (one row per line; its total equals Royalties earned)")
    else:
        sheet.text(
            row,
            1,
            f"{len(sheets)} sheets, {sheets[0]} to {sheets[-1]} (one row per line; too many "
            f"lines for one sheet; the total, on {sheets[-1]}, equals Royalties earned)",
        )
    row += 1
    sheet.text(row, 0, "Detail sheets", "muted")
    ws.write_number(row, 1, len(sheets), sheet.f["int"])
    row += 2

    sheet.text(row, 0, "Figures", "bold")
    sheet.text(row + 1, 0, "Figure", "head")
    sheet.text(row + 1, 1, "Key", "head")
    sheet.text(row + 1, 3, f"Amount ({s.currency})", "head")
    conv = s.conversion
    if conv is not None:
        sheet.text(row + 1, 4, f"Amount ({conv.currency})", "head")
    row += 2
    for f in FIGURES:
        bold = f in ("payable", "closing")
        sheet.text(row, 0, FIGURE_LABELS[f], "bold" if bold else None)
        sheet.text(row, 1, f)
        sheet.amount(row, 3, s.figures[f], bold=bold)
        if conv is not None:
            sheet.ws.write_number(
                row, 4, number(conv.figures[f]), sheet.f["conv_bold" if bold else "conv"]
            )
        row += 1
    sheet.text(row, 0, "Closing balance formula", "muted")
    sheet.text(row, 1, s.formula())
    row += 1
    if conv is not None:
        sheet.text(row, 1, s.formula(conv.figures, conv.currency))
        row += 1
    for note in s.notes:
        if note not in pool_notes(s.contracts):
            sheet.text(row, 1, note)
            row += 1
    row += 1

    row = _block(
        sheet,
        row,
        "Earnings by source",
        ("Source", "", "Quantity", "Earnings"),
        s.by_source,
        key_label=False,
    )
    row = _block(
        sheet,
        row,
        "Earnings by territory",
        ("Territory", "Name", "Quantity", "Earnings"),
        s.by_territory,
        key_label=True,
    )
    row = _block(
        sheet,
        row,
        "Earnings by usage type",
        ("Usage type", "", "Quantity", "Earnings"),
        s.by_usage,
        key_label=False,
    )
    row = _block(
        sheet,
        row,
        f"Top {len(s.top_tracks)} tracks",
        ("ISRC", "Track", "Quantity", "Earnings"),
        s.top_tracks,
        key_label=True,
        # Only the top tracks are listed: their total is not the earnings.
        total_label=f"Total of the top {len(s.top_tracks)}",
    )

    sheet.text(row, 0, "Contracts", "bold")
    row += 1
    # a cross-collateralised pool: its name beside each contract, and its movements
    pool = POOL_FIGURES if s.pooled else ()
    head = [
        "Contract",
        "Status",
        "Cross-collateralised pool" if s.pooled else "",
        *(FIGURE_LABELS[f] for f in (*FIGURES, *pool)),
        *(["Pooled with"] if s.pooled else []),
    ]
    for col, name in enumerate(head):
        if name:
            sheet.text(row, col, name, "head")
    row += 1
    for c in s.contracts:
        sheet.text(row, 0, c["reference"])
        sheet.text(row, 1, status_words(c["status"]))
        if s.pooled:
            sheet.text(row, 2, c.get("pool") or "")
        for i, f in enumerate((*FIGURES, *pool)):
            sheet.amount(row, 3 + i, c[f])
        if s.pooled:
            sheet.text(row, 3 + len(FIGURES) + len(pool), ", ".join(c.get("pooled_with") or ()))
        row += 1
    for note in pool_notes(s.contracts):
        sheet.text(row, 0, note)
        row += 1


def _detail_sheet(sheet: _Sheet, s: Statement, first: int, count: int) -> Decimal:
    """Lines ``first`` to ``first + count`` under a header row; what they add up to."""
    ws = sheet.ws
    columns = list(DETAIL_COLUMNS)
    for col, name in enumerate(columns):
        ws.set_column(col, col, WIDTHS.get(name, 14))
        sheet.text(0, col, name, "head")
    kinds = [
        "amount" if c in AMOUNT_COLUMNS else "int" if c in INTEGER_COLUMNS else "text"
        for c in columns
    ]
    row = 0
    total = Decimal(0)
    amount_col = columns.index("amount")
    for row, values in enumerate(s.lines.slice(first, count).iter_rows(), start=1):
        for col, (kind, value) in enumerate(zip(kinds, values, strict=True)):
            if value is None:
                continue
            if kind == "amount":
                sheet.amount(row, col, value)
            elif kind == "int":
                sheet.integer(row, col, int(value))
            else:
                sheet.text(row, col, value)
        total += values[amount_col] or Decimal(0)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(row, 1), len(columns) - 1)
    return total


def _detail(book: Any, formats: dict[str, Any], s: Statement) -> None:
    """The detail sheets; the grand total, after the last line of the last sheet."""
    per_sheet = lines_per_sheet()
    names = detail_sheet_names(s.lines.height)
    amount_col = list(DETAIL_COLUMNS).index("amount")
    total = Decimal(0)
    sheet: _Sheet | None = None
    for i, name in enumerate(names):
        sheet = _Sheet(book, book.add_worksheet(name), formats)
        total += _detail_sheet(sheet, s, i * per_sheet, per_sheet)
    assert sheet is not None  # detail_sheet_names gives at least one
    # The total is computed here, in decimals, not by a formula: it equals the earnings.
    row = s.lines.height - (len(names) - 1) * per_sheet + 1
    sheet.text(row, 0, "Total", "bold")
    sheet.amount(row, amount_col, total, bold=True)
    sheet.text(row, amount_col + 1, s.currency, "bold")


def render_xlsx(statement: Statement) -> bytes:
    s = statement
    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    book.set_properties(
        {
            "title": f"Royalty statement {s.statement_id} - {s.period}",
            "subject": s.file_stem,
            "author": s.label.name,
            "company": s.label.name,
            "created": s.issued.astimezone(dt.UTC).replace(tzinfo=None),
        }
    )
    formats = _formats(book, s.currency, s.conversion.currency if s.conversion else None)
    _summary(_Sheet(book, book.add_worksheet("Summary"), formats), s)
    _detail(book, formats, s)
    book.close()
    return out.getvalue()
