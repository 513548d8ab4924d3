"""Input and output contracts of the catalogue, rights and contracts store.

One validation path for every writer (API, CSV/JSON import, CLI, demo loader): identifiers,
ISO codes, territory sets and fractions are checked here, field by field; rules that need the
database (uniqueness, overlapping ranges, shares over 100%) live in ``schemas.store.service``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)
from stdnum import vatin

from schemas import identifiers
from schemas.store.models import (
    Basis,
    ChargeKind,
    ContributorRole,
    PartyKind,
    ReleaseType,
    StatementFrequency,
)
from schemas.territories import parse_territory_set, require_currency, require_territory

USAGE_TYPES = frozenset(
    {"stream", "download", "ugc", "creation", "physical", "sync", "performance", "other"}
)


def _identifier(kind: str) -> AfterValidator:
    return AfterValidator(lambda v: identifiers.require(kind, v))


def _no_float(value: Any) -> Any:
    # JSON numbers arrive as float; keep their shortest repr, never a binary expansion.
    return str(value) if isinstance(value, float) else value


def _vat(value: str) -> str:
    compact = vatin.compact(value)
    if not vatin.is_valid(compact):
        raise ValueError("not a valid VAT number (country prefix + number, e.g. GB980780684)")
    return compact


def _usage_type(value: str) -> str:
    value = value.strip().lower()
    if value != "*" and value not in USAGE_TYPES:
        raise ValueError(f"unknown usage type; use * or one of {', '.join(sorted(USAGE_TYPES))}")
    return value


def _printable(value: str) -> str:
    # NUL and other control characters are refused: PostgreSQL cannot store NUL, and they
    # are never meaningful in names or titles (they come from broken exports).
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValueError("contains control characters")
    return value


# Non-empty stripped text, no control characters, at most the column's length (one alias per
# column size: mypy needs type aliases, not a factory).
Printable = AfterValidator(_printable)
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Printable
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), Printable
]
Short = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Printable
]
Genre = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), Printable
]
Channel = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), Printable
]
ISRC = Annotated[str, _identifier("isrc")]
GTIN = Annotated[str, _identifier("gtin")]
ISNI = Annotated[str, _identifier("isni")]
IPI = Annotated[str, _identifier("ipi")]
Territory = Annotated[str, AfterValidator(require_territory)]
Currency = Annotated[str, AfterValidator(require_currency)]
TerritorySet = Annotated[
    str, BeforeValidator(lambda v: parse_territory_set(v).to_string() if v is not None else v)
]
DecimalOut = PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
Fraction = Annotated[
    Decimal, BeforeValidator(_no_float), Field(ge=0, le=1, decimal_places=10), DecimalOut
]
# max_digits: what the Money column (NUMERIC(20, 6)) holds, so overflow is a field error.
Amount = Annotated[
    Decimal, BeforeValidator(_no_float), Field(max_digits=20, decimal_places=6), DecimalOut
]
UsageType = Annotated[str, AfterValidator(_usage_type)]
VatNumber = Annotated[str, AfterValidator(_vat)]
MAX_ID = 2**31 - 1  # PostgreSQL INTEGER; larger ids cannot exist, so they are a 4xx
Id = Annotated[int, Field(gt=0, le=MAX_ID)]
Position = Annotated[int, Field(ge=1, le=9999)]
# Business dates stay in a range every backend and date arithmetic handles (an end date of
# 9999-12-31 would overflow "the day after"); open-ended is null, not a far-future date.
Date = Annotated[dt.date, Field(ge=dt.date(1900, 1, 1), le=dt.date(2199, 12, 31))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int


def _check_range(start: dt.date | None, end: dt.date | None, end_name: str) -> None:
    if start and end and end < start:
        raise ValueError(f"{end_name} is before the start date")


# --- artists -------------------------------------------------------------------------------
class ArtistFields(_In):
    kind: PartyKind = PartyKind.PERSON
    isni: ISNI | None = None
    ipi: IPI | None = None
    country: Territory | None = None


class ArtistIn(ArtistFields):
    name: Name


class ArtistPatch(ArtistFields):
    name: Name | None = None
    kind: PartyKind | None = None  # type: ignore[assignment]


class ArtistOut(_Out):
    name: str
    kind: PartyKind
    isni: str | None
    ipi: str | None
    country: str | None


# --- releases ------------------------------------------------------------------------------
class ReleaseIn(_In):
    upc: GTIN
    title: Text
    release_type: ReleaseType
    label_name: Name
    artist_id: Id
    original_release_date: Date
    territories: TerritorySet = "WW"
    genre: Genre | None = None
    p_line: Name | None = None
    c_line: Name | None = None


class ReleasePatch(_In):
    upc: GTIN | None = None
    title: Text | None = None
    release_type: ReleaseType | None = None
    label_name: Name | None = None
    artist_id: Id | None = None
    original_release_date: Date | None = None
    territories: TerritorySet | None = None
    genre: Genre | None = None
    p_line: Name | None = None
    c_line: Name | None = None


class ReleaseOut(_Out):
    upc: str
    title: str
    release_type: ReleaseType
    label_name: str
    artist_id: int
    original_release_date: Date
    territories: str
    genre: str | None
    p_line: str | None
    c_line: str | None


# --- tracks --------------------------------------------------------------------------------
class ContributorIn(_In):
    artist_id: Id
    role: ContributorRole
    sequence: Position = 1


class ContributorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    artist_id: int
    role: ContributorRole
    sequence: int


Duration = Annotated[int, Field(gt=0, le=24 * 3600, description="seconds")]


class TrackIn(_In):
    release_id: Id
    isrc: ISRC
    title: Text
    version: Short | None = None
    artist_id: Id
    duration_seconds: Duration
    explicit: bool = False
    disc_number: Position = 1
    track_number: Position
    contributors: Annotated[list[ContributorIn], Field(max_length=200)] = []


class TrackPatch(_In):
    release_id: Id | None = None
    isrc: ISRC | None = None
    title: Text | None = None
    version: Short | None = None
    artist_id: Id | None = None
    duration_seconds: Duration | None = None
    explicit: bool | None = None
    disc_number: Position | None = None
    track_number: Position | None = None
    contributors: Annotated[list[ContributorIn], Field(max_length=200)] | None = None


class TrackOut(_Out):
    release_id: int
    isrc: str
    title: str
    version: str | None
    artist_id: int
    duration_seconds: int
    explicit: bool
    disc_number: int
    track_number: int
    contributors: list[ContributorOut] = []


# --- payees --------------------------------------------------------------------------------
class PayeeFields(_In):
    artist_id: Id | None = None
    email: (
        Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
        | None
    ) = None
    country: Territory | None = None
    withholding_rate: Fraction = Decimal(0)
    vat_number: VatNumber | None = None
    self_billing_consent: bool = False
    self_billing_expires: Date | None = None
    # For self-billing invoices: the payee's postal address and the VAT rate of their supply.
    address: Annotated[str, StringConstraints(max_length=1000)] | None = None
    vat_rate: Fraction | None = None


class PayeeIn(PayeeFields):
    name: Name
    statement_currency: Currency

    # On the whole record only: a patch is checked as the merged record (service.update),
    # so setting consent alone on a payee that already has an expiry date is fine.
    @model_validator(mode="after")
    def _self_billing(self) -> Self:
        if self.self_billing_consent and self.self_billing_expires is None:
            raise ValueError(
                "self_billing_expires is required when self_billing_consent is true "
                "(a self-billing agreement has a term)"
            )
        return self


class PayeePatch(PayeeFields):
    name: Name | None = None
    statement_currency: Currency | None = None
    withholding_rate: Fraction | None = None  # type: ignore[assignment]
    self_billing_consent: bool | None = None  # type: ignore[assignment]


class PayeeOut(_Out):
    name: str
    artist_id: int | None
    email: str | None
    country: str | None
    statement_currency: str
    withholding_rate: Annotated[Decimal, DecimalOut]
    vat_number: str | None
    self_billing_consent: bool
    self_billing_expires: dt.date | None
    address: str | None
    vat_rate: Annotated[Decimal, DecimalOut] | None


# --- contracts -----------------------------------------------------------------------------
class TierIn(_In):
    from_units: Annotated[int, Field(gt=0, le=10**15)]
    rate: Annotated[
        Decimal, BeforeValidator(_no_float), Field(ge=0, max_digits=28, decimal_places=12)
    ]

    def as_json(self) -> dict[str, Any]:
        return {"from_units": self.from_units, "rate": format(self.rate, "f")}


class RateIn(_In):
    usage_type: UsageType = "*"
    channel: Channel = "*"
    territories: TerritorySet = "WW"
    rate: Annotated[
        Decimal,
        BeforeValidator(_no_float),
        Field(ge=0, max_digits=28, decimal_places=12),  # the Rate column: NUMERIC(28, 12)
        DecimalOut,
    ]
    tiers: Annotated[list[TierIn], Field(max_length=50)] = []
    effective_from: Date
    effective_to: Date | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_range(self.effective_from, self.effective_to, "effective_to")
        units = [t.from_units for t in self.tiers]
        if units != sorted(set(units)):
            raise ValueError("tiers must have strictly ascending from_units")
        return self


class RateOut(_Out):
    contract_id: int
    usage_type: str
    channel: str
    territories: str
    rate: Annotated[Decimal, DecimalOut]
    tiers: list[dict[str, Any]]
    effective_from: Date
    effective_to: dt.date | None


class ChargeIn(_In):
    kind: ChargeKind
    amount: Annotated[Amount, Field(gt=0)]
    currency: Currency
    incurred_on: Date
    description: Annotated[str, StringConstraints(max_length=500)] = ""


class ChargeOut(_Out):
    contract_id: int
    kind: ChargeKind
    amount: Annotated[Decimal, DecimalOut]
    currency: str
    incurred_on: Date
    description: str


class TermsIn(_In):
    """A later version of a contract's effective-dated terms, in force from ``effective_from``
    until the next version's. Fields left out are copied from the version in force the day
    before (the contract's own terms, or an earlier version)."""

    effective_from: Date
    distribution_fee: Annotated[Fraction, Field(lt=1)] | None = None
    reserve_rate: Annotated[Fraction, Field(lt=1)] | None = None
    reserve_periods: Annotated[int, Field(ge=0, le=24)] | None = None
    minimum_payment: Annotated[Amount, Field(ge=0)] | None = None
    statement_frequency: StatementFrequency | None = None


class TermsOut(_Out):
    id: int | None  # type: ignore[assignment]  # None: the contract's own terms, its first version
    contract_id: int
    effective_from: Date
    effective_to: dt.date | None = None  # the day before the next version's, if any
    distribution_fee: Annotated[Decimal, DecimalOut]
    reserve_rate: Annotated[Decimal, DecimalOut]
    reserve_periods: int
    minimum_payment: Annotated[Decimal, DecimalOut]
    statement_frequency: StatementFrequency


class ContractFields(_In):
    distribution_fee: Annotated[Fraction, Field(lt=1)] = Decimal(0)
    cross_collateral_group: Annotated[str, StringConstraints(max_length=64)] | None = None
    reserve_rate: Annotated[Fraction, Field(lt=1)] = Decimal(0)
    reserve_periods: Annotated[int, Field(ge=0, le=24)] = 0
    minimum_payment: Annotated[Amount, Field(ge=0)] = Decimal(0)
    end_date: Date | None = None


class ContractIn(ContractFields):
    payee_id: Id
    reference: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    name: Name
    basis: Basis
    currency: Currency
    statement_frequency: StatementFrequency = StatementFrequency.HALF_YEARLY
    start_date: Date
    rates: Annotated[list[RateIn], Field(max_length=500)] = []
    charges: Annotated[list[ChargeIn], Field(max_length=500)] = []
    # later versions of the effective-dated terms above (which are the first, from start_date)
    terms: Annotated[list[TermsIn], Field(max_length=500)] = []

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_range(self.start_date, self.end_date, "end_date")
        if self.reserve_rate > 0 and self.reserve_periods == 0:
            raise ValueError("reserve_periods must be at least 1 when reserve_rate is set")
        return self


class ContractPatch(ContractFields):
    name: Name | None = None
    statement_frequency: StatementFrequency | None = None
    distribution_fee: Annotated[Fraction, Field(lt=1)] | None = None  # type: ignore[assignment]
    reserve_rate: Annotated[Fraction, Field(lt=1)] | None = None  # type: ignore[assignment]
    reserve_periods: Annotated[int, Field(ge=0, le=24)] | None = None  # type: ignore[assignment]
    minimum_payment: Annotated[Amount, Field(ge=0)] | None = None  # type: ignore[assignment]


class ContractOut(_Out):
    payee_id: int
    reference: str
    name: str
    basis: Basis
    currency: str
    distribution_fee: Annotated[Decimal, DecimalOut]
    cross_collateral_group: str | None
    reserve_rate: Annotated[Decimal, DecimalOut]
    reserve_periods: int
    minimum_payment: Annotated[Decimal, DecimalOut]
    statement_frequency: StatementFrequency
    start_date: Date
    end_date: dt.date | None


# --- splits --------------------------------------------------------------------------------
class SplitIn(_In):
    track_id: Id | None = None
    release_id: Id | None = None
    payee_id: Id
    contract_id: Id
    share: Annotated[Fraction, Field(gt=0)]
    territories: TerritorySet = "WW"
    effective_from: Date
    effective_to: Date | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.track_id is None) == (self.release_id is None):
            raise ValueError("give exactly one of track_id or release_id")
        _check_range(self.effective_from, self.effective_to, "effective_to")
        return self


class SplitPatch(_In):
    """A split's terms never change in place: only its end date may be set (or cleared)."""

    effective_to: Date | None = None


class SplitOut(_Out):
    track_id: int | None
    release_id: int | None
    payee_id: int
    contract_id: int
    share: Annotated[Decimal, DecimalOut]
    territories: str
    effective_from: Date
    effective_to: dt.date | None
