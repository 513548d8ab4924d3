"""ISO 3166-1 territories, ISO 4217 currencies and DDEX-style territory sets."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pycountry

__all__ = [
    "ALL_TERRITORIES",
    "WORLDWIDE",
    "TerritoryError",
    "TerritorySet",
    "is_valid_currency",
    "is_valid_territory",
    "parse_territory_set",
    "require_currency",
    "require_territory",
]

WW = "WW"  # DDEX "Worldwide"
# XK (Kosovo) is user-assigned, not in ISO 3166-1/pycountry, but DSPs report it.
ALL_TERRITORIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries) | {"XK"}

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
        if c == WW:
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
