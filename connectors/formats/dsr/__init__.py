"""DDEX DSR flat-file parser (Digital Sales Report Message Suite, tab-separated flat files).

One local, already decompressed DSR file -> one ``ParsedFile`` with one PARSED line per
sales/usage record. Supported (``LAYOUTS``):

* ``BasicAudioProfile`` 1.1 and 1.2, multi-record block variant: ``HEAD``, summary records
  ``SY01``/``SY02``/``SY04``/``SY05`` (1.2 also ``SY06``), blocks of ``RE01``/``RE02`` (releases),
  ``AS01``/``AS02`` (resources), ``MW01`` (works, read for block counts only), ``SU01``
  (downloads: Usages - Returns) and ``SU02`` (streams: NumberOfStreams), ``FOOT``.
* ``BasicAudioProfile`` 1.2 single-record variant: ``HEAD`` (``SRHE``), summaries, ``SR01``
  (downloads) / ``SR02`` (streams) carrying release, resource and usage in one line, ``SRFO``.
* ``UgcProfile`` 1.1 (= 1.1.1) and 1.2, block variant: ``SU03`` (usages and the record's own
  NetRevenue) with its resource ``AS01``/``AS02`` in the block; a ``SU03`` without a
  SummaryRecordId takes the one of the ``LI01`` records that follow it; ``RU01``/``RU02``
  (UGC video lists) and ``MW01`` are read for block counts only. ``UgcProfile`` 1.2
  single-record variant: ``SR03`` (own NetRevenue when given) and ``SR06``.

Record types are written with their record version (``SY02.02``, ``AS01.01``); a record whose
version differs from the profile's (``SY02.01`` in a 1.2 file) is read with the profile's layout
and reported as drift. An unknown record type is a row error.

**Lines.** ``line_no`` is the physical, 1-based line number; ``raw_hash`` is the SHA-256 of the
line's text as written (UTF-8, without its ``\\n`` / ``\\r\\n`` terminator). FOOT
``NumberOfLinesInFile`` (SRFO ``NumberOfLinesInReport``) counts *every* line of the file: HEAD,
summary, block and footer records, plus empty lines (DSR Part 1, clause 7.6) and ``#`` lines
(records to be ignored, clause 7.7: the comment lines naming cells). It is checked against the
number of physical lines; ``NumberOfSummaryRecords`` against the ``SY`` records and
``NumberOfBlocksInFile`` against the distinct BlockIds. Any mismatch rejects the file
(``foot_mismatch``); a file without HEAD or footer is rejected (``missing_head`` /
``missing_foot``: truncated).

**Amounts.** The revenue sits on the summary records. Each summary's revenue base
``R`` (AllocatedNetRevenue when the record carries one, i.e. the recipient's share in SY02/SY05,
else NetRevenue; currency CurrencyOfReporting) is spread over the usage lines that point to it,
pro rata to their units, in integer units of 10^-12 (the scale of ``schemas.revenue.AMOUNT``) by
the largest-remainder method: every line gets ``floor(R * w / D)``, the residue goes one unit at a
time to the largest remainders (ties: the earlier line), so a summary's lines sum *exactly* to
``R`` and no line is more than one unit off its exact share. ``D`` is the sum of the units of the
summary's lines in the file (lines rejected for another reason keep their share out, so the gap
shows in reconciliation). Multi-file reports (``x of y`` with y > 1) repeat the same summary
records in every file (Part 1, clause 6.3), so there ``D`` is the summary's declared usage count
(AllocatedUsages, else Usages) and each file carries its own share; ``declared_totals`` is then
the file's share and ``extra["report_declared_totals"]`` the report's. Usage records that carry
their own revenue (UGC ``SU03``, ``SR03``) keep it.

Other columns: ``territory``, ``commercial_model`` (``COMMERCIAL_MODELS``) and ``currency`` come
from the summary record; ``usage_type`` from the record type (SU01/SR01 download, SU02/SR02
stream, SU03/SR03/SR06 ugc); ``quantity`` is the line's units; ``service`` is HEAD SenderName;
identifiers come from the line's RE01/RE02 and AS01/AS02 records (block variant) or the record
itself (single-record variant). ``FileMeta.extra`` carries the profile, the summaries (revenue,
declared and reported usages), usage-count mismatches and the line counts.

**Speed.** No Python loop per line: Polars' line reader (raw text, for the hash) and CSV reader
(only the cells usage records need, counts straight to Int64) run over the file in one query;
references are resolved by integer joins on 64-bit hashes of (BlockId, reference), verified by a
second hash; the allocation is integer arithmetic (Int64, Int128 when the magnitudes need it)
per summary; SHA-256 runs in the polars-hash plugin. Identifier columns are gathered once,
into the output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mmap
import re
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from connectors.formats import archive
from connectors.formats.base import (
    FileMeta,
    FileRejected,
    ParsedFile,
    RowError,
    register,
    sha256_hex,
)
from schemas.revenue import AMOUNT, PARSED

FORMAT: Final = "dsr"
SCALE: Final = 12  # decimal places of schemas.revenue.AMOUNT
UNIT: Final = 10**SCALE
TAIL_BYTES: Final = 64 * 1024

FILENAME_RE: Final = re.compile(
    r"^DSR_(?P<recipient>[^_]+)_(?P<sender>[^_]+)_(?P<service>[^_]+)_(?P<period>[^_]+)_"
    r"(?P<territory>[^_]*)_(?P<x>\d+)of(?P<y>\d+)_(?P<created>\d{8}T\d{6})\.tsv(?:\.gz)?$",
    re.IGNORECASE,
)
_INT_RE: Final = r"^[+-]?\d+$"
_DEC_RE: Final = r"^[+-]?(?:\d+\.?\d*|\.\d+)$"
_LONG_FRACTION_RE: Final = r"\.\d{12}\d*[1-9]$"  # a nonzero digit after the 12th place
_ISO_DATE_RE: Final = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")

COMMERCIAL_MODELS: Final[dict[str, str]] = {
    "AdvertisementSupportedModel": "ad_supported",
    "SubscriptionModel": "subscription",
    "PayAsYouGoModel": "purchase",
    "FreeOfChargeModel": "free",
}
"""DDEX CommercialModelType -> canonical ``commercial_model``; any other value is ``other``."""


# --------------------------------------------------------------------------------------------
# record layouts (cell positions, 0-based, from record-specs.tsv of each profile and version)


@dataclass(frozen=True)
class Layout:
    code: str  # record type as written in the file, e.g. "SY02.02"
    kind: str  # head, foot, srfo, summary, release, subrelease, resource, usage, licence, other
    cells: Mapping[str, int]  # cell name -> 0-based position in the line
    usage_type: str | None = None
    units: tuple[str, ...] = ()  # (count,) or (count, returns): units = count - returns
    units_decimal: bool = False  # the count is an xs:decimal (rounded half-even to a whole unit)
    own_amount: str | None = None  # a revenue cell on the usage record itself
    single: bool = False  # single-record variant (carries release and resource itself)
    count_optional: bool = False  # the count cell may be empty (UGC 1.1 SU03.01)

    @property
    def base(self) -> str:
        return self.code[:4]


_HEAD = {
    "MessageVersion": 1, "Profile": 2, "ProfileVersion": 3, "MessageId": 4,
    "MessageCreatedDateTime": 5, "FileNumber": 6, "NumberOfFiles": 7, "UsageStartDate": 8,
    "UsageEndDate": 9, "SenderPartyId": 10, "SenderName": 11, "ServiceDescription": 12,
    "RecipientPartyId": 13, "RecipientName": 14,
}  # fmt: skip
_FOOT = {
    "NumberOfLinesInFile": 1, "NumberOfLinesInReport": 2, "NumberOfSummaryRecords": 3,
    "NumberOfBlocksInFile": 4, "NumberOfBlocksInReport": 5,
}  # fmt: skip
_SRFO = {"NumberOfLinesInReport": 1, "NumberOfSummaryRecords": 2}
_SY = {"SummaryRecordId": 1, "CommercialModel": 4, "UseType": 5, "Territory": 6}
_SY09 = {"SummaryRecordId": 1, "CommercialModel": 2, "UseType": 3, "Territory": 4}
_RE01 = {
    "BlockId": 1, "ReleaseReference": 2, "DspReleaseId": 3, "ProprietaryReleaseId": 4,
    "ICPN": 6, "DisplayArtistName": 7, "Title": 9,
}  # fmt: skip
_RE02 = {"BlockId": 1, "ReleaseReference": 2, "DspSubReleaseId": 3, "ProprietarySubReleaseId": 4}
_AS = {
    "BlockId": 1, "ResourceReference": 2, "DspResourceId": 3, "ISRC": 4, "Title": 5,
    "DisplayArtistName": 7,
}  # fmt: skip
_SU01 = {
    "BlockId": 1, "SummaryRecordId": 2, "TransactedRelease": 4, "TransactedResource": 5,
    "Usages": 8, "Returns": 9,
}  # fmt: skip
_SU02 = {
    "BlockId": 1, "SummaryRecordId": 2, "TransactedRelease": 4, "TransactedResource": 5,
    "NumberOfStreams": 7,
}  # fmt: skip
_SR_RES = {
    "SummaryRecordId": 1, "DspResourceId": 2, "ISRC": 3, "ResourceTitle": 4,
    "ResourceDisplayArtistName": 6,
}  # fmt: skip
_SR_REL_BA = {
    "DspReleaseId": 20, "ProprietaryReleaseId": 21, "ICPN": 23, "ReleaseDisplayArtistName": 24,
    "ReleaseTitle": 26,
}  # fmt: skip
_SR_REL_UGC = {
    "DspReleaseId": 21, "ProprietaryReleaseId": 22, "ICPN": 24, "ReleaseDisplayArtistName": 25,
    "ReleaseTitle": 27,
}  # fmt: skip
_BLOCK_ONLY = {"BlockId": 1}


def _sy(code: str, **cells: int) -> Layout:
    base = _SY09 if code == "SY09" else _SY
    return Layout(code, "summary", {**base, **cells})


def _table(*layouts: Layout) -> dict[str, Layout]:
    return {layout.code: layout for layout in layouts}


_COMMON_HEAD = (Layout("HEAD", "head", _HEAD),)
_SU01_L = Layout("SU01", "usage", _SU01, "download", ("Usages", "Returns"))
_SU02_L = Layout("SU02", "usage", _SU02, "stream", ("NumberOfStreams",))

LAYOUTS: Final[dict[tuple[str, str], dict[str, Layout]]] = {
    ("BasicAudioProfile", "1.1"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        _sy("SY01", Usages=8, Currency=10, NetRevenue=11),
        _sy("SY02.01", Usages=8, Currency=10, NetRevenue=11, AllocatedUsages=14,
            AllocatedNetRevenue=16),
        _sy("SY04", UsagesInReportingPeriod=13, Currency=14, NetRevenue=18),
        _sy("SY05", TotalUsages=11, AllocatedUsages=12, AllocatedNetRevenue=15),
        Layout("RE01", "release", _RE01),
        Layout("RE02", "subrelease", _RE02),
        Layout("AS01", "resource", _AS),
        Layout("AS02.01", "resource", _AS),
        Layout("MW01.01", "other", _BLOCK_ONLY),
        _SU01_L,
        _SU02_L,
    ),
    ("BasicAudioProfile", "1.2"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        Layout("SRFO", "srfo", _SRFO),
        _sy("SY01.01", Usages=8, CurrencyOfReporting=10, NetRevenue=11, CurrencyOfTransaction=13),
        _sy("SY02.02", Usages=8, CurrencyOfReporting=10, NetRevenue=11, AllocatedUsages=14,
            AllocatedNetRevenue=16, CurrencyOfTransaction=19),
        _sy("SY04.01", UsagesInReportingPeriod=13, CurrencyOfReporting=14,
            CurrencyOfTransaction=15, NetRevenue=18),
        _sy("SY05.02", TotalUsages=11, AllocatedUsages=12, AllocatedNetRevenue=14,
            CurrencyOfReporting=17, CurrencyOfTransaction=18),
        _sy("SY06.02", Usages=8, CurrencyOfReporting=10, NetRevenue=12, CurrencyOfTransaction=15),
        Layout("RE01", "release", _RE01),
        Layout("RE02", "subrelease", _RE02),
        Layout("AS01.01", "resource", _AS),
        Layout("AS02.02", "resource", _AS),
        Layout("MW01.01", "other", _BLOCK_ONLY),
        _SU01_L,
        _SU02_L,
        Layout("SR01", "usage", {**_SR_RES, **_SR_REL_BA, "Downloads": 36, "Returns": 37},
               "download", ("Downloads", "Returns"), single=True),
        Layout("SR02", "usage", {**_SR_RES, **_SR_REL_BA, "NumberOfStreams": 34}, "stream",
               ("NumberOfStreams",), units_decimal=True, single=True),
    ),
    ("UgcProfile", "1.1.1"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        _sy("SY02.01", Usages=8, Currency=10, NetRevenue=11, AllocatedUsages=14,
            AllocatedNetRevenue=16),
        _sy("SY04", UsagesInReportingPeriod=13, Currency=14, NetRevenue=18),
        _sy("SY05", TotalUsages=11, AllocatedUsages=12, AllocatedNetRevenue=15),
        Layout("AS01", "resource", _AS),
        Layout("AS02.01", "resource", _AS),
        Layout("MW01.01", "other", _BLOCK_ONLY),
        Layout("RU01", "other", _BLOCK_ONLY),
        Layout("RU02", "other", _BLOCK_ONLY),
        Layout("SU03.01", "usage",
               {"BlockId": 1, "SummaryRecordId": 3, "DspReleaseId": 4, "Usages": 5,
                "NetRevenue": 6}, "ugc", ("Usages",), own_amount="NetRevenue",
               count_optional=True),
        Layout("LI01.01", "licence", {"BlockId": 1, "SummaryRecordId": 2}),
    ),
    ("UgcProfile", "1.2"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        Layout("SRFO", "srfo", _SRFO),
        _sy("SY01.01", Usages=8, CurrencyOfReporting=10, NetRevenue=11, CurrencyOfTransaction=13),
        _sy("SY02.02", Usages=8, CurrencyOfReporting=10, NetRevenue=11, AllocatedUsages=14,
            AllocatedNetRevenue=16, CurrencyOfTransaction=19),
        _sy("SY04.01", UsagesInReportingPeriod=13, CurrencyOfReporting=14,
            CurrencyOfTransaction=15, NetRevenue=18),
        _sy("SY05.02", TotalUsages=11, AllocatedUsages=12, AllocatedNetRevenue=14,
            CurrencyOfReporting=17, CurrencyOfTransaction=18),
        _sy("SY09", TotalUsages=10, AllocatedUsages=11, NetRevenue=12, CurrencyOfReporting=15,
            CurrencyOfTransaction=16),
        Layout("AS01.01", "resource", _AS),
        Layout("AS02.02", "resource", _AS),
        Layout("MW01.01", "other", _BLOCK_ONLY),
        Layout("RU01.01", "other", _BLOCK_ONLY),
        Layout("RU02.01", "other", _BLOCK_ONLY),
        Layout("SU03.02", "usage",
               {"BlockId": 1, "SummaryRecordId": 3, "DspResourceId": 4, "Usages": 5,
                "NetRevenue": 6}, "ugc", ("Usages",), units_decimal=True,
               own_amount="NetRevenue"),
        Layout("LI01.02", "licence", {"BlockId": 1, "SummaryRecordId": 2}),
        Layout("SR03", "usage", {**_SR_RES, **_SR_REL_UGC, "Usages": 32, "NetRevenue": 33},
               "ugc", ("Usages",), units_decimal=True, own_amount="NetRevenue", single=True),
        Layout("SR06", "usage", {**_SR_RES, "Usages": 13}, "ugc", ("Usages",),
               units_decimal=True, single=True),
    ),
}  # fmt: skip
"""(Profile, ProfileVersion) -> record type as written -> layout."""

VERSION_ALIASES: Final[dict[tuple[str, str], str]] = {("UgcProfile", "1.1"): "1.1.1"}
SUPPORTED: Final = ", ".join(f"{p} {v}" for p, v in LAYOUTS)


# --------------------------------------------------------------------------------------------
# small helpers


def _basename(name: str) -> str:
    return re.split(r"[\\/]", name)[-1]


def _first_record(text: str, *, last: bool = False) -> tuple[int, list[str]] | None:
    """(index in ``text.split('\\n')``, cells) of the first (or last) data line in ``text``."""
    lines = text.split("\n")
    order: Iterable[int] = range(len(lines) - 1, -1, -1) if last else range(len(lines))
    for i in order:
        line = lines[i].rstrip("\r").lstrip("\ufeff")
        if line.strip() and not line.startswith("#"):
            return i, line.split("\t")
    return None


def _cell(cells: list[str], layout: Layout, name: str) -> str | None:
    pos = layout.cells.get(name)
    if pos is None or pos >= len(cells):
        return None
    value = cells[pos].strip()
    return value or None


def iso_period(text: str, *, end: bool) -> dt.date:
    """A DDEX ``ddex_IsoDate`` (YYYY[-MM[-DD]]) as a date: its first day, or last if ``end``."""
    m = _ISO_DATE_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a date (YYYY[-MM[-DD]])")
    year, month, day = int(m[1]), m[2], m[3]
    if month is None:
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    if day is None:
        first = dt.date(year, int(month), 1)
        if not end:
            return first
        nxt = dt.date(year + (first.month == 12), first.month % 12 + 1, 1)
        return nxt - dt.timedelta(days=1)
    return dt.date(year, int(month), int(day))


def _decimal_units(value: str) -> int:
    """xs:decimal text -> whole units, half-even."""
    return int(Decimal(value).to_integral_value(rounding=ROUND_HALF_EVEN))


def _scaled(value: str) -> int:
    """xs:decimal text -> integer units of 10^-12, half-even (no float on the way)."""
    return int((Decimal(value) * UNIT).to_integral_value(rounding=ROUND_HALF_EVEN))


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half-even, ``den > 0``."""
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q


def _money(units: int) -> Decimal:
    return Decimal(units).scaleb(-SCALE)


def _empty_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.len_bytes() == 0).then(None).otherwise(expr)


# --------------------------------------------------------------------------------------------
# the parser

KINDS: Final = (
    "unknown", "blank", "comment", "head", "foot", "srfo", "summary", "release", "subrelease",
    "resource", "usage", "licence", "other",
)  # fmt: skip
_KIND_ID: Final = {name: i for i, name in enumerate(KINDS)}
_BLOCK_KINDS: Final = ("release", "subrelease", "resource", "licence", "other")


class DsrParser:
    """``Parser`` for DDEX DSR flat files (see the module docstring)."""

    name = FORMAT

    def sniff(self, filename: str, head: bytes) -> float:
        score = 0.6 if FILENAME_RE.match(_basename(filename)) else 0.0
        text = head.decode("utf-8", errors="replace")
        if len(head) == archive.HEAD_BYTES and "\n" in text:
            text = text[: text.rindex("\n")]  # drop a partial last line
        first = _first_record(text)
        if first is not None and first[1][0] in ("HEAD", "SRHE"):
            cells = first[1]
            profiled = len(cells) > 3 and (cells[1].startswith("dsrf/") or "Profile" in cells[2])
            score += 0.9 if profiled else 0.4
        return min(score, 1.0)

    def parse(self, path: Path, filename: str) -> ParsedFile:
        return _Run(path, filename).parse()

    def parse_batches(
        self, path: Path, filename: str, *, batch_bytes: int | None = None
    ) -> Iterator[ParsedFile]:
        """The file's usage lines in pieces of about ``batch_bytes`` of text (see
        ``_Run.parse_batches``); a file smaller than about 1.5 pieces is parsed whole."""
        if batch_bytes is None or path.stat().st_size < batch_bytes + batch_bytes // 2:
            yield self.parse(path, filename)
            return
        yield from self._batches(path, filename, batch_bytes)

    def _batches(self, path: Path, filename: str, batch_bytes: int) -> Iterator[ParsedFile]:
        """Always in pieces (``parse_batches`` parses small files whole)."""
        return _Run(path, filename).parse_batches(batch_bytes)


@dataclass
class _Summary:
    index: int
    sid: str
    line: int
    code: str
    territory: str | None
    commercial_model: str | None
    currency: str | None  # CurrencyOfReporting (1.1: Currency)
    currency_tx: str | None
    revenue: int | None  # revenue base in 10^-12 units
    revenue_cell: str | None  # which cell it came from
    declared_usages: int | None  # AllocatedUsages, else Usages / TotalUsages / UsagesInReporting
    ok: bool = True


@dataclass
class _Parts:
    kinds: dict[str, pl.DataFrame]  # every kind but the usage records
    usage: pl.DataFrame | None  # the usage records' cells
    usage_codes: list[str]
    first: int  # first and last data line (not blank, not a comment)
    last: int
    blocks: int  # distinct BlockIds
    lean: pl.DataFrame | None = None  # the usage lines, parsed (see ``_Run._usage``)
    until: int | None = None  # chunked: the last line of the current chunk


@dataclass
class _Spilled:
    """One piece after the first pass: its lean lines on disk, identifier expressions, flags."""

    path: Path
    idents: dict[str, pl.Expr]
    flags: pl.DataFrame


@dataclass
class _Run:
    path: Path
    filename: str
    errors: list[RowError] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    resolved: dict[str, Layout] = field(default_factory=dict)  # record type as written -> layout
    profile_key: tuple[str, str] = ("", "")
    period: tuple[dt.date, dt.date] = (dt.date.min, dt.date.min)
    service: str | None = None
    multi: bool = False  # part of a multi-file report
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # resources, releases
    lock: threading.Lock = field(default_factory=threading.Lock)  # ``extra`` from the workers

    # ----------------------------------------------------------------------------------------
    def parse(self) -> ParsedFile:
        name = self.filename
        if self.path.stat().st_size == 0:
            raise FileRejected("empty_file", f"{name} is empty")
        archive.check_line_length(self.path)
        first = _first_record(self._read_text(archive.read_head(self.path)))
        if first is None or first[1][0] not in ("HEAD", "SRHE"):
            what = "no data line" if first is None else f"a {first[1][0][:12]!r} record"
            raise FileRejected(
                "missing_head", f"{name} does not start with a HEAD record (found {what})"
            )
        head_cells = first[1]
        profile, version, layouts = self._profile(head_cells)
        self.profile_key = (profile, version)
        footer_code = self._footer_code()
        variant = "single" if footer_code == "SRFO" else "block"
        meta = self._head(head_cells, layouts["HEAD"], profile, version, variant)
        usage_layouts = [
            lay
            for lay in layouts.values()
            if lay.kind == "usage" and lay.single == (variant == "single")
        ]
        counts = {lay.cells[name] for lay in usage_layouts for name in lay.units}
        texts = {
            pos for lay in usage_layouts for name, pos in lay.cells.items() if name not in lay.units
        }
        usage_bases = sorted({lay.base for lay in layouts.values() if lay.kind == "usage"})
        usage_rows, rest, n_lines = self._read(
            sorted(texts | counts), sorted(counts - texts), usage_bases
        )
        parts = self._partition(usage_rows, rest, layouts, variant)
        del usage_rows, rest
        kinds = parts.kinds
        self._structure(parts, n_lines)
        self._unknown_records(kinds.get("unknown"))
        summaries = self._summaries(kinds.get("summary"))
        blocks = parts.blocks
        self._check_footer(kinds, layouts, footer_code, n_lines, len(summaries), blocks, meta)

        lean, idents = self._usage(parts)
        meta.extra.update(
            {
                "lines_in_file": n_lines,
                "comment_lines": _height(kinds.get("comment")),
                "blank_lines": _height(kinds.get("blank")),
                "summary_records": len(summaries),
                "blocks": blocks,
                "usage_records": lean.height,
            }
        )
        # only the lean usage frame is needed from here: let the rest go before the output
        # (the largest allocation) is built
        parts.lean, parts.kinds = lean, {}
        del lean, kinds
        lines = self._lines(parts, idents, summaries, meta)
        self.errors.sort(key=lambda e: (e.row or 0, e.field or ""))
        meta.extra.update(self.extra)
        return ParsedFile(lines=lines, meta=meta, errors=self.errors, drift=self.drift)

    # ----------------------------------------------------------------------------------------
    # chunked parsing (bounded memory)

    def parse_batches(self, batch_bytes: int) -> Iterator[ParsedFile]:
        """The same lines, amounts and errors as ``parse``, in pieces, in bounded memory:

        1. the records other than usage records (HEAD, summaries, the blocks' release and
           resource records, FOOT: about a tenth of a file) are read whole by the line reader
           alone, and checked as ``parse`` checks them (structure, FOOT counts, summaries);
           a FOOT mismatch is found here, before any piece is handed out;
        2. the usage records are parsed in pieces of about ``batch_bytes`` (cut just before a
           usage record, so a UGC SU03 and its LI01 records stay together), each resolved
           against the whole file's releases and resources, hashed, and spilled to an Arrow
           file in a temporary folder; only what the allocation needs stays in memory
           (summary index, units, two flags: 14 bytes a line);
        3. the file-wide allocation plan and largest-remainder units are computed once;
        4. each spilled piece becomes PARSED lines with its slice of the allocation.
        The last piece's ``meta.extra["final"]`` is True and carries the file's meta.
        """
        name = self.filename
        if self.path.stat().st_size == 0:
            raise FileRejected("empty_file", f"{name} is empty")
        archive.check_line_length(self.path)
        first = _first_record(self._read_text(archive.read_head(self.path)))
        if first is None or first[1][0] not in ("HEAD", "SRHE"):
            what = "no data line" if first is None else f"a {first[1][0][:12]!r} record"
            raise FileRejected(
                "missing_head", f"{name} does not start with a HEAD record (found {what})"
            )
        profile, version, layouts = self._profile(first[1])
        self.profile_key = (profile, version)
        footer_code = self._footer_code()
        variant = "single" if footer_code == "SRFO" else "block"
        meta = self._head(first[1], layouts["HEAD"], profile, version, variant)
        usage_layouts = [
            lay
            for lay in layouts.values()
            if lay.kind == "usage" and lay.single == (variant == "single")
        ]
        counts = {lay.cells[n] for lay in usage_layouts for n in lay.units}
        texts = {pos for lay in usage_layouts for n, pos in lay.cells.items() if n not in lay.units}
        usage_bases = sorted({lay.base for lay in layouts.values() if lay.kind == "usage"})
        rest, n_lines, stub = self._skeleton(usage_bases)
        parts = self._partition(stub, rest, layouts, variant)
        parts.usage = None
        del rest, stub
        kinds = parts.kinds
        self._structure(parts, n_lines)
        self._unknown_records(kinds.get("unknown"))
        summaries = self._summaries(kinds.get("summary"))
        self._check_footer(kinds, layouts, footer_code, n_lines, len(summaries), parts.blocks, meta)
        # the block tables are built once, before the pieces share them
        self._resources(kinds)
        self._releases(kinds)
        cells = (sorted(texts | counts), sorted(counts - texts), usage_bases)
        with (
            tempfile.TemporaryDirectory(prefix="tm-dsr-") as tmp,
            ThreadPoolExecutor(2, thread_name_prefix="tm-dsr") as pool,
        ):
            # two pieces at a time (Polars releases the GIL: the second core works on the next
            # piece while one step of this one runs single-threaded), kept in file order
            running: deque[Future[_Spilled | None]] = deque()
            finished: list[_Spilled | None] = []
            for k, (data, first_line, last_line) in enumerate(
                self._chunks(batch_bytes, usage_bases)
            ):
                if len(running) >= 2:
                    finished.append(running.popleft().result())
                where = Path(tmp) / f"part-{k:05d}.arrow"
                work = (parts, cells, summaries, data, first_line, last_line, where)
                running.append(pool.submit(self._first_pass, *work))
                del data, work
            while running:
                finished.append(running.popleft().result())
            spilled = [(d.path, d.idents) for d in finished if d is not None]
            flags = [d.flags for d in finished if d is not None]
            del finished
            every = (
                pl.concat(flags)
                if flags
                else pl.DataFrame(
                    schema={
                        "sidx": pl.Int32,
                        "units": pl.Int64,
                        "weighted": pl.Boolean,
                        "err": pl.UInt8,
                    }
                )
            )
            plan = self._plan(every, summaries, meta)
            del every
            kept = [
                self._final_err(f, plan).select((pl.col("err") == 0) & pl.col("weighted"))
                for f in flags
            ]
            inputs = [
                f.filter(k.to_series()).select("sidx", "units")
                for f, k in zip(flags, kept, strict=True)
            ]
            del kept
            sizes = [f.height for f in inputs]
            alloc_in = pl.concat(inputs) if inputs else pl.DataFrame()
            del inputs, flags
            units = _largest_remainder(alloc_in, plan) if alloc_in.height else None
            del alloc_in
            meta.extra.update(
                {
                    "lines_in_file": n_lines,
                    "comment_lines": _height(kinds.get("comment")),
                    "blank_lines": _height(kinds.get("blank")),
                    "summary_records": len(summaries),
                    "blocks": parts.blocks,
                }
            )
            parts.kinds = {}
            pending, self.errors = self.errors, []
            if not spilled:
                meta.extra.update(self.extra, usage_records=0, final=True)
                empty = pl.DataFrame(schema=PARSED)
                yield ParsedFile(lines=empty, meta=meta, errors=pending, drift=self.drift)
                return
            offset, records = 0, 0
            for k, ((path, idents), size) in enumerate(zip(spilled, sizes, strict=True)):
                parts.lean = pl.read_ipc(path)
                path.unlink()
                records += parts.lean.height
                mine = None if units is None else units.slice(offset, size)
                offset += size
                lines = self._lines(parts, idents, summaries, meta, fixed=(plan, mine))
                errors, self.errors = pending + self.errors, []
                pending = []
                errors.sort(key=lambda e: (e.row or 0, e.field or ""))
                last = k == len(spilled) - 1
                if last:
                    meta.extra.update(self.extra, usage_records=records, final=True)
                    piece = meta
                else:
                    piece = FileMeta(
                        format=FORMAT,
                        period_start=meta.period_start,
                        period_end=meta.period_end,
                        service=meta.service,
                        file_number=meta.file_number,
                        number_of_files=meta.number_of_files,
                        message_id=meta.message_id,
                        extra={"final": False},
                    )
                yield ParsedFile(lines=lines, meta=piece, errors=errors, drift=self.drift)
                del lines

    def _first_pass(
        self,
        parts: _Parts,
        cells: tuple[list[int], list[int], list[str]],
        summaries: Mapping[str, _Summary],
        data: bytes,
        first_line: int,
        last_line: int,
        where: Path,
    ) -> _Spilled | None:
        """One piece of usage records: parsed, resolved, flagged, hashed and spilled to
        ``where``; None if it holds no usage record. Runs in a worker thread: it changes
        nothing shared but ``errors`` (appends) and ``extra`` (under the lock)."""
        usage = self._read(*cells, data, first_line)[0]
        del data
        if usage.height == 0:
            return None
        mine = replace(
            parts,
            usage=usage,
            until=last_line,
            usage_codes=[c for c in usage["c0"].unique() if c in self.resolved],
        )
        del usage
        lean, idents = self._usage(mine)
        lean = self._flags(lean, summaries).with_columns(
            pl.Series("raw_hash", sha256_hex(lean["raw"])),
            # the raw text is only needed to describe a rejected line
            pl.when(pl.col("err") != 0).then(pl.col("raw")).otherwise(pl.lit("")),
        )
        lean.write_ipc(where, compression="uncompressed")
        return _Spilled(where, idents, lean.select("sidx", "units", "weighted", "err"))

    def _count(self, key: str, n: int) -> None:
        with self.lock:
            self.extra[key] = self.extra.get(key, 0) + n

    def _skeleton(self, usage_bases: list[str]) -> tuple[pl.DataFrame, int, pl.DataFrame]:
        """(the rows that are not usage records, number of lines, a small stand-in for the
        usage rows: each (record type, BlockId) pair at its first and last line), by the line
        reader alone, streaming: memory for the non-usage rows only."""
        lines = pl.scan_lines(
            self.path, name="raw", row_index_name="line_no", row_index_offset=1
        ).with_columns(pl.col("line_no").cast(pl.Int64))
        head = pl.col("raw").str.splitn("\t", 3)
        cells = lines.with_columns(
            head.struct.field("field_0").alias("c0"), head.struct.field("field_1").alias("c1")
        )
        is_usage = pl.col("c0").str.slice(0, 4).is_in(usage_bases).fill_null(False)
        try:
            rest, pairs, count = pl.collect_all(
                [
                    cells.filter(is_usage.not_()),
                    cells.filter(is_usage)
                    .group_by("c0", "c1")
                    .agg(pl.col("line_no").min().alias("a"), pl.col("line_no").max().alias("b")),
                    lines.select(pl.len().alias("n")),
                ],
                engine="streaming",
            )
        except pl.exceptions.ComputeError as exc:
            if "utf" in str(exc).lower():
                bad = archive.utf8_error(self.path)
                if bad is not None:
                    raise bad from exc
            raise FileRejected("malformed", f"{self.filename}: {exc}") from exc
        stub = (
            pl.concat(
                [
                    pairs.select(pl.col("a").alias("line_no"), "c0", "c1"),
                    pairs.select(pl.col("b").alias("line_no"), "c0", "c1"),
                ]
            )
            .sort("line_no")
            .with_columns(pl.lit("").alias("raw"))
        )
        return rest.sort("line_no"), int(count["n"][0]), stub

    def _chunks(self, size: int, usage_bases: list[str]) -> Iterator[tuple[bytes, int, int]]:
        """``(bytes, first line, last line)`` pieces of about ``size`` bytes of the file, each
        cut just before a usage record."""
        starts = tuple(b.encode() for b in usage_bases)
        total = self.path.stat().st_size
        with self.path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos, line, released = 0, 1, 0
            while pos < total:
                end = total if total - pos < size + size // 2 else pos + size
                while end < total:
                    nl = mm.find(b"\n", end)
                    if nl == -1:
                        end = total
                    elif mm[nl + 1 : nl + 5] in starts:
                        end = nl + 1
                        break
                    else:
                        end = nl + 1
                data = mm[pos:end]
                n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
                done = end - end % mmap.PAGESIZE
                if done > released:  # the copied pages leave this process's RSS
                    mm.madvise(mmap.MADV_DONTNEED, released, done - released)
                    released = done
                yield data, line, line + n - 1
                line += n
                pos = end

    # ----------------------------------------------------------------------------------------
    # reading

    def _read_text(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 3:  # not just a character cut by the window
                bad = archive.utf8_error(self.path)
                raise (bad or FileRejected("encoding", f"{self.filename} is not UTF-8")) from exc
            text = data[: exc.start].decode("utf-8")
        return text.removeprefix("\ufeff")

    def _profile(self, cells: list[str]) -> tuple[str, str, dict[str, Layout]]:
        profile = cells[2].strip() if len(cells) > 2 else ""
        version = cells[3].strip() if len(cells) > 3 else ""
        version = VERSION_ALIASES.get((profile, version), version)
        layouts = LAYOUTS.get((profile, version))
        if layouts is None:
            raise FileRejected(
                "unsupported_profile",
                f"HEAD declares profile {profile!r} version {version!r}; supported: {SUPPORTED}",
                field="Profile",
            )
        return profile, version, layouts

    def _footer_code(self) -> str:
        size = self.path.stat().st_size
        with self.path.open("rb") as fh:
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read()
        text = tail.decode("utf-8", errors="replace")
        if size > TAIL_BYTES and "\n" in text:
            text = text[text.index("\n") + 1 :]
        last = _first_record(text, last=True)
        code = last[1][0] if last else ""
        if code not in ("FOOT", "SRFO"):
            raise FileRejected(
                "missing_foot",
                f"{self.filename} does not end with a FOOT (or SRFO) record: its last record is "
                f"{code[:12]!r}; the file looks truncated",
            )
        return code

    def _read(
        self,
        usage_cells: list[int],
        int_cells: list[int],
        usage_bases: list[str],
        source: bytes | None = None,
        first_line: int = 1,
    ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """(usage rows, all other rows, number of lines), each row with ``line_no``, ``raw``
        and the cells ``c0`` + ``c<i>`` the usage records use.

        Two native readers over the same file, zipped in one query (the scans are shared):
        ``scan_lines`` for the raw text (one row per physical line, empty lines kept, the ``\\r``
        of a CRLF dropped) and ``scan_csv`` for the cells (only the projected columns are
        materialised), so no usage line is ever split in Python. Count cells (``int_cells``)
        arrive as Int64 (a cell that is not a whole number reads as null and is looked at again
        from the raw line).
        """
        wanted = [0, *usage_cells]
        ints = set(int_cells)
        cells_lf = pl.scan_csv(
            self.path if source is None else source,
            has_header=False,
            separator="\t",
            quote_char=None,
            schema={
                f"c{i}": pl.Int64() if i in ints else pl.String() for i in range(max(wanted) + 1)
            },
            missing_columns="insert",
            extra_columns="ignore",
            truncate_ragged_lines=True,
            ignore_errors=bool(ints),
            raise_if_empty=False,
            encoding="utf8",
        ).select([f"c{i}" for i in wanted])
        raw_lf = pl.scan_lines(
            self.path if source is None else source,
            name="raw",
            row_index_name="line_no",
            row_index_offset=first_line,
        ).with_columns(pl.col("line_no").cast(pl.Int64))
        both = pl.concat([raw_lf, cells_lf], how="horizontal")
        is_usage = pl.col("c0").str.slice(0, 4).is_in(usage_bases).fill_null(False)
        try:
            usage, rest = pl.collect_all([both.filter(is_usage), both.filter(is_usage.not_())])
        except pl.exceptions.ComputeError as exc:
            if "utf" in str(exc).lower():
                bad = archive.utf8_error(self.path)
                if bad is not None:
                    raise bad from exc
            raise FileRejected("malformed", f"{self.filename}: {exc}") from exc
        n_lines = max(
            int(usage["line_no"].max() or 0) if usage.height else 0,  # type: ignore[arg-type]
            int(rest["line_no"].max() or 0) if rest.height else 0,  # type: ignore[arg-type]
        )
        if usage.height and not _aligned(usage):
            # The CSV reader and the line reader disagree (never seen: both keep empty lines
            # and a bare \r): take every cell from the raw lines instead (slower, aligned).
            lines = pl.concat([usage, rest]).sort("line_no").select("line_no", "raw")
            lines = _resplit(lines, wanted, ints)
            first_cell = pl.col("c0").str.slice(0, 4).is_in(usage_bases).fill_null(False)
            usage, rest = lines.filter(first_cell), lines.filter(first_cell.not_())
        return usage, rest, n_lines

    def _partition(
        self,
        usage: pl.DataFrame,
        rest: pl.DataFrame,
        layouts: Mapping[str, Layout],
        variant: str,
    ) -> _Parts:
        """The non-usage rows by kind (``comment``, ``blank``, a layout kind, ``unknown``)."""
        if rest.height and (rest["raw"][0] or "").startswith("\ufeff"):  # a UTF-8 BOM
            rest = rest.with_columns(
                rest["raw"].scatter(0, rest["raw"][0].removeprefix("\ufeff")),
                rest["c0"].scatter(0, (rest["c0"][0] or "").removeprefix("\ufeff")),
            )
        by_base = {lay.base: lay for lay in layouts.values()}
        codes = rest["c0"].drop_nulls().unique().to_list()
        usage_codes = usage["c0"].unique().to_list() if usage.height else []
        kind_of: dict[str, int] = {}
        for code in [*codes, *usage_codes]:
            if code.startswith("#"):
                kind_of[code] = _KIND_ID["comment"]
                continue
            layout = layouts.get(code)
            if layout is None and code == "SRHE":
                layout = layouts["HEAD"]
            if layout is None and len(code) >= 4 and code[:4] in by_base:
                layout = by_base[code[:4]]
                if layout.kind not in ("head", "foot", "srfo"):
                    self.drift.append(
                        f"record type {code} read as {layout.code} (the profile's version)"
                    )
            if layout is not None:
                kind_of[code] = _KIND_ID[layout.kind]
                self.resolved[code] = layout
        kinds: dict[str, pl.DataFrame] = {}
        if rest.height:
            kind = pl.col("c0").replace_strict(
                kind_of, default=_KIND_ID["unknown"], return_dtype=pl.UInt8
            )
            blank = pl.col("raw").str.len_bytes() == 0
            rest = rest.with_columns(
                pl.when(blank).then(pl.lit(_KIND_ID["blank"], dtype=pl.UInt8)).otherwise(kind)
                .fill_null(_KIND_ID["unknown"])
                .alias("kind")
            )  # fmt: skip
            split = rest.partition_by("kind", as_dict=True, include_key=False)
            kinds = {KINDS[int(key[0])]: part for key, part in split.items()}
        data = [p["line_no"] for k, p in kinds.items() if k not in ("comment", "blank")]
        if usage.height:
            data += [usage["line_no"].head(1), usage["line_no"].tail(1)]
        lines = pl.concat(data) if data else pl.Series([0], dtype=pl.Int64)
        blocks = [kinds[k]["c1"] for k in _BLOCK_KINDS if k in kinds]
        block_codes = [c for c in usage_codes if c in self.resolved and not self.resolved[c].single]
        if usage.height and block_codes:
            rows = usage
            if len(block_codes) < len(usage_codes):
                rows = usage.filter(pl.col("c0").is_in(block_codes))
            blocks.append(rows["c1"])
        return _Parts(
            kinds=kinds,
            usage=usage if usage.height else None,
            usage_codes=[c for c in usage_codes if c in self.resolved],
            first=int(lines.min() or 0),  # type: ignore[arg-type]
            last=int(lines.max() or 0),  # type: ignore[arg-type]
            blocks=pl.concat(blocks).drop_nulls().n_unique() if blocks else 0,
        )

    # ----------------------------------------------------------------------------------------
    # HEAD, structure, FOOT

    def _head(
        self, cells: list[str], layout: Layout, profile: str, version: str, variant: str
    ) -> FileMeta:
        def cell(name: str) -> str | None:
            return _cell(cells, layout, name)

        def integer(name: str) -> int:
            value = cell(name)
            if value is None or not re.fullmatch(r"\d+", value):
                raise FileRejected(
                    "invalid_head", f"HEAD {name} {value!r} is not a whole number", field=name
                )
            return int(value)

        def date(name: str, *, end: bool) -> dt.date:
            value = cell(name) or ""
            try:
                return iso_period(value, end=end)
            except ValueError as exc:
                raise FileRejected("invalid_head", f"HEAD {name}: {exc}", field=name) from exc

        x, y = integer("FileNumber"), integer("NumberOfFiles")
        if not 1 <= x <= y:
            raise FileRejected(
                "invalid_head", f"HEAD FileNumber {x} of NumberOfFiles {y}", field="FileNumber"
            )
        named = FILENAME_RE.match(_basename(self.filename))
        if named and (int(named["x"]), int(named["y"])) != (x, y):
            raise FileRejected(
                "xofy_mismatch",
                f"the file name says {named['x']}of{named['y']} but HEAD says FileNumber {x} "
                f"of NumberOfFiles {y}",
                field="FileNumber",
            )
        start, end = date("UsageStartDate", end=False), date("UsageEndDate", end=True)
        if end < start:
            raise FileRejected(
                "invalid_head", f"HEAD UsageEndDate {end} is before UsageStartDate {start}"
            )
        extra: dict[str, Any] = {
            "profile": profile,
            "profile_version": version,
            "variant": variant,
            "message_version": cell("MessageVersion"),
            "message_created": cell("MessageCreatedDateTime"),
            "sender_party_id": cell("SenderPartyId"),
            "recipient_party_id": cell("RecipientPartyId"),
            "recipient_name": cell("RecipientName"),
            "service_description": cell("ServiceDescription"),
        }
        if named:
            extra["file_name_parts"] = {
                k: named[k] for k in ("recipient", "sender", "service", "period", "territory")
            }
        self.period = (start, end)
        self.service = cell("SenderName")
        self.multi = y > 1
        return FileMeta(
            format=FORMAT,
            period_start=start,
            period_end=end,
            service=self.service,
            file_number=x,
            number_of_files=y,
            message_id=cell("MessageId"),
            extra=extra,
        )

    def _structure(self, parts: _Parts, n_lines: int) -> None:
        """Exactly one HEAD, first, and one footer, last, among the data lines."""
        kinds, first, last = parts.kinds, parts.first, parts.last
        heads = kinds["head"]["line_no"].to_list() if "head" in kinds else []
        foots = sorted(
            [
                *(kinds["foot"]["line_no"].to_list() if "foot" in kinds else []),
                *(kinds["srfo"]["line_no"].to_list() if "srfo" in kinds else []),
            ]
        )
        if heads != [first]:
            raise FileRejected(
                "misplaced_record",
                f"{self.filename}: HEAD must be the first record and appear once "
                f"(found at lines {heads})",
                row=heads[1] if len(heads) > 1 else None,
            )
        if foots != [last]:
            raise FileRejected(
                "misplaced_record",
                f"{self.filename}: the footer must be the last record and appear once "
                f"(found at lines {foots} of {n_lines})",
                row=foots[0] if foots else None,
            )

    def _unknown_records(self, part: pl.DataFrame | None) -> None:
        if part is None:
            return
        for row, code in part.select("line_no", "c0").iter_rows():
            self.errors.append(
                RowError(
                    self.filename, row, "RecordType", "unknown_record_type",
                    f"record type {code!r} is not part of this profile",
                )
            )  # fmt: skip

    def _check_footer(
        self,
        kinds: Mapping[str, pl.DataFrame],
        layouts: Mapping[str, Layout],
        code: str,
        n_lines: int,
        n_summaries: int,
        n_blocks: int,
        meta: FileMeta,
    ) -> None:
        layout = layouts[code]
        part = kinds["foot" if code == "FOOT" else "srfo"]
        cells = part["raw"][0].split("\t")
        row = int(part["line_no"][0])

        def number(name: str, *, required: bool) -> int | None:
            value = _cell(cells, layout, name)
            if value is None and not required:
                return None
            if value is None or not re.fullmatch(r"[+-]?\d+", value):
                raise FileRejected(
                    "foot_invalid",
                    f"{code} {name} {value!r} is not a whole number",
                    row=row,
                    field=name,
                )
            return int(value)

        checks: list[tuple[str, int, int, str]] = []
        if code == "FOOT":
            declared_lines = number("NumberOfLinesInFile", required=True)
            blocks = number("NumberOfBlocksInFile", required=True)
            assert declared_lines is not None and blocks is not None
            checks.append(("NumberOfLinesInFile", declared_lines, n_lines, "lines"))
            checks.append(("NumberOfBlocksInFile", blocks, n_blocks, "blocks"))
            meta.extra["lines_in_report"] = number("NumberOfLinesInReport", required=False)
            meta.extra["blocks_in_report"] = number("NumberOfBlocksInReport", required=False)
        else:
            declared_lines = number("NumberOfLinesInReport", required=True)
            assert declared_lines is not None
            if meta.number_of_files == 1:
                checks.append(("NumberOfLinesInReport", declared_lines, n_lines, "lines"))
            meta.extra["lines_in_report"] = declared_lines
        summaries = number("NumberOfSummaryRecords", required=True)
        assert summaries is not None
        checks.append(("NumberOfSummaryRecords", summaries, n_summaries, "summary records"))
        meta.declared_lines = declared_lines
        wrong = [c for c in checks if c[1] != c[2]]
        if wrong:
            parts = [
                f"{cell_name} is {want} but the file has {got} {what}"
                + (" (HEAD, footer, comment and blank lines included)" if what == "lines" else "")
                for cell_name, want, got, what in wrong
            ]
            raise FileRejected(
                "foot_mismatch", f"{code} " + "; ".join(parts), row=row, field=wrong[0][0]
            )

    # ----------------------------------------------------------------------------------------
    # summary records

    def _summaries(self, part: pl.DataFrame | None) -> dict[str, _Summary]:
        out: dict[str, _Summary] = {}
        if part is None:
            return out
        for row, code, raw in part.select("line_no", "c0", "raw").iter_rows():
            summary = self._summary(len(out), row, self.resolved[code], raw.split("\t"))
            if summary.sid in out:
                raise FileRejected(
                    "duplicate_summary",
                    f"SummaryRecordId {summary.sid!r} appears on lines {out[summary.sid].line} "
                    f"and {row}",
                    row=row,
                    field="SummaryRecordId",
                )
            out[summary.sid] = summary
        return out

    def _summary(self, index: int, row: int, layout: Layout, cells: list[str]) -> _Summary:
        def cell(name: str) -> str | None:
            return _cell(cells, layout, name)

        ok = True

        def error(name: str, code: str, message: str) -> None:
            nonlocal ok
            ok = False
            self.errors.append(RowError(self.filename, row, name, code, message))

        def integer(name: str) -> int | None:
            value = cell(name)
            if value is None:
                return None
            if not re.fullmatch(_INT_RE, value):
                error(name, "invalid_integer", f"cell {name!r}: {value!r} is not a whole number")
                return None
            return int(value)

        def decimal(name: str) -> int | None:
            value = cell(name)
            if value is None:
                return None
            if not re.fullmatch(_DEC_RE, value):
                error(name, "invalid_decimal", f"cell {name!r}: {value!r} is not a number")
                return None
            return _scaled(value)

        sid = cell("SummaryRecordId")
        if sid is None:
            error("SummaryRecordId", "missing_value", "cell 'SummaryRecordId' is empty")
            sid = f"<line {row}>"
        counts = [
            integer(name)
            for name in ("AllocatedUsages", "Usages", "TotalUsages", "UsagesInReportingPeriod")
        ]
        usages = next((v for v in counts if v is not None), None)
        revenue_cell = revenue = None
        for name in ("AllocatedNetRevenue", "NetRevenue"):
            value = decimal(name)
            if value is not None and revenue is None:
                revenue, revenue_cell = value, name
        given = [n for n in ("AllocatedNetRevenue", "NetRevenue") if n in layout.cells]
        if given and all(cell(n) is None for n in given):
            # NetRevenue is mandatory (minOccurs 1): an empty one is not zero revenue, and
            # the usage lines that share it are rejected with the summary, not paid nothing
            error(given[-1], "missing_value", f"cell {given[-1]!r} is empty")
        currency = cell("CurrencyOfReporting") or cell("Currency")
        if currency is None and revenue:
            error("CurrencyOfReporting", "missing_value", "the summary has revenue but no currency")
        model = cell("CommercialModel")
        return _Summary(
            index=index,
            sid=sid,
            line=row,
            code=layout.code,
            territory=cell("Territory"),
            commercial_model=None if model is None else COMMERCIAL_MODELS.get(model, "other"),
            currency=currency,
            currency_tx=cell("CurrencyOfTransaction"),
            revenue=revenue,
            revenue_cell=revenue_cell,
            declared_usages=usages,
            ok=ok,
        )

    # ----------------------------------------------------------------------------------------
    # usage records -> one lean frame: units, own amount, summary id, identifiers, error code

    def _usage(self, parts: _Parts) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        if parts.usage is None:
            empty = {"line_no": pl.Int64, "raw": pl.String, "code": pl.String, "sid": pl.String,
                     "units": pl.Int64, "num_err": pl.UInt8, "ref_err": pl.UInt8}  # fmt: skip
            return pl.DataFrame(schema=empty), {}
        families: dict[str, dict[str, Layout]] = {}
        for code in parts.usage_codes:
            lay = self.resolved[code]
            families.setdefault(_family(lay), {})[code] = lay
        if len(families) == 1:
            ((fam, lays),) = families.items()
            return self._usage_family(fam, parts, lays)
        rows = parts.usage
        frames = []
        for fam, lays in families.items():  # mixed variants (rare): identifiers made here
            parts.usage = rows.filter(pl.col("c0").is_in(list(lays)))
            frame, idents = self._usage_family(fam, parts, lays)
            frames.append(frame.with_columns(expr.alias(k) for k, expr in idents.items()))
        usage = pl.concat(frames, how="diagonal_relaxed").sort("line_no")
        return usage, {name: pl.col(name) for name in IDENTIFIERS if name in usage.columns}

    def _usage_family(
        self, family: str, parts: _Parts, lays: dict[str, Layout]
    ) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        """The lean frame of one family's usage lines, and the expressions that produce its
        identifier columns (evaluated once, when the output is built)."""
        rows, parts.usage = parts.usage, None  # let the file's cells go as soon as possible
        assert rows is not None
        rows = rows.rename({"c0": "code"})
        pick = _Picker(rows.schema, lays)
        cols: list[pl.Expr] = [
            pl.col("line_no"),
            pl.col("raw"),
            pl.col("code"),
            pick.cell("SummaryRecordId").alias("sid"),
            pick.units(0).alias("count"),
            pick.units(1).alias("returns"),
        ]
        if any(lay.own_amount for lay in lays.values()):
            cols.append(pick.own().str.strip_chars().alias("own_s"))
        if family == "basic":
            names = {"BlockId": "block", "TransactedRelease": "rel_ref",
                     "TransactedResource": "res_ref"}  # fmt: skip
        elif family == "ugc":
            names = {"BlockId": "block", "DspResourceId": "dsp_resource_id",
                     "DspReleaseId": "dsp_release_id"}  # fmt: skip
        else:
            names = {
                "DspResourceId": "dsp_resource_id", "ISRC": "isrc", "ResourceTitle": "title",
                "ResourceDisplayArtistName": "artist", "DspReleaseId": "dsp_release_id",
                "ProprietaryReleaseId": "proprietary_id", "ICPN": "upc",
                "ReleaseTitle": "release_title", "ReleaseDisplayArtistName": "release_artist",
            }  # fmt: skip
        cols += [pick.cell(cell).alias(name) for cell, name in names.items() if pick.has(cell)]
        out = rows.select(cols).rechunk()
        del rows
        out = self._numbers(out, lays, pick)
        if family == "basic":
            return self._basic_block_refs(out, parts.kinds)
        if family == "ugc":
            return self._ugc_block_refs(out, parts)
        have = set(out.columns)
        idents = {name: pl.col(name) for name in IDENTIFIERS if name in have}
        if "release_title" in have:
            idents["title"] = pl.coalesce(*(c for c in ("title", "release_title") if c in have))
        if "release_artist" in have:
            idents["artist"] = pl.coalesce(*(c for c in ("artist", "release_artist") if c in have))
        return out.with_columns(pl.lit(0, dtype=pl.UInt8).alias("ref_err")), idents

    def _numbers(self, out: pl.DataFrame, lays: dict[str, Layout], pick: _Picker) -> pl.DataFrame:
        """``units`` (count - returns), ``own`` (AMOUNT) and ``num_err`` (an ``_ERR`` code).

        Counts arrive as Int64 from the CSV reader; the lines where a count (or returns) is
        null are looked at again from the raw line: empty, a decimal to round (xs:decimal
        counts, half-even), or not a number.
        """
        with_returns = [c for c, lay in lays.items() if len(lay.units) > 1]
        decimal_codes = [c for c, lay in lays.items() if lay.units_decimal]
        optional = [c for c, lay in lays.items() if lay.count_optional]
        err = pl.Series("num_err", [0], dtype=pl.UInt8).extend_constant(0, out.height - 1)
        suspect = pl.col("count").is_null() | (
            pl.col("returns").is_null() & pl.col("code").is_in(with_returns)
        )
        where = out.select(pl.arg_where(suspect)).to_series()
        if where.len():
            sub = out[where].select(
                "code",
                pick.raw_units(0).str.strip_chars().alias("count_s"),
                pick.raw_units(1).str.strip_chars().alias("returns_s"),
            )
            count = sub["count_s"].cast(pl.Int64, strict=False)
            decimal = (
                count.is_null()
                & sub["code"].is_in(decimal_codes)
                & sub["count_s"].str.contains(_DEC_RE).fill_null(False)
            )
            if decimal.any():  # xs:decimal counts: a fraction is rounded half-even
                rounded = [_decimal_units(v) for v in sub["count_s"].filter(decimal).to_list()]
                count = count.scatter(decimal.arg_true(), rounded)
                self._count("fractional_usages", len(rounded))
            returns = sub["returns_s"].cast(pl.Int64, strict=False)
            sub_err = sub.select(
                pl.when(pl.col("count_s").is_null() & pl.col("code").is_in(optional).not_())
                .then(pl.lit(_ERR["missing_count"]))
                .when(pl.col("count_s").is_not_null() & count.is_null())
                .then(pl.lit(_ERR["bad_count"]))
                .when(pl.col("returns_s").is_not_null() & returns.is_null())
                .then(pl.lit(_ERR["bad_returns"]))
                .otherwise(pl.lit(0))
                .cast(pl.UInt8)
            ).to_series()
            err = err.scatter(where, sub_err)
            out = out.with_columns(
                out["count"].scatter(where, count), out["returns"].scatter(where, returns)
            )
        out = out.with_columns(err.alias("num_err"))
        if "own_s" in out.columns:
            own_valid = pl.col("own_s").str.contains(_DEC_RE).fill_null(False)
            out = out.with_columns(
                pl.when(own_valid).then(pl.col("own_s").cast(AMOUNT, strict=False)).alias("own")
            )
            # a nonzero digit beyond the lake's 12 places: refused, never rounded or cut
            too_precise = own_valid & pl.col("own_s").str.contains(_LONG_FRACTION_RE)
            required = [c for c, lay in lays.items() if lay.own_amount and not lay.single]
            out = out.with_columns(
                pl.when(pl.col("num_err") != 0)
                .then(pl.col("num_err"))
                .when(too_precise)
                .then(pl.lit(_ERR["too_precise_own"], dtype=pl.UInt8))
                .when(pl.col("own_s").is_null() & pl.col("code").is_in(required))
                .then(pl.lit(_ERR["missing_own"], dtype=pl.UInt8))
                .when(pl.col("own_s").is_not_null() & pl.col("own").is_null())
                .then(pl.lit(_ERR["bad_own"], dtype=pl.UInt8))
                .otherwise(pl.col("num_err"))
                .alias("num_err")
            )
        return out.with_columns(
            pl.when(pl.col("num_err") == 0)
            .then(pl.col("count") - pl.col("returns").fill_null(0))
            .alias("units")
        ).drop("count", "returns")

    def _basic_block_refs(
        self, out: pl.DataFrame, kinds: Mapping[str, pl.DataFrame]
    ) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        """Resource (AS by TransactedResource) and release (RE01/RE02 by TransactedRelease, else
        the block's RE01) of each SU01/SU02 line, both within the line's block: their row in
        the resource and release tables, and the identifier expressions gathering from them."""
        resources = self._resources(kinds)
        releases = self._releases(kinds)
        res = _lookup(out.select("block", pl.col("res_ref").alias("ref")), resources)
        rel_key = pl.col("rel_ref").fill_null("").alias("ref")
        rel = _lookup(out.select("block", rel_key), releases)
        out = out.with_columns(
            res.alias("res_idx"),
            rel.alias("rel_idx"),
            pl.when(pl.col("res_ref").is_not_null() & res.is_null())
            .then(pl.lit(_ERR["unknown_resource"]))
            .when(pl.col("rel_ref").is_not_null() & rel.is_null())
            .then(pl.lit(_ERR["unknown_release"]))
            .otherwise(pl.lit(0))
            .cast(pl.UInt8)
            .alias("ref_err"),
        )
        res_of = _gatherer(resources, "res_idx")
        rel_of = _gatherer(releases, "rel_idx")
        idents = {
            "isrc": res_of("isrc"),
            "dsp_resource_id": res_of("dsp_resource_id"),
            "title": pl.coalesce(res_of("title"), rel_of("release_title")),
            "artist": pl.coalesce(res_of("artist"), rel_of("release_artist")),
            "dsp_release_id": rel_of("dsp_release_id"),
            "proprietary_id": rel_of("proprietary_id"),
            "upc": rel_of("upc"),
        }
        return out, idents

    def _ugc_block_refs(
        self, out: pl.DataFrame, parts: _Parts
    ) -> tuple[pl.DataFrame, dict[str, pl.Expr]]:
        """UGC SU03: its resource is the block's AS record (1.2: the one with the line's
        DspResourceId); a missing SummaryRecordId comes from the LI01 records that follow."""
        kinds = parts.kinds
        resources = self._resources(kinds)
        if "dsp_resource_id" not in out.columns:  # 1.1: the block's (first) resource
            table = resources.unique("block", keep="first", maintain_order=True).with_columns(
                pl.lit("").alias("ref")
            )
            res = _lookup(out.select("block", pl.lit("").alias("ref")), table)
        else:
            table = resources.with_columns(pl.col("dsp_resource_id").alias("ref")).unique(
                ["block", "ref"], keep="first", maintain_order=True
            )
            res = _lookup(out.select("block", pl.col("dsp_resource_id").alias("ref")), table)
        out = out.with_columns(
            res.alias("res_idx"),
            pl.when(res.is_null())
            .then(pl.lit(_ERR["unknown_resource"], dtype=pl.UInt8))
            .otherwise(pl.lit(0, dtype=pl.UInt8))
            .alias("ref_err"),
        )
        res_of = _gatherer(table, "res_idx")
        idents = {name: res_of(name) for name in ("isrc", "dsp_resource_id", "title", "artist")}
        if "dsp_release_id" in out.columns:
            idents["dsp_release_id"] = pl.col("dsp_release_id")
        licences = kinds.get("licence")
        if licences is not None and out["sid"].null_count():
            if parts.until is not None:  # chunked: this chunk's LI01 records only
                first = out["line_no"].min()
                licences = licences.filter(pl.col("line_no").is_between(first, parts.until))
            li = _cells(licences, {"SummaryRecordId": 2}).select(
                "line_no", pl.col("SummaryRecordId").alias("li_sid")
            )
            # each LI01 belongs to the SU03 record that precedes it
            owners = (
                pl.concat(
                    [
                        out.select(
                            "line_no",
                            pl.lit(True).alias("is_su"),
                            pl.lit(None, dtype=pl.String).alias("li_sid"),
                        ),
                        li.select("line_no", pl.lit(False).alias("is_su"), "li_sid"),
                    ]
                )
                .sort("line_no")
                .with_columns(
                    pl.when(pl.col("is_su")).then(pl.col("line_no")).forward_fill().alias("owner")
                )
                .filter(
                    pl.col("is_su").not_()
                    & pl.col("li_sid").is_not_null()
                    & pl.col("owner").is_not_null()
                )
                .group_by("owner", maintain_order=True)
                .agg(pl.col("li_sid").first())
            )
            sid = (
                out.select("line_no")
                .join(owners, left_on="line_no", right_on="owner", how="left",
                      maintain_order="left")["li_sid"]
            )  # fmt: skip
            out = out.with_columns(pl.coalesce(pl.col("sid"), sid).alias("sid"))
        return out, idents

    def _resources(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        if "resources" not in self.tables:
            self.tables["resources"] = self._resource_table(kinds)
        return self.tables["resources"]

    def _releases(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        if "releases" not in self.tables:
            self.tables["releases"] = self._release_table(kinds)
        return self.tables["releases"]

    def _resource_table(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        cols = ("line_no", "block", "ref", "dsp_resource_id", "isrc", "title", "artist")
        part = kinds.get("resource")
        if part is None:
            return pl.DataFrame(schema={c: pl.Int64 if c == "line_no" else pl.String
                                        for c in cols})  # fmt: skip
        frame = _cells(part, _AS).select(
            pl.col("line_no"),
            pl.col("BlockId").alias("block"),
            pl.col("ResourceReference").alias("ref"),
            pl.col("DspResourceId").alias("dsp_resource_id"),
            pl.col("ISRC").alias("isrc"),
            pl.col("Title").alias("title"),
            pl.col("DisplayArtistName").alias("artist"),
        )
        return self._dedupe(frame, "ResourceReference")

    def _release_table(self, kinds: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        """(block, ref) -> release identifiers; the block's RE01 also under ref ``""``."""
        cols = ("block", "ref", "dsp_release_id", "proprietary_id", "upc", "release_title",
                "release_artist")  # fmt: skip
        frames = []
        head = kinds.get("release")
        if head is not None:
            cells = _cells(head, _RE01).select(
                pl.col("line_no"),
                pl.col("BlockId").alias("block"),
                pl.col("ReleaseReference").alias("ref"),
                pl.col("DspReleaseId").alias("dsp_release_id"),
                pl.col("ProprietaryReleaseId").alias("proprietary_id"),
                pl.col("ICPN").alias("upc"),
                pl.col("Title").alias("release_title"),
                pl.col("DisplayArtistName").alias("release_artist"),
            )
            frames.append(self._dedupe(cells, "ReleaseReference"))
            frames.append(
                cells.unique("block", keep="first", maintain_order=True).with_columns(
                    pl.lit("").alias("ref")
                )
            )
        sub = kinds.get("subrelease")
        if sub is not None:
            cells = _cells(sub, _RE02).select(
                pl.col("line_no"),
                pl.col("BlockId").alias("block"),
                pl.col("ReleaseReference").alias("ref"),
                pl.col("DspSubReleaseId").alias("dsp_release_id"),
                pl.col("ProprietarySubReleaseId").alias("proprietary_id"),
                pl.lit(None, dtype=pl.String).alias("upc"),
                pl.lit(None, dtype=pl.String).alias("release_title"),
                pl.lit(None, dtype=pl.String).alias("release_artist"),
            )
            frames.append(self._dedupe(cells, "ReleaseReference"))
        if not frames:
            return pl.DataFrame(schema=dict.fromkeys(cols, pl.String))
        releases = pl.concat([f.select(cols) for f in frames])
        return releases.unique(["block", "ref"], keep="first", maintain_order=True)

    def _dedupe(self, frame: pl.DataFrame, ref_name: str) -> pl.DataFrame:
        k1, k2, _, _ = _KEY_SEEDS
        if not frame.select(
            _pair_key(pl.col("block"), pl.col("ref"), k1, k2).is_duplicated().any()
        ).item():
            return frame  # every (block, ref) once: the usual case, checked on 64-bit keys
        first = pl.struct("block", "ref").is_first_distinct()
        dup = frame.filter(first.not_())
        for row, block, ref in dup.select("line_no", "block", "ref").iter_rows():
            self.errors.append(
                RowError(
                    self.filename, row, ref_name, "duplicate_reference",
                    f"{ref_name} {ref!r} appears twice in block {block!r}; the first is used",
                )
            )  # fmt: skip
        return frame.filter(first) if dup.height else frame

    # ----------------------------------------------------------------------------------------
    # summaries -> amounts -> PARSED lines

    def _lines(
        self,
        parts: _Parts,
        idents: Mapping[str, pl.Expr],
        summaries: Mapping[str, _Summary],
        meta: FileMeta,
        fixed: tuple[_Plan, pl.Series | None] | None = None,
    ) -> pl.DataFrame:
        """The PARSED lines of the usage records. ``fixed`` (chunked parsing): the whole file's
        plan and this piece's allocated units, the lines flagged and hashed already."""
        usage, parts.lean = parts.lean, None  # this frame is the only reference: drop as we go
        assert usage is not None
        if fixed is None:
            usage = self._flags(usage, summaries)
            plan = self._plan(usage, summaries, meta)
        else:
            plan = fixed[0]
        usage = self._final_err(usage, plan)
        bad = usage.select(pl.arg_where(pl.col("err") != 0)).to_series()
        if bad.len():
            self._row_errors(usage[bad], plan, summaries)
            usage = usage.filter(pl.col("err") == 0)
        weighted = usage.select(pl.arg_where(pl.col("weighted"))).to_series()
        units = None
        if fixed is not None:
            units = fixed[1]
            assert (0 if units is None else units.len()) == weighted.len()
        elif weighted.len():
            units = _largest_remainder(usage.select("sidx", "units")[weighted], plan)
        allocated = pl.Series("allocated", [None] * usage.height, dtype=AMOUNT)
        if units is not None and units.len():
            allocated = allocated.scatter(weighted, _amount(units))
        if "raw_hash" in usage.columns:
            hashes = usage["raw_hash"]
        else:
            hashes = sha256_hex(usage["raw"]).rechunk()
        # keep only what the output needs, so the raw lines and working columns go first
        keep = ("line_no", "code", "sidx", "units", "own", "res_idx", "rel_idx", *IDENTIFIERS,
                "release_title", "release_artist")  # fmt: skip
        usage = usage.select(c for c in keep if c in usage.columns)
        start, end = self.period
        have = set(usage.columns)

        def col(name: str) -> pl.Expr:
            return idents.get(name, pl.lit(None, dtype=pl.String))

        def summary(values: list[str | None]) -> pl.Expr:
            return pl.lit(pl.Series(values, dtype=pl.String)).gather(pl.col("sidx"))

        currency = summary([s.currency for s in summaries.values()])
        if self.profile_key == ("UgcProfile", "1.2") and "own" in have:
            # UGC 1.2 states SU03/SR03 NetRevenue in the CurrencyOfTransaction
            tx = summary([s.currency_tx or s.currency for s in summaries.values()])
            currency = pl.when(pl.col("own").is_not_null()).then(tx).otherwise(currency)
        amount = pl.coalesce(pl.col("own"), allocated) if "own" in have else allocated
        columns: dict[str, pl.Expr | pl.Series] = {
            "line_no": pl.col("line_no"),
            "raw_hash": hashes,
            "usage_start": pl.lit(start, dtype=pl.Date),
            "usage_end": pl.lit(end, dtype=pl.Date),
            "territory": summary([s.territory for s in summaries.values()]),
            "isrc": col("isrc"),
            "upc": col("upc"),
            "dsp_resource_id": col("dsp_resource_id"),
            "dsp_release_id": col("dsp_release_id"),
            "proprietary_id": col("proprietary_id"),
            "title": col("title"),
            "artist": col("artist"),
            "service": pl.lit(self.service, dtype=pl.String),
            "usage_type": _usage_type(usage, self.resolved),
            "commercial_model": summary([s.commercial_model for s in summaries.values()]),
            "quantity": pl.col("units"),
            "amount": amount,
            "currency": currency,
            "gross_net": pl.lit("net"),
            "adjustment_type": pl.lit(None, dtype=pl.String),
        }
        # built eagerly in PARSED's order and types: every column one contiguous chunk, so the
        # caller's first filter or join does not have to realign (copy) the whole frame
        lines = usage.select(
            (pl.lit(value) if isinstance(value, pl.Series) else value).cast(dtype).alias(name)
            for name, dtype in PARSED.items()
            for value in (columns[name],)
        )
        assert lines.schema == pl.Schema(PARSED)
        return lines

    def _flags(self, usage: pl.DataFrame, summaries: Mapping[str, _Summary]) -> pl.DataFrame:
        """``sidx`` (the summary's index), ``err`` (an ``_ERR`` code, 0 = kept; not yet
        ``unallocatable``) and ``weighted`` (the line takes a share of its summary)."""
        size = len(summaries)
        ids = [s.sid for s in summaries.values()]
        ok = pl.Series([s.ok for s in summaries.values()], dtype=pl.Boolean)
        if "sid" in usage.columns and size:
            sidx = usage["sid"].replace_strict(
                ids, list(range(size)), default=None, return_dtype=pl.Int32
            )
        else:
            sidx = pl.Series("sidx", [None] * usage.height, dtype=pl.Int32)
        usage = usage.with_columns(sidx.alias("sidx"))
        s_ok = pl.lit(ok).gather(pl.col("sidx")) if size else pl.lit(None, dtype=pl.Boolean)
        own = pl.col("own_s").is_null() if "own_s" in usage.columns else pl.lit(True)
        err = (
            pl.when(pl.col("num_err") != 0)
            .then(pl.col("num_err"))
            .when(pl.col("sid").is_null())
            .then(pl.lit(_ERR["missing_summary"], dtype=pl.UInt8))
            .when(pl.col("sidx").is_null())
            .then(pl.lit(_ERR["unknown_summary"], dtype=pl.UInt8))
            .when(s_ok.not_())
            .then(pl.lit(_ERR["invalid_summary"], dtype=pl.UInt8))
            .otherwise(pl.col("ref_err"))
        )
        return usage.with_columns(
            err.alias("err"),
            (pl.col("units").is_not_null() & s_ok.fill_null(False) & own).alias("weighted"),
        )

    @staticmethod
    def _final_err(usage: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
        """``err`` with the lines of summaries whose share cannot be computed set aside."""
        if not plan.unallocatable:
            return usage
        stuck = (pl.col("err") == 0) & pl.col("sidx").is_in(plan.unallocatable).fill_null(False)
        return usage.with_columns(
            pl.when(stuck)
            .then(pl.lit(_ERR["unallocatable"], dtype=pl.UInt8))
            .otherwise(pl.col("err"))
            .alias("err")
        )

    def _plan(
        self, usage: pl.DataFrame, summaries: Mapping[str, _Summary], meta: FileMeta
    ) -> _Plan:
        """Per summary: revenue ``R``, denominator ``D`` (> 0), sign, equal split, target ``T``."""
        ok_line = pl.col("err") == 0
        weighted = pl.col("weighted")
        s_ok = pl.lit(pl.Series([s.ok for s in summaries.values()], dtype=pl.Boolean))
        stats = (
            usage.filter(pl.col("sidx").is_not_null())
            .filter(s_ok.gather(pl.col("sidx")))
            .group_by("sidx")
            .agg(
                pl.col("units").filter(weighted).sum().alias("w_all"),
                weighted.sum().alias("n_all"),
                pl.col("units").filter(weighted & ok_line).sum().alias("w_ok"),
                (weighted & ok_line).sum().alias("n_ok"),
                pl.col("units").sum().alias("units_all"),
                pl.col("units").is_null().any().alias("unreadable"),
                pl.col("units").filter(weighted).abs().max().alias("w_max"),
            )
            if summaries
            else pl.DataFrame()
        )
        by_idx = {row[0]: row[1:] for row in stats.iter_rows()}
        plan = _Plan()
        declared: dict[str, Decimal] = {}
        report: dict[str, Decimal] = {}
        detail: list[dict[str, Any]] = []
        mismatches: list[dict[str, Any]] = []
        for s in summaries.values():
            if not s.ok:
                continue
            revenue = s.revenue or 0
            w_all, n_all, w_ok, n_ok, units_all, unreadable, w_max = by_idx.get(
                s.index, (0, 0, 0, 0, 0, False, 0)
            )
            w_all, w_ok, units_all, w_max = w_all or 0, w_ok or 0, units_all or 0, w_max or 0
            equal = unallocatable = False
            if self.multi:
                # the same summary in every file of the report: divide by its declared usages
                den = s.declared_usages or 0
                unallocatable = den == 0 and units_all != 0
            else:
                den = w_all
                if unreadable and s.declared_usages and s.declared_usages > abs(w_all):
                    # a line's count cannot be read: keep its share out via the declared total
                    den = s.declared_usages * (1 if w_all >= 0 else -1)
                if den == 0 and n_all:
                    equal = True  # units cancel out or are all zero: split evenly
                    den, w_ok, units_all, w_max = n_all, n_ok, n_all, 1
            sign = -1 if den < 0 else 1
            den = abs(den) or 1
            target = 0 if unallocatable else _round_div(revenue * sign * w_ok, den)
            share = revenue
            if self.multi:
                share = 0 if unallocatable else _round_div(revenue * sign * units_all, den)
            if unallocatable:
                plan.unallocatable.append(s.index)
            plan.add(s.index, revenue, den, sign, equal, target, w_max)
            if s.currency is not None and s.revenue is not None:
                declared[s.currency] = declared.get(s.currency, Decimal(0)) + _money(share)
                report[s.currency] = report.get(s.currency, Decimal(0)) + _money(revenue)
            if not self.multi and not equal and s.declared_usages not in (None, units_all):
                mismatches.append(
                    {"summary": s.sid, "declared": s.declared_usages, "reported": units_all}
                )
            detail.append(
                {
                    "summary": s.sid, "record": s.code, "line": s.line, "territory": s.territory,
                    "commercial_model": s.commercial_model, "currency": s.currency,
                    "revenue": None if s.revenue is None else str(_money(revenue)),
                    "revenue_cell": s.revenue_cell, "declared_usages": s.declared_usages,
                    "reported_units": units_all,
                }
            )  # fmt: skip
            if s.revenue is None and units_all:
                self.extra.setdefault("summaries_without_revenue", []).append(s.sid)
            if equal:
                self.extra.setdefault("equal_split_summaries", []).append(s.sid)
        meta.declared_totals = declared
        self.extra["summaries"] = detail
        if mismatches:
            self.extra["usage_mismatches"] = mismatches
        if self.multi:
            self.extra["report_declared_totals"] = {k: str(v) for k, v in report.items()}
        return plan

    def _row_errors(
        self, bad: pl.DataFrame, plan: _Plan, summaries: Mapping[str, _Summary]
    ) -> None:
        """One ``RowError`` per rejected usage line (few: messages are built in Python)."""
        by_index = {s.index: s for s in summaries.values()}
        have = set(bad.columns)
        names = ["line_no", "err", "code", "raw", "sid", "sidx", "units", "weighted"]
        names += [c for c in ("block", "res_ref", "rel_ref", "dsp_resource_id") if c in have]
        for row in bad.select(names).iter_rows(named=True):
            layout = self.resolved[row["code"]]
            fld, code, message = self._describe(row, layout, by_index)
            info = plan.rows.get(row["sidx"]) if row["sidx"] is not None else None
            if (
                row["weighted"]
                and info is not None
                and row["units"] is not None
                and row["sidx"] not in plan.unallocatable
            ):
                rev, den, sign, equal = info[0], info[1], info[2], info[3]
                held = Decimal(rev * (1 if equal else row["units"] * sign)) / Decimal(den)
                held = held.scaleb(-SCALE).quantize(Decimal(1).scaleb(-SCALE), ROUND_HALF_EVEN)
                currency = by_index[row["sidx"]].currency
                message += f"; its share of summary '{row['sid']}' ({held} {currency}) is left out"
            raw = row["raw"]
            self.errors.append(
                RowError(
                    self.filename, row["line_no"], fld, code, message,
                    raw_hash=None if raw is None else hashlib.sha256(raw.encode()).hexdigest(),
                )
            )  # fmt: skip

    def _describe(
        self, row: dict[str, Any], layout: Layout, by_index: Mapping[int, _Summary]
    ) -> tuple[str, str, str]:
        """(field, code, message) of a rejected usage line."""
        err = row["err"]
        cells = row["raw"].split("\t")

        def value(name: str | None) -> str:
            pos = layout.cells.get(name or "", -1)
            return cells[pos].strip() if 0 <= pos < len(cells) else ""

        count = layout.units[0]
        returns = layout.units[1] if len(layout.units) > 1 else None
        own = layout.own_amount or "NetRevenue"
        if err == _ERR["missing_count"]:
            return count, "missing_value", f"cell {count!r} is empty"
        if err == _ERR["bad_count"]:
            kind, what = ("invalid_decimal", "number") if layout.units_decimal else (
                "invalid_integer", "whole number")  # fmt: skip
            return count, kind, f"cell {count!r}: {value(count)!r} is not a {what}"
        if err == _ERR["bad_returns"] and returns:
            return returns, "invalid_integer", (
                f"cell {returns!r}: {value(returns)!r} is not a whole number")  # fmt: skip
        if err == _ERR["missing_own"]:
            return own, "missing_value", f"cell {own!r} is empty"
        if err == _ERR["bad_own"]:
            return own, "invalid_decimal", f"cell {own!r}: {value(own)!r} is not a number"
        if err == _ERR["too_precise_own"]:
            return own, "amount_too_precise", (
                f"cell {own!r}: {value(own)!r} has more than {SCALE} decimal places "
                "(never rounded)")  # fmt: skip
        sid_field = "SummaryRecordId"
        if err == _ERR["missing_summary"]:
            return sid_field, "missing_value", "cell 'SummaryRecordId' is empty"
        if err == _ERR["unknown_summary"]:
            text = f"SummaryRecordId {row['sid']!r} matches no summary record in this file"
            return sid_field, "unknown_summary", text
        if err == _ERR["invalid_summary"]:
            s = by_index[row["sidx"]]
            text = f"summary record {s.sid!r} (line {s.line}) cannot be read; see its error"
            return sid_field, "invalid_summary", text
        block = row.get("block")
        if err == _ERR["unknown_resource"]:
            if layout.usage_type != "ugc":
                fld, ref = "TransactedResource", row.get("res_ref")
            elif "DspResourceId" in layout.cells:
                fld, ref = "DspResourceId", row.get("dsp_resource_id")
            else:
                fld, ref = "BlockId", block
            return fld, "unknown_resource", (
                f"{fld} {ref!r} matches no AS01/AS02 record in block {block!r}")  # fmt: skip
        if err == _ERR["unknown_release"]:
            return "TransactedRelease", "unknown_release", (
                f"TransactedRelease {row.get('rel_ref')!r} matches no RE01/RE02 record in block "
                f"{block!r}")  # fmt: skip
        return sid_field, "unallocatable", (
            f"summary record {row['sid']!r} declares no usages: this file's share of its revenue "
            "cannot be computed")  # fmt: skip


@dataclass
class _Plan:
    """Per summary index: (R, D, sign, equal split, target T, max |units|), all exact ints."""

    rows: dict[int, tuple[int, int, int, bool, int, int]] = field(default_factory=dict)
    unallocatable: list[int] = field(default_factory=list)

    def add(
        self, idx: int, rev: int, den: int, sign: int, equal: bool, target: int, w_max: int
    ) -> None:
        self.rows[idx] = (rev, den, sign, equal, target, w_max)

    def fits_int64(self) -> bool:
        """Whether every product and sum of the allocation stays below 2^62 in magnitude."""
        limit = 1 << 62
        for rev, den, _sign, _equal, target, w_max in self.rows.values():
            q = abs(rev) // den + 1
            if abs(rev) >= limit or abs(target) >= limit or (q * w_max) >= limit // 4:
                return False
            if den * max(w_max, 1) >= limit // 4:
                return False
        return True


def _largest_remainder(lines: pl.DataFrame, plan: _Plan) -> pl.Series:
    """Allocated integer units of 10^-12 for ``lines`` (``sidx``, ``units``), in their order.

    Each summary's target is split by largest remainder. With ``R = q*D + r0`` and ``w`` the
    line's units (sign-normalised so that ``D > 0``; 1 each for an even split):
    ``floor = q*w + (r0*w) // D`` and the remainder is ``(r0*w) % D``. The ``k = T - sum(floor)``
    lines with the largest remainders (ties: the earlier line) get one unit more; ``T`` is ``R``
    whenever every line of the summary is kept. Int64 when the magnitudes allow it (the usual
    case), else Int128. One vectorised pass per summary, on that summary's lines only.
    """
    wide = not plan.fits_int64()
    big = pl.Int128 if wide else pl.Int64
    positions: list[pl.Series] = []
    values: list[pl.Series] = []
    groups = lines.with_row_index("_pos").partition_by("sidx", as_dict=True, include_key=False)
    for (sidx,), group in groups.items():
        rev, den, sign, equal, target, _w = plan.rows[int(sidx)]
        q, r0 = divmod(rev, den)
        w = pl.lit(1, dtype=big) if equal else pl.col("units").cast(big) * pl.lit(sign, dtype=big)
        part = pl.lit(r0, dtype=big) * w
        step = group.select(
            "_pos",
            (pl.lit(q, dtype=big) * w + part // pl.lit(den, dtype=big)).alias("floor"),
            (part % pl.lit(den, dtype=big)).alias("rem"),
        )
        k = target - int(step["floor"].sum())
        units = step["floor"]
        if k:
            # the lines are in file order, so an ordinal rank breaks ties by the earlier line
            units = units + (step["rem"].rank("ordinal", descending=True) <= k).cast(big)
        positions.append(step["_pos"])
        values.append(units)
    out = pl.Series("units", [0], dtype=big).extend_constant(0, lines.height - 1)
    return out.scatter(pl.concat(positions), pl.concat(values))


def _amount(units: pl.Series) -> pl.Series:
    """Integer units of 10^-12 -> AMOUNT, by reinterpreting the decimal128 buffer (no math)."""
    arrow = units.cast(pl.Decimal(38, 0)).to_arrow()
    scaled = pa.Array.from_buffers(pa.decimal128(38, SCALE), len(arrow), arrow.buffers())
    out = pl.from_arrow(scaled)
    assert isinstance(out, pl.Series)
    return out.cast(AMOUNT).alias(units.name)


class _Picker:
    """Cell expressions for a group of usage layouts that may place a cell differently."""

    def __init__(self, schema: pl.Schema, lays: dict[str, Layout]) -> None:
        self.lays = lays
        self.schema = schema
        self._split = pl.col("raw").str.split("\t")

    def _at(self, pos: int, dtype: pl.DataType, *, from_raw: bool) -> pl.Expr:
        have = self.schema.get(f"c{pos}")
        if have is not None and not from_raw and (have == dtype or have == pl.String):
            return pl.col(f"c{pos}").cast(dtype, strict=False)
        text = _empty_to_null(self._split.list.get(pos, null_on_oob=True))
        return text.cast(dtype, strict=False)

    def _by(
        self,
        positions: dict[str, int | None],
        dtype: pl.DataType | None = None,
        *,
        from_raw: bool = False,
    ) -> pl.Expr:
        dtype = dtype or pl.String()
        distinct = set(positions.values())
        if len(distinct) == 1:
            (pos,) = distinct
            if pos is None:
                return pl.lit(None, dtype=dtype)
            return self._at(pos, dtype, from_raw=from_raw)
        expr = pl.lit(None, dtype=dtype)
        for code, pos in positions.items():
            if pos is not None:
                value = self._at(pos, dtype, from_raw=from_raw)
                expr = pl.when(pl.col("code") == code).then(value).otherwise(expr)
        return expr

    def has(self, name: str) -> bool:
        return any(name in lay.cells for lay in self.lays.values())

    def cell(self, name: str) -> pl.Expr:
        return self._by({c: lay.cells.get(name) for c, lay in self.lays.items()})

    def _unit_positions(self, i: int) -> dict[str, int | None]:
        return {
            c: lay.cells[lay.units[i]] if len(lay.units) > i else None
            for c, lay in self.lays.items()
        }

    def units(self, i: int) -> pl.Expr:
        """Count (``i`` = 0) or returns (1) as Int64 (null: empty or not a whole number)."""
        return self._by(self._unit_positions(i), pl.Int64())

    def raw_units(self, i: int) -> pl.Expr:
        """The same cell as text, split from the raw line (for the few suspect lines)."""
        return self._by(self._unit_positions(i), pl.String(), from_raw=True)

    def own(self) -> pl.Expr:
        return self._by(
            {
                c: lay.cells[lay.own_amount] if lay.own_amount else None
                for c, lay in self.lays.items()
            }
        )


_KEY_SEEDS: Final = (0x6473_7231, 0x6473_7232, 0x6473_7233, 0x6473_7234)


def _pair_key(block: pl.Expr, ref: pl.Expr, first: int, second: int) -> pl.Expr:
    """A 64-bit key for a (block, reference) pair: null when either is missing."""
    key = block.hash(first) ^ ref.hash(second)
    return pl.when(block.is_null() | ref.is_null()).then(None).otherwise(key)


def _lookup(keys: pl.DataFrame, right: pl.DataFrame) -> pl.Series:
    """For each (``block``, ``ref``) row of ``keys``, the row of ``right`` holding that pair
    (UInt32; null when there is none). ``right`` holds each pair once.

    Joins on one 64-bit hash of the pair (an integer join is several times cheaper than one on
    two strings) and checks every match with a second, independent 64-bit hash; on a collision
    (about 2^-64 per pair) it redoes the join on the strings.
    """
    k1, k2, v1, v2 = _KEY_SEEDS
    block, ref = pl.col("block"), pl.col("ref")
    keyed = right.select(
        _pair_key(block, ref, k1, k2).alias("_key"),
        _pair_key(block, ref, v1, v2).alias("_check"),
    ).with_row_index("_row")
    if not keyed["_key"].is_duplicated().any():
        out = keys.select(
            _pair_key(block, ref, k1, k2).alias("_key"),
            _pair_key(block, ref, v1, v2).alias("_mine"),
        ).join(keyed, on="_key", how="left", maintain_order="left")
        if not out.select((pl.col("_check") != pl.col("_mine")).any()).item():
            return out["_row"]
    rows = right.select("block", "ref").with_row_index("_row")
    return keys.join(rows, on=["block", "ref"], how="left", maintain_order="left")["_row"]


IDENTIFIERS: Final = (
    "isrc", "upc", "dsp_resource_id", "dsp_release_id", "proprietary_id", "title", "artist",
)  # fmt: skip


def _gatherer(table: pl.DataFrame, index: str) -> Callable[[str], pl.Expr]:
    """``column name -> expression`` taking ``table[name]`` at the row in column ``index``."""

    def of(name: str) -> pl.Expr:
        return pl.lit(table[name]).gather(pl.col(index))

    return of


def _aligned(usage: pl.DataFrame) -> bool:
    """Whether the two readers agree line by line: each usage line's raw text starts with its
    first cell."""
    return bool(usage.select(pl.col("raw").str.starts_with(pl.col("c0")).all()).item())


def _resplit(rows: pl.DataFrame, wanted: list[int], ints: set[int]) -> pl.DataFrame:
    """The ``c<i>`` cells of ``rows`` split from their raw lines (the slow, always-aligned way)."""
    split = pl.col("raw").str.split("\t")
    cells = []
    for i in wanted:
        cell = _empty_to_null(split.list.get(i, null_on_oob=True))
        if i in ints:
            cell = cell.str.strip_chars().cast(pl.Int64, strict=False)
        cells.append(cell.alias(f"c{i}"))
    return rows.select("line_no", "raw", *cells)


def _cells(part: pl.DataFrame, cells: Mapping[str, int]) -> pl.DataFrame:
    """``line_no``, ``raw`` and the named cells of ``part``: from the ``c<i>`` text columns read
    by the CSV reader where present, else split from the raw line (only as far as needed)."""
    text = {n for n, t in part.schema.items() if t == pl.String}  # not the Int64 count cells
    direct = {name: f"c{i}" for name, i in cells.items() if f"c{i}" in text}
    split = {name: i for name, i in cells.items() if name not in direct}
    exprs = [pl.col(column).alias(name) for name, column in direct.items()]
    if split:
        fields = pl.col("raw").str.splitn("\t", max(split.values()) + 2)
        exprs += [
            _empty_to_null(fields.struct.field(f"field_{i}")).alias(name)
            for name, i in split.items()
        ]
    return part.select("line_no", "raw", *exprs).select("line_no", "raw", *cells)


def _height(frame: pl.DataFrame | None) -> int:
    return 0 if frame is None else frame.height


_ERR: Final = {
    "missing_count": 1, "bad_count": 2, "bad_returns": 3, "missing_own": 4, "bad_own": 5,
    "missing_summary": 6, "unknown_summary": 7, "invalid_summary": 8, "unknown_resource": 9,
    "unknown_release": 10, "unallocatable": 11, "too_precise_own": 12,
}  # fmt: skip
"""Why a usage line is rejected (the ``err`` column; 0 = kept)."""


def _family(layout: Layout) -> str:
    return "single" if layout.single else "ugc" if layout.usage_type == "ugc" else "basic"


def _usage_type(usage: pl.DataFrame, resolved: Mapping[str, Layout]) -> pl.Expr:
    """``usage_type`` of each line, from its record type (SU01/SR01 download, ...)."""
    values = {code: resolved[code].usage_type for code in usage["code"].unique().to_list()}
    distinct = set(values.values())
    if len(distinct) <= 1:
        return pl.lit(next(iter(distinct), None), dtype=pl.String)
    expr = pl.lit(None, dtype=pl.String)
    for code, value in values.items():
        expr = pl.when(pl.col("code") == code).then(pl.lit(value)).otherwise(expr)
    return expr


register(DsrParser())
