"""Infer a draft format spec from a sample report (``tunemantra formats infer``).

Reading a layout nobody has described yet, the way a person would: find the encoding
(``archive.detect_encoding``; text that is not UTF-8 is Windows-1252), the delimiter (the one
that splits the most lines into the same number of fields), the header (the first line of that
width whose cells are words, not figures: lines above it are a preamble), the footer (trailing
lines of another width, or a line with a cell reading "Total"), and the number format (decimal
comma or point, thousands separators).

Each column is then recognised twice. By NAME: a table of synonyms per canonical field
(``SYNONYMS``; "Net Revenue", "Royalty", "Earnings" are amounts, "Streams", "Units" quantities).
By CONTENT: the share of its values that read as that field, with the project's own readers
(``schemas.identifiers.is_valid_isrc``/``is_valid_gtin``, ``schemas.territories``,
``schemas.report_dates.parse_date``, ISO 4217 codes, decimals, whole numbers, sale/void flags).
Both combine into a confidence (noisy-or, weighted by how telling the content test is; content
that contradicts the name vetoes it), each field goes to its most confident column, and the
draft spec (YAML, ``schemas.format_spec``) carries a comment on every column saying what was
guessed and why. Nothing here writes anything: ``infer_bytes`` takes the sample's bytes.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from dataclasses import field as _default
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from connectors.formats import archive
from connectors.formats.base import FileRejected
from schemas.format_spec import FormatSpec, column_key
from schemas.identifiers import is_valid_gtin, is_valid_isrc
from schemas.report_dates import parse_date
from schemas.territories import is_valid_currency, territory_reading

SAMPLE_BYTES = 1 << 20  # what inference reads of a file
MIN_CONFIDENCE = 0.5  # below this a column is left unmapped
FALLBACK_CONFIDENCE = 0.3  # amount/quantity by content alone, when no name says which
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_WORDS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# canonical field -> header words (compared on ``column_key``), most telling first: an exact
# match scores 0.95, a synonym inside a longer name ("Net Revenue EUR") 0.7
SYNONYMS: dict[str, tuple[str, ...]] = {
    "isrc": ("isrc", "isrc code", "track isrc", "recording isrc"),
    "upc": (
        "upc",
        "ean",
        "barcode",
        "gtin",
        "upc/ean",
        "ean/upc",
        "release upc",
        "product upc",
        "album upc",
        "icpn",
        "code ean",
        "ean code",
    ),
    "territory": (
        "territory",
        "country",
        "region",
        "country code",
        "market",
        "territory code",
        "sale country",
        "country of sale",
        "store country",
        "customer country",
        "buyer country",
        "pays",
        "land",
        "pais",
        "paese",
    ),
    "usage_period": (
        "period",
        "month",
        "sales month",
        "sales period",
        "reporting period",
        "usage period",
        "statement period",
        "accounting period",
        "sale month",
        "activity period",
        "reporting month",
        "usage month",
        "periode",
        "zeitraum",
        "periodo",
        "mois",
        "monat",
    ),
    "usage_start": (
        "start date",
        "period start",
        "from",
        "usage start",
        "start",
        "from date",
        "date",
        "sale date",
        "transaction date",
        "report date",
        "day",
    ),
    "usage_end": ("end date", "period end", "to", "usage end", "end", "to date"),
    "amount": (
        "net revenue",
        "net amount",
        "royalty",
        "royalties",
        "net royalty",
        "earnings",
        "net earnings",
        "payable",
        "amount payable",
        "net",
        "revenue",
        "amount",
        "total",
        "income",
        "net income",
        "label share",
        "your share",
        "payout",
        "proceeds",
        "partner share",
        "net payable",
        "montant",
        "betrag",
        "importe",
        "importo",
        "bedrag",
        "montant net",
        "revenu",
        "erlos",
        "ingresos",
    ),
    "quantity": (
        "quantity",
        "units",
        "streams",
        "plays",
        "qty",
        "count",
        "downloads",
        "unit count",
        "views",
        "sales",
        "number of units",
        "total units",
        "spins",
        "quantite",
        "anzahl",
        "menge",
        "cantidad",
        "aantal",
        "quantita",
        "ecoutes",
    ),
    "currency": (
        "currency",
        "currency code",
        "cur",
        "ccy",
        "reporting currency",
        "payment currency",
        "sales currency",
        "devise",
        "wahrung",
        "moneda",
        "valuta",
    ),
    "title": (
        "title",
        "track title",
        "track",
        "song",
        "song title",
        "track name",
        "release title",
        "product title",
        "song name",
        "asset title",
        "item title",
        "item name",
        "titre",
        "titel",
        "titulo",
        "titolo",
    ),
    "artist": (
        "artist",
        "artist name",
        "track artist",
        "performer",
        "artists",
        "release artist",
        "display artist",
        "main artist",
        "artiste",
        "kunstler",
        "artista",
    ),
    "service": (
        "store",
        "service",
        "dsp",
        "platform",
        "store name",
        "service name",
        "retailer",
        "shop",
        "channel",
        "partner",
        "outlet",
        "provider",
        "plateforme",
        "plattform",
        "plataforma",
        "boutique",
        "dienst",
    ),
    "sale_type": (
        "sale type",
        "transaction type",
        "type",
        "sales type",
        "record type",
        "line type",
        "kind",
        "trans type",
        "sale/return",
    ),
    "usage_type": (
        "usage type",
        "delivery type",
        "product type",
        "format",
        "usage",
        "sale format",
        "content type",
    ),
}
# names that sound like money but are not the line's earnings
NOT_AMOUNT = (
    "rate",
    "price",
    "per unit",
    "ppu",
    "exchange",
    "fx",
    "tax",
    "vat",
    "fee",
    "%",
    "percent",
    "share %",
)
GROSS_WORDS = ("gross", "retail", "customer price", "sales amount")
# sale/void flags: values that make a line negative
NEGATIVE_FLAGS = (
    "return",
    "returns",
    "returned",
    "refund",
    "refunded",
    "void",
    "voided",
    "chargeback",
    "charge back",
    "reversal",
    "reversed",
    "credit",
    "credit note",
    "cancel",
    "cancelled",
    "canceled",
    "adjustment-",
    "negative",
)
USAGE_WORDS = {"stream": "stream", "streams": "stream", "streaming": "stream",
               "download": "download", "downloads": "download", "ugc": "ugc",
               "creation": "creation", "physical": "physical", "sync": "sync",
               "performance": "performance"}  # fmt: skip
TOTAL_WORDS = re.compile(r"(?i)^(grand\s+)?(total|totals|sum|summe|gesamt|subtotal|totaal)\b")
# content tests: how much a full match of the content says on its own (no name)
CONTENT_WEIGHT = {"isrc": 0.95, "upc": 0.85, "currency": 0.85, "territory": 0.75,
                  "date": 0.8, "amount": 0.45, "quantity": 0.35, "sale_type": 0.8,
                  "text": 0.0}  # fmt: skip
DATE_FORMS = ("iso", "text", "us", "eu", "month")


@dataclass
class ColumnGuess:
    """What one column was taken for, and why."""

    name: str
    field: str | None = None  # a PARSED field, or usage_period / sale_type
    confidence: float = 0.0
    reasons: list[str] = _default(default_factory=list)
    formats: list[str] = _default(default_factory=list)  # date forms
    span: str = "day"
    negative_values: list[str] = _default(default_factory=list)  # sale/void flags
    usage_map: dict[str, str] = _default(default_factory=dict)

    def comment(self) -> str:
        what = self.field or "not used (only checked for presence)"
        why = "; ".join(self.reasons) or "no name or content match"
        return f"{what} ({self.confidence:.0%}): {why}"


@dataclass
class Inference:
    """The draft spec, as YAML text (with comments) and as a loaded model, and its evidence."""

    spec: FormatSpec
    yaml_text: str
    columns: list[ColumnGuess]
    encoding: str
    delimiter: str
    header_line: int
    preamble: list[str]
    footer: list[str]
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "header_line": self.header_line + 1,
            "preamble_lines": len(self.preamble),
            "footer_lines": len(self.footer),
            "columns": [
                {
                    "name": g.name,
                    "field": g.field,
                    "confidence": round(g.confidence, 2),
                    "reasons": g.reasons,
                }
                for g in self.columns
            ],
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------
# the text: encoding, lines, delimiter, header, footer


def _decode(data: bytes) -> tuple[str, str, str]:
    """(text, the codec read with, the spec's ``encoding``)."""
    try:
        codec = archive.detect_encoding(data[: archive.HEAD_BYTES])
    except FileRejected:
        return data.decode("cp1252", errors="replace"), "cp1252", "cp1252"
    if codec.startswith("utf-16") and len(data) % 2:
        data = data[:-1]  # a sample cut inside a character
    text = data.decode(codec, errors="replace").removeprefix("\ufeff")
    return text, codec, "auto"  # auto: BOM, UTF-16 by its NULs, else UTF-8


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'), [])


def _sniff_delimiter(lines: list[str]) -> tuple[str, int]:
    """The delimiter splitting the most lines into the same number (>1) of fields."""
    best = (0, 0, ",")
    for delim in DELIMITERS:
        widths = Counter(len(_split(ln, delim)) for ln in lines if ln.strip())
        wide = [(n, w) for w, n in widths.items() if w > 1]
        if wide:
            n, w = max(wide)
            best = max(best, (n, w, delim))
    if best[0] == 0:
        raise FileRejected("unknown_format", "no delimiter splits the lines into columns")
    return best[2], best[1]


def _is_figure(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+(]?[\d.,' ]+\)?%?", cell.strip())) and any(
        c.isdigit() for c in cell
    )


def _find_header(rows: list[list[str]], width: int) -> int:
    """The first row of the table's width whose cells are (mostly) words, not figures."""
    for i, row in enumerate(rows[:50]):
        if len(row) != width:
            continue
        cells = [c.strip() for c in row]
        filled = [c for c in cells if c]
        if len(filled) * 2 >= width and not any(_is_figure(c) for c in filled):
            return i
    raise FileRejected("header_not_found", f"no header line of {width} named columns")


# ---------------------------------------------------------------------------------------------
# numbers


def _number_format(values: list[str]) -> tuple[str, str | None]:
    """(decimal mark, thousands separator) of the figures in the sample: the mark a figure
    cannot be read another way ("12,04", "1.234,5", "0.125") decides; "1.204" alone cannot."""
    votes: Counter[str] = Counter()
    for v in values:
        v = v.strip().strip("()-+").replace(" ", "").replace("\u00a0", "")
        last = max(v.rfind(","), v.rfind("."))
        if last < 0:
            continue
        mark, other = v[last], "." if v[last] == "," else ","
        if other in v[:last] or len(v) - last - 1 != 3:
            votes[mark] += 1  # both marks, or not three digits after the last: a decimal
    decimal = "," if votes[","] > votes["."] else "."
    for sep in ("." if decimal == "," else ",", " ", "\u00a0", "'"):
        grouped = re.compile(
            rf"[-+(]?\d{{1,3}}(?:{re.escape(sep)}\d{{3}})+(?:{re.escape(decimal)}\d*)?\)?-?"
        )
        if any(grouped.fullmatch(v.strip()) for v in values):
            return decimal, sep
    return decimal, None


def _as_decimal(text: str, decimal: str, thousands: str | None) -> Decimal | None:
    t = text.strip().replace("\u00a0", "").replace(" ", "")
    if thousands:
        t = t.replace(thousands, "")
    if decimal == ",":
        t = t.replace(",", ".")
    if t.startswith("(") and t.endswith(")"):
        t = "-" + t[1:-1]
    if not re.fullmatch(r"[-+]?\d*\.?\d+-?|[-+]?\d+\.", t):
        return None
    try:
        return Decimal(t.rstrip("-")) * (-1 if t.endswith("-") else 1)
    except InvalidOperation:
        return None


# ---------------------------------------------------------------------------------------------
# columns


def _name_score(header: str, fld: str) -> float:
    key = unicodedata.normalize("NFKD", column_key(header)).encode("ascii", "ignore").decode()
    words = re.sub(r"[_\-./()\[\]]+", " ", key)
    words = " ".join(words.split())
    syn = SYNONYMS.get(fld, ())
    if key in syn or words in syn:
        return 0.95
    for s in syn:
        if len(s) > 2 and re.search(rf"(^| ){re.escape(s)}( |$)", words):
            return 0.7
    return 0.0


def _share(values: list[str], test: Any) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def _date_reading(values: list[str]) -> tuple[float, list[str], str]:
    """(share of values read as dates, the forms that read them, the span one value covers)."""
    if not values:
        return 0.0, [], "day"
    best: tuple[float, list[str], str] = (0.0, [], "day")
    for form in DATE_FORMS:
        share = _share(values, lambda v, f=form: parse_date(v, [f]) is not None)
        if share > best[0] + 1e-9:
            best = (share, [form], "month" if form == "month" else "day")
    if best[1] in (["us"], ["eu"]):
        # day and month both <= 12 in every value: cannot be told apart; a value whose
        # first part is above 12 says day first
        firsts = [int(m[1]) for v in values if (m := re.match(r"\s*(\d{1,2})[/.-]", v))]
        best = (best[0], ["eu"] if any(f > 12 for f in firsts) else ["us"], "day")
    return best


def _guess_column(
    header: str, values: list[str], decimal: str, thousands: str | None
) -> list[tuple[str, float, list[str], ColumnGuess]]:
    """Every field this column could be, with a confidence and the reasons."""
    vals = [v.strip() for v in values if v.strip()]
    out = []
    lowered = column_key(header)

    def add(
        fld: str,
        content: float,
        weight: float,
        why_content: str,
        agree: float | None = None,
        **kw: Any,
    ) -> None:
        name = _name_score(header, fld)
        if fld == "amount" and name and any(w in lowered for w in NOT_AMOUNT):
            name = 0.2
        if fld == "amount" and any(w in lowered for w in GROSS_WORDS):
            name = min(name, 0.6)
        conf = 1 - (1 - name) * (1 - content * weight)
        agree = content if agree is None else agree
        if weight and vals and agree < 0.8:
            conf *= agree  # the values contradict the name
        reasons = []
        if name:
            reasons.append(f"name {header!r} means {fld}")
        if vals and weight:
            reasons.append(f"{content:.0%} of {len(vals)} values {why_content}")
        guess = ColumnGuess(header, fld, conf, reasons, **kw)
        out.append((fld, conf, reasons, guess))

    if not vals:
        for fld in SYNONYMS:
            if fld not in ("isrc", "upc", "currency"):
                add(fld, 0.0, 0.0, "")
        return out
    add("isrc", _share(vals, is_valid_isrc), CONTENT_WEIGHT["isrc"], "are ISRCs")
    add(
        "upc",
        _share(vals, lambda v: v.isdigit() and is_valid_gtin(v)),
        CONTENT_WEIGHT["upc"],
        "are UPC/EAN codes (check digit)",
    )
    add(
        "currency",
        _share(vals, lambda v: len(v) == 3 and is_valid_currency(v)),
        CONTENT_WEIGHT["currency"],
        "are ISO 4217 currency codes",
    )
    # a territory "not given" (N/A, blank, Unknown) says nothing either way
    placed = [v for v in vals if territory_reading(v)[1] != "not_given"]
    territory = _share(
        placed, lambda v: not v.isdigit() and territory_reading(v)[1] is None and len(v) > 1
    )
    add("territory", territory, CONTENT_WEIGHT["territory"], "are countries")
    share, forms, span = _date_reading(vals)
    for fld in ("usage_period", "usage_start", "usage_end"):
        add(fld, share, CONTENT_WEIGHT["date"], f"are dates ({', '.join(forms)})",
            formats=forms, span="month" if fld == "usage_period" else span)  # fmt: skip
    numbers = [_as_decimal(v, decimal, thousands) for v in vals]
    is_num = sum(1 for n in numbers if n is not None) / len(vals)
    whole = _share(
        [v for v, n in zip(vals, numbers, strict=True) if n is not None],
        lambda v: _as_decimal(v, decimal, thousands) == int(_as_decimal(v, decimal, thousands)),  # type: ignore[arg-type]
    )
    fractional = is_num * (1 - whole) if is_num else 0.0
    # money has cents somewhere in a column; whole numbers only are more likely units
    money = is_num * (1.0 if fractional else 0.7)
    add("amount", money, CONTENT_WEIGHT["amount"], "are decimal amounts", agree=is_num)
    if fractional == 0 and is_num:
        add("quantity", is_num, CONTENT_WEIGHT["quantity"], "are whole numbers")
    else:
        add("quantity", is_num * whole, CONTENT_WEIGHT["quantity"], "are whole numbers")
    distinct = sorted(set(vals), key=str.casefold)
    negative = [v for v in distinct if v.casefold() in NEGATIVE_FLAGS]
    small = len(distinct) <= 12 and not is_num
    add(
        "sale_type",
        1.0 if (negative and small) else 0.0,
        CONTENT_WEIGHT["sale_type"],
        f"take a few values, {negative or 'none'} meaning a return or void",
        negative_values=negative,
    )
    usage = {v: USAGE_WORDS[v.casefold()] for v in distinct if v.casefold() in USAGE_WORDS}
    add(
        "usage_type",
        len(usage) / len(distinct) if small and distinct else 0.0,
        CONTENT_WEIGHT["sale_type"] if usage else 0.0,
        "are usage types (stream, download...)",
        usage_map={k: v for k, v in usage.items() if k != v},
    )
    text = 0.0 if is_num > 0.5 else 1.0
    for fld in ("title", "artist", "service"):
        if _name_score(header, fld):
            add(fld, text, 0.0, "")
    return out


def _assign(
    candidates: list[list[tuple[str, float, list[str], ColumnGuess]]], headers: list[str]
) -> list[ColumnGuess]:
    """Each field to its most confident column (at least ``MIN_CONFIDENCE``)."""
    flat = sorted(
        ((conf, -i, fld, g) for i, cands in enumerate(candidates) for fld, conf, _, g in cands),
        key=lambda t: (t[0], t[1]),
        reverse=True,
    )
    chosen: dict[int, ColumnGuess] = {}
    taken: set[str] = set()
    for conf, neg_i, fld, g in flat:
        i = -neg_i
        if conf < MIN_CONFIDENCE or i in chosen or fld in taken:
            continue
        if fld in ("usage_start", "usage_end") and "usage_period" in taken:
            continue
        if fld == "usage_period" and ({"usage_start", "usage_end"} & taken):
            continue
        chosen[i] = g
        taken.add(fld)
    for fld in ("amount", "quantity"):  # no name says it: the most telling figures
        if fld in taken:
            continue
        pool = [
            (conf, -i, g)
            for i, cands in enumerate(candidates)
            for f, conf, _, g in cands
            if f == fld and i not in chosen and conf >= FALLBACK_CONFIDENCE
        ]
        if pool:
            conf, neg_i, g = max(pool, key=lambda t: (t[0], t[1]))
            g.reasons.append(f"the only column that can be the {fld}")
            chosen[-neg_i] = g
            taken.add(fld)
    out = []
    for i, h in enumerate(headers):
        if i in chosen:
            out.append(chosen[i])
        else:
            best = max(candidates[i], key=lambda t: t[1], default=None)
            hint = (
                [f"best guess {best[0]} at {best[1]:.0%}, too low"]
                if best and best[1] > 0.2
                else []
            )
            out.append(ColumnGuess(h, None, 0.0, hint))
    if "usage_end" in taken and "usage_start" not in taken:
        for g in out:  # an end date alone: read it as the usage day
            if g.field == "usage_end":
                g.field = "usage_start"
    return out


# ---------------------------------------------------------------------------------------------
# the spec


_YAML_WORDS = {"yes", "no", "on", "off", "true", "false", "null", "none", "y", "n", "~"}


def _q(value: str) -> str:
    """A YAML scalar that reads back as ``value`` in block and flow context alike."""
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9 _]*", value) and value.lower() not in _YAML_WORDS:
        return value.strip() if value == value.strip() else json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def _file_name_regex(filename: str) -> str:
    base = re.split(r"[\\/]", filename)[-1]
    parts = re.split(r"(\d+)", base)
    out = "".join(rf"\d{{{len(p)}}}" if p.isdigit() else re.escape(p) for p in parts)
    return f"^{out}$"


def _period_in_name(filename: str) -> tuple[str, list[str]] | None:
    """A month in the file name: (regex with the month as group 1, its formats)."""
    base = re.split(r"[\\/]", filename)[-1]
    for rx, fmt in (
        (r"(?<!\d)((?:19|20)\d{2}-(?:0[1-9]|1[0-2]))(?!\d)", "%Y-%m"),
        (r"(?<!\d)((?:19|20)\d{2}_(?:0[1-9]|1[0-2]))(?!\d)", "%Y_%m"),
        (r"(?<!\d)((?:19|20)\d{2}(?:0[1-9]|1[0-2]))(?!\d)", "%Y%m"),
    ):
        if re.search(rx, base):
            return rx, [fmt]
    return None


def _currency_in(texts: list[str]) -> str | None:
    """An ISO 4217 code written in the preamble or a header ("Revenue (EUR)")."""
    for text in texts:
        for token in re.findall(r"(?<![A-Za-z])([A-Z]{3})(?![A-Za-z])", text):
            if is_valid_currency(token) and token not in ("ISR", "UPC", "EAN", "ALL"):
                return token
    return None


def _control_total(cells: list[str], guesses: list[ColumnGuess], delimiter: str) -> str | None:
    """A regex reading the amount off the total line, when it stands in the amount column."""
    idx = next((i for i, g in enumerate(guesses) if g.field == "amount"), None)
    if idx is None or idx >= len(cells) or not _is_figure(cells[idx]):
        return None
    d = re.escape(delimiter)
    return rf'^(?:(?:"[^"]*"|[^{d}"]*){d}){{{idx}}}"?\s*([-+(]?[\d.,\u00a0 \']*\d\)?)'


def infer_bytes(data: bytes, filename: str, *, name: str, currency: str | None = None) -> Inference:
    """The draft spec for a sample report (its first ``SAMPLE_BYTES``), named ``name``.

    ``currency`` is the currency to assume when neither a column, the header nor a preamble
    line names one. Raises ``FileRejected`` when the text has no columns or no header."""
    text, codec, encoding = _decode(data[:SAMPLE_BYTES])
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(data) > SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # cut by the sample's end
    while lines and not lines[-1].strip():
        lines.pop()
    if not any(ln.strip() for ln in lines):
        raise FileRejected("empty_file", f"{filename} holds no text")
    delimiter, width = _sniff_delimiter(lines[:2000])
    rows = [_split(ln, delimiter) if ln.strip() else [] for ln in lines]
    header_idx = _find_header(rows, width)
    headers = [h.strip(" \t\ufeff\u00a0") for h in rows[header_idx]]
    body = list(range(header_idx + 1, len(rows)))
    # the footer: trailing lines of another width, or from a "Total" line to the end
    end = len(rows)
    while end > header_idx + 1 and len(rows[end - 1]) not in (width, 0):
        end -= 1
    total_at = next(
        (
            i
            for i in range(max(header_idx + 1, end - 5), end)
            if any(TOTAL_WORDS.match(c.strip()) for c in rows[i])
        ),
        None,
    )
    footer_start = total_at if total_at is not None else end
    data_rows = [rows[i] for i in body if i < footer_start and len(rows[i]) == width]
    footer = [lines[i] for i in range(footer_start, len(rows)) if lines[i].strip()]
    columns = [[r[j] for r in data_rows] for j in range(width)]
    notes: list[str] = []

    numeric_like = [
        v for col in columns for v in col if re.fullmatch(r"\(?[-+]?[\d.,' ]*\d[\d.,' ]*\)?-?", v)
    ]
    decimal, thousands = _number_format(numeric_like)
    candidates = [
        _guess_column(h, col, decimal, thousands) for h, col in zip(headers, columns, strict=True)
    ]
    guesses = _assign(candidates, headers)
    by_field = {g.field: g for g in guesses if g.field}

    # the spec, as a mapping and as commented YAML
    out: list[str] = [
        f"# Draft spec inferred by `tunemantra formats infer` from {filename!r}.",
        "# Review every guess (the comment beside each column says what was read and how sure",
        "# it is), then `tunemantra formats add` it. See docs/adding-a-format.md.",
        f"name: {name}",
        f"description: {_q(f'Inferred from the sample {filename} (review before use).')}",
        "kind: delimited",
        f"file_name: {_q(_file_name_regex(filename))}   # the sample's name, digits as any digits",
        f"encoding: {encoding}   # read as {codec}",
        f"delimiter: {DELIMITER_WORDS[delimiter]}",
    ]
    if header_idx:
        preamble = list(lines[:header_idx])
        out.append(
            f"header: auto   # the header was line {header_idx + 1}, after "
            f"{header_idx} preamble line(s); auto finds it by the fingerprint"
        )
        if header_idx >= 20:
            out.append(f"header_search_lines: {header_idx + 10}")
    else:
        preamble = []
        out.append("header: 0")
    if footer:
        first = _split(footer[0], delimiter)
        word = next((c.strip() for c in first if TOTAL_WORDS.match(c.strip())), None)
        if word is not None:
            d, cell = re.escape(delimiter), re.escape(word)
            pattern = rf'(?i)(^|{d})\s*"?{cell}"?\s*({d}|$)'
            out.append(f"footer: {{pattern: {_q(pattern)}}}   # {len(footer)} closing line(s)")
            control = _control_total(first, guesses, delimiter)
            if control is not None:
                out.append(
                    f"control_totals: {{amount: {_q(control)}}}   # the total line's amount: "
                    "ingestion checks the lines sum to it"
                )
        else:
            out.append(f"footer: {{lines: {len(footer)}}}   # closing lines that are not data")
    parens = any(re.fullmatch(r"\(\s*[\d.,' ]*\d\s*\)", v.strip()) for v in numeric_like)
    if decimal != "." or thousands or parens:
        nf = f"decimal: {_q(decimal)}" + (f", thousands: {_q(thousands)}" if thousands else "")
        nf += ", parentheses_negative: true" if parens else ""
        out.append(f"number_format: {{{nf}}}")
    mapped = [g.name for g in guesses if g.field]
    fingerprint = mapped[:6] if len(mapped) >= 2 else headers[:6]
    out.append(f"fingerprint: [{', '.join(_q(h) for h in fingerprint)}]")
    out.append("columns:")
    ids: dict[str, str] = {}
    seen: set[str] = set()
    for i, g in enumerate(guesses):
        if not g.name or column_key(g.name) in seen:
            # an unnamed column (a trailing delimiter) or a repeated name: the header says
            # nothing a spec can point at; ingestion reports it as drift
            notes.append(
                f"column {i + 1}: {'unnamed' if not g.name else 'repeated name'}, left out"
            )
            continue
        seen.add(column_key(g.name))
        entry: dict[str, Any] = {"name": g.name}
        if g.field in ("isrc", "upc"):
            ids[g.field] = g.name
        elif g.field in ("usage_period", "sale_type"):
            pass  # referenced by date_rules / sign_rules
        elif g.field == "currency":
            pass  # currency: {column: ...}
        elif g.field in ("usage_start", "usage_end"):
            pass  # date_rules
        elif g.field:
            entry["field"] = g.field
        if g.field in ("amount", "territory"):
            entry["required"] = True
        flow = (
            "{"
            + ", ".join(
                f"{k}: {_q(v) if isinstance(v, str) else str(v).lower()}" for k, v in entry.items()
            )
            + "}"
        )
        out.append(f"  - {flow}   # {g.comment()}")
    if ids:
        out.append(
            "identifiers: {" + ", ".join(f"{k}: {_q(v)}" for k, v in sorted(ids.items())) + "}"
        )
    # currency
    if "currency" in by_field:
        out.append(f"currency: {{column: {_q(by_field['currency'].name)}}}")
    else:
        found = _currency_in([*preamble, *headers])
        if currency:
            out.append(f"currency: {{value: {currency.upper()}}}   # given with --currency")
        elif found:
            out.append(f"currency: {{value: {found}}}   # written in the header or preamble")
        else:
            out.append("currency: {value: USD}   # GUESS: the file names no currency; check it")
            notes.append("no currency in the file: USD assumed (pass --currency)")
    # dates
    rules: list[str] = []
    for fld in ("usage_period", "usage_start", "usage_end"):
        dated = by_field.get(fld)
        if dated is not None:
            forms = ", ".join(dated.formats)
            rules.append(
                f"  {fld}: {{column: {_q(dated.name)}, format: [{forms}], span: {dated.span}}}"
            )
    if not rules:
        in_name = _period_in_name(filename)
        if in_name:
            rx, fmt = in_name
            rules.append(
                f"  usage_period: {{filename: {_q(rx)}, format: [{_q(fmt[0])}], span: month}}"
                "   # the month in the file name"
            )
        else:
            notes.append("no usage dates found: ingest with --period YYYY-MM")
    if rules:
        out.append("date_rules:")
        out += rules
    sale = by_field.get("sale_type")
    if sale is not None and sale.negative_values:
        values = ", ".join(_q(v) for v in sale.negative_values)
        out += [
            "sign_rules:   # returns and voids count against the line's units and money",
            f"  - when: {{column: {_q(sale.name)}, in: [{values}]}}",
            "    action: negative",
            "    fields: [quantity, amount]",
        ]
    usage = by_field.get("usage_type")
    if usage is not None and usage.usage_map:
        pairs = ", ".join(f"{_q(k)}: {v}" for k, v in sorted(usage.usage_map.items()))
        out.append(f"usage_type_map: {{{pairs}}}")
    amount = by_field.get("amount")
    if amount is not None:
        gross = any(w in column_key(amount.name) for w in GROSS_WORDS)
        out.append(
            f"constants: {{gross_net: {'gross' if gross else 'net'}}}   # from the name "
            f"{amount.name!r}"
        )
    else:
        notes.append("no amount column recognised: map one by hand")
    if "quantity" not in by_field:
        notes.append("no quantity column recognised: every line needs units")
    yaml_text = "\n".join(out) + "\n"
    try:
        spec = FormatSpec.model_validate(yaml.safe_load(yaml_text))
    except ValueError as exc:
        raise FileRejected("infer_failed", f"the draft spec does not hold: {exc}") from exc
    return Inference(
        spec=spec,
        yaml_text=yaml_text,
        columns=guesses,
        encoding=codec,
        delimiter=DELIMITER_WORDS[delimiter],
        header_line=header_idx,
        preamble=preamble,
        footer=footer,
        notes=notes,
    )


def spec_name(stem: str) -> str:
    """A spec name (``^[a-z][a-z0-9_]*$``) from a file stem."""
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    return name if re.match(r"^[a-z]", name) else f"format_{name}".rstrip("_")


__all__ = ["ColumnGuess", "Inference", "infer_bytes", "spec_name"]
