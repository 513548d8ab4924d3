"""DSR record layouts (cell positions per profile and version), the parser's constants, and
small helpers on cells and numbers (see the package docstring for the format)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

import polars as pl

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


def _basic_audio_block(version: str) -> tuple[Layout, ...]:
    """BasicAudio 1.0 / 1.1 block records; ``version`` is the record version 1.1 writes."""
    return (
        Layout("RE01", "release", _RE01),
        Layout("RE02", "subrelease", _RE02),
        Layout("AS01", "resource", _AS),
        Layout(f"AS02{version}", "resource", _AS),
        Layout(f"MW01{version}", "other", _BLOCK_ONLY),
        _SU01_L,
        _SU02_L,
    )


def _ugc_block(version: str) -> tuple[Layout, ...]:
    """UGC 1.0 / 1.1.1 block records; ``version`` is the record version 1.1.1 writes (".01")."""
    return (
        Layout("AS01", "resource", _AS),
        Layout(f"AS02{version}", "resource", _AS),
        Layout(f"MW01{version}", "other", _BLOCK_ONLY),
        Layout("RU01", "other", _BLOCK_ONLY),
        Layout("RU02", "other", _BLOCK_ONLY),
        Layout(f"SU03{version}", "usage",
               {"BlockId": 1, "SummaryRecordId": 3, "DspReleaseId": 4, "Usages": 5,
                "NetRevenue": 6}, "ugc", ("Usages",), own_amount="NetRevenue",
               count_optional=True),
        Layout(f"LI01{version}", "licence", {"BlockId": 1, "SummaryRecordId": 2}),
    )  # fmt: skip


_SY02_10 = _sy(
    "SY02", Usages=8, Currency=10, NetRevenue=11, AllocatedUsages=14, AllocatedNetRevenue=16
)  # 1.0: cell 16 is AmountPayable, not read
_SY03_10 = _sy(
    "SY03", Usages=8, Currency=10, NetRevenue=11, AllocatedUsages=14, AllocatedNetRevenue=16
)

LAYOUTS: Final[dict[tuple[str, str], dict[str, Layout]]] = {
    ("BasicAudioProfile", "1.0"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        _sy("SY01", Usages=8, Currency=10, NetRevenue=11),
        _SY02_10,
        _SY03_10,
        *_basic_audio_block(""),
    ),
    ("BasicAudioProfile", "1.1"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        _sy("SY01", Usages=8, Currency=10, NetRevenue=11),
        _sy("SY02.01", Usages=8, Currency=10, NetRevenue=11, AllocatedUsages=14,
            AllocatedNetRevenue=16),
        _sy("SY04", UsagesInReportingPeriod=13, Currency=14, NetRevenue=18),
        _sy("SY05", TotalUsages=11, AllocatedUsages=12, AllocatedNetRevenue=15),
        *_basic_audio_block(".01"),
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
    ("UgcProfile", "1.0"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        _SY02_10,
        _SY03_10,
        Layout("RE01", "release", _RE01),
        Layout("RE02", "subrelease", _RE02),
        *_ugc_block(""),
    ),
    ("UgcProfile", "1.1.1"): _table(
        *_COMMON_HEAD,
        Layout("FOOT", "foot", _FOOT),
        _sy("SY02.01", Usages=8, Currency=10, NetRevenue=11, AllocatedUsages=14,
            AllocatedNetRevenue=16),
        _sy("SY04", UsagesInReportingPeriod=13, Currency=14, NetRevenue=18),
        _sy("SY05", TotalUsages=11, AllocatedUsages=12, AllocatedNetRevenue=15),
        *_ugc_block(".01"),
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


IDENTIFIERS: Final = (
    "isrc", "upc", "dsp_resource_id", "dsp_release_id", "proprietary_id", "title", "artist",
)  # fmt: skip


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
