"""Music identifier validation (ISRC, GTIN, ISWC, GRid, ISNI, DPID, IPI).

Rules follow DOMAIN.md "Identifiers". python-stdnum does the check-digit maths
where it has a module; everything else is hand-written and says why.
Every ``is_valid_*`` accepts ``str | None`` and never raises; ``require`` raises
:class:`IdentifierError` with a precise reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stdnum import ean
from stdnum.iso7064 import mod_11_2, mod_37_36

__all__ = [
    "KINDS",
    "IdentifierError",
    "dpid_check_ok",
    "is_valid_dpid",
    "is_valid_grid",
    "is_valid_gtin",
    "is_valid_ipi",
    "is_valid_isni",
    "is_valid_isrc",
    "is_valid_iswc",
    "normalise",
    "normalise_dpid",
    "normalise_grid",
    "normalise_gtin",
    "normalise_ipi",
    "normalise_isni",
    "normalise_isrc",
    "normalise_iswc",
    "require",
]

# Whitespace (incl. NBSP), ASCII/Unicode dashes and dots: display-only separators.
_SEPARATORS = re.compile(r"[\s.\-\u2010-\u2015\u2212]")
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
    return re.sub(r"[\s\-\u2010-\u2015\u2212]", "", value)


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
    expected = ean.calc_check_digit(v[:-1])  # GS1 mod 10, right-aligned: any length
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
