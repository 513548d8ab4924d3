"""What a period's run starts from: the checks that it may run, the organisation's
terms and statement context as frames, the opening state and the lake files it reads."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines import lake
from pipelines.layout import DataDir
from royalty_engine.periods import Period, RunError, check_chain, check_rerun, parse_period
from royalty_engine.terms import (
    TERM_VERSION_SCHEMA,
    ContractState,
    Terms,
    state_from_frame,
    terms_in_force,
)
from schemas.store.models import (
    Contract,
    ContractCharge,
    ContractRate,
    ContractTerms,
    FxRate,
    Organisation,
    Payee,
    Release,
    Split,
    Track,
)
from schemas.store.runs import PpdPrice, RoyaltyRun, RunStatus


def snapshot(session: Session, org_id: int, as_of: dt.date | None = None) -> Terms:
    """The organisation's terms as plain frames (see ``royalty_engine.terms.SCHEMAS``).

    ``as_of`` (a period's first day): each contract's effective-dated terms (fee, reserve,
    minimum payment, statement frequency) are those of the version in force on that day
    (``royalty_engine.terms.terms_in_force``); None: the contracts' first versions."""

    def rows(stmt: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in session.execute(stmt)]

    def frame(name: str, stmt: Any) -> pl.DataFrame:
        from royalty_engine.terms import SCHEMAS

        schema = SCHEMAS.get(name, TERM_VERSION_SCHEMA)
        data = rows(stmt)
        for r in data:
            for k, v in r.items():
                if isinstance(v, Decimal):
                    r[k] = str(v)
                elif isinstance(v, list | dict):
                    r[k] = json.dumps(v, sort_keys=True)
        strings = {k: (pl.String() if isinstance(t, pl.Decimal) else t) for k, t in schema.items()}
        return pl.DataFrame(data, schema=strings, orient="row").cast(schema)  # type: ignore[arg-type]

    c = Contract
    terms = {
        "payees": frame(
            "payees",
            sa.select(
                Payee.id.label("payee_id"),
                Payee.name,
                Payee.statement_currency,
                Payee.withholding_rate,
                Payee.vat_number,
                Payee.self_billing_consent.label("self_billing"),
            ).where(Payee.org_id == org_id),
        ),
        "contracts": frame(
            "contracts",
            sa.select(
                c.id.label("contract_id"),
                c.payee_id,
                c.reference,
                c.basis,
                c.currency,
                c.distribution_fee,
                c.cross_collateral_group,
                c.reserve_rate,
                c.reserve_periods,
                c.minimum_payment,
                c.statement_frequency,
                c.start_date,
                c.end_date,
            ).where(c.org_id == org_id),
        ),
        "rates": frame(
            "rates",
            sa.select(
                ContractRate.id.label("rate_id"),
                ContractRate.contract_id,
                ContractRate.usage_type,
                ContractRate.channel,
                ContractRate.territories,
                ContractRate.rate,
                ContractRate.tiers,
                ContractRate.effective_from,
                ContractRate.effective_to,
            ).where(ContractRate.org_id == org_id),
        ),
        "charges": frame(
            "charges",
            sa.select(
                ContractCharge.id.label("charge_id"),
                ContractCharge.contract_id,
                ContractCharge.kind,
                ContractCharge.amount,
                ContractCharge.currency,
                ContractCharge.incurred_on,
                ContractCharge.description,
            ).where(ContractCharge.org_id == org_id),
        ),
        "splits": frame(
            "splits",
            sa.select(
                Split.id.label("split_id"),
                Split.track_id,
                Split.release_id,
                Split.payee_id,
                Split.contract_id,
                Split.share,
                Split.territories,
                Split.effective_from,
                Split.effective_to,
            ).where(Split.org_id == org_id),
        ),
        "ppd_prices": frame(
            "ppd_prices",
            sa.select(
                PpdPrice.id.label("price_id"),
                PpdPrice.usage_type,
                PpdPrice.territories,
                PpdPrice.currency,
                PpdPrice.price,
                PpdPrice.effective_from,
                PpdPrice.effective_to,
            ).where(PpdPrice.org_id == org_id),
        ),
        "fx": frame(
            "fx",
            sa.select(FxRate.base, FxRate.quote, FxRate.period, FxRate.rate, FxRate.source).where(
                FxRate.org_id == org_id
            ),
        ),
        "tracks": frame(
            "tracks",
            sa.select(Track.id.label("track_id"), Track.release_id, Track.isrc, Track.title).where(
                Track.org_id == org_id
            ),
        ),
    }
    if as_of is not None:
        versions = frame(
            "contract_terms",
            sa.select(
                ContractTerms.contract_id,
                ContractTerms.effective_from,
                ContractTerms.distribution_fee,
                ContractTerms.reserve_rate,
                ContractTerms.reserve_periods,
                ContractTerms.minimum_payment,
                ContractTerms.statement_frequency,
            ).where(ContractTerms.org_id == org_id),
        )
        terms["contracts"] = terms_in_force(terms["contracts"], versions, as_of)
    return Terms.from_frames(terms)


def statement_context(session: Session, org_id: int) -> dict[str, pl.DataFrame]:
    """What statements print besides the figures — the label and payees as parties (names,
    addresses, VAT numbers and rates, self-billing agreements) and release titles and UPCs —
    frozen with the run, so its statements and invoices stay the same documents whatever is
    edited later."""
    org = session.get(Organisation, org_id)
    assert org is not None
    label = pl.DataFrame(
        [
            {
                "name": org.legal_name or org.name,
                "address": org.address,
                "vat_number": org.vat_number,
            }
        ],
        schema={"name": pl.String, "address": pl.String, "vat_number": pl.String},
    )
    payees = pl.DataFrame(
        [
            {
                "payee_id": p.id,
                "name": p.name,
                "address": p.address,
                "vat_number": p.vat_number,
                "vat_rate": None if p.vat_rate is None else format(p.vat_rate, "f"),
                "self_billing_consent": bool(p.self_billing_consent),
                "self_billing_expires": p.self_billing_expires,
            }
            for p in session.scalars(
                sa.select(Payee).where(Payee.org_id == org_id).order_by(Payee.id)
            )
        ],
        schema={
            "payee_id": pl.Int64,
            "name": pl.String,
            "address": pl.String,
            "vat_number": pl.String,
            "vat_rate": pl.String,
            "self_billing_consent": pl.Boolean,
            "self_billing_expires": pl.Date,
        },
    )
    releases = pl.DataFrame(
        session.execute(
            sa.select(Release.id, Release.upc, Release.title)
            .where(Release.org_id == org_id)
            .order_by(Release.id)
        ).all(),
        schema={"release_id": pl.Int64, "upc": pl.String, "release_title": pl.String},
        orient="row",
    )
    return {"label": label, "payees": payees, "releases": releases}


def lake_files(
    factory: sessionmaker[Session], data_dir: Path, org_id: int, period: Period
) -> list[Path]:
    """Every accepted-lines Parquet part of the period's committed files, in a stable order
    (``lake.committed_parts``: parts of a file whose ingestion has not committed, or was
    killed, and temporary files are not inputs)."""
    with factory() as session:
        return lake.committed_parts(session, DataDir(data_dir), org_id, periods=period.months)


def scan_lines(files: list[Path]) -> pl.LazyFrame:
    return lake.scan_revenue(files)


def current_runs(session: Session, org_id: int, *, lock: bool = False) -> dict[str, RoyaltyRun]:
    """Each period's current run: its latest version that was not superseded (a locked
    period's correction in progress is its current run). ``lock``: the rows are locked for
    this transaction (PostgreSQL; SQLite serialises writers anyway)."""
    query = (
        sa.select(RoyaltyRun)
        .where(RoyaltyRun.org_id == org_id, RoyaltyRun.status != RunStatus.SUPERSEDED)
        .order_by(RoyaltyRun.version)
    )
    if lock:
        query = query.with_for_update()
    return {r.period: r for r in session.scalars(query).all()}


def load_state(run: RoyaltyRun | None) -> dict[int, ContractState]:
    if run is None:
        return {}
    return state_from_frame(pl.read_parquet(Path(run.output_dir) / "state.parquet"))


@dataclass
class Prepared:
    period: Period
    currency: str
    existing: list[RoyaltyRun]
    locked: list[RoyaltyRun]
    previous: RoyaltyRun | None
    state_in: dict[int, ContractState]
    terms: Terms
    context: dict[str, pl.DataFrame]


def prepare(
    factory: sessionmaker[Session], org_id: int, period: str, correction: str | None
) -> Prepared:
    """Check the period may be run and take the snapshot: terms and opening state."""
    p = parse_period(period)
    with factory() as session:
        org = session.get(Organisation, org_id)
        if org is None:
            raise RunError("org_missing", f"organisation {org_id} does not exist")
        currency = org.default_currency
        existing = list(
            session.scalars(
                sa.select(RoyaltyRun)
                .where(RoyaltyRun.org_id == org_id, RoyaltyRun.period == p.label)
                .order_by(RoyaltyRun.version)
            ).all()
        )
        locked = [r for r in existing if r.status == RunStatus.LOCKED]
        check_rerun(p, locked, correction)
        # a correction opens from the current run of the period before it (itself perhaps
        # corrected since this period was locked), as any run does
        previous = check_chain(
            current_runs(session, org_id),
            p,
            None,
            doing="correct" if correction is not None else "run",
            correcting=correction is not None,
        )
        state_in = load_state(previous)
        terms = snapshot(session, org_id, as_of=p.start)
        context = statement_context(session, org_id)
        session.expunge_all()
    return Prepared(p, currency, existing, locked, previous, state_in, terms, context)
