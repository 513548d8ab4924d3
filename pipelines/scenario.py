"""Scenario files: one YAML file describes an organisation, ``load_scenario`` loads it.

A scenario holds the accounting currency, artists, releases with their tracks, payees,
contracts (rates with escalation tiers, advances and costs), splits, PPD prices, FX rates and
revenue (inline lines, or report files next to the YAML). The format is documented in
``docs/scenarios.md``; the pydantic models below are its definition.

How it loads:

1. The YAML is parsed and checked against the models here: unknown keys, YAML floats where
   money or a fraction is expected (write ``"12.50"``, quoted: a YAML float is binary),
   unquoted identifiers, names that refer to nothing. Every problem is reported with its
   YAML path (``contracts[2].rates[0].rate: ...``) and nothing is written.
2. The organisation is created when its slug is new. A scenario loads only into a new or
   *empty* organisation: loading into one that already has content (a second load of the
   same scenario included) is refused, so nothing is ever duplicated or silently replaced.
3. Everything but revenue is checked against the store's rules (``schemas.store.service``'s,
   in memory: the organisation is new or empty) and every refusal is reported at once with
   its YAML path; then it is written in **one transaction**, each table in bulk
   (``service.bulk_create``: one audit-log entry per row, as ``service.create`` writes), FX
   rates through the FX import's validation.
4. Revenue is ingested afterwards, file by file, through ``pipelines.ingest.files.ingest_path``
   (it needs the committed catalogue to match against): inline lines are first written as a
   report file in a layout the format registry parses (``distributor_csv`` by default,
   ``spotify`` when lines carry a channel), report files are ingested as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from pipelines.resources import Resources
from schemas import catalog as c
from schemas.errors import StoreError
from schemas.identifiers import gtin_forms, normalise_isrc
from schemas.store import db, service
from schemas.store.fx import import_rates
from schemas.store.models import (
    Artist,
    Contract,
    ContractCharge,
    ContractRate,
    FxRate,
    IngestFile,
    MatchKind,
    MatchRule,
    Organisation,
    Payee,
    Release,
    Split,
    Track,
    name_key,
)
from schemas.store.runs import PpdPrice, RoyaltyRun
from schemas.territories import parse_territory_set, require_currency

# libyaml when built in (same YAML 1.1 resolution as the pure-Python SafeLoader, ~10x faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PERIOD_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"


DISTRIBUTOR_COLUMNS = [  # the generic distributor statement (schemas/formats/distributor_csv.yaml)
    "Statement Period",
    "Sale Type",
    "Store",
    "Country",
    "Usage",
    "Release Title",
    "Track Title",
    "Artist",
    "UPC",
    "ISRC",
    "Catalog Number",
    "Units",
    "Gross Amount",
    "Split %",
    "Net Amount",
    "Currency",
]


class ScenarioError(ValueError):
    """A scenario that cannot be loaded. ``errors`` lists ``"<yaml path>: <reason>"``."""

    def __init__(self, path: Path | str, errors: list[str], what: str = "") -> None:
        self.path = str(path)
        self.errors = errors
        head = what or f"{len(errors)} problem(s); nothing was loaded"
        super().__init__(f"{self.path}: {head}\n" + "\n".join(f"  {e}" for e in errors))


# --- field types ---------------------------------------------------------------------------
def _exact(value: Any) -> Any:
    """Money, rates and shares: quoted strings (or whole numbers), never a YAML float."""
    if isinstance(value, float):
        raise ValueError(
            f"{value!r} is a YAML float (binary, inexact); write it as a quoted string, "
            f"e.g. '{value}'"
        )
    if isinstance(value, bool):
        raise ValueError("expected a quoted decimal string, got a boolean")
    return value


def _text(value: Any) -> Any:
    """Identifiers, codes and periods: YAML must not have turned them into something else
    (an unquoted UPC loses its leading zero, ``NO`` becomes false, ``2026-01-31`` a date)."""
    if isinstance(value, bool | int | float | dt.date):
        raise ValueError(
            f"{value!r} was read by YAML as a {type(value).__name__}; quote it, e.g. '{value}'"
        )
    return value


Exact = Annotated[Decimal, BeforeValidator(_exact)]
Str = Annotated[str, BeforeValidator(_text)]
Period = Annotated[str, BeforeValidator(_text), Field(pattern=PERIOD_MONTH)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- the file format -----------------------------------------------------------------------
class OrganisationSpec(_M):
    name: str | None = None  # default: the slug, title-cased
    currency: Str  # the accounting currency every run reports in


class ArtistSpec(_M):
    name: str
    kind: str | None = None
    country: Str | None = None
    isni: Str | None = None
    ipi: Str | None = None


class TrackSpec(_M):
    isrc: Str
    title: str
    artist: str | None = None  # default: the release's artist
    version: str | None = None
    duration_seconds: int = 180
    track_number: int | None = None  # default: position in the list
    disc_number: int = 1
    explicit: bool = False


class ReleaseSpec(_M):
    upc: Str
    title: str
    artist: str
    release_type: str = "Album"
    label_name: str | None = None  # default: the organisation's name
    original_release_date: dt.date
    territories: Str = "WW"
    genre: str | None = None
    tracks: list[TrackSpec] = []


class PayeeSpec(_M):
    name: str
    statement_currency: Str | None = None  # default: the accounting currency
    artist: str | None = None
    email: str | None = None
    country: Str | None = None
    withholding_rate: Exact = Decimal(0)
    vat_number: Str | None = None


class TierSpec(_M):
    from_units: int
    rate: Exact


class RateSpec(_M):
    usage_type: Str = "*"
    channel: Str = "*"
    territories: Str = "WW"
    rate: Exact
    tiers: list[TierSpec] = []
    effective_from: dt.date | None = None  # default: the contract's start date
    effective_to: dt.date | None = None


class ChargeSpec(_M):
    kind: Str
    amount: Exact
    currency: Str | None = None  # default: the contract's currency
    incurred_on: dt.date
    description: str = ""


class TermsSpec(_M):
    """A later version of the contract's terms; fields left out: those of the day before."""

    effective_from: dt.date
    distribution_fee: Exact | None = None
    reserve_rate: Exact | None = None
    reserve_periods: int | None = None
    minimum_payment: Exact | None = None
    statement_frequency: Str | None = None


class ContractSpec(_M):
    reference: str
    payee: str
    name: str | None = None  # default: the reference
    basis: Str
    currency: Str | None = None  # default: the accounting currency
    start_date: dt.date
    end_date: dt.date | None = None
    statement_frequency: Str = "monthly"
    distribution_fee: Exact = Decimal(0)
    cross_collateral_group: str | None = None
    reserve_rate: Exact = Decimal(0)
    reserve_periods: int = 0
    minimum_payment: Exact = Decimal(0)
    rates: list[RateSpec] = []
    charges: list[ChargeSpec] = []
    terms: list[TermsSpec] = []  # later versions of the five terms above


class SplitSpec(_M):
    isrc: Str | None = None  # a track-level split ...
    upc: Str | None = None  # ... or a release-level one
    payee: str
    contract: str | None = None  # reference; default: the payee's only contract
    share: Exact
    territories: Str = "WW"
    effective_from: dt.date | None = None  # default: the contract's start date
    effective_to: dt.date | None = None


class PpdPriceSpec(_M):
    usage_type: Annotated[str, BeforeValidator(_text), c.UsageType] = "*"
    territories: Annotated[str, BeforeValidator(_text), c.TerritorySet] = "WW"
    currency: Annotated[str, BeforeValidator(_text), c.Currency]
    price: Annotated[Exact, Field(ge=0, max_digits=20, decimal_places=6)]
    effective_from: dt.date
    effective_to: dt.date | None = None


class FxSpec(_M):
    base: Str
    quote: Str
    period: Period
    rate: Exact
    source: str = "scenario"


class LineSpec(_M):
    """One inline revenue line (one row of the report file the loader writes)."""

    isrc: Str | None = None
    upc: Str | None = None
    territory: Annotated[str, BeforeValidator(_text), c.Territory]
    usage_type: Literal["stream", "download", "ugc", "physical"] = "stream"
    channel: Literal["subscription", "ad_supported"] | None = None  # spotify layout only
    units: int = 0
    amount: Exact
    currency: Annotated[str, BeforeValidator(_text), c.Currency]
    title: str = ""
    artist: str = ""


class RevenueSpec(_M):
    """Either ``lines`` (inline, for one reporting ``period``) or a report ``file``."""

    period: Period | None = None
    format: str | None = None
    lines: list[LineSpec] | None = None
    file: str | None = None


class Scenario(_M):
    organisation: OrganisationSpec
    artists: list[ArtistSpec] = []
    releases: list[ReleaseSpec] = []
    payees: list[PayeeSpec] = []
    contracts: list[ContractSpec] = []
    splits: list[SplitSpec] = []
    ppd_prices: list[PpdPriceSpec] = []
    fx: list[FxSpec] = []
    revenue: list[RevenueSpec] = []


INLINE_FORMATS = ("distributor_csv", "spotify")


# --- paths in messages ---------------------------------------------------------------------
def yaml_path(parts: tuple[Any, ...] | list[Any]) -> str:
    """``("contracts", 2, "rates", 0, "rate")`` -> ``contracts[2].rates[0].rate``."""
    out = ""
    for p in parts:
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


def _store_errors(prefix: str, exc: StoreError) -> list[str]:
    if not exc.errors:
        return [f"{prefix}: {exc.detail}"]
    out = []
    for e in exc.errors:
        sub = yaml_path(e.field.split(".")) if e.field and e.field != "__root__" else ""
        out.append(f"{prefix}{'.' + sub if sub else ''}: {e.message}")
    return out


# --- reading -------------------------------------------------------------------------------
def read_scenario(path: Path) -> Scenario:
    """Parse and check the file (no database): ``ScenarioError`` names every bad item."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, [f"cannot read: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(path, [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ScenarioError(path, ["(top level): expected a mapping (organisation:, artists:...)"])
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            errors.append(f"{yaml_path(err['loc'])}: {msg}")
        raise ScenarioError(path, errors) from None
    errors = _check_references(scenario, path.parent)
    if errors:
        raise ScenarioError(path, errors)
    return scenario


def _dupes(names: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        if n.casefold() in seen:
            out.append(f"{what}[{i}]: {n!r} appears twice")
        seen.add(n.casefold())
    return out


def _check_references(s: Scenario, base: Path) -> list[str]:
    errors: list[str] = []
    try:
        require_currency(s.organisation.currency)
    except ValueError as exc:
        errors.append(f"organisation.currency: {exc}")
    artists = {a.name.casefold() for a in s.artists}
    payees = {p.name.casefold() for p in s.payees}
    errors += _dupes([a.name for a in s.artists], "artists")
    errors += _dupes([p.name for p in s.payees], "payees")
    errors += _dupes([k.reference for k in s.contracts], "contracts")
    for i, r in enumerate(s.releases):
        if r.artist.casefold() not in artists:
            errors.append(f"releases[{i}].artist: no artist named {r.artist!r} in artists")
        for j, t in enumerate(r.tracks):
            if t.artist and t.artist.casefold() not in artists:
                errors.append(
                    f"releases[{i}].tracks[{j}].artist: no artist named {t.artist!r} in artists"
                )
    for i, p in enumerate(s.payees):
        if p.artist and p.artist.casefold() not in artists:
            errors.append(f"payees[{i}].artist: no artist named {p.artist!r} in artists")
    contracts_of: dict[str, list[str]] = {}
    for i, k in enumerate(s.contracts):
        if k.payee.casefold() not in payees:
            errors.append(f"contracts[{i}].payee: no payee named {k.payee!r} in payees")
        contracts_of.setdefault(k.payee.casefold(), []).append(k.reference)
    refs = {k.reference for k in s.contracts}
    isrcs = {normalise_isrc(t.isrc) for r in s.releases for t in r.tracks}
    upcs = {r.upc.lstrip("0") for r in s.releases}
    for i, sp in enumerate(s.splits):
        where = f"splits[{i}]"
        if (sp.isrc is None) == (sp.upc is None):
            errors.append(f"{where}: give exactly one of isrc (track) or upc (release)")
        elif sp.isrc is not None and normalise_isrc(sp.isrc) not in isrcs:
            errors.append(f"{where}.isrc: no track with ISRC {sp.isrc} in releases")
        elif sp.upc is not None and sp.upc.lstrip("0") not in upcs:
            errors.append(f"{where}.upc: no release with UPC {sp.upc} in releases")
        if sp.payee.casefold() not in payees:
            errors.append(f"{where}.payee: no payee named {sp.payee!r} in payees")
        elif sp.contract is None and len(contracts_of.get(sp.payee.casefold(), [])) != 1:
            n = len(contracts_of.get(sp.payee.casefold(), []))
            errors.append(
                f"{where}.contract: payee {sp.payee!r} has {n} contracts; name the reference"
            )
        if sp.contract is not None and sp.contract not in refs:
            errors.append(f"{where}.contract: no contract with reference {sp.contract!r}")
    errors += _check_ppd(s.ppd_prices)
    for i, rev in enumerate(s.revenue):
        where = f"revenue[{i}]"
        if (rev.lines is None) == (rev.file is None):
            errors.append(f"{where}: give either lines (inline) or file (a report file)")
            continue
        if rev.lines is not None:
            if rev.period is None:
                errors.append(f"{where}.period: inline lines need their reporting period")
            fmt = rev.format or _inline_format(rev.lines)
            if fmt not in INLINE_FORMATS:
                errors.append(
                    f"{where}.format: inline lines are written as one of "
                    f"{', '.join(INLINE_FORMATS)}, not {fmt!r}"
                )
            for j, line in enumerate(rev.lines):
                errors += _check_line(f"{where}.lines[{j}]", line, fmt)
        else:
            assert rev.file is not None
            target = (base / rev.file).resolve()
            if not target.is_file():
                errors.append(f"{where}.file: {rev.file} not found next to the scenario")
    return errors


def _check_line(where: str, line: LineSpec, fmt: str) -> list[str]:
    errors = []
    if line.isrc is None and line.upc is None:
        errors.append(f"{where}: give an isrc or a upc (an unknown one goes to suspense)")
    if fmt == "distributor_csv" and line.channel is not None:
        errors.append(
            f"{where}.channel: the distributor_csv layout has no channel; "
            "use format: spotify for lines with a channel"
        )
    if fmt == "spotify":
        if line.usage_type != "stream":
            errors.append(f"{where}.usage_type: the spotify layout reports streams only")
        if line.channel is None:
            errors.append(f"{where}.channel: the spotify layout needs a channel")
    return errors


def _inline_format(lines: list[LineSpec]) -> str:
    return "spotify" if any(line.channel for line in lines) else "distributor_csv"


def _check_ppd(prices: list[PpdPriceSpec]) -> list[str]:
    """A price list the ``ppd`` basis can use unambiguously: valid ranges, and no two prices
    for the same usage type in force on the same day in the same territory."""
    errors = []
    codes = [parse_territory_set(p.territories).resolve() for p in prices]
    for i, p in enumerate(prices):
        if p.effective_to is not None and p.effective_to < p.effective_from:
            errors.append(f"ppd_prices[{i}].effective_to: is before effective_from")
            continue
        for j in range(i):
            q = prices[j]
            same_days = (q.effective_to is None or p.effective_from <= q.effective_to) and (
                p.effective_to is None or q.effective_from <= p.effective_to
            )
            if q.usage_type == p.usage_type and same_days and codes[i] & codes[j]:
                errors.append(
                    f"ppd_prices[{i}]: overlaps ppd_prices[{j}] (same usage type, days and "
                    "territories); end one before the other starts"
                )
    return errors


# --- loading -------------------------------------------------------------------------------
def load_scenario(
    factory: sessionmaker[Session], data_dir: Path, path: Path, *, org: str
) -> dict[str, Any]:
    """Load ``path`` into the organisation with slug ``org`` (created when missing); see the
    module docstring. Returns the organisation id, what was created, and each revenue file's
    ingestion outcome."""
    path = Path(path)
    if not re.match(SLUG, org):
        raise ScenarioError(path, [f"--org: {org!r} is not a slug (2-63 of a-z, 0-9 and -)"])
    scenario = read_scenario(path)
    actor = f"scenario:{path.name}"
    created: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="tm-scenario-") as work:
        jobs = _revenue_files(path, scenario, Path(work))  # before anything is written
        try:
            with db.transaction(factory, actor=actor) as session:
                org_id = _organisation(session, path, org, scenario)
                _write(session, org_id, scenario, created)
        except _ItemError as exc:
            raise ScenarioError(
                path,
                exc.errors,
                f"the store's rules refused {len(exc.errors)} item(s); nothing was loaded",
            ) from None
        res = Resources.of(factory, data_dir)
        revenue = [_ingest(res, org_id, actor, job) for job in jobs]
    quarantined = [r for r in revenue if r["status"] == "quarantined"]
    if quarantined:
        raise ScenarioError(
            path,
            [f"{r['item']}: {r['file']}: {r['reason']}" for r in quarantined],
            "revenue file(s) quarantined; the catalogue and the other files were loaded "
            "(fix the file, then `tunemantra ingest` it)",
        )
    return {
        "org": org,
        "org_id": org_id,
        "created": dict(sorted(created.items())),
        "revenue": revenue,
    }


class _ItemError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


CONTENT = (Artist, Release, Track, Payee, Contract, Split, FxRate, PpdPrice, IngestFile, RoyaltyRun)


def _organisation(session: Session, path: Path, slug: str, s: Scenario) -> int:
    currency = require_currency(s.organisation.currency)
    org = session.scalar(sa.select(Organisation).where(Organisation.slug == slug))
    if org is None:
        org = Organisation(
            slug=slug,
            name=s.organisation.name or slug.replace("-", " ").title(),
            default_currency=currency,
        )
        session.add(org)
        session.flush()
        return org.id
    held = {
        m.__tablename__: n
        for m in CONTENT
        if (n := session.scalar(sa.select(sa.func.count()).where(m.org_id == org.id)))
    }
    if held:
        what = ", ".join(f"{n} {t}" for t, n in sorted(held.items()))
        raise ScenarioError(
            path,
            [f"--org: organisation {slug!r} already has content ({what})"],
            "a scenario loads only into a new or empty organisation; nothing was loaded "
            "(use a new --org slug)",
        )
    if org.default_currency != currency:  # empty: nothing was accounted in the old one
        org.default_currency = currency
    if s.organisation.name:
        org.name = s.organisation.name
    return org.id


def _create(session: Session, org_id: int, kind: str, where: str, data: dict[str, Any]) -> Any:
    try:
        return service.create(session, org_id, kind, data)
    except StoreError as exc:
        raise _ItemError(_store_errors(where, exc)) from None


def _s(value: Decimal) -> str:
    return format(value, "f")


def _write(session: Session, org_id: int, s: Scenario, created: Counter[str]) -> None:
    """Check every item against the store's rules (in memory: the organisation is new or
    empty, so the only rows to clash with are the scenario's own), report every problem at
    once, then write each table in bulk (``service.bulk_create``: one audit entry per row, as
    ``service.create`` writes). Contracts with later terms versions go through
    ``service.create`` (the terms' rules need the stored contract)."""
    org = session.get(Organisation, org_id)
    assert org is not None
    plan = _Plan(session, org_id, org.default_currency, org.name)
    plan.check(s)
    if plan.errors:
        raise _ItemError(plan.errors)
    plan.write(created)
    for price in s.ppd_prices:
        session.add(PpdPrice(org_id=org_id, **price.model_dump()))
        created["ppd_prices"] += 1
    if s.fx:
        _fx(session, org_id, s.fx)
        created["fx_rates"] += len(s.fx)
    session.flush()


class _Row(SimpleNamespace):
    """An effective-dated row (rate or split) before it has an id: what the store's
    same-key and share rules read (``id``, dates, territories, share)."""


class _Plan:
    """The scenario's rows, checked, in write order; placeholder ids are list positions + 1."""

    def __init__(self, session: Session, org_id: int, acct: str, label: str) -> None:
        self.session, self.org_id, self.acct, self.label = session, org_id, acct, label
        self.errors: list[str] = []
        self.artists: list[dict[str, Any]] = []
        self.releases: list[dict[str, Any]] = []
        self.tracks: list[dict[str, Any]] = []
        self.payees: list[dict[str, Any]] = []
        self.contracts: list[tuple[str, ContractSpec, Any]] = []  # (where, spec, ContractIn)
        self.splits: list[dict[str, Any]] = []
        self.rate_rows: dict[int, list[_Row]] = {}

    def _valid(self, model: type[Any], where: str, data: dict[str, Any]) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.errors += _field_errors(where, service.pydantic_errors(exc))
            return None

    def check(self, s: Scenario) -> None:
        artist_ix = {name_key(a.name): n for n, a in enumerate(s.artists, start=1)}
        for i, a in enumerate(s.artists):
            v = self._valid(c.ArtistIn, f"artists[{i}]", a.model_dump(exclude_none=True))
            self.artists.append(v.model_dump() if v else {})
        rules = self.session.execute(
            sa.select(MatchRule.kind, MatchRule.key, MatchRule.id).where(
                MatchRule.org_id == self.org_id
            )
        ).all()
        aliases = {(k, key): rid for k, key, rid in rules}
        self.release_ix: dict[str, int] = {}
        self.track_ix: dict[str, int] = {}
        upcs: dict[str, str] = {}
        isrcs: dict[str, str] = {}
        positions: set[tuple[int, int, int]] = set()
        for i, r in enumerate(s.releases):
            where = f"releases[{i}]"
            data = r.model_dump(exclude_none=True, exclude={"artist", "tracks"})
            data["artist_id"] = artist_ix[name_key(r.artist)]
            data.setdefault("label_name", self.label)
            v = self._valid(c.ReleaseIn, where, data)
            self.releases.append(v.model_dump() if v else {})
            rel_n = len(self.releases)
            self.release_ix[r.upc.lstrip("0")] = rel_n
            if v is not None:
                forms = gtin_forms(v.upc)
                other = next((upcs[f] for f in forms if f in upcs), None)
                if other is not None:
                    self.errors.append(f"{where}.upc: {v.upc} is already used by {other}")
                rule = next(
                    (aliases[(MatchKind.UPC, f)] for f in forms if (MatchKind.UPC, f) in aliases),
                    None,
                )
                if rule is not None:
                    self.errors.append(
                        f"{where}.upc: {v.upc} is matched by a remembered match (rule {rule}); "
                        "forget that match first"
                    )
                upcs.setdefault(v.upc, where)
            for j, t in enumerate(r.tracks):
                tw = f"{where}.tracks[{j}]"
                tdata = t.model_dump(exclude_none=True, exclude={"artist"})
                tdata["release_id"] = rel_n
                tdata["artist_id"] = artist_ix[name_key(t.artist or r.artist)]
                tdata.setdefault("track_number", j + 1)
                tv = self._valid(c.TrackIn, tw, tdata)
                self.tracks.append(tv.model_dump(exclude={"contributors"}) if tv else {})
                self.track_ix[normalise_isrc(t.isrc)] = len(self.tracks)
                if tv is None:
                    continue
                if tv.isrc in isrcs:
                    self.errors.append(f"{tw}.isrc: {tv.isrc} is already used by {isrcs[tv.isrc]}")
                elif (MatchKind.ISRC, tv.isrc) in aliases:
                    rule = aliases[(MatchKind.ISRC, tv.isrc)]
                    self.errors.append(
                        f"{tw}.isrc: {tv.isrc} is matched by a remembered match (rule {rule}); "
                        "forget that match first"
                    )
                isrcs.setdefault(tv.isrc, tw)
                pos = (rel_n, tv.disc_number, tv.track_number)
                if pos in positions:
                    self.errors.append(
                        f"{tw}.track_number: disc {tv.disc_number} track {tv.track_number} "
                        "of this release is already taken"
                    )
                positions.add(pos)
        self.payee_ix = {name_key(p.name): n for n, p in enumerate(s.payees, start=1)}
        for i, p in enumerate(s.payees):
            data = p.model_dump(exclude_none=True, exclude={"artist", "withholding_rate"})
            data["withholding_rate"] = _s(p.withholding_rate)
            data.setdefault("statement_currency", self.acct)
            if p.artist:
                data["artist_id"] = artist_ix[name_key(p.artist)]
            v = self._valid(c.PayeeIn, f"payees[{i}]", data)
            self.payees.append(v.model_dump() if v else {})
        self.contract_ix: dict[str, int] = {}
        for i, k in enumerate(s.contracts):
            where = f"contracts[{i}]"
            self.contract_ix[k.reference] = i
            v = self._valid(c.ContractIn, where, _contract_data(self.acct, k, self.payee_ix))
            self.contracts.append((where, k, v))
            if v is None:
                continue
            for j, rate in enumerate(v.rates):
                self.errors += _field_errors(
                    where, service._rate_errors(v.basis, rate, f"rates.{j}.")
                )
            self.errors += self._rates(where, v)
        self._splits(s)

    def _rates(self, where: str, v: Any) -> list[str]:
        """``service.add_rate``'s same-key rule, rate by rate in the file's order (a later
        rate for the same territories closes an open-ended earlier one the day before)."""
        errors: list[str] = []
        self_rows: list[_Row] = []
        for j, rate in enumerate(v.rates):
            same = [
                r for r in self_rows if (r.usage_type, r.channel) == (rate.usage_type, rate.channel)
            ]
            new = service._Dated(None, rate.effective_from, rate.effective_to, rate.territories)
            close, overlap = service._resolve_same_key(new, same, "rate", creating=True)
            errors += _field_errors(where, overlap, f"rates.{j}.")
            for row in close:
                row.effective_to = rate.effective_from - dt.timedelta(days=1)
            self_rows.append(
                _Row(
                    id=f"rates[{j}]",
                    usage_type=rate.usage_type,
                    channel=rate.channel,
                    territories=rate.territories,
                    effective_from=rate.effective_from,
                    effective_to=rate.effective_to,
                    rate=rate,
                )
            )
        self.rate_rows[id(v)] = self_rows  # the rows as written (closed ones closed)
        return errors

    def _splits(self, s: Scenario) -> None:
        by_payee: dict[int, list[int]] = {}
        for n, (_, k, _v) in enumerate(self.contracts):
            by_payee.setdefault(self.payee_ix[name_key(k.payee)], []).append(n)
        on: dict[tuple[str, int], list[_Row]] = {}
        for i, sp in enumerate(s.splits):
            where = f"splits[{i}]"
            payee_n = self.payee_ix[name_key(sp.payee)]
            k_n = self.contract_ix[sp.contract] if sp.contract else by_payee[payee_n][0]
            _, k, kv = self.contracts[k_n]
            start = k.start_date
            data: dict[str, Any] = {
                "payee_id": payee_n,
                "contract_id": k_n + 1,
                "share": _s(sp.share),
                "territories": sp.territories,
                "effective_from": sp.effective_from or start,
                "effective_to": sp.effective_to,
            }
            if sp.isrc is not None:
                target = ("track", self.track_ix[normalise_isrc(sp.isrc)])
                data["track_id"] = target[1]
                what = f"track {normalise_isrc(sp.isrc)}"
            else:
                assert sp.upc is not None
                target = ("release", self.release_ix[sp.upc.lstrip("0")])
                data["release_id"] = target[1]
                what = f"release {sp.upc}"
            v = self._valid(c.SplitIn, where, data)
            self.splits.append(v.model_dump() if v else {})
            if v is None or kv is None:
                continue
            if name_key(k.payee) != name_key(sp.payee):
                self.errors.append(
                    f"{where}.contract: contract {k.reference} belongs to payee {k.payee!r}, "
                    f"not {sp.payee!r}"
                )
                continue
            if v.effective_from < kv.start_date or (
                kv.end_date is not None and (v.effective_to is None or v.effective_to > kv.end_date)
            ):
                span = service._fmt_range(kv.start_date, kv.end_date)
                self.errors.append(
                    f"{where}.effective_from: the split must lie within contract "
                    f"{k.reference}'s term ({span})"
                )
                continue
            rows = on.setdefault(target, [])
            new = service._Dated(None, v.effective_from, v.effective_to, v.territories, v.share)
            same = [r for r in rows if (r.payee_id, r.contract_id) == (payee_n, k_n)]
            close, errs = service._resolve_same_key(new, same, "split", creating=True)
            closing = {id(r) for r in close}
            siblings = [
                service._Dated(
                    r.id,
                    r.effective_from,
                    new.effective_from - dt.timedelta(days=1)
                    if id(r) in closing
                    else r.effective_to,
                    r.territories,
                    r.share,
                )
                for r in rows
            ]
            errs += service.share_total_errors(new, siblings, what)
            self.errors += _field_errors(where, errs)
            if errs:
                continue
            for r in close:
                r.effective_to = v.effective_from - dt.timedelta(days=1)
                r.data["effective_to"] = r.effective_to
            rows.append(
                _Row(
                    id=f"splits[{i}]",
                    payee_id=payee_n,
                    contract_id=k_n,
                    effective_from=v.effective_from,
                    effective_to=v.effective_to,
                    territories=v.territories,
                    share=v.share,
                    data=self.splits[-1],
                )
            )

    def write(self, created: Counter[str]) -> None:
        session, org = self.session, self.org_id

        def ids(model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
            return [
                o.id
                for o in service.bulk_create(session, model, [{"org_id": org, **r} for r in rows])
            ]

        artist = ids(Artist, self.artists)
        created["artists"] += len(artist)
        for r in self.releases:
            r["artist_id"] = artist[r["artist_id"] - 1]
        release = ids(Release, self.releases)
        created["releases"] += len(release)
        for t in self.tracks:
            t["release_id"] = release[t["release_id"] - 1]
            t["artist_id"] = artist[t["artist_id"] - 1]
        track = ids(Track, self.tracks)
        created["tracks"] += len(track)
        for p in self.payees:
            if p.get("artist_id") is not None:
                p["artist_id"] = artist[p["artist_id"] - 1]
        payee = ids(Payee, self.payees)
        created["payees"] += len(payee)
        contract: list[int] = []
        plain = [(w, k, v) for w, k, v in self.contracts if not v.terms]
        rows: list[dict[str, Any]] = []
        for _, _, v in plain:
            row = v.model_dump(exclude={"rates", "charges", "terms"})
            row["payee_id"] = payee[row["payee_id"] - 1]
            rows.append(row)
        plain_ids = iter(ids(Contract, rows))
        rates: list[dict[str, Any]] = []
        charges: list[dict[str, Any]] = []
        for where, k, v in self.contracts:
            if v.terms:  # the terms' own rules read the stored contract
                got = _contract(session, org, self.acct, where, k, self.payee_ix_ids(payee))
                contract.append(got.id)
            else:
                cid = next(plain_ids)
                contract.append(cid)
                for planned in self.rate_rows[id(v)]:
                    rates.append(
                        {
                            "contract_id": cid,
                            **planned.rate.model_dump(exclude={"tiers", "effective_to"}),
                            "effective_to": planned.effective_to,
                            "tiers": [t.as_json() for t in planned.rate.tiers],
                        }
                    )
                charges += [{"contract_id": cid, **ch.model_dump()} for ch in v.charges]
            created["contracts"] += 1
            created["rates"] += len(k.rates)
            created["charges"] += len(k.charges)
        ids(ContractRate, rates)
        ids(ContractCharge, charges)
        for sp in self.splits:
            sp["payee_id"] = payee[sp["payee_id"] - 1]
            sp["contract_id"] = contract[sp["contract_id"] - 1]
            if sp.get("track_id") is not None:
                sp["track_id"] = track[sp["track_id"] - 1]
            if sp.get("release_id") is not None:
                sp["release_id"] = release[sp["release_id"] - 1]
        created["splits"] += len(ids(Split, self.splits))

    def payee_ix_ids(self, payee: list[int]) -> dict[str, int]:
        return {name: payee[n - 1] for name, n in self.payee_ix.items()}


def _field_errors(where: str, errors: list[Any], prefix: str = "") -> list[str]:
    out = []
    for e in errors:
        name = prefix + e.field if e.field and e.field != "__root__" else prefix.rstrip(".")
        sub = yaml_path(name.split(".")) if name else ""
        out.append(f"{where}{'.' + sub if sub else ''}: {e.message}")
    return out


def _contract_data(acct: str, k: ContractSpec, payees: dict[str, int]) -> dict[str, Any]:
    start = k.start_date
    return {
        "payee_id": payees[name_key(k.payee)],
        "reference": k.reference,
        "name": k.name or k.reference,
        "basis": k.basis,
        "currency": k.currency or acct,
        "start_date": start,
        "end_date": k.end_date,
        "statement_frequency": k.statement_frequency,
        "distribution_fee": _s(k.distribution_fee),
        "cross_collateral_group": k.cross_collateral_group,
        "reserve_rate": _s(k.reserve_rate),
        "reserve_periods": k.reserve_periods,
        "minimum_payment": _s(k.minimum_payment),
        "rates": [
            {
                "usage_type": r.usage_type,
                "channel": r.channel,
                "territories": r.territories,
                "rate": _s(r.rate),
                "tiers": [{"from_units": t.from_units, "rate": _s(t.rate)} for t in r.tiers],
                "effective_from": r.effective_from or start,
                "effective_to": r.effective_to,
            }
            for r in k.rates
        ],
        "charges": [
            {
                "kind": ch.kind,
                "amount": _s(ch.amount),
                "currency": ch.currency or k.currency or acct,
                "incurred_on": ch.incurred_on,
                "description": ch.description,
            }
            for ch in k.charges
        ],
        "terms": [
            {
                key: _s(value) if isinstance(value, Decimal) else value
                for key, value in v.model_dump(exclude_none=True).items()
            }
            for v in k.terms
        ],
    }


def _contract(
    session: Session, org_id: int, acct: str, where: str, k: ContractSpec, payees: dict[str, int]
) -> Any:
    return _create(session, org_id, "contracts", where, _contract_data(acct, k, payees))


def _fx(session: Session, org_id: int, rates: list[FxSpec]) -> None:
    """Through the FX import (``tunemantra fx import``), so the same checks apply."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["base", "quote", "period", "rate", "source"])
    for r in rates:
        w.writerow([r.base, r.quote, r.period, _s(r.rate), r.source])
    try:
        import_rates(session, org_id, out.getvalue().encode())
    except StoreError as exc:
        raise _ItemError(
            [
                f"fx[{e.row - 2}].{e.field}: {e.message}"
                if e.row is not None
                else f"fx: {e.field}: {e.message}"
                for e in exc.errors
            ]
        ) from None


# --- revenue -------------------------------------------------------------------------------
USAGE_LABEL = {"stream": "Stream", "download": "Download", "ugc": "UGC", "physical": "Physical"}
SPOTIFY_PRODUCT = {"subscription": "premium", "ad_supported": "free"}


def inline_files(stem: str, index: int, rev: RevenueSpec) -> list[tuple[str, str, bytes]]:
    """The report file(s) inline lines are written as: (file name, format, bytes). A
    negative amount is written as reported (a return); the same block always gives the
    same bytes, and the block's position is in the file, so two blocks never collide."""
    assert rev.lines is not None and rev.period is not None
    fmt = rev.format or _inline_format(rev.lines)
    if fmt == "distributor_csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["Statement", f"scenario {stem} revenue[{index}]"])
        w.writerow(["Period", rev.period])
        w.writerow([])
        w.writerow(DISTRIBUTOR_COLUMNS)
        for line in rev.lines:
            w.writerow(
                [
                    rev.period,
                    "Sale",
                    "Scenario",
                    line.territory,
                    USAGE_LABEL[line.usage_type],
                    "",
                    line.title,
                    line.artist,
                    line.upc or "",
                    line.isrc or "",
                    "",
                    line.units,
                    "",
                    "",
                    _s(line.amount),
                    line.currency,
                ]
            )
        name = f"statement_{stem}_{rev.period}_{index}.csv"
        return [(name, fmt, out.getvalue().encode())]
    files = []
    for currency in sorted({line.currency for line in rev.lines}):
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(
            [
                "country",
                "product",
                "track_uri",
                "isrc",
                "upc",
                "track_name",
                "artist_name",
                "streams",
                "revenue",
                "currency",
            ]
        )
        for n, line in enumerate(rev.lines):
            if line.currency != currency:
                continue
            assert line.channel is not None
            w.writerow(
                [
                    line.territory,
                    SPOTIFY_PRODUCT[line.channel],
                    f"scenario:{stem}:{index}:{n}",
                    line.isrc or "",
                    line.upc or "",
                    line.title,
                    line.artist,
                    line.units,
                    _s(line.amount),
                    currency,
                ]
            )
        month = rev.period.replace("-", "")
        name = f"spotify_{stem.replace('_', '-')}-{index}_{month}_{currency}.csv"
        files.append((name, fmt, out.getvalue().encode()))
    return files


@dataclass(frozen=True)
class _Job:
    item: str  # revenue[i]
    path: Path
    name: str
    format: str | None
    period: str | None


def _revenue_files(path: Path, s: Scenario, work: Path) -> list[_Job]:
    """Each revenue file to ingest (inline lines written into ``work``). Two files with the
    same bytes are refused: the ingest ledger would count the second as a duplicate."""
    stem = "".join(ch if ch.isalnum() else "-" for ch in path.stem)
    jobs = []
    for i, rev in enumerate(s.revenue):
        item = f"revenue[{i}]"
        if rev.lines is not None:
            for name, fmt, data in inline_files(stem, i, rev):
                (work / name).write_bytes(data)
                jobs.append(_Job(item, work / name, name, fmt, rev.period))
        else:
            assert rev.file is not None
            target = (path.parent / rev.file).resolve()
            jobs.append(_Job(item, target, target.name, rev.format, rev.period))
    seen: dict[str, str] = {}
    errors = []
    for job in jobs:
        sha = hashlib.sha256(job.path.read_bytes()).hexdigest()
        if sha in seen:
            errors.append(f"{job.item}: {job.name} has the same bytes as {seen[sha]}")
        seen.setdefault(sha, f"{job.item} ({job.name})")
    if errors:
        raise ScenarioError(path, errors, "duplicate revenue (it would count once); nothing loaded")
    return jobs


def _ingest(res: Resources, org_id: int, actor: str, job: _Job) -> dict[str, Any]:
    from pipelines.ingest.files import ingest_path

    got = ingest_path(
        res,
        org_id=org_id,
        path=job.path,
        name=job.name,
        format=job.format,
        period=job.period,
        actor=actor,
    )
    return {
        "item": job.item,
        "file": job.name,
        "status": got.status,
        "format": got.format,
        "periods": got.reporting_periods,
        "lines": got.lines,
        "accepted": got.accepted,
        "rejected": got.rejected,
        "matched": got.matched,
        "suspense": got.suspense,
        "reason": (got.quarantine or {}).get("message", ""),
    }
