"""Line-level CSV and the JSON statement: plain, documented, byte-for-byte reproducible.

CSV: UTF-8 without BOM, ``\\n`` line ends, a header row of ``DETAIL_COLUMNS``, amounts as
plain decimals (``-12.30``). Spreadsheet programs run a cell beginning with ``=``, ``+``,
``-``, ``@``, tab or CR as a formula, so any *text* field (titles and names come from DSP
metadata) beginning with one of them is prefixed with ``'`` (OWASP's CSV-injection rule);
numbers are left as numbers.

JSON: one object; every amount a decimal *string* with its currency beside it, keys sorted.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from pipelines.statements.data import DETAIL_COLUMNS, Amount, Statement
from schemas.statement_figures import FIGURES, status_words

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMERIC = {"quantity", "amount"}


def defuse(text: str) -> str:
    """A text cell a spreadsheet will not evaluate."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in NUMERIC:
        return str(value)
    return defuse(str(value))


def render_csv(statement: Statement) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(DETAIL_COLUMNS)
    writer.writerow(columns)
    for row in statement.lines.iter_rows():
        writer.writerow([_cell(c, v) for c, v in zip(columns, row, strict=True)])
    return out.getvalue().encode("utf-8")


def _amounts(rows: list[Amount]) -> list[dict[str, Any]]:
    return [
        {"key": r.key, "label": r.label, "amount": str(r.amount), "quantity": r.quantity}
        for r in rows
    ]


def statement_dict(statement: Statement, *, with_lines: bool = True) -> dict[str, Any]:
    """The statement as JSON-ready data (also the API's statement body)."""
    s = statement
    body: dict[str, Any] = {
        "statement_id": s.statement_id,
        "label": {
            "name": s.label.name,
            "address": s.label.address,
            "vat_number": s.label.vat_number,
        },
        "payee": {
            "id": s.payee_id,
            "name": s.payee.name,
            "address": s.payee.address,
            "vat_number": s.payee.vat_number,
        },
        "run": {"id": s.run_id, "version": s.version, "status": s.run_status},
        "period": s.period,
        "period_start": s.period_start.isoformat(),
        "period_end": s.period_end.isoformat(),
        "issued": s.issued.isoformat(),
        "currency": s.currency,
        "figures": {f: str(s.figures[f]) for f in FIGURES},
        "status": s.status,
        "status_text": s.status_text,
        "closing_formula": s.formula(),
        "statement_currency": None
        if s.conversion is None
        else {
            "currency": s.conversion.currency,
            "rate": str(s.conversion.rate),
            "rate_month": s.conversion.month,
            "rate_source": s.conversion.source,
            "figures": {f: str(s.conversion.figures[f]) for f in FIGURES},
            "closing_formula": s.formula(s.conversion.figures, s.conversion.currency),
        },
        "statement_currency_missing": s.conversion_missing,
        "contracts": [
            {
                "status_text": status_words(c["status"]),
                **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in c.items()},
            }
            for c in s.contracts
        ],
        "notes": list(s.notes),
        "earnings_by_source": _amounts(s.by_source),
        "earnings_by_territory": _amounts(s.by_territory),
        "earnings_by_usage_type": _amounts(s.by_usage),
        "top_tracks": _amounts(s.top_tracks),
        "history": [
            {
                "period": h.period,
                "earnings": str(h.earnings),
                "payable": str(h.payable),
                "closing": str(h.closing),
            }
            for h in s.history
        ],
        "self_billing_invoice": None
        if s.invoice is None
        else {
            "number": s.invoice.number,
            "date": s.invoice.date.isoformat(),
            "net": str(s.invoice.net),
            "vat_rate": str(s.invoice.vat_rate),
            "vat": str(s.invoice.vat),
            "gross": str(s.invoice.gross),
            "withheld": str(s.invoice.withheld),
            "to_pay": str(s.invoice.to_pay),
            "vat_gbp": None if s.invoice.vat_gbp is None else str(s.invoice.vat_gbp),
            "gbp_rate": None if s.invoice.gbp_rate is None else str(s.invoice.gbp_rate),
            "wording": s.invoice.wording,
            "credit_note": s.invoice.credit_note,
        },
        "credit_note": None
        if s.credit_note is None
        else {
            "number": s.credit_note.number,
            "date": s.credit_note.date.isoformat(),
            "credits_invoice": s.credit_note.original,
            "invoice_date": s.credit_note.original_date.isoformat(),
            "credits_statement_id": s.credit_note.statement_id,
            "credits_version": s.credit_note.version,
            **{
                k: str(getattr(s.credit_note, k))
                for k in ("net", "vat_rate", "vat", "gross", "withheld", "to_pay")
            },
            "vat_gbp": None if s.credit_note.vat_gbp is None else str(s.credit_note.vat_gbp),
            "reason": s.credit_note.reason,
        },
        "self_billing_refused": s.invoice_refused,
        "self_billing_refused_text": s.invoice_refused_text,
    }
    if with_lines:
        body["lines"] = [
            {c: (str(v) if isinstance(v, Decimal) else v) for c, v in row.items()}
            for row in s.lines.iter_rows(named=True)
        ]
    return body


def render_json(statement: Statement) -> bytes:
    return (
        json.dumps(statement_dict(statement), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    ).encode()
