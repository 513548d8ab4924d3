"""The PDF statement and the self-billing invoice, drawn with fpdf2.

A statement PDF is a few pages a payee reads: who, which period, the figures in the order the
balance is reached, earnings by source, territory and usage, the top tracks, every contract and
two charts (drawn with rectangles and lines, no plotting library). Line-level detail is not in
the PDF: it is in the XLSX and CSV files beside it.

Text: documents whose every string is Latin-1 use the PDF core font Helvetica (nothing to
embed, about thirty times faster than embedding a TrueType font); any other document embeds
Noto Sans from ``schemas/fonts`` (SIL Open Font License, ``LICENSE-Noto.txt`` beside it: Latin,
Cyrillic, Greek), and, only when the document has such text, the Noto fonts of the scripts it
lacks: Arabic, Hebrew, Devanagari and slices of Noto Sans CJK (Japanese, Chinese, Korean).
With Arabic, Hebrew or Devanagari text is shaped by HarfBuzz (``uharfbuzz``), so letters join,
conjuncts form and right-to-left runs are laid out right to left. A character none of the
fonts has (a rare Han character, an emoji) prints as ``?``. Every string from the data (titles
and names come from DSP metadata) is printed literally, never interpreted as markup, and is
cut to its column with ``...`` or wrapped onto a bounded number of lines.

Bytes are deterministic: the creation date is the statement's ``issued`` time, the producer
string is fixed and the file identifier is a hash of the content.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF

from pipelines.statements.data import Amount, CreditNote, Invoice, Statement
from schemas.money import format_amount
from schemas.statement_figures import FIGURE_LABELS, FIGURES, balance_formula, status_words

FONT_DIR = Path(__file__).resolve().parents[2] / "schemas" / "fonts"
UNICODE_FONT = "NotoSans"
UNICODE_FILES = ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf")
CORE_FONT = "Helvetica"


@dataclass(frozen=True)
class Fallback:
    """A font for a script Noto Sans lacks: embedded only in documents with such text."""

    family: str
    regular: str
    bold: str | None  # None: bold text in this script is printed in the regular face
    shaped: bool  # the script needs HarfBuzz (joining, reordering, right to left)


FALLBACKS = (  # tried in this order for a character Noto Sans has no glyph for
    Fallback("NotoSansArabic", "NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf", True),
    Fallback("NotoSansHebrew", "NotoSansHebrew-Regular.ttf", "NotoSansHebrew-Bold.ttf", True),
    Fallback(
        "NotoSansDevanagari",
        "NotoSansDevanagari-Regular.ttf",
        "NotoSansDevanagari-Bold.ttf",
        True,
    ),
    # Noto Sans CJK in slices, most used first (schemas/fonts/make_cjk_subset.py): embedding
    # a font costs time per glyph it has, so a statement embeds only the slices it needs.
    *(
        Fallback(f"NotoSansCJK{part}", f"NotoSansCJKjp-{part}-Regular.otf", None, False)
        for part in ("Kana", "Han1", "Han2", "Hangul1", "Hangul2")
    ),
)
JOINERS = frozenset((0x200C, 0x200D))  # zero-width (non-)joiner: format characters that shape
PRODUCER = "TuneMantra statements"
ELLIPSIS = "..."
REPLACEMENT = "?"
TOP_ROWS = 10  # rows of a breakdown before the "Other" line
CHART_BARS = 8
BALANCE_RULE = (
    balance_formula()
    + ". Royalties first recoup advances and costs (across cross-collateralised contracts); "
    "reserves are held only out of what is left. On a payment date tax is withheld from a "
    "positive balance and the rest is payable, and both leave the balance; otherwise the "
    "balance is carried forward."
)
# Colours (RGB)
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
SHADE = (241, 243, 245)
BAR = (47, 84, 150)
BAR_NEGATIVE = (192, 57, 43)

# Page geometry (A4 portrait, mm)
MARGIN = 15.0
WIDTH = 210.0 - 2 * MARGIN


class _NeedsUnicode(Exception):
    """A string that Helvetica (Latin-1) cannot print: render again with Noto Sans."""


@functools.cache
def _cmap(file: str) -> frozenset[int]:
    """The code points a font file in ``FONT_DIR`` has a glyph for (read once a process)."""
    font = TTFont(FONT_DIR / file, lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


@functools.cache
def _coverage(fallback: Fallback) -> frozenset[int]:
    faces = [_cmap(fallback.regular), *([_cmap(fallback.bold)] if fallback.bold else [])]
    return frozenset.intersection(*faces)


def _fallback_for(code_point: int) -> Fallback | None:
    """The first fallback font with a glyph for ``code_point`` (in every face it has)."""
    return next((f for f in FALLBACKS if code_point in _coverage(f)), None)


def money(amount: Decimal, currency: str | None = None) -> str:
    """``-1,234.56 GBP``: :func:`schemas.money.format_amount`, the one way amounts are written."""
    return format_amount(amount, currency)


def _top(rows: Sequence[Amount], n: int) -> list[Amount]:
    """The first ``n`` rows and one "Other" row for the rest, so the total still adds up."""
    if len(rows) <= n + 1:
        return list(rows)
    rest = rows[n:]
    other = Amount(
        "",
        f"Other ({len(rest)} more)",
        sum((r.amount for r in rest), Decimal(0)),
        sum(r.quantity for r in rest),
    )
    return [*rows[:n], other]


PREVIEW_INK = (176, 0, 32)


class _Document(FPDF):
    """An A4 page with the running header and footer of a statement or invoice."""

    def __init__(
        self,
        statement: Statement,
        *,
        fallbacks: Sequence[Fallback] | None,
        footer_note: str,
    ) -> None:
        """``fallbacks`` None: Helvetica only; else Noto Sans and these fallback fonts."""
        super().__init__(orientation="P", unit="mm", format="A4")
        self.unicode = fallbacks is not None
        self.footer_note = footer_note
        self.running_title = ""
        self.set_creation_date(statement.issued)
        self.set_producer(PRODUCER)
        self.set_creator(PRODUCER)
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=22)
        self.loaded: tuple[Fallback, ...] = tuple(fallbacks or ())
        self.wanted: set[Fallback] = set()  # fallbacks this document needs and has not loaded
        self.breaks = True  # False while a line of text is drawn (never a page break there)
        # Code points the main font prints directly, in both faces (Helvetica: Latin-1), and
        # with the fallback fonts.
        self.direct: frozenset[int] = frozenset(range(256))
        self.coverage: frozenset[int] = self.direct
        if fallbacks is not None:
            regular, bold = UNICODE_FILES
            self.add_font(UNICODE_FONT, "", str(FONT_DIR / regular))
            self.add_font(UNICODE_FONT, "B", str(FONT_DIR / bold))
            self.direct = _cmap(regular) & _cmap(bold)
            self.coverage = self.direct.union(*(_coverage(f) for f in self.loaded))
            for f in self.loaded:
                self.add_font(f.family, "", str(FONT_DIR / f.regular))
                if f.bold:
                    self.add_font(f.family, "B", str(FONT_DIR / f.bold))
            if self.loaded:
                # a bold fallback where there is one, else the regular face
                self.set_fallback_fonts([f.family for f in self.loaded], exact_match=False)
            if any(f.shaped for f in self.loaded):
                self.set_text_shaping(True)
        self.family = UNICODE_FONT if self.unicode else CORE_FONT
        self.set_text_color(*INK)

    @property
    def accept_page_break(self) -> bool:
        return self.breaks and super().accept_page_break

    # --- text -------------------------------------------------------------------------------
    def clean(self, text: object) -> str:
        """Printable text, in Unicode normal form C: control and format characters become
        spaces; in Helvetica anything outside Latin-1 asks for the Unicode font; with it, a
        character no loaded font has becomes ``?`` (and the fallback font that has it is
        noted in ``wanted``, for the next rendering)."""
        s = str(text)
        if not unicodedata.is_normalized("NFC", s):
            s = unicodedata.normalize("NFC", s)
        if s.isprintable():  # the common case, checked at C speed
            if self.unicode:
                if self.coverage.issuperset(map(ord, s)):
                    return s
            elif s.isascii():
                return s
        out = []
        for ch in s:
            code = ord(ch)
            if code in JOINERS:
                out.append(ch if self.unicode and code in self.coverage else "")
                continue
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
                ch, code = " ", 32
            if self.unicode:
                if code not in self.coverage:
                    fallback = _fallback_for(code)
                    if fallback is not None:
                        self.wanted.add(fallback)
                    ch = REPLACEMENT
            elif code > 0xFF:
                raise _NeedsUnicode(ch)
            out.append(ch)
        return "".join(out)

    def _direct(self, text: str) -> bool:
        """Whether the main font prints ``text`` as it is (no fallback font, no shaping)."""
        return not self.unicode or self.direct.issuperset(map(ord, text))

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def width(self, text: str) -> float:
        """Width of already clean ``text`` in the current font, in mm: the font's own metrics
        (``get_string_width`` re-parses the text and costs ten times more), or, for text in
        a fallback font or shaped, ``get_string_width``'s fragments."""
        if not self._direct(text):
            return self.get_string_width(text, normalized=True)
        assert self.current_font is not None
        return self.current_font.get_text_width(text, self.font_size_pt, None)[1] / self.k

    def _prefix(self, text: str, width: float) -> int:
        """Length of the longest prefix of ``text`` that fits ``width``."""
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.width(text[:mid]) <= width:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def fit(self, text: object, width: float) -> str:
        """``text`` cut to ``width`` with an ellipsis."""
        s = self.clean(text)
        if self.width(s) <= width:
            return s
        room = width - self.width(ELLIPSIS)
        return s[: self._prefix(s, room)].rstrip() + ELLIPSIS

    def wrap(self, text: object, width: float, max_lines: int) -> list[str]:
        """Word-wrapped lines of ``text`` (long words broken), at most ``max_lines``; the last
        one ends with an ellipsis when text was left out."""
        lines: list[str] = []
        current = ""
        for word in self.clean(text).split():
            candidate = f"{current} {word}" if current else word
            if self.width(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = word
            while self.width(current) > width:  # a word longer than a line
                cut = max(1, self._prefix(current, width))
                lines.append(current[:cut])
                current = current[cut:]
            if len(lines) > max_lines:
                break
        if current:
            lines.append(current)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = self.fit(lines[-1] + " " + ELLIPSIS, width)
        return lines

    def line_text(
        self, width: float, height: float, text: object, *, align: str = "L", fill: bool = False
    ) -> None:
        """One line of text in a box ``width`` x ``height`` at the current position, cut to
        fit; the position moves to the right of the box (like ``cell``, at a fraction of its
        cost: the statement draws a few hundred of these). Text that needs a fallback font
        or shaping goes through ``cell``, which does both (right-to-left runs included)."""
        x, y = self.get_x(), self.get_y()
        if fill:
            self.rect(x, y, width, height, style="F")
        shown = self.fit(text, width - 2 * self.c_margin)
        if shown:
            w = self.width(shown)
            if align == "R":
                left = x + width - self.c_margin - w
            elif align == "C":
                left = x + (width - w) / 2
            else:
                left = x + self.c_margin
            if self._direct(shown):
                self.text(left, y + 0.5 * height + 0.3 * self.font_size, shown)
            else:
                self.breaks = False  # the caller placed the line: it stays where it is
                try:
                    self.set_xy(left - self.c_margin, y)
                    self.cell(w + 2 * self.c_margin, height, shown)
                finally:
                    self.breaks = True
        self.set_x(x + width)

    def paragraph(self, text: object, width: float, height: float, max_lines: int) -> None:
        """``text`` wrapped into a ``width`` wide column at the current position, at most
        ``max_lines`` lines of ``height``; the position ends below it, at the same x."""
        x = self.get_x()
        for line in self.wrap(text, width - 2 * self.c_margin, max_lines):
            self.line_text(width, height, line)
            self.set_xy(x, self.get_y() + height)

    def newline(self, height: float) -> None:
        self.ln(height)
        self.set_x(self.l_margin)

    def ensure(self, height: float) -> None:
        """Start a new page unless ``height`` mm still fit on this one."""
        if self.get_y() + height > self.h - self.b_margin:
            self.add_page()

    # --- page furniture ---------------------------------------------------------------------
    def header(self) -> None:
        if self.page_no() == 1 or not self.running_title:
            return
        self.font(7.5)
        self.set_text_color(*MUTED)
        self.line_text(WIDTH, 5, self.running_title)
        self.set_draw_color(*RULE)
        self.line(MARGIN, self.get_y() + 5.5, MARGIN + WIDTH, self.get_y() + 5.5)
        self.set_text_color(*INK)
        self.newline(9)

    def footer(self) -> None:
        self.set_y(-18)
        self.set_draw_color(*RULE)
        self.line(MARGIN, self.get_y(), MARGIN + WIDTH, self.get_y())
        self.set_text_color(*MUTED)
        self.font(6.5)
        self.set_y(self.get_y() + 1)
        self.paragraph(self.footer_note, WIDTH - 30, 3.2, 3)
        self.set_y(-17)
        self.set_x(MARGIN + WIDTH - 30)
        self.font(7)
        self.cell(30, 4, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(*INK)

    # --- building blocks --------------------------------------------------------------------
    def heading(self, text: str, space: float = 30) -> None:
        self.ensure(space)
        self.newline(2)
        self.font(10.5, bold=True)
        self.line_text(WIDTH, 6, text)
        self.newline(6)
        self.set_draw_color(*BAR)
        self.set_line_width(0.4)
        self.line(MARGIN, self.get_y(), MARGIN + WIDTH, self.get_y())
        self.set_line_width(0.2)
        self.newline(1.5)

    def grid(
        self,
        columns: Sequence[tuple[str, float, str]],
        rows: Sequence[Sequence[object]],
        *,
        total: Sequence[object] | None = None,
        bold_rows: Sequence[int] = (),
        size: float = 8,
        height: float = 5,
        fit: bool = False,
        fill: int | None = None,
    ) -> None:
        """A table: ``columns`` are (title, width, align); a header row, zebra rows and an
        optional bold total row. The header is repeated when a table breaks across pages.
        ``fit``: nothing is cut short: the columns are resized to their widest text within
        the table's total width, and the type made smaller (down to 5.5 pt) if they still
        do not fit. ``fill``: the index of a column that takes the width left over instead
        (long words, cut if they must be)."""
        if fit:
            cells = [*rows, *([total] if total else [])]
            columns, size = self._fitted(columns, cells, size, fill)

        def head() -> None:
            self.font(size, bold=True)
            self.set_fill_color(*SHADE)
            for title, width, align in columns:
                self.line_text(width, height, title, align=align, fill=True)
            self.newline(height)

        self.ensure(3 * height)
        head()
        for i, row in enumerate(rows):
            if self.get_y() + height > self.h - self.b_margin:
                self.add_page()
                head()
            self.font(size, bold=i in bold_rows)
            for (_, width, align), value in zip(columns, row, strict=True):
                self.line_text(width, height, value, align=align)
            self.newline(height)
            self.set_draw_color(*RULE)
            self.line(MARGIN, self.get_y(), MARGIN + sum(c[1] for c in columns), self.get_y())
        if total is not None:
            self.font(size, bold=True)
            for (_, width, align), value in zip(columns, total, strict=True):
                self.line_text(width, height, value, align=align)
            self.newline(height)
        self.newline(2)

    def _fitted(
        self,
        columns: Sequence[tuple[str, float, str]],
        rows: Sequence[Sequence[object]],
        size: float,
        fill: int | None,
    ) -> tuple[list[tuple[str, float, str]], float]:
        """Column widths for ``grid(fit=True)``: each column's widest cell (bold for the
        header and total) plus its margins, the spare width shared out in proportion to the
        given widths (or all of it to ``fill``); the size stepped down by half a point until
        the columns fit."""
        total = sum(c[1] for c in columns)
        while True:
            need = []
            for i, (title, _, _) in enumerate(columns):
                if i == fill:
                    need.append(0.0)
                    continue
                self.font(size, bold=True)
                widest = self.width(self.clean(title))
                self.font(size)
                for row in rows:  # x 1.08: room for the bold total row
                    widest = max(widest, self.width(self.clean(row[i])) * 1.08)
                need.append(widest + 2 * self.c_margin + 0.5)
            if sum(need) <= total or size <= 5.5:
                break
            size -= 0.5
        spare = max(total - sum(need), 0.0)
        share = [
            (1.0 if i == fill else 0.0) if fill is not None else c[1] / total
            for i, c in enumerate(columns)
        ]
        widths = [n + spare * s for n, s in zip(need, share, strict=True)]
        return [(c[0], w, c[2]) for c, w in zip(columns, widths, strict=True)], size

    def bar_chart(
        self,
        title: str,
        items: Sequence[tuple[str, Decimal]],
        currency: str,
        *,
        horizontal: bool,
        height: float = 48,
    ) -> None:
        """Bars for ``items`` (label, amount) with a zero line, so negative amounts (returns,
        chargebacks) point the other way in red."""
        self.ensure(height + 12)
        self.font(8.5, bold=True)
        self.line_text(WIDTH, 5, title)
        self.newline(6)
        top = self.get_y()
        if not items:
            self.font(8)
            self.set_text_color(*MUTED)
            self.line_text(WIDTH, 5, "Nothing to show for this statement.")
            self.set_text_color(*INK)
            self.newline(8)
            return
        values = [float(v) for _, v in items]  # drawing coordinates only, never amounts
        low, high = min(0.0, *values), max(0.0, *values)
        span = (high - low) or 1.0
        self.set_draw_color(*RULE)
        self.rect(MARGIN, top, WIDTH, height)
        if horizontal:
            label_w, value_w = 45.0, 32.0
            area_x, area_w = MARGIN + label_w, WIDTH - label_w - value_w - 2
            row_h = height / len(items)
            zero_x = area_x + area_w * (0 - low) / span
            for i, ((label, amount), value) in enumerate(zip(items, values, strict=True)):
                y = top + i * row_h
                bar_h = min(row_h * 0.64, 6.0)
                bar_y = y + (row_h - bar_h) / 2
                x0 = area_x + area_w * (min(value, 0) - low) / span
                x1 = area_x + area_w * (max(value, 0) - low) / span
                self.set_fill_color(*(BAR if value >= 0 else BAR_NEGATIVE))
                if x1 - x0 > 0.05:
                    self.rect(x0, bar_y, x1 - x0, bar_h, style="F")
                self.font(7)
                self.set_xy(MARGIN, y + (row_h - 4) / 2)
                self.line_text(label_w, 4, label)
                self.set_xy(MARGIN + WIDTH - value_w, y + (row_h - 4) / 2)
                self.line_text(value_w, 4, money(amount, currency), align="R")
            self.set_draw_color(*MUTED)
            self.line(zero_x, top + 1, zero_x, top + height - 1)
        else:
            area_x, area_w = MARGIN + 4, WIDTH - 8
            area_top, area_h = top + 6, height - 14
            slot = area_w / len(items)
            bar_w = min(slot * 0.5, 22.0)
            zero_y = area_top + area_h * (high - 0) / span
            for i, ((label, amount), value) in enumerate(zip(items, values, strict=True)):
                cx = area_x + slot * (i + 0.5)
                y0 = area_top + area_h * (high - max(value, 0)) / span
                y1 = area_top + area_h * (high - min(value, 0)) / span
                self.set_fill_color(*(BAR if value >= 0 else BAR_NEGATIVE))
                if y1 - y0 > 0.05:
                    self.rect(cx - bar_w / 2, y0, bar_w, y1 - y0, style="F")
                self.font(6.5)
                self.set_xy(cx - slot / 2, (y0 - 4.5) if value >= 0 else (y1 + 0.5))
                self.line_text(slot, 4, money(amount), align="C")
                self.font(7)
                self.set_xy(cx - slot / 2, top + height - 6)
                self.line_text(slot, 5, label, align="C")
            self.set_draw_color(*MUTED)
            self.line(area_x, zero_y, area_x + area_w, zero_y)
        self.set_xy(MARGIN, top + height + 3)


def _table_height(rows: int, row: float = 5) -> float:
    """Room for a heading and a table of ``rows`` rows (kept on one page when it fits)."""
    return 12 + (rows + 1) * row + 2


# --- the statement ----------------------------------------------------------------------------
def _party_block(
    pdf: _Document, x: float, y: float, width: float, role: str, s: Statement
) -> float:
    party = s.label if role == "label" else s.payee
    pdf.set_xy(x, y)
    pdf.font(7, bold=True)
    pdf.set_text_color(*MUTED)
    pdf.line_text(width, 4, "From" if role == "label" else "Payee")
    pdf.set_text_color(*INK)
    pdf.set_xy(x, pdf.get_y() + 4)
    pdf.font(11 if role == "label" else 10, bold=True)
    pdf.paragraph(party.name, width, 5, 2)
    pdf.font(8)
    pdf.paragraph(party.address or "", width, 4, 3)
    if party.vat_number:
        pdf.line_text(width, 4, f"VAT number {party.vat_number}")
        pdf.set_xy(x, pdf.get_y() + 4)
    return pdf.get_y()


def _title_page(pdf: _Document, s: Statement, title: str, not_final: str) -> None:
    """A new page with the document's title; a run not yet approved renders for review only,
    and says so (``not_final``) where nobody can miss it."""
    pdf.add_page()
    pdf.font(16, bold=True)
    pdf.line_text(WIDTH / 2, 8, title)
    if s.run_status != "final":
        pdf.set_xy(MARGIN, MARGIN + 9)
        pdf.font(9, bold=True)
        pdf.set_text_color(*PREVIEW_INK)
        pdf.line_text(WIDTH / 2 - 4, 5, f"{s.run_status.upper()}: {not_final}")
        pdf.set_text_color(*INK)


def _statement_page(pdf: _Document, s: Statement) -> None:
    ccy = s.currency
    _title_page(pdf, s, "Royalty statement", "not approved, figures may change")
    pdf.font(8)
    facts = [
        ("Statement", str(s.statement_id)),
        ("Period", f"{s.period} ({s.period_start.isoformat()} to {s.period_end.isoformat()})"),
        ("Run", f"version {s.version}, {s.run_status}"),
        ("Currency", ccy),
        *(
            [("Also in", f"{s.conversion.currency} at 1 {ccy} = {s.conversion.rate_text}")]
            if s.conversion is not None
            else []
        ),
        ("Issued", s.issued.date().isoformat()),
    ]
    y = MARGIN
    for name, value in facts:
        pdf.set_xy(MARGIN + WIDTH / 2, y)
        pdf.set_text_color(*MUTED)
        pdf.line_text(22, 4.5, name, align="L")
        pdf.set_text_color(*INK)
        pdf.line_text(WIDTH / 2 - 22, 4.5, value, align="R")
        y += 4.5
    bottom = max(y, MARGIN + 10) + 3
    end_label = _party_block(pdf, MARGIN, bottom, WIDTH / 2 - 4, "label", s)
    end_payee = _party_block(pdf, MARGIN + WIDTH / 2, bottom, WIDTH / 2, "payee", s)
    pdf.set_xy(MARGIN, max(end_label, end_payee) + 3)

    pdf.heading("Summary", space=80)
    pdf.font(9, bold=True)
    pdf.paragraph(f"Status: {s.status_text}", WIDTH, 5, 2)
    pdf.newline(1)
    emphasis = {FIGURES.index(f) for f in ("payable", "closing") if f in FIGURES}
    conv = s.conversion
    if conv is None:
        pdf.grid(
            [("", WIDTH - 45, "L"), (f"Amount ({ccy})", 45, "R")],
            [(FIGURE_LABELS[f], money(s.figures[f], ccy)) for f in FIGURES],
            bold_rows=sorted(emphasis),
            size=8.5,
            height=5.2,
        )
    else:
        # the payee's statement currency first, the figures of record beside it
        pdf.grid(
            [
                ("", WIDTH - 90, "L"),
                (f"Amount ({conv.currency})", 45, "R"),
                (f"Amount of record ({ccy})", 45, "R"),
            ],
            [
                (
                    FIGURE_LABELS[f],
                    money(conv.figures[f], conv.currency),
                    money(s.figures[f], ccy),
                )
                for f in FIGURES
            ],
            bold_rows=sorted(emphasis),
            size=8.5,
            height=5.2,
        )
    pdf.font(7.5)
    pdf.paragraph(s.formula(), WIDTH, 3.6, 3)
    if conv is not None:
        pdf.paragraph(s.formula(conv.figures, conv.currency), WIDTH, 3.6, 3)
    pdf.newline(1)
    pdf.set_text_color(*MUTED)
    notes = [
        *s.notes,
        f"Line-level detail: see the XLSX/CSV file {s.file_stem}.xlsx "
        f"(and {s.file_stem}.csv) - it is not repeated in this PDF.",
    ]
    if s.invoice is not None:
        notes.append(f"Self-billing invoice {s.invoice.number}: see {s.invoice_stem}.pdf.")
    if s.credit_note is not None:
        notes.append(f"Credit note {s.credit_note.number}: see {s.credit_note_stem}.pdf.")
    for note in notes:
        pdf.paragraph(note, WIDTH, 3.6, 3)
    pdf.set_text_color(*INK)
    pdf.newline(2)

    if s.contracts and s.pooled:
        _pooled_contracts(pdf, s)
    elif s.contracts:
        pdf.heading("Contracts", space=_table_height(min(len(s.contracts), 12) + 1))
        w = (WIDTH - 96) / 4
        pdf.grid(
            [
                ("Contract", 24, "L"),
                ("Status", 72, "L"),
                ("Earnings", w, "R"),
                ("Recouped", w, "R"),
                ("Payable", w, "R"),
                ("Closing", w, "R"),
            ],
            [
                (
                    c["reference"],
                    status_words(c["status"]),
                    money(c["earnings"]),
                    money(c["recouped"]),
                    money(c["payable"]),
                    money(c["closing"]),
                )
                for c in s.contracts
            ],
            total=(
                f"Total ({ccy})",
                "",
                money(s.figures["earnings"]),
                money(s.figures["recouped"]),
                money(s.figures["payable"]),
                money(s.figures["closing"]),
            ),
            size=7.5,
        )


# The pooled contracts' table: every term of each contract's closing balance (so each row adds
# up: opening + earned - advances and costs - reserves held + released + moved within the
# pool - tax - payable = closing) and the column totals are the statement's figures.
POOL_COLUMNS: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("Opening", (("opening", 1),)),
    ("Earned", (("earnings", 1),)),
    ("Adv. & costs", (("advances", -1), ("costs", -1))),
    ("Reserves", (("reserve_held", -1), ("reserve_released", 1))),
    ("Pool move", (("pool_transfer", 1),)),
    ("Tax", (("tax", -1),)),
    ("Payable", (("payable", -1),)),
    ("Closing", (("closing", 1),)),
)


def _pool_cell(c: dict[str, Decimal], terms: tuple[tuple[str, int], ...]) -> Decimal:
    return sum((sign * (c.get(k) or Decimal(0)) for k, sign in terms), Decimal(0))


def _pooled_contracts(pdf: _Document, s: Statement) -> None:
    """Each cross-collateralised pool named with its contracts, every contract's movements
    as signed terms that add up along the row to its closing balance, and the totals."""
    ccy = s.currency
    pdf.heading(
        "Contracts and cross-collateralised pools",
        space=_table_height(min(len(s.contracts), 12) + 4),
    )
    w = (WIDTH - 28) / len(POOL_COLUMNS)
    pdf.grid(
        [("Contract", 28, "L"), *((h, w, "R") for h, _ in POOL_COLUMNS)],
        [
            (c["reference"], *(money(_pool_cell(c, t)) for _, t in POOL_COLUMNS))
            for c in s.contracts
        ],
        total=(
            f"Total ({ccy})",
            *(
                money(sum((_pool_cell(c, t) for c in s.contracts), Decimal(0)))
                for _, t in POOL_COLUMNS
            ),
        ),
        size=7.5,
        fit=True,
    )
    pdf.font(7.5)
    pdf.set_text_color(*MUTED)
    pdf.paragraph(
        "Each row adds up: opening + earned - advances and costs +/- reserves + pool move "
        "(moved within the pool when it was paid) - tax - payable = closing (signed as shown).",
        WIDTH,
        3.6,
        2,
    )
    pdf.set_text_color(*INK)
    pdf.newline(1)
    pdf.grid(
        [
            ("Contract", 20, "L"),
            ("Pool", 28, "L"),
            ("Pooled with", 30, "L"),
            ("Recouped from pool", 32, "R"),
            ("Status", WIDTH - 110, "L"),
        ],
        [
            (
                c["reference"],
                c.get("pool") or "Not pooled",
                ", ".join(c.get("pooled_with") or ()) or "-",
                money(c.get("recouped_from_pool") or Decimal(0)),
                status_words(c["status"]),
            )
            for c in s.contracts
        ],
        size=7,
        fit=True,
        fill=4,
    )


def _breakdown(
    pdf: _Document, title: str, first: str, rows: Sequence[Amount], s: Statement
) -> None:
    if not rows:
        return
    shown = _top(rows, TOP_ROWS)
    pdf.heading(title, space=_table_height(len(shown) + 1))
    total = sum((r.amount for r in rows), Decimal(0))
    pdf.grid(
        [
            (first, WIDTH - 100, "L"),
            ("Quantity", 30, "R"),
            ("Share", 20, "R"),
            ("Earnings", 50, "R"),
        ],
        [
            (
                r.label,
                f"{r.quantity:,}",
                f"{(100 * r.amount / total):.1f}%" if total else "",
                money(r.amount, s.currency),
            )
            for r in shown
        ],
        total=("Total", f"{sum(r.quantity for r in rows):,}", "", money(total, s.currency)),
    )


def _analysis(pdf: _Document, s: Statement) -> None:
    sources = _top(s.by_source, CHART_BARS - 1)
    pdf.bar_chart(
        f"Earnings by source ({s.currency})",
        [(a.label, a.amount) for a in sources],
        s.currency,
        horizontal=True,
        height=max(24.0, 6.5 * len(sources)),
    )
    pdf.bar_chart(
        f"Earnings by period ({s.currency}, last {len(s.history)} period(s))",
        [(h.period, h.earnings) for h in s.history],
        s.currency,
        horizontal=False,
        height=42,
    )
    _breakdown(pdf, "Earnings by source", "Source", s.by_source, s)
    _breakdown(pdf, "Earnings by territory", "Territory", s.by_territory, s)
    _breakdown(pdf, "Earnings by usage type", "Usage type", s.by_usage, s)
    if s.top_tracks:
        pdf.heading(f"Top {len(s.top_tracks)} tracks", space=_table_height(len(s.top_tracks)))
        pdf.grid(
            [
                ("#", 8, "R"),
                ("Track", WIDTH - 103, "L"),
                ("ISRC", 30, "L"),
                ("Quantity", 25, "R"),
                ("Earnings", 40, "R"),
            ],
            [
                (i, t.label, t.key, f"{t.quantity:,}", money(t.amount, s.currency))
                for i, t in enumerate(s.top_tracks, start=1)
            ],
        )


def _render(statement: Statement, draw: Callable[[_Document, Statement], None], note: str) -> bytes:
    """Helvetica when every string is Latin-1, else the embedded Noto Sans, with the fallback
    fonts of the scripts the document has (found by drawing it: at most three drawings)."""
    fallbacks: tuple[Fallback, ...] | None = None
    while True:
        pdf = _Document(statement, fallbacks=fallbacks, footer_note=note)
        try:
            draw(pdf, statement)
            if not pdf.wanted:  # the last page's footer is drawn by ``output``
                body = bytes(pdf.output())
        except _NeedsUnicode:
            fallbacks = ()
            continue
        if not pdf.wanted:
            return body
        fallbacks = tuple(f for f in FALLBACKS if f in pdf.wanted or f in pdf.loaded)


def _draw_statement(pdf: _Document, s: Statement) -> None:
    pdf.set_title(f"Royalty statement {s.statement_id} - {s.period}")
    pdf.set_author(pdf.clean(s.label.name))
    pdf.set_subject(s.file_stem)
    pdf.running_title = (
        ("PREVIEW (not approved) - " if s.run_status != "final" else "")
        + f"{s.label.name} - royalty statement {s.statement_id} - {s.payee.name} - "
        f"{s.period} - {s.currency}"
    )
    _statement_page(pdf, s)
    _analysis(pdf, s)


def render_pdf(statement: Statement) -> bytes:
    """The statement as a PDF of a few pages (no line-level detail)."""
    return _render(statement, _draw_statement, BALANCE_RULE)


# --- the self-billing invoice -----------------------------------------------------------------
def _first_page(pdf: _Document, s: Statement, title: str, number: str, subject: str) -> None:
    """An invoice's or credit note's metadata and its first page's title."""
    pdf.set_title(f"{title} {number}")
    pdf.set_author(pdf.clean(s.label.name))
    pdf.set_subject(subject)
    _title_page(pdf, s, title, "not issued until approved")


def _draw_invoice(pdf: _Document, s: Statement) -> None:
    inv = s.invoice
    assert inv is not None  # render_invoice_pdf checked
    _first_page(pdf, s, "Self-billing invoice", inv.number, s.invoice_stem)
    facts = [
        ("Invoice number", inv.number),
        ("Invoice date", inv.date.isoformat()),
        ("Tax point", inv.date.isoformat()),
        ("Statement", str(s.statement_id)),
        ("Currency", s.currency),
    ]
    if inv.credit_note is not None and s.credit_note is not None:
        facts.append(("Replaces", f"invoice {s.credit_note.original}"))
        facts.append(("Credit note", s.credit_note.number))
    top = _facts(pdf, facts)
    _invoice_parties(pdf, s, top, "invoice")
    pdf.heading("Supply", space=60)
    _supply(
        pdf,
        s,
        inv,
        f"Royalties for {s.period} ({s.period_start.isoformat()} to "
        f"{s.period_end.isoformat()}), royalty statement {s.statement_id}",
        "Amount to be paid",
    )
    pdf.newline(3)
    pdf.font(9, bold=True)
    pdf.paragraph(inv.wording, WIDTH, 5, 2)
    pdf.font(8.5)
    agreement = (
        f"This is a self-billing invoice issued by {s.label.name} on behalf of "
        f"{s.payee.name} under a self-billing agreement."
    )
    if inv.credit_note is not None and s.credit_note is not None:
        agreement += (
            f" It replaces invoice {s.credit_note.original} of "
            f"{s.credit_note.original_date.isoformat()}, cancelled by credit note "
            f"{s.credit_note.number} (the period was corrected)."
        )
    pdf.paragraph(agreement, WIDTH, 4.5, 4)


def _facts(pdf: _Document, facts: Sequence[tuple[str, str]]) -> float:
    """The document's facts, top right; the y below them."""
    y = MARGIN
    pdf.font(8)
    for name, value in facts:
        pdf.set_xy(MARGIN + WIDTH / 2, y)
        pdf.set_text_color(*MUTED)
        pdf.line_text(30, 4.5, name)
        pdf.set_text_color(*INK)
        pdf.line_text(WIDTH / 2 - 30, 4.5, value, align="R")
        y += 4.5
    return y + 4


def _invoice_parties(pdf: _Document, s: Statement, top: float, document: str) -> None:
    """Supplier (the payee) and customer (the label), side by side."""
    width = WIDTH / 2 - 4
    ends = []
    for x, role, party in (
        (MARGIN, "Supplier (payee)", s.payee),
        (MARGIN + WIDTH / 2, f"Customer (issuer of this {document})", s.label),
    ):
        pdf.set_xy(x, top)
        pdf.font(7, bold=True)
        pdf.set_text_color(*MUTED)
        pdf.line_text(width, 4, role)
        pdf.set_text_color(*INK)
        pdf.set_xy(x, pdf.get_y() + 4)
        pdf.font(10, bold=True)
        pdf.paragraph(party.name, width, 5, 2)
        pdf.font(8)
        pdf.paragraph(party.address or "", width, 4, 3)
        pdf.line_text(width, 4, f"VAT number {party.vat_number or '(none)'}")
        ends.append(pdf.get_y() + 4)
    pdf.set_xy(MARGIN, max(ends) + 6)


def _supply(
    pdf: _Document, s: Statement, inv: Invoice | CreditNote, description: str, due: str
) -> None:
    """The supply's net, VAT, gross, tax withheld and the amount due, and the VAT in sterling
    (an invoice; a credit note shows the same rows credited, negative)."""
    ccy = s.currency
    rate = f"{(inv.vat_rate * 100).normalize():f}%"
    pdf.grid(
        [("Description", WIDTH - 45, "L"), (f"Amount ({ccy})", 45, "R")],
        [
            (description, money(inv.net, ccy)),
            ("Net amount", money(inv.net, ccy)),
            (f"VAT at {rate}", money(inv.vat, ccy)),
            ("Total (gross)", money(inv.gross, ccy)),
            *(
                [
                    (
                        "Less tax withheld (paid to the tax authority for you)",
                        money(-inv.withheld, ccy),
                    )
                ]
                if inv.withheld
                else []
            ),
        ],
        total=(due, money(inv.to_pay, ccy)),
        size=9,
        height=6,
    )
    if inv.vat_gbp is not None:
        pdf.newline(2)
        pdf.font(8.5)
        pdf.paragraph(
            f"VAT in sterling: {money(inv.vat_gbp, 'GBP')} "
            f"(1 {ccy} = {inv.gbp_rate} GBP, the rate of the royalty run).",
            WIDTH,
            4.5,
            2,
        )


def render_invoice_pdf(statement: Statement) -> bytes:
    """The self-billing invoice for the statement's payable amount (UK HMRC VAT Notice
    700/62); ``ValueError`` when the statement carries no invoice."""
    if statement.invoice is None:
        raise ValueError(
            f"statement {statement.statement_id} has no self-billing invoice"
            + (f" ({statement.invoice_refused})" if statement.invoice_refused else "")
        )
    note = (
        f"Self-billing invoice {statement.invoice.number} for royalty statement "
        f"{statement.statement_id} ({statement.file_stem})."
    )
    return _render(statement, _draw_invoice, note)


# --- the credit note for a corrected statement's earlier invoice --------------------------------
def _draw_credit_note(pdf: _Document, s: Statement) -> None:
    cn = s.credit_note
    assert cn is not None  # render_credit_note_pdf checked
    _first_page(pdf, s, "Self-billing credit note", cn.number, s.credit_note_stem)
    facts = [
        ("Credit note number", cn.number),
        ("Date", cn.date.isoformat()),
        ("Credits invoice", cn.original),
        ("Invoice date", cn.original_date.isoformat()),
        ("Of statement", f"{cn.statement_id} (version {cn.version})"),
        ("Corrected by", f"statement {s.statement_id} (version {s.version})"),
        ("Currency", s.currency),
    ]
    _invoice_parties(pdf, s, _facts(pdf, facts), "credit note")
    pdf.heading("Credited", space=60)
    _supply(
        pdf,
        s,
        cn,
        f"Royalties for {s.period}, royalty statement {cn.statement_id}: credited",
        "Credited",
    )
    pdf.newline(3)
    pdf.font(8.5)
    replaced = (
        f" The corrected statement's invoice is {s.invoice.number}."
        if s.invoice is not None
        else " The corrected statement has nothing payable: no invoice replaces it."
    )
    pdf.paragraph(
        f"This credit note cancels self-billing invoice {cn.original} of "
        f"{cn.original_date.isoformat()} in full. {cn.reason}{replaced} It is issued by "
        f"{s.label.name} on behalf of {s.payee.name} under the self-billing agreement.",
        WIDTH,
        4.5,
        5,
    )


def render_credit_note_pdf(statement: Statement) -> bytes:
    """The credit note cancelling the earlier version's self-billing invoice;
    ``ValueError`` when the statement carries none."""
    if statement.credit_note is None:
        raise ValueError(f"statement {statement.statement_id} has no credit note")
    note = (
        f"Self-billing credit note {statement.credit_note.number} (credits invoice "
        f"{statement.credit_note.original}) for royalty statement {statement.statement_id}."
    )
    return _render(statement, _draw_credit_note, note)
