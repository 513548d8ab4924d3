"""The PDF statement and self-billing invoice of a locked run: short, reproducible to the
byte, every figure formatted, DSP metadata printed literally, any script printable."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from decimal import ROUND_HALF_UP, Decimal

import openpyxl
import pypdf
import pypdfium2
import pytest

from pipelines.statements import render, render_invoice
from pipelines.statements.data import (
    SELF_BILLING_WORDING,
    Amount,
    Invoice,
    Party,
    Statement,
    iter_statements,
    load_statement,
)
from pipelines.statements.pdf import money, render_invoice_pdf, render_pdf
from tests.statements.conftest import HOSTILE_TITLE, LockedPeriod


def _text(body: bytes) -> tuple[str, int]:
    """All text of a PDF with runs of whitespace as one space, and its page count."""
    reader = pypdf.PdfReader(io.BytesIO(body))
    text = " ".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text), len(reader.pages)


def _statement(locked: LockedPeriod, name: str) -> Statement:
    return load_statement(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        statement_id=locked.statement_ids()[locked.payee_id(name)],
    )


def _with_invoice(st: Statement, net: str = "1234.50") -> Statement:
    amount = Decimal(net)
    rate = Decimal("0.20")
    vat = (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
    invoice = Invoice(
        f"SB-demo-{st.period}-v{st.version}-{st.payee_id}-{st.currency}",
        st.issued.date(),
        amount,
        rate,
        vat,
        amount + vat,
        to_pay=amount + vat,
    )
    return dataclasses.replace(st, invoice=invoice, invoice_refused=None)


def test_money_has_separators_two_decimals_and_the_currency() -> None:
    assert money(Decimal("-1234.5"), "GBP") == "-1,234.50 GBP"
    assert money(Decimal("1234567.891")) == "1,234,567.89"
    assert money(Decimal("-0.001"), "EUR") == "0.00 EUR"


def test_every_statement_pdf_is_short_and_byte_for_byte_reproducible(
    locked: LockedPeriod,
) -> None:
    bodies = {}
    for st in iter_statements(locked.factory, locked.data, run_id=locked.run_id):
        body = render(st, "pdf")
        assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")
        assert body == render_pdf(st)
        text, pages = _text(body)
        assert 1 <= pages <= 4, (st.payee.name, pages)
        assert f"Page {pages} of {pages}" in text
        assert st.payee.name in text and st.period in text
        bodies[st.statement_id] = body
    assert len(set(bodies.values())) == len(bodies)  # different statements, different bytes


def test_statement_pdf_shows_the_figures_and_prints_metadata_literally(
    locked: LockedPeriod,
) -> None:
    st = _statement(locked, "Mara Ellison")
    text, _ = _text(render_pdf(st))
    for needle in (
        "Royalty statement",
        "Mara Ellison",
        st.label.name,
        "2026-H1 (2026-01-01 to 2026-06-30)",
        f"version {st.version}, {st.run_status}",
        f"Issued {st.issued.date().isoformat()}",
        "Opening balance",
        "Reserves outstanding",
        f"Payable {money(st.figures['payable'], 'GBP')}",
        f"Closing balance {money(st.figures['closing'], 'GBP')}",
        f"Royalties earned {money(st.figures['earnings'], 'GBP')}",
        f"line-level detail: see the XLSX/CSV file {st.file_stem}.xlsx",
        "Closing balance = opening balance + royalties earned",
        "Earnings by source",
        "Earnings by territory",
        "Top 10 tracks",
    ):
        assert needle.lower() in text.lower(), needle
    # Mara is unrecouped: the closing balance is negative and shown with a minus sign.
    assert st.figures["closing"] < 0
    assert f"-{abs(st.figures['closing']):,.2f} GBP" in text
    # The hostile title (a formula, HTML, 300+ characters) is printed as text, cut to fit.
    assert HOSTILE_TITLE[:40] in text
    assert "<script>" in text and HOSTILE_TITLE not in text
    # Every contract is listed.
    for contract in st.contracts:
        assert contract["reference"] in text


def test_unicode_payee_names_and_titles_render(locked: LockedPeriod) -> None:
    ines = _statement(locked, "Inês Duarte")
    text, _ = _text(render_pdf(ines))
    assert "Inês Duarte" in text  # Latin-1: Helvetica, no font embedded
    assert b"FontFile" not in render_pdf(ines)

    tracks = [
        Amount("GBXX02600001", "Tōkyō no yoru — Ελληνικά 🎵\t\r\n", Decimal("10.00"), 5),
        Amount("GBXX02600002", "x" * 400, Decimal("-3.10"), 1),
        Amount("GBXX02600003", "Zoe\u0308 \u202eevil\u202c", Decimal("1.00"), 1),  # NFD, RLO
        *ines.top_tracks,
    ]
    st = dataclasses.replace(
        ines, payee=Party("Zoë Дмитриева", "Rua " + "longa " * 90, None), top_tracks=tracks
    )
    body = render_pdf(st)
    assert body == render_pdf(st)
    assert b"FontFile2" in body and b"+NotoSans" in body  # the embedded Unicode font
    assert b"+NotoSansCJK" not in body and b"+NotoSansArabic" not in body  # none needed
    text, pages = _text(body)
    assert pages <= 4
    assert "Zoë Дмитриева" in text and "Zoë evil" in text  # composed; no override
    assert "Tōkyō no yoru" in text and "—" in text and "Ελληνικά" in text
    assert "🎵" not in text and "?" in text  # no font has the emoji: replaced, no crash
    assert "x" * 40 in text and "x" * 400 not in text


# Names and titles in the scripts a label's catalogue has: the PDF's text layer has them all.
SCRIPTS = {
    "Japanese": "東京の夜 (トウキョウ)",
    "Korean": "서울의 밤",
    "Chinese": "北京欢迎你",
    "Arabic": "أغنية الليل",
    "Hebrew": "שיר הלילה",
    "Hindi": "रात का गीत",
    "Russian": "Ночная песня",
    "Greek": "Νυχτερινό τραγούδι",
}


def _text_layer(body: bytes) -> str:
    """The PDF's text layer as PDFium (Chromium's PDF engine) reads it, runs of whitespace as
    one space (pypdf puts a NUL before each character of the CID-keyed CJK font)."""
    pdf = pypdfium2.PdfDocument(body)
    try:
        text = " ".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()
    return re.sub(r"\s+", " ", text)


def test_japanese_arabic_and_hindi_titles_render_in_the_text_layer(
    locked: LockedPeriod,
) -> None:
    ines = _statement(locked, "Inês Duarte")
    tracks = [
        Amount(f"XX{i:010d}", title, Decimal(100 - i), 10 - i)
        for i, title in enumerate(SCRIPTS.values())
    ]
    st = dataclasses.replace(
        ines,
        payee=Party("山田 花子 · فاطمة الزهراء · प्रिया शर्मा", "東京都渋谷区 1-2-3", None),
        top_tracks=tracks,
    )
    body = render_pdf(st)
    for font in ("Arabic", "Hebrew", "Devanagari", "CJKJPKana", "CJKJPHan1", "CJKJPHangul1"):
        assert f"+NotoSans{font}".encode() in body, font  # each script's font, embedded
    assert b"CJKJPHangul2" not in body  # only the slices the text needs
    text = _text_layer(body)
    # every word (a right-to-left line's words may come out in visual order)
    for script, title in SCRIPTS.items():
        assert all(word in text for word in title.split()), (script, title, text)
    for word in ("山田", "花子", "فاطمة", "الزهراء", "प्रिया", "शर्मा", "東京都渋谷区"):
        assert word in text, word
    assert "?" not in text  # nothing replaced
    # The JSON and XLSX files are Unicode through and through: the same strings, unchanged.
    doc = json.loads(render(st, "json"))
    assert [t["label"] for t in doc["top_tracks"]] == list(SCRIPTS.values())
    assert doc["payee"]["name"] == st.payee.name
    book = openpyxl.load_workbook(io.BytesIO(render(st, "xlsx")), read_only=True)
    cells = {
        c for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for c in row
    }
    assert set(SCRIPTS.values()) <= cells


def test_a_statement_without_lines_or_history_renders(locked: LockedPeriod) -> None:
    st = _statement(locked, "Kofi Mensah")
    empty = dataclasses.replace(
        st,
        lines=st.lines.clear(),
        by_source=[],
        by_territory=[],
        by_usage=[],
        top_tracks=[],
        history=[],
    )
    text, pages = _text(render_pdf(empty))
    assert pages <= 2
    assert "Nothing to show for this statement." in text
    assert "Top 10 tracks" not in text and "Earnings by territory" not in text


def test_self_billing_invoice_pdf(locked: LockedPeriod) -> None:
    st = _with_invoice(_statement(locked, "Mara Ellison"))
    assert st.label.vat_number and st.payee.vat_number
    body = render_invoice_pdf(st)
    assert body == render_invoice(st) == render_invoice_pdf(st)
    assert body != render_invoice_pdf(_with_invoice(st, "99.99"))
    text, pages = _text(body)
    assert pages == 1
    for needle in (
        "Self-billing invoice",
        st.invoice.number if st.invoice else "?",
        f"Invoice date {st.issued.date().isoformat()}",
        f"Tax point {st.issued.date().isoformat()}",
        "Mara Ellison",
        st.label.name,
        st.payee.vat_number,
        st.label.vat_number,
        "Royalties for 2026-H1",
        f"royalty statement {st.statement_id}",
        "Net amount 1,234.50 GBP",
        "VAT at 20% 246.90 GBP",
        "Total (gross) 1,481.40 GBP",
        SELF_BILLING_WORDING,
        f"This is a self-billing invoice issued by {st.label.name} on behalf of "
        "Mara Ellison under a self-billing agreement.",
    ):
        assert needle in text, needle


def test_no_invoice_without_a_self_billing_invoice(locked: LockedPeriod) -> None:
    st = _statement(locked, "Mara Ellison")
    assert st.invoice is None
    assert render_invoice(st) is None
    with pytest.raises(ValueError, match="nothing_payable"):
        render_invoice_pdf(st)


def test_a_preview_says_so_on_every_page(locked: LockedPeriod) -> None:
    final = _statement(locked, "Mara Ellison")
    preview = dataclasses.replace(final, run_status="preview")
    text, pages = _text(render_pdf(preview))
    assert "PREVIEW: not approved, figures may change" in text
    assert text.count("PREVIEW (not approved)") == pages - 1  # the running header, page 2 on
    assert "not approved" not in _text(render_pdf(final))[0]
