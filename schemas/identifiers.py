"""Music identifier validation (ISRC, GTIN, ISWC, GRid, ISNI, DPID, IPI): the one home of
every identifier rule, for single values and for Polars columns alike.

Rules follow DOMAIN.md "Identifiers". python-stdnum does the check-digit maths
where it has a module; everything else is hand-written and says why.
Every ``is_valid_*`` accepts ``str | None`` and never raises; ``require`` raises
:class:`IdentifierError` with a precise reason.

Each ``normalise_*`` and ``is_valid_*`` has a Polars twin, ``normalise_*_expr`` and
``is_valid_*_expr`` (a column name or expression in, an expression out), which gives the same
answer on every string (a property test holds them to it); a null is null after normalising
and not valid. ``gtin_key`` / ``gtin_key_expr`` is the form GTINs are compared in (14 digits),
``gtin_forms`` its inverse for lookups in the database. ``normalise_lines`` normalises the
identifier columns of revenue lines, once per parsed chunk, before validation and matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl
from stdnum import ean
from stdnum.iso7064 import mod_11_2, mod_37_36

__all__ = [
    "KINDS",
    "IdentifierError",
    "dpid_check_ok",
    "gtin_check_digit",
    "gtin_check_digit_expr",
    "gtin_forms",
    "gtin_key",
    "gtin_key_expr",
    "is_valid_dpid",
    "is_valid_dpid_expr",
    "is_valid_grid",
    "is_valid_grid_expr",
    "is_valid_gtin",
    "is_valid_gtin_expr",
    "is_valid_ipi",
    "is_valid_ipi_expr",
    "is_valid_isni",
    "is_valid_isni_expr",
    "is_valid_isrc",
    "is_valid_isrc_expr",
    "is_valid_iswc",
    "is_valid_iswc_expr",
    "normalise",
    "normalise_dpid",
    "normalise_dpid_expr",
    "normalise_expr",
    "normalise_grid",
    "normalise_grid_expr",
    "normalise_gtin",
    "normalise_gtin_expr",
    "normalise_ipi",
    "normalise_ipi_expr",
    "normalise_isni",
    "normalise_isni_expr",
    "normalise_isrc",
    "normalise_isrc_expr",
    "normalise_iswc",
    "normalise_iswc_expr",
    "normalise_lines",
    "require",
]

# Display-only separators: whitespace (exactly what Python's ``\s`` matches, NBSP included;
# spelled out because Polars' ``\s`` differs on U+001C..U+001F), ASCII and Unicode dashes
# (U+2010..U+2015, minus sign U+2212) and, except in GTINs, dots.
_SPACES = (
    *range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
)  # fmt: skip
_DASHES = (0x2D, *range(0x2010, 0x2016), 0x2212)
_DOT = 0x2E


def _char_class(points: tuple[int, ...], *, polars: bool) -> str:
    """A regex character class of ``points``, in Python's or Polars' (Rust) escape syntax."""
    esc = (lambda c: f"\\x{{{c:X}}}") if polars else (lambda c: f"\\U{c:08X}")
    return "[" + "".join(esc(c) for c in points) + "]"


_SEPARATORS = re.compile(_char_class((*_SPACES, *_DASHES, _DOT), polars=False))
_GTIN_SEPARATORS = re.compile(_char_class((*_SPACES, *_DASHES), polars=False))
_SEPARATORS_PL = _char_class((*_SPACES, *_DASHES, _DOT), polars=True)
_GTIN_SEPARATORS_PL = _char_class((*_SPACES, *_DASHES), polars=True)
# stdnum.isrc also checks CC against a country list; DOMAIN says CC may be a
# registrant prefix too, so any two letters pass.
_ISRC = re.compile(r"[A-Z]{2}[A-Z0-9]{3}[0-9]{7}")
_ISWC = re.compile(r"T[0-9]{10}")
_GRID = re.compile(r"A1[A-Z0-9]{16}")
_ISNI = re.compile(r"[0-9]{15}[0-9X]")
_DPID = re.compile(r"PADPIDA[A-Z0-9]{11}")
_IPI_BASE = re.compile(r"I[0-9]{10}")
_GTIN_LENGTHS = (8, 12, 13, 14)


class IdentifierError(ValueError):
    """An identifier failed validation; ``reason`` is human-readable."""

    def __init__(self, kind: str, value: str | None, reason: str) -> None:
        super().__init__(f"invalid {kind.upper()} {value!r}: {reason}")
        self.kind = kind
        self.value = value
        self.reason = reason


def normalise(value: str) -> str:
    """Strip whitespace, hyphens and dots; upper-case (ASCII only: "ß" must not become "SS"
    and "ﬁ" must not become "FI", so non-ASCII input stays as it is and fails validation)."""
    compact = _SEPARATORS.sub("", value)
    return compact.upper() if compact.isascii() else compact


normalise_isrc = normalise
normalise_iswc = normalise  # "T-034.524.680-1" -> "T0345246801"
normalise_isni = normalise  # "0000 0001 2103 2683" -> "0000000121032683"
normalise_dpid = normalise


def normalise_gtin(value: str) -> str:
    """Strip spaces/hyphens; leading zeros are kept (GTINs are text).

    Dots are *not* removed: "36000291452.0" is a spreadsheet float artefact,
    and deleting the dot would fabricate a different 12-digit number.
    """
    return _GTIN_SEPARATORS.sub("", value)


def normalise_grid(value: str) -> str:
    """Normalise a GRid, dropping an optional "GRid:" prefix."""
    return normalise(value).removeprefix("GRID:")


def normalise_ipi(value: str) -> str:
    """Normalise an IPI; 9-10 digit name numbers are zero-padded to 11."""
    v = normalise(value)
    return v.zfill(11) if v.isascii() and v.isdigit() and 9 <= len(v) < 11 else v


def _length(label: str, v: str, n: int) -> str | None:
    if not v:
        return f"{label} is empty"
    return None if len(v) == n else f"{label} must be {n} characters, got {len(v)}"


def _check(label: str, expected: str, got: str) -> str | None:
    return None if expected == got else f"{label} check character should be {expected}, got {got}"


def _isrc_problem(v: str) -> str | None:
    return _length("ISRC", v, 12) or (
        None
        if _ISRC.fullmatch(v)
        else "ISRC must be 2 letters + 3 letters/digits + 2-digit year + 5 digits"
    )


def _gtin_problem(v: str) -> str | None:
    if not v:
        return "GTIN is empty"
    if not (v.isascii() and v.isdigit()):
        return "GTIN must contain digits only"
    if len(v) not in _GTIN_LENGTHS:
        return f"GTIN must be 8, 12, 13 or 14 digits, got {len(v)}"
    # The all-zero string passes mod 10, but reports use it as a "no UPC"
    # placeholder and DSPs reject it on delivery, so it is never a real GTIN.
    if v.count("0") == len(v):
        return "GTIN is an all-zero placeholder"
    expected = gtin_check_digit(v[:-1])
    return None if expected == v[-1] else f"GTIN check digit should be {expected}, got {v[-1]}"


def _iswc_check_digit(body: str) -> str:
    # python-stdnum has no ISWC module; DOMAIN formula over the 9 digits.
    return str((10 - (1 + sum(i * int(d) for i, d in enumerate(body, 1))) % 10) % 10)


def _iswc_problem(v: str) -> str | None:
    return _length("ISWC", v, 11) or (
        _check("ISWC", _iswc_check_digit(v[1:10]), v[10])
        if _ISWC.fullmatch(v)
        else "ISWC must be 'T' + 9 digits + check digit"
    )


def _grid_problem(v: str) -> str | None:
    # stdnum.grid/isni check only length + check char (not the "A1" scheme), and
    # report no expected value, so the format is checked here and the
    # stdnum.iso7064 modules they wrap supply the check character.
    if problem := _length("GRid", v, 18):
        return problem
    if not _GRID.fullmatch(v):
        return "GRid must be 'A1' + 5 issuer + 10 release + 1 check character (A-Z, 0-9)"
    return _check("GRid", mod_37_36.calc_check_digit(v[:-1]), v[-1])


def _isni_problem(v: str) -> str | None:
    if problem := _length("ISNI", v, 16):
        return problem
    if not _ISNI.fullmatch(v):
        return "ISNI must be 15 digits + check digit (0-9 or X)"
    return _check("ISNI", mod_11_2.calc_check_digit(v[:-1]), v[-1])


def _dpid_problem(v: str) -> str | None:
    # Format only: DOMAIN treats a Mod 37,36 mismatch as a warning (dpid_check_ok).
    return _length("DPID", v, 18) or (
        None
        if _DPID.fullmatch(v)
        else "DPID must be 'PADPIDA' + 10 letters/digits + check character"
    )


def _ipi_problem(v: str) -> str | None:
    # Format only: CISAC does not publish the IPI check-digit algorithms.
    if not v:
        return "IPI is empty"
    if v.startswith("I"):
        return (
            None
            if _IPI_BASE.fullmatch(v)
            else "IPI base number must be 'I-' + 9 digits + '-' + 1 digit"
        )
    if not (v.isascii() and v.isdigit()):
        return "IPI name number must contain digits only"
    if len(v) != 11:
        return f"IPI name number must be 9-11 digits, got {len(v)}"
    return "IPI name number is an all-zero placeholder" if v == "0" * 11 else None


KINDS: dict[str, tuple[Callable[[str], str], Callable[[str], str | None]]] = {
    "isrc": (normalise_isrc, _isrc_problem),
    "gtin": (normalise_gtin, _gtin_problem),
    "iswc": (normalise_iswc, _iswc_problem),
    "grid": (normalise_grid, _grid_problem),
    "isni": (normalise_isni, _isni_problem),
    "dpid": (normalise_dpid, _dpid_problem),
    "ipi": (normalise_ipi, _ipi_problem),
}


def require(kind: str, value: str | None) -> str:
    """Return the normalised identifier or raise :class:`IdentifierError`."""
    try:
        norm, problem = KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown identifier kind {kind!r}; expected one of {sorted(KINDS)}"
        ) from None
    if value is None:
        raise IdentifierError(kind, value, f"{kind.upper()} is missing")
    if not isinstance(value, str):
        raise IdentifierError(
            kind, value, f"{kind.upper()} must be a string, got {type(value).__name__}"
        )
    v = norm(value)
    if reason := problem(v):
        raise IdentifierError(kind, value, reason)
    return v


def _ok(kind: str, value: str | None) -> bool:
    if not isinstance(value, str):
        return False
    norm, problem = KINDS[kind]
    return problem(norm(value)) is None


def is_valid_isrc(value: str | None) -> bool:
    """``CC`` + 3 alphanumerics + 2-digit year + 5 digits (no check digit)."""
    return _ok("isrc", value)


def is_valid_gtin(value: str | None) -> bool:
    """EAN-8, UPC-A, EAN-13 or GTIN-14 with a correct GS1 check digit."""
    return _ok("gtin", value)


def is_valid_iswc(value: str | None) -> bool:
    """``T`` + 9 digits + check digit."""
    return _ok("iswc", value)


def is_valid_grid(value: str | None) -> bool:
    """``A1`` + 5 + 10 + ISO 7064 Mod 37,36 check character."""
    return _ok("grid", value)


def is_valid_isni(value: str | None) -> bool:
    """16 characters, ISO 7064 Mod 11-2 check (may be X)."""
    return _ok("isni", value)


def is_valid_dpid(value: str | None) -> bool:
    """``PADPIDA`` + 10 alphanumerics + check character (format only)."""
    return _ok("dpid", value)


def is_valid_ipi(value: str | None) -> bool:
    """IPI name number (9-11 digits) or base number ``I-#########-#``; format only."""
    return _ok("ipi", value)


def dpid_check_ok(value: str | None) -> bool:
    """True if a well-formed DPID's Mod 37,36 check holds.

    The check covers all 18 characters *including* the "PADPIDA" prefix: that is
    the only span for which it holds on the DDEX ERN 4.3 sample DPIDs
    (PADPIDA2007050901U, PADPIDA2009101501Y, PADPIDA2013042401U).
    """
    return is_valid_dpid(value) and mod_37_36.is_valid(normalise_dpid(value or ""))


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit of a GTIN ``body`` (all but the last digit; any length:
    weights 3, 1, 3, ... from the right)."""
    return str(ean.calc_check_digit(body))


def gtin_key(value: str) -> str | None:
    """The form GTINs are compared in: 14 digits, so UPC-A ``036000291452`` and EAN-13
    ``0036000291452`` are one product. None when ``value`` (normalised) is not 8-14 digits.
    The check digit is not checked: a mistyped code still keys (and simply matches nothing)."""
    v = normalise_gtin(value)
    return v.zfill(14) if v.isascii() and v.isdigit() and 8 <= len(v) <= 14 else None


def gtin_forms(value: str) -> list[str]:
    """Every way of writing the GTIN ``value`` with more or fewer leading zeros (8 to 14
    digits): the codes a stored GTIN may be written as that have the same ``gtin_key``. A code
    that is not all digits has one form, itself."""
    if not value.isdigit():
        return [value]
    full = value.zfill(14)
    return [full[14 - n :] for n in range(8, 15) if full[: 14 - n].strip("0") == ""]


# --- Polars twins ---------------------------------------------------------------------------
# Same answers as the Python functions above on every string (tests/schemas/test_identifiers.py
# checks them against each other on arbitrary text); nulls stay null / are not valid.

IntoExpr = str | pl.Expr


def _expr(col: IntoExpr) -> pl.Expr:
    return pl.col(col) if isinstance(col, str) else col


def _ascii_upper(compact: pl.Expr) -> pl.Expr:
    # as ``normalise``: upper-case ASCII-only text; anything else stays as it is
    return (
        pl.when(compact.str.len_bytes() == compact.str.len_chars())
        .then(compact.str.to_uppercase())
        .otherwise(compact)
    )


def normalise_expr(col: IntoExpr) -> pl.Expr:
    """``normalise`` as an expression."""
    return _ascii_upper(_expr(col).str.replace_all(_SEPARATORS_PL, ""))


normalise_isrc_expr = normalise_expr
normalise_iswc_expr = normalise_expr
normalise_isni_expr = normalise_expr
normalise_dpid_expr = normalise_expr


def normalise_gtin_expr(col: IntoExpr) -> pl.Expr:
    """``normalise_gtin`` as an expression (dots kept)."""
    return _expr(col).str.replace_all(_GTIN_SEPARATORS_PL, "")


def normalise_grid_expr(col: IntoExpr) -> pl.Expr:
    """``normalise_grid`` as an expression."""
    return normalise_expr(col).str.strip_prefix("GRID:")


def normalise_ipi_expr(col: IntoExpr) -> pl.Expr:
    """``normalise_ipi`` as an expression."""
    v = normalise_expr(col)
    return pl.when(v.str.contains(r"^[0-9]{9,10}$")).then(v.str.zfill(11)).otherwise(v)


def gtin_key_expr(col: IntoExpr) -> pl.Expr:
    """``gtin_key`` as an expression."""
    v = normalise_gtin_expr(col)
    return pl.when(v.str.contains(r"^[0-9]{8,14}$")).then(v.str.zfill(14))


def _digit(v: pl.Expr, i: int) -> pl.Expr:
    return v.str.slice(i, 1).cast(pl.Int64, strict=False)


def _valid(shape: pl.Expr, *checks: pl.Expr) -> pl.Expr:
    ok = shape
    for check in checks:
        ok = ok & check
    return ok.fill_null(False)


def is_valid_isrc_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_isrc`` as an expression."""
    return _valid(normalise_isrc_expr(col).str.contains(f"^{_ISRC.pattern}$"))


def gtin_check_digit_expr(body: IntoExpr) -> pl.Expr:
    """``gtin_check_digit`` for a column of digit bodies (up to 13 digits)."""
    s = _expr(body).str.zfill(13)
    total = sum((_digit(s, i) * (3 if i % 2 == 0 else 1) for i in range(13)), pl.lit(0))
    return ((10 - total % 10) % 10).cast(pl.String)


def is_valid_gtin_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_gtin`` as an expression: the check digit of the code right-aligned in 14
    digits (no Python loop)."""
    v = normalise_gtin_expr(col)
    s = v.str.zfill(14)
    shape = v.str.contains(r"^(?:[0-9]{8}|[0-9]{12,14})$") & ~v.str.contains(r"^0+$")
    return _valid(shape, gtin_check_digit_expr(s.str.slice(0, 13)) == s.str.slice(13, 1))


def is_valid_iswc_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_iswc`` as an expression (check digit as ``_iswc_check_digit``)."""
    v = normalise_iswc_expr(col)
    weighted = sum((i * _digit(v, i) for i in range(1, 10)), pl.lit(0))
    return _valid(
        v.str.contains(f"^{_ISWC.pattern}$"), (10 - (1 + weighted) % 10) % 10 == _digit(v, 10)
    )


def _mod_11_2_check(v: pl.Expr, n: int) -> pl.Expr:
    # ISO 7064 Mod 11-2 over the first n digits, as stdnum.iso7064.mod_11_2
    total: pl.Expr = pl.lit(0)
    for i in range(n):
        total = (2 * total + _digit(v, i)) % 11
    c = (23 - 2 * total) % 11  # (1 - 2 * total) mod 11, kept non-negative
    return pl.when(c == 10).then(pl.lit("X")).otherwise(c.cast(pl.String))


def is_valid_isni_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_isni`` as an expression."""
    v = normalise_isni_expr(col)
    return _valid(v.str.contains(f"^{_ISNI.pattern}$"), _mod_11_2_check(v, 15) == v.str.slice(15))


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _mod_37_36_check(v: pl.Expr, n: int) -> pl.Expr:
    # ISO 7064 Mod 37,36 over the first n characters, as stdnum.iso7064.mod_37_36; ``check or
    # 36`` is written (check + 35) % 36 + 1 so that each step uses the previous one once
    values = dict(zip(_ALNUM, range(36), strict=True))
    check: pl.Expr = pl.lit(18)
    for i in range(n):
        c = v.str.slice(i, 1).replace_strict(values, default=None, return_dtype=pl.Int64)
        check = (((check + 35) % 36 + 1) * 2 % 37 + c) % 36
    index = (37 - ((check + 35) % 36 + 1) * 2 % 37) % 36  # (1 - ...) mod 36, non-negative
    return index.replace_strict(dict(enumerate(_ALNUM)), default=None, return_dtype=pl.String)


def is_valid_grid_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_grid`` as an expression."""
    v = normalise_grid_expr(col)
    return _valid(v.str.contains(f"^{_GRID.pattern}$"), _mod_37_36_check(v, 17) == v.str.slice(17))


def is_valid_dpid_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_dpid`` as an expression (format only, as the Python function)."""
    return _valid(normalise_dpid_expr(col).str.contains(f"^{_DPID.pattern}$"))


def is_valid_ipi_expr(col: IntoExpr) -> pl.Expr:
    """``is_valid_ipi`` as an expression (format only, as the Python function)."""
    v = normalise_ipi_expr(col)
    base = v.str.contains(f"^{_IPI_BASE.pattern}$")
    return _valid(base | (v.str.contains(r"^[0-9]{11}$") & (v != "0" * 11)))


# Revenue lines' identifier columns, their normaliser, and the rows that need it: a row without
# a separator (nor, for an ISRC, a lower-case ASCII letter) is its own normal form.
_LINE_COLUMNS: dict[str, tuple[Callable[[IntoExpr], pl.Expr], str]] = {
    "isrc": (
        normalise_isrc_expr,
        _char_class((*_SPACES, *_DASHES, _DOT, *range(0x61, 0x7B)), polars=True),
    ),
    "upc": (normalise_gtin_expr, _GTIN_SEPARATORS_PL),
}


def normalise_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """``lines`` with their ``isrc`` and ``upc`` normalised (``normalise_isrc``,
    ``normalise_gtin``). Only the rows that need it are rewritten (most need nothing); the
    columns are probed in one query, side by side."""
    names = [name for name in _LINE_COLUMNS if name in lines.columns]
    if not names or lines.is_empty():
        return lines
    messy = lines.select(
        pl.col(name).str.contains(_LINE_COLUMNS[name][1]).fill_null(False) for name in names
    )
    cols = []
    for name in names:
        idx = messy[name].arg_true()
        if idx.len():
            s = lines[name]
            fixed = pl.select(_LINE_COLUMNS[name][0](pl.lit(s.gather(idx)))).to_series()
            cols.append(s.scatter(idx, fixed))
    return lines.with_columns(cols) if cols else lines
