"""Payee statements: the data (``data``), its renderings (PDF, XLSX, CSV, JSON and the
self-billing invoice), exports to a folder and publishing to outbound drops."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.statements.data import Statement

FORMATS = ("pdf", "xlsx", "csv", "json")
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}


def renderer(fmt: str) -> Callable[[Statement], bytes]:
    """The function that renders ``fmt`` (one of ``FORMATS``)."""
    if fmt == "csv":
        from pipelines.statements.tabular import render_csv

        return render_csv
    if fmt == "json":
        from pipelines.statements.tabular import render_json

        return render_json
    if fmt == "pdf":
        from pipelines.statements.pdf import render_pdf

        return render_pdf
    if fmt == "xlsx":
        from pipelines.statements.xlsx import render_xlsx

        return render_xlsx
    raise ValueError(f"unknown statement format {fmt!r}; one of {', '.join(FORMATS)}")


def render(statement: Statement, fmt: str) -> bytes:
    return renderer(fmt)(statement)


def render_invoice(statement: Statement) -> bytes | None:
    """The self-billing invoice PDF, or None when the payee gets none."""
    if statement.invoice is None:
        return None
    from pipelines.statements.pdf import render_invoice_pdf

    return render_invoice_pdf(statement)


def render_credit_note(statement: Statement) -> bytes | None:
    """The credit note PDF cancelling the earlier version's invoice, or None."""
    if statement.credit_note is None:
        return None
    from pipelines.statements.pdf import render_credit_note_pdf

    return render_credit_note_pdf(statement)
