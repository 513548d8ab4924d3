"""ISO 3166-1 territories, ISO 4217 currencies and DDEX-style territory sets, and the one
home of reading a territory as reports write it (``normalise_territory`` and its Polars twin
``normalise_territory_expr``): ISO alpha-2, alpha-3 and numeric codes, English country names
(pycountry's ISO names and CLDR's English names through babel), the aliases stores use, and
"not given" (blank, ``N/A``) as ``UNKNOWN`` (``ZZ``, ISO's user-assigned "unknown" code, as CLDR
and YouTube use it), which a worldwide set matches as it matches ``WW``."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache

import polars as pl
import pycountry

__all__ = [
    "ALL_TERRITORIES",
    "REPORTED_TERRITORIES",
    "UNKNOWN",
    "WORLDWIDE",
    "TerritoryError",
    "TerritorySet",
    "is_valid_currency",
    "is_valid_territory",
    "normalise_territories",
    "normalise_territory",
    "normalise_territory_expr",
    "parse_territory_set",
    "require_currency",
    "require_territory",
    "territory_reading",
]

WW = "WW"  # DDEX "Worldwide"
# XK (Kosovo) is user-assigned, not in ISO 3166-1/pycountry, but DSPs report it.
ALL_TERRITORIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries) | {"XK"}
# A line whose report names no territory (blank, N/A) or one nobody can place. A worldwide set
# matches it as it matches WW (``TerritorySet.contains``): only without exclusions, since the
# line may be from an excluded territory.
UNKNOWN = "ZZ"
# What a revenue line's territory may be once read (``normalise_territory``).
REPORTED_TERRITORIES: frozenset[str] = ALL_TERRITORIES | {WW, UNKNOWN}

# pycountry.currencies holds only active ISO 4217 codes. Of those we reject the
# X-codes that are not money a royalty can be paid in: no currency (XXX),
# testing (XTS), precious metals, bond-market / accounting units, SDR, Sucre.
# Real X-currencies (XAF, XOF, XPF, XCD, XCG) stay valid.
_NON_TENDER = frozenset(
    {
        "XXX",
        "XTS",
        "XAU",
        "XAG",
        "XPD",
        "XPT",
        "XBA",
        "XBB",
        "XBC",
        "XBD",
        "XDR",
        "XSU",
        "XUA",
        "XAD",
    }
)
_CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies) - _NON_TENDER


def _ascii_upper(code: str) -> str:
    """Upper-case ASCII only: "ß".upper() is "SS" (South Sudan) and must not become valid."""
    code = code.strip()
    return code.upper() if code.isascii() else code


class TerritoryError(ValueError):
    """A territory token is unknown or misplaced."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(f"territory {token!r}: {reason}")
        self.token = token
        self.reason = reason


def _territory_problem(code: str) -> str | None:
    if code == "UK":
        return "UK is not an ISO 3166-1 code; use GB"
    if len(code) != 2 or not code.isalpha():
        return "territory must be a 2-letter ISO 3166-1 alpha-2 code or WW"
    return None if code == WW or code in ALL_TERRITORIES else "unknown ISO 3166-1 alpha-2 code"


def require_territory(code: str | None) -> str:
    """Return the upper-cased territory code (ISO alpha-2, XK or WW) or raise."""
    if not isinstance(code, str):
        raise TerritoryError(repr(code), "territory must be a string")
    c = _ascii_upper(code)
    if reason := _territory_problem(c):
        raise TerritoryError(c, reason)
    return c


def is_valid_territory(code: str | None) -> bool:
    """True for an ISO 3166-1 alpha-2 code, XK or WW (case-insensitive)."""
    c = _ascii_upper(code) if isinstance(code, str) else ""
    return _territory_problem(c) is None


def require_currency(code: str | None) -> str:
    """Return the upper-cased active ISO 4217 code or raise ValueError."""
    c = _ascii_upper(code) if isinstance(code, str) else ""
    if c in _CURRENCIES:
        return c
    if c in _NON_TENDER:
        raise ValueError(f"currency {c!r} is an ISO 4217 non-currency/test code")
    if len(c) != 3 or not c.isalpha():
        raise ValueError(f"currency {code!r} must be a 3-letter ISO 4217 code")
    raise ValueError(f"currency {c!r} is not an active ISO 4217 code")


def is_valid_currency(code: str | None) -> bool:
    """True for an active ISO 4217 alphabetic code (case-insensitive)."""
    return isinstance(code, str) and _ascii_upper(code) in _CURRENCIES


def _canonical(
    include: tuple[str, ...], exclude: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    inc = {require_territory(t) for t in include}
    exc = {require_territory(t) for t in exclude}
    if WW in exc:
        raise TerritoryError("-WW", "cannot exclude WW")
    if exc and WW not in inc:
        raise TerritoryError(f"-{min(exc)}", "exclusions are only allowed together with WW")
    if not inc:
        raise TerritoryError("", "territory set includes nothing")
    if both := inc & exc:
        raise TerritoryError(min(both), "territory is both included and excluded")
    if WW in inc:
        inc = {WW}  # explicit codes alongside WW are redundant
    return tuple(sorted(inc)), tuple(sorted(exc))


@dataclass(frozen=True)
class TerritorySet:
    """Included territories (or WW) minus exclusions; always canonical."""

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        include, exclude = _canonical(tuple(self.include), tuple(self.exclude))
        object.__setattr__(self, "include", include)
        object.__setattr__(self, "exclude", exclude)

    @property
    def worldwide(self) -> bool:
        """True if the set is WW (possibly with exclusions)."""
        return self.include == (WW,)

    def resolve(self) -> frozenset[str]:
        """The concrete ISO codes (plus XK) the set covers."""
        return ALL_TERRITORIES - set(self.exclude) if self.worldwide else frozenset(self.include)

    def contains(self, code: str) -> bool:
        """True if ``code`` is covered; ``WW`` only if nothing is excluded."""
        c = _ascii_upper(code)
        if c in (WW, UNKNOWN):
            return self.worldwide and not self.exclude
        if self.worldwide:
            return c in ALL_TERRITORIES and c not in self.exclude
        return c in self.include

    def intersects(self, other: TerritorySet) -> bool:
        """True if any concrete territory is in both sets."""
        return not self.resolve().isdisjoint(other.resolve())

    def to_list(self) -> list[str]:
        """Canonical tokens, e.g. ``["WW", "-CA", "-US"]``."""
        return [*self.include, *(f"-{c}" for c in self.exclude)]

    def to_string(self) -> str:
        """Canonical string, e.g. ``"WW,-CA,-US"`` or ``"GB,IE"``."""
        return ",".join(self.to_list())


WORLDWIDE = TerritorySet((WW,))


def parse_territory_set(value: str | list[str]) -> TerritorySet:
    """Parse ``"WW,-US,-CA"``, ``"GB,IE"``, a list or a JSON list of such tokens."""
    items: object = value
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TerritoryError(value, f"invalid JSON: {exc.msg}") from None
    elif isinstance(value, str):
        items = value.split(",")
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise TerritoryError(str(value), "expected a comma-separated string or a list of strings")
    tokens = [_ascii_upper(t) for t in items if t.strip()]
    include = tuple(t for t in tokens if not t.startswith("-"))
    exclude = tuple(t[1:].strip() for t in tokens if t.startswith("-"))
    return TerritorySet(include, exclude)


# ---------------------------------------------------------------------------------------------
# Territories as reports write them.

# What no library lists: the codes and names stores write that are not ISO 3166-1 (or no
# longer are), each with why. Keys are lower case.
STORE_ALIASES: dict[str, str] = {
    "uk": "GB",  # the UK's own TLD and common usage; ISO reserves it (exceptionally reserved)
    "el": "GR",  # the EU's code for Greece (Eurostat, VAT numbers)
    "rom": "RO",  # Romania's alpha-3 until 2002, still in legacy distributor exports
    "zar": "CD",  # Zaire's alpha-3 until 1997, kept by some store back-ends for DR Congo
    "tmp": "TL",  # East Timor's alpha-3 until 2002
    "xkx": "XK",  # Kosovo: user-assigned codes in use (EU, IMF, Apple, Spotify)
    "kos": "XK",
    "xkv": "XK",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "great britain": "GB",
    "britain": "GB",
    "holland": "NL",
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "america": "US",
    "korea": "KR",  # stores reporting "Korea" mean the Republic of Korea (no store in the North)
    "ivory coast": "CI",
    "swaziland": "SZ",
    "macedonia": "MK",
    "burma": "MM",
    "czech republic": "CZ",
    "turkey": "TR",
    "cape verde": "CV",
    "east timor": "TL",
    "vatican": "VA",
    "palestine": "PS",
    "hong kong sar": "HK",
    "macau": "MO",
    # worldwide: a line reported for the world at large (YouTube, SoundCloud totals)
    "ww": WW,
    "worldwide": WW,
    "world": WW,
    "global": WW,
    "row": WW,  # "rest of world": no one country
    "rest of world": WW,
    "rest of the world": WW,
    "all": WW,
    "int": WW,  # "international"
    "international": WW,
}
# Texts meaning "no territory given" (lower case): the line keeps its amount, its territory
# is UNKNOWN and it gets a finding. "NA" is not one of them: it is Namibia.
NOT_GIVEN: frozenset[str] = frozenset(
    {"", "n/a", "n.a.", "-", "--", "?", "??", "xx", "zz", "unknown", "none", "null",
     "not available", "unspecified", "other", "others", "not specified", "undefined"}
)  # fmt: skip


def _fold(text: str) -> str:
    """The lookup key: lower-cased (as Polars does), spaces collapsed, apostrophes straight."""
    return " ".join(text.replace("\u2019", "'").split()).lower()


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@cache
def _territory_table() -> dict[str, str]:
    """Every spelling we read (lower case) -> its code: ISO alpha-2, alpha-3 and numeric codes
    and names (pycountry), CLDR's English names (babel), then ``STORE_ALIASES``; names also
    without accents ("Cote d'Ivoire")."""
    from babel import Locale

    table: dict[str, str] = {}

    def add(name: str | None, code: str) -> None:
        if name:
            for key in {_fold(name), _fold(_ascii(name))}:
                table.setdefault(key, code)

    for c in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "numeric", "name", "official_name", "common_name"):
            add(getattr(c, attr, None), c.alpha_2)
    for code, name in Locale("en").territories.items():
        if code in ALL_TERRITORIES:
            add(name, code)
    add("XK", "XK")
    for key, code in STORE_ALIASES.items():
        table[_fold(key)] = code
    for key in NOT_GIVEN:
        table[key] = UNKNOWN
    return table


def territory_reading(text: str | None) -> tuple[str, str | None]:
    """(the code a report's territory text stands for, the finding it deserves or None).

    A code, name or alias -> its ISO alpha-2 code (or WW), no finding; blank or a "none" text
    -> UNKNOWN, "not_given"; anything else -> UNKNOWN, "unrecognised"."""
    key = _fold(text or "")
    if key.isdigit() and len(key) < 3:
        key = key.zfill(3)  # numeric codes are written without their zeros ("36": Australia)
    code = _territory_table().get(key)
    if code is None:
        return UNKNOWN, "unrecognised"
    return code, "not_given" if code == UNKNOWN else None


def normalise_territory(text: str | None) -> str:
    """The territory code of a report's text: alpha-2, WW, or UNKNOWN (``territory_reading``)."""
    return territory_reading(text)[0]


def normalise_territory_expr(expr: pl.Expr | str) -> pl.Expr:
    """Polars twin of ``normalise_territory`` (same answer on every string; null -> UNKNOWN)."""
    col = pl.col(expr) if isinstance(expr, str) else expr
    table = _territory_table()
    key = (
        col.str.replace_all("\u2019", "'", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars(" ")
        .str.to_lowercase()
    )
    key = pl.when(key.str.contains(r"^[0-9]{1,2}$")).then(key.str.zfill(3)).otherwise(key)
    return key.replace_strict(
        list(table), list(table.values()), default=UNKNOWN, return_dtype=pl.String
    ).fill_null(UNKNOWN)


TERRITORY_FINDINGS = {
    "not_given": (
        "territory_not_given",
        "no territory given ({}): read as ZZ (unknown territory); the line and its amount are kept",
    ),
    "unrecognised": (
        "unknown_territory",
        "{} is not a territory we know: read as ZZ (unknown territory); the line and its amount "
        "are kept (a format's territory_map can name it)",
    ),
}
FINDINGS_SCHEMA = {"line_no": pl.Int64(), "field": pl.String(), "code": pl.String(),
                   "message": pl.String()}  # fmt: skip


def normalise_territories(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(``lines`` with ``territory`` read as a code, a finding per line it could not place:
    ``FINDINGS_SCHEMA``, to be kept as warnings). Each distinct text is judged once."""
    empty = pl.DataFrame(schema=FINDINGS_SCHEMA)
    if "territory" not in lines.columns:
        return lines, empty
    distinct = lines["territory"].unique()
    texts = distinct.to_list()
    flagged = {t: why for t in texts if (why := territory_reading(t)[1]) is not None}
    # read once per distinct text (a report repeats a few hundred territories), then looked up
    codes = distinct.to_frame().select(normalise_territory_expr("territory"))["territory"]
    keep = distinct.is_not_null()
    out = lines.with_columns(
        pl.col("territory")
        .replace_strict(distinct.filter(keep), codes.filter(keep), default=UNKNOWN)
        .alias("territory")
    )
    if not flagged:
        return out, empty
    keys = [t for t in flagged if t is not None]
    finding_codes = [TERRITORY_FINDINGS[flagged[t]][0] for t in keys]
    messages = [
        TERRITORY_FINDINGS[flagged[t]][1].format(repr(t) if t.strip() else "blank") for t in keys
    ]
    col = pl.col("territory")
    hit = col.is_in(keys) | (col.is_null() if None in flagged else pl.lit(False))
    null_code, null_message = TERRITORY_FINDINGS["not_given"]
    found = lines.filter(hit).select(
        pl.col("line_no").cast(pl.Int64),
        pl.lit("territory").alias("field"),
        col.replace_strict(keys, finding_codes, default=null_code, return_dtype=pl.String).alias(
            "code"
        ),
        col.replace_strict(
            keys, messages, default=null_message.format("blank"), return_dtype=pl.String
        ).alias("message"),
    )
    return out, found
