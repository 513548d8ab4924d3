"""Validated writes to the store: the one path the API, imports, CLI and demo all use.

Field-level checks come from the contracts in ``schemas.catalog``; this module adds the rules
that need the database: references stay inside the caller's organisation, identifiers are
unique per organisation, effective-dated rows never overlap for the same key, and shares of a
track (or release) never exceed 100% on any date in any territory. Updates are validated as
the whole merged record, through the same rules as a create.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas import catalog as c
from schemas.effective import CONTRACT_TERM_FIELDS as TERM_FIELDS
from schemas.effective import in_force, in_force_sql
from schemas.errors import Conflict, FieldError, NotFound, ValidationFailed
from schemas.identifiers import gtin_forms
from schemas.store.audit import record_created
from schemas.store.models import (
    ApiKey,
    Artist,
    Base,
    Basis,
    Contract,
    ContractCharge,
    ContractRate,
    ContractTerms,
    Contributor,
    MatchKind,
    MatchRule,
    Payee,
    Release,
    Split,
    Track,
    name_key,
)
from schemas.territories import parse_territory_set

T = TypeVar("T", bound=Base)
Rules = Callable[[Session, int, Any, int | None], list[FieldError]]


def pydantic_errors(exc: ValidationError, *, row: int | None = None) -> list[FieldError]:
    """Flatten pydantic's errors into FieldErrors (``loc`` joined with dots)."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "__root__"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(FieldError(field=loc, message=msg, code=err["type"], row=row))
    return out


def get_owned(session: Session, model: type[T], org_id: int, obj_id: int) -> T:
    """The row with this id in this organisation, or NotFound (never another tenant's)."""
    obj = session.get(model, obj_id)
    if obj is None or getattr(obj, "org_id", None) != org_id:
        raise NotFound(f"{model.__tablename__[:-1]} {obj_id}")
    return obj


def _ref_errors(
    session: Session, org_id: int, refs: Iterable[tuple[str, type[Base], int | None]]
) -> list[FieldError]:
    errors = []
    for name, model, ref_id in refs:
        if ref_id is None:
            continue
        obj = session.get(model, ref_id)
        if obj is None or getattr(obj, "org_id", None) != org_id:
            errors.append(
                FieldError(name, f"no {model.__tablename__[:-1]} with id {ref_id}", "not_found")
            )
    return errors


def _duplicate(
    session: Session,
    model: type[Base],
    org_id: int,
    existing_id: int | None,
    field_name: str,
    value: Any,
    *extra: sa.ColumnElement[bool],
    same: sa.ColumnElement[bool] | None = None,
) -> list[FieldError]:
    """Another row of the organisation with this value (or matching ``same``)."""
    column = getattr(model, field_name)
    if same is None:
        # names compare casefolded; identifiers are normalised already
        same = model.name_key == name_key(value) if field_name == "name" else column == value  # type: ignore[attr-defined]
    stmt = sa.select(model.id, column).where(model.org_id == org_id, same, *extra)  # type: ignore[attr-defined]
    if existing_id is not None:
        stmt = stmt.where(model.id != existing_id)
    found = session.execute(stmt.limit(1)).first()
    if found is None:
        return []
    other, stored = found
    written = "" if stored == value or field_name == "name" else f" (written {stored})"
    return [
        FieldError(
            field_name,
            f"{value} is already used by {model.__tablename__[:-1]} {other}{written} "
            "in this organisation",
            "duplicate",
        )
    ]


# --- effective dating ----------------------------------------------------------------------
def _overlaps(a_from: dt.date, a_to: dt.date | None, b_from: dt.date, b_to: dt.date | None) -> bool:
    return (b_to is None or a_from <= b_to) and (a_to is None or b_from <= a_to)


def _fmt_range(start: dt.date, end: dt.date | None) -> str:
    return f"{start.isoformat()}..{end.isoformat() if end else 'open'}"


@dataclass
class _Dated:
    """The effective-dating view of a split or rate row."""

    id: int | None
    effective_from: dt.date
    effective_to: dt.date | None
    territories: str
    share: Decimal = Decimal(0)
    codes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.codes = _codes(self.territories)


@functools.lru_cache(maxsize=4096)
def _codes(territories: str) -> frozenset[str]:
    """The codes a stored territory set covers (a label writes the same few sets
    thousands of times: parsed once each)."""
    return parse_territory_set(territories).resolve()


def _resolve_same_key(
    new: _Dated, same_key: Sequence[Any], what: str, *, creating: bool
) -> tuple[list[Any], list[FieldError]]:
    """Rows of the same key may not overlap. The one exception is the normal way to change a
    term: a new row for exactly the same territories starting after an open-ended row closes
    that row the day before (the old row is kept, so the past reads back unchanged)."""
    to_close, errors = [], []
    for row in same_key:
        old = _Dated(row.id, row.effective_from, row.effective_to, row.territories)
        if not (
            _overlaps(new.effective_from, new.effective_to, old.effective_from, old.effective_to)
            and new.codes & old.codes
        ):
            continue
        if (
            creating
            and old.effective_to is None
            and old.territories == new.territories
            and old.effective_from < new.effective_from
        ):
            to_close.append(row)
            continue
        errors.append(
            FieldError(
                "effective_from",
                f"overlaps {what} {row.id} ({_fmt_range(old.effective_from, old.effective_to)}, "
                f"{old.territories}) for the same key; end that one first or start after it",
                "overlapping_range",
            )
        )
    return to_close, errors


def share_total_errors(new: _Dated, siblings: Sequence[_Dated], target: str) -> list[FieldError]:
    """Shares on one target may not exceed 100% on any date, in any territory."""
    active = [
        s
        for s in siblings
        if _overlaps(new.effective_from, new.effective_to, s.effective_from, s.effective_to)
        and s.codes & new.codes
    ]
    checkpoints = {new.effective_from}
    for s in active:
        for d in (s.effective_from, s.effective_to and s.effective_to + dt.timedelta(days=1)):
            if d and in_force(new.effective_from, new.effective_to, d):
                checkpoints.add(d)
    for day in sorted(checkpoints):
        live = [s for s in active if in_force(s.effective_from, s.effective_to, day)]
        # The territories split into blocks that the same live splits cover (one total per
        # block, not one per territory code); the first code in sorted order over 100% fails.
        blocks: list[tuple[frozenset[str], Decimal]] = [(new.codes, new.share)]
        for s in live:
            refined = []
            for codes, total in blocks:
                inside, outside = codes & s.codes, codes - s.codes
                if inside:
                    refined.append((inside, total + s.share))
                if outside:
                    refined.append((outside, total))
            blocks = refined
        over = [(min(codes), total) for codes, total in blocks if total > 1]
        if over:
            code, total = min(over)
            others = ", ".join(str(s.id) for s in live if code in s.codes)
            return [
                FieldError(
                    "share",
                    f"shares of {target} would total {total:%} on {day.isoformat()} in "
                    f"{code} (with split(s) {others}); at most 100%, the rest is the label's",
                    "shares_exceed_100",
                )
            ]
    return []


# --- per-entity rules ----------------------------------------------------------------------
def _artist_rules(s: Session, org: int, d: c.ArtistIn, eid: int | None) -> list[FieldError]:
    return _duplicate(s, Artist, org, eid, "name", d.name)


def _alias_taken(
    s: Session,
    org: int,
    kind: MatchKind,
    keys: list[str],
    field_name: str,
    changed: bool,
    elsewhere: sa.ColumnElement[bool],
) -> list[FieldError]:
    """A code a remembered match (alias rule) already sends ``elsewhere`` (not to the row
    being written): as a catalogue code too it would win over the rule (codes match first),
    silently moving the rule's lines."""
    if not changed:
        return []
    rule = s.scalar(
        sa.select(MatchRule)
        .where(MatchRule.org_id == org, MatchRule.kind == kind, MatchRule.key.in_(keys), elsewhere)
        .limit(1)
    )
    if rule is None:
        return []
    target = f"track {rule.track_id}" if rule.track_id is not None else f"release {rule.release_id}"
    return [
        FieldError(
            field_name,
            f"{rule.key} is matched to {target} by a remembered match (rule {rule.id}); "
            f"if its lines belong here, forget that match first (DELETE "
            f"/v1/suspense/rules/{rule.id})",
            "alias_taken",
        )
    ]


def _current(s: Session, model: type[Base], eid: int | None, column: str) -> Any:
    if eid is None:
        return None
    return s.scalar(sa.select(getattr(model, column)).where(model.id == eid))


def _release_rules(s: Session, org: int, d: c.ReleaseIn, eid: int | None) -> list[FieldError]:
    errors = _ref_errors(s, org, [("artist_id", Artist, d.artist_id)])
    # only a new or changed UPC is checked: an edit of anything else never fails on a pair
    # stored before GTIN forms were compared
    changed = _current(s, Release, eid, "upc") != d.upc
    if not changed:
        return errors
    forms = gtin_forms(d.upc)
    same = _duplicate(s, Release, org, eid, "upc", d.upc, same=Release.upc.in_(forms))
    if same:
        return errors + same
    to_other = sa.or_(MatchRule.release_id.is_distinct_from(eid), MatchRule.track_id.is_not(None))
    return errors + _alias_taken(s, org, MatchKind.UPC, forms, "upc", changed, to_other)


def _track_rules(s: Session, org: int, d: c.TrackIn, eid: int | None) -> list[FieldError]:
    refs = [("release_id", Release, d.release_id), ("artist_id", Artist, d.artist_id)]
    refs += [
        (f"contributors.{i}.artist_id", Artist, x.artist_id) for i, x in enumerate(d.contributors)
    ]
    errors = _ref_errors(s, org, refs) + _duplicate(s, Track, org, eid, "isrc", d.isrc)
    if not errors:
        changed = _current(s, Track, eid, "isrc") != d.isrc
        # a new track: any rule for the code, to a track or a release only, is in the way
        to_other = sa.true() if eid is None else MatchRule.track_id.is_distinct_from(eid)
        errors += _alias_taken(s, org, MatchKind.ISRC, [d.isrc], "isrc", changed, to_other)
    if not errors:
        taken = _duplicate(
            s,
            Track,
            org,
            eid,
            "track_number",
            d.track_number,
            Track.release_id == d.release_id,
            Track.disc_number == d.disc_number,
        )
        errors += [
            FieldError(
                "track_number",
                f"disc {d.disc_number} track {d.track_number} of this release is already taken",
                "duplicate",
            )
            for _ in taken
        ]
    seen = set()
    for i, x in enumerate(d.contributors):
        key = (x.artist_id, x.role)
        if key in seen:
            errors.append(
                FieldError(f"contributors.{i}", "the same artist and role twice", "duplicate")
            )
        seen.add(key)
    return errors


def _payee_rules(s: Session, org: int, d: c.PayeeIn, eid: int | None) -> list[FieldError]:
    return _ref_errors(s, org, [("artist_id", Artist, d.artist_id)]) + _duplicate(
        s, Payee, org, eid, "name", d.name
    )


def _rate_errors(basis: Basis, rate: c.RateIn, prefix: str = "") -> list[FieldError]:
    if basis is Basis.PER_UNIT:
        return []
    errors = []
    for name, value in [("rate", rate.rate)] + [
        (f"tiers.{i}.rate", t.rate) for i, t in enumerate(rate.tiers)
    ]:
        if value > 1:
            errors.append(
                FieldError(
                    prefix + name,
                    f"a {basis.value} rate is a fraction of the basis (0.18 = 18%), got {value}",
                    "rate_not_fraction",
                )
            )
    return errors


def _contract_rules(s: Session, org: int, d: c.ContractIn, eid: int | None) -> list[FieldError]:
    errors = _ref_errors(s, org, [("payee_id", Payee, d.payee_id)])
    errors += _duplicate(s, Contract, org, eid, "reference", d.reference)
    for i, rate in enumerate(d.rates):
        errors += _rate_errors(d.basis, rate, f"rates.{i}.")
    return errors


def _split_rules(s: Session, org: int, d: c.SplitIn, eid: int | None) -> list[FieldError]:
    errors = _ref_errors(
        s,
        org,
        [
            ("track_id", Track, d.track_id),
            ("release_id", Release, d.release_id),
            ("payee_id", Payee, d.payee_id),
            ("contract_id", Contract, d.contract_id),
        ],
    )
    if errors:
        return errors
    contract = s.get(Contract, d.contract_id)
    assert contract is not None
    if contract.payee_id != d.payee_id:
        return [
            FieldError(
                "contract_id",
                f"contract {contract.id} belongs to payee "
                f"{contract.payee_id}, not payee {d.payee_id}",
                "contract_payee_mismatch",
            )
        ]
    if d.effective_from < contract.start_date or (
        contract.end_date is not None
        and (d.effective_to is None or d.effective_to > contract.end_date)
    ):
        span = _fmt_range(contract.start_date, contract.end_date)
        return [
            FieldError(
                "effective_from",
                f"the split must lie within contract {contract.id}'s term ({span})",
                "outside_contract_term",
            )
        ]
    new = _Dated(eid, d.effective_from, d.effective_to, d.territories, d.share)
    target_model = Track if d.track_id is not None else Release
    target_col = Split.track_id if d.track_id is not None else Split.release_id
    target_id = d.track_id if d.track_id is not None else d.release_id
    # Lock the track (or release) row: two concurrent writers cannot both pass the 100% check.
    s.execute(sa.select(target_model.id).where(target_model.id == target_id).with_for_update())
    rows = s.scalars(
        sa.select(Split).where(Split.org_id == org, target_col == target_id, Split.id != (eid or 0))
    ).all()
    same_key = [r for r in rows if r.payee_id == d.payee_id and r.contract_id == d.contract_id]
    to_close, errors = _resolve_same_key(new, same_key, "split", creating=eid is None)
    closing = {r.id for r in to_close}
    siblings = []
    for r in rows:
        end = new.effective_from - dt.timedelta(days=1) if r.id in closing else r.effective_to
        siblings.append(_Dated(r.id, r.effective_from, end, r.territories, r.share))
    what = f"track {d.track_id}" if d.track_id is not None else f"release {d.release_id}"
    errors += share_total_errors(new, siblings, what)
    if not errors:
        s.info.setdefault("close_on_write", []).extend(to_close)
    return errors


@dataclass(frozen=True)
class Spec:
    model: type[Base]
    create: type[BaseModel]
    patch: type[BaseModel]
    rules: Rules
    nested: frozenset[str] = frozenset()


SPECS: dict[str, Spec] = {
    "artists": Spec(Artist, c.ArtistIn, c.ArtistPatch, _artist_rules),
    "releases": Spec(Release, c.ReleaseIn, c.ReleasePatch, _release_rules),
    "tracks": Spec(Track, c.TrackIn, c.TrackPatch, _track_rules, frozenset({"contributors"})),
    "payees": Spec(Payee, c.PayeeIn, c.PayeePatch, _payee_rules),
    "contracts": Spec(
        Contract,
        c.ContractIn,
        c.ContractPatch,
        _contract_rules,
        frozenset({"rates", "charges", "terms"}),
    ),
    "splits": Spec(Split, c.SplitIn, c.SplitPatch, _split_rules),
}


def _close_superseded(session: Session, new_from: dt.date) -> None:
    for row in session.info.pop("close_on_write", []):
        row.effective_to = new_from - dt.timedelta(days=1)


def _write_nested(
    session: Session, org_id: int, obj: Base, data: BaseModel, fields: set[str]
) -> None:
    if isinstance(obj, Track) and "contributors" in fields:
        for old in _children(session, obj):
            session.delete(old)  # one by one, so each removal is in the audit log
        session.flush()
        for x in data.contributors:  # type: ignore[attr-defined]
            session.add(Contributor(org_id=org_id, track_id=obj.id, **x.model_dump()))
    if isinstance(obj, Contract):
        for i, rate in enumerate(data.rates):  # type: ignore[attr-defined]
            try:
                add_rate(session, org_id, obj.id, rate)
            except ValidationFailed as exc:  # e.g. two of the new rates overlap
                raise ValidationFailed(
                    [replace(e, field=f"rates.{i}.{e.field}") for e in exc.errors]
                ) from None
        for charge in data.charges:  # type: ignore[attr-defined]
            add_charge(session, org_id, obj.id, charge)
        for i, version in enumerate(data.terms):  # type: ignore[attr-defined]
            try:
                add_terms(session, org_id, obj.id, version)
            except ValidationFailed as exc:
                raise ValidationFailed(
                    [replace(e, field=f"terms.{i}.{e.field}") for e in exc.errors]
                ) from None
    session.flush()


def _validated(model: type[BaseModel], data: BaseModel | dict[str, Any]) -> BaseModel:
    if isinstance(data, model):
        return data
    raw = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else data
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(pydantic_errors(exc)) from None


def create(session: Session, org_id: int, kind: str, data: BaseModel | dict[str, Any]) -> Base:
    spec = SPECS[kind]
    valid = _validated(spec.create, data)
    errors = spec.rules(session, org_id, valid, None)
    if errors:
        session.info.pop("close_on_write", None)
        raise ValidationFailed(errors)
    obj = spec.model(org_id=org_id, **valid.model_dump(exclude=set(spec.nested)))
    # One savepoint: a nested rate that fails leaves no contract (and no closed split) behind.
    with session.begin_nested():
        if isinstance(valid, c.SplitIn):
            _close_superseded(session, valid.effective_from)
        session.add(obj)
        _flush(session)
        _write_nested(session, org_id, obj, valid, set(spec.nested))
    return obj


def _current_values(session: Session, obj: Base, spec: Spec) -> dict[str, Any]:
    values = {
        name: getattr(obj, name)
        for name in spec.create.model_fields
        if name not in spec.nested and hasattr(obj, name)
    }
    if isinstance(obj, Track):
        values["contributors"] = [
            {"artist_id": x.artist_id, "role": x.role, "sequence": x.sequence}
            for x in session.scalars(sa.select(Contributor).where(Contributor.track_id == obj.id))
        ]
    return values


def update(
    session: Session, org_id: int, kind: str, obj_id: int, patch: BaseModel | dict[str, Any]
) -> Base:
    spec = SPECS[kind]
    obj = get_owned(session, spec.model, org_id, obj_id)
    changes = _validated(spec.patch, patch).model_dump(exclude_unset=True)
    merged = _validated(spec.create, {**_current_values(session, obj, spec), **changes})
    errors = spec.rules(session, org_id, merged, obj_id)
    session.info.pop("close_on_write", None)
    if errors:
        raise ValidationFailed(errors)
    for name in changes:
        if name not in spec.nested:
            setattr(obj, name, getattr(merged, name))
    _flush(session)
    _write_nested(session, org_id, obj, merged, set(changes) & {"contributors"})
    return obj


def _children(session: Session, obj: Base) -> list[Base]:
    """Rows that belong to ``obj`` and go with it (a track's contributors, a contract's rates
    and charges). Everything else that refers to a row blocks its deletion (RESTRICT)."""
    if isinstance(obj, Track):
        return list(session.scalars(sa.select(Contributor).where(Contributor.track_id == obj.id)))
    if isinstance(obj, Payee):  # its API keys stop working with it
        return list(session.scalars(sa.select(ApiKey).where(ApiKey.payee_id == obj.id)))
    if isinstance(obj, Contract):
        return [
            *session.scalars(sa.select(ContractRate).where(ContractRate.contract_id == obj.id)),
            *session.scalars(sa.select(ContractCharge).where(ContractCharge.contract_id == obj.id)),
            *session.scalars(sa.select(ContractTerms).where(ContractTerms.contract_id == obj.id)),
        ]
    return []


def delete(session: Session, org_id: int, kind: str, obj_id: int) -> None:
    """Delete one row and its own children, each recorded in the audit log. Rows still
    referenced elsewhere (a release with tracks, a payee with contracts, a track with splits)
    are refused with a Conflict rather than cascading silently."""
    obj = get_owned(session, SPECS[kind].model, org_id, obj_id)
    try:
        with session.begin_nested():
            for child in _children(session, obj):
                session.delete(child)
            session.flush()
            session.delete(obj)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"{kind[:-1]} {obj_id} is still referenced (by tracks, splits, contracts, "
            "payees or contributors); remove or end those first"
        ) from None


def _flush(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent writer won a uniqueness race
        diag = getattr(exc.orig, "diag", None)  # PostgreSQL names the constraint
        name = getattr(diag, "constraint_name", None) or str(exc.orig).split(":")[-1].strip()
        raise Conflict(
            f"the write conflicts with existing data ({name}); retry to see why"
        ) from None


# --- contract rates and charges ------------------------------------------------------------
def add_rate(
    session: Session, org_id: int, contract_id: int, data: BaseModel | dict[str, Any]
) -> ContractRate:
    contract = get_owned(session, Contract, org_id, contract_id)
    rate = _validated(c.RateIn, data)
    assert isinstance(rate, c.RateIn)
    # Lock the contract: concurrent rate writes for it are checked one after the other.
    session.execute(sa.select(Contract.id).where(Contract.id == contract.id).with_for_update())
    errors = _rate_errors(contract.basis, rate)
    same_key = session.scalars(
        sa.select(ContractRate).where(
            ContractRate.contract_id == contract.id,
            ContractRate.usage_type == rate.usage_type,
            ContractRate.channel == rate.channel,
        )
    ).all()
    new = _Dated(None, rate.effective_from, rate.effective_to, rate.territories)
    to_close, overlap = _resolve_same_key(new, same_key, "rate", creating=True)
    errors += overlap
    if errors:
        raise ValidationFailed(errors)
    for row in to_close:
        row.effective_to = rate.effective_from - dt.timedelta(days=1)
    obj = ContractRate(
        org_id=org_id,
        contract_id=contract.id,
        **rate.model_dump(exclude={"tiers"}),
        tiers=[t.as_json() for t in rate.tiers],
    )
    session.add(obj)
    _flush(session)
    return obj


def add_charge(
    session: Session, org_id: int, contract_id: int, data: BaseModel | dict[str, Any]
) -> ContractCharge:
    contract = get_owned(session, Contract, org_id, contract_id)
    charge = _validated(c.ChargeIn, data)
    obj = ContractCharge(org_id=org_id, contract_id=contract.id, **charge.model_dump())
    session.add(obj)
    _flush(session)
    return obj


def term_versions(session: Session, contract: Contract) -> list[dict[str, Any]]:
    """Every version of a contract's effective-dated terms, oldest first, each with the day
    it ends (``effective_to``: the day before the next version's, None for the last): the
    contract's own columns from its start date (``id`` None), then its ``contract_terms``."""
    rows: list[dict[str, Any]] = [
        {
            "id": None,
            "contract_id": contract.id,
            "effective_from": contract.start_date,
            **{f: getattr(contract, f) for f in TERM_FIELDS},
        }
    ]
    for v in session.scalars(
        sa.select(ContractTerms)
        .where(ContractTerms.contract_id == contract.id)
        .order_by(ContractTerms.effective_from)
    ):
        rows.append(
            {
                "id": v.id,
                "contract_id": v.contract_id,
                "effective_from": v.effective_from,
                **{f: getattr(v, f) for f in TERM_FIELDS},
            }
        )
    for row, nxt in zip(rows, [*rows[1:], None], strict=True):
        row["effective_to"] = None if nxt is None else nxt["effective_from"] - dt.timedelta(days=1)
    return rows


def add_terms(
    session: Session, org_id: int, contract_id: int, data: BaseModel | dict[str, Any]
) -> ContractTerms:
    """Add a later version of a contract's effective-dated terms; fields left out are those
    of the version in force the day before."""
    contract = get_owned(session, Contract, org_id, contract_id)
    version = _validated(c.TermsIn, data)
    assert isinstance(version, c.TermsIn)
    session.execute(sa.select(Contract.id).where(Contract.id == contract.id).with_for_update())
    errors: list[FieldError] = []
    if version.effective_from <= contract.start_date:
        errors.append(
            FieldError(
                "effective_from",
                f"must be after the contract's start date ({contract.start_date}); the "
                "contract's own terms are its first version (change them on the contract)",
                "after_start",
            )
        )
    existing = term_versions(session, contract)
    if any(v["effective_from"] == version.effective_from for v in existing):
        errors.append(
            FieldError(
                "effective_from",
                f"the contract already has terms from {version.effective_from}",
                "duplicate",
            )
        )
    day_before = version.effective_from - dt.timedelta(days=1)
    before = next(
        (v for v in existing if in_force(v["effective_from"], v["effective_to"], day_before)),
        existing[0],
    )
    given = version.model_dump(exclude={"effective_from"}, exclude_none=True)
    values = {f: given.get(f, before[f]) for f in TERM_FIELDS}
    if values["reserve_rate"] > 0 and values["reserve_periods"] == 0:
        errors.append(
            FieldError("reserve_periods", "must be at least 1 when reserve_rate is set", "required")
        )
    if errors:
        raise ValidationFailed(errors)
    obj = ContractTerms(
        org_id=org_id, contract_id=contract.id, effective_from=version.effective_from, **values
    )
    session.add(obj)
    _flush(session)
    return obj


# --- reading the state at a date -----------------------------------------------------------
def effective_on(stmt: sa.Select[Any], model: Any, as_of: dt.date) -> sa.Select[Any]:
    return stmt.where(in_force_sql(model, as_of))


def split_candidates(
    session: Session, org_id: int, track_id: int, as_of: dt.date
) -> tuple[Track, list[Split]]:
    """One track of the organisation and the splits in force on a date on it or its release:
    what ``royalty_engine.splits.applicable_splits`` picks the split sheet from."""
    track = get_owned(session, Track, org_id, track_id)
    rows = session.scalars(
        effective_on(
            sa.select(Split).where(
                Split.org_id == org_id,
                sa.or_(Split.track_id == track.id, Split.release_id == track.release_id),
            ),
            Split,
            as_of,
        ).order_by(Split.id)
    ).all()
    return track, list(rows)


def delete_contract_child(
    session: Session,
    org_id: int,
    model: type[ContractRate] | type[ContractCharge] | type[ContractTerms],
    contract_id: int,
    child_id: int,
) -> None:
    """Delete one rate, charge or terms version of a contract (a correction; the audit log
    keeps it)."""
    contract = get_owned(session, Contract, org_id, contract_id)
    child = session.get(model, child_id)
    assert child is None or isinstance(child, ContractRate | ContractCharge | ContractTerms)
    if child is None or child.org_id != org_id or child.contract_id != contract.id:
        raise NotFound(f"{model.__tablename__[:-1]} {child_id} of contract {contract_id}")
    session.delete(child)
    session.flush()


# --- bulk writes ---------------------------------------------------------------------------
def bulk_create(session: Session, model: type[T], rows: list[dict[str, Any]]) -> list[T]:
    """Insert already-validated rows in bulk (``INSERT ... RETURNING`` in batches, the ids in
    the rows' order) and write their audit entries, one per row as a flush would. The caller
    has checked them against this module's rules (e.g. ``pipelines.scenario`` for a new
    organisation); nothing here checks them again."""
    if not rows:
        return []
    if "name_key" in model.__table__.c:  # what the model's ``@validates("name")`` sets
        rows = [{**r, "name_key": name_key(r["name"])} for r in rows]
    objs = list(
        session.scalars(sa.insert(model).returning(model, sort_by_parameter_order=True), rows)
    )
    record_created(session, list(objs))
    return objs
