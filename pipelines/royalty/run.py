"""The period run around the pure engine: snapshot -> compute -> write -> record -> audit.

Where a run lives, under ``TUNEMANTRA_DATA_DIR``::

    runs/org=<id>/period=<label>/v<version>/
        snapshot/<table>.parquet   the terms the run used (contracts, rates, splits, FX, ...)
        state_in.parquet           the contracts' carried state it opened from
        inputs.json                every lake file it read, with SHA-256 and size
        outputs/<name>.parquet     ledger, statements, breakdown, suspense, slots
        state.parquet              the closing state the next period opens from
        manifest.json              all of the above with SHA-256, totals and counts

One commit point, the store row: the folder is written under a temporary name
(``.v<version>-<id>``), the run's rows are committed, the folder is renamed into place, then the
audit ledger entry is appended (``KILL_STEPS`` names each step). A run that fails before its
commit leaves nothing; a process killed at any step leaves what the next run, approval or lock
(or ``tunemantra audit repair``) finishes or removes (``recover``). A locked period is never
recalculated: a correction is a new version with a per-payee diff against the locked one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines import lake
from pipelines.killpoints import killpoint
from pipelines.layout import DataDir
from pipelines.royalty import audit_ledger
from royalty_engine.engine import RunResult, compute
from royalty_engine.periods import Period, parse_period
from royalty_engine.terms import (
    ContractState,
    EngineError,
    Terms,
    state_frame,
    state_from_frame,
)
from schemas.store import db
from schemas.store.models import (
    AuditEntry,
    Contract,
    ContractCharge,
    ContractRate,
    FxRate,
    Organisation,
    Payee,
    Release,
    Split,
    Track,
)
from schemas.store.runs import ContractBalance, PpdPrice, RoyaltyRun, RunStatus, StatementSummary

SUMMARY_FIELDS = (
    "opening",
    "earnings",
    "advances",
    "costs",
    "recouped",
    "reserve_held",
    "reserve_released",
    "tax",
    "payable",
    "closing",
    "carried_forward",
)


log = logging.getLogger(__name__)

# The named steps of a run and of an approval or lock, in order, where the kill harness
# (``tests/pipelines/test_kill_harness_run.py``) kills the process (``pipelines.killpoints``).
KILL_STEPS = (
    "run.staged",  # the run folder written under its temporary name; nothing committed
    "run.recorded",  # the run's rows written in the open transaction, not committed
    "run.committed",  # the store row committed (the commit point); folder not renamed
    "run.renamed",  # the folder renamed into place; no ledger entry yet
    "run.ledgered",  # the ledger entry appended
    "transition.committed",  # the approval or lock committed; no ledger entry yet
    "transition.ledgered",  # its ledger entry appended
)


class RunError(EngineError):
    """A run that must not happen (period locked, previous period not approved, ...)."""


@dataclass
class RunReport:
    run_id: int
    org_id: int
    period: str
    version: int
    status: str
    totals: dict[str, dict[str, str]]
    counts: dict[str, int]
    outputs: dict[str, str]
    diff: list[dict[str, Any]] = field(default_factory=list)
    reproduced: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "org_id": self.org_id,
            "period": self.period,
            "version": self.version,
            "status": self.status,
            "totals": self.totals,
            "counts": self.counts,
            "outputs": self.outputs,
            "diff": self.diff,
        }


# --- snapshot -------------------------------------------------------------------------------
def snapshot(session: Session, org_id: int) -> Terms:
    """The organisation's terms as plain frames (see ``royalty_engine.terms.SCHEMAS``)."""

    def rows(stmt: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in session.execute(stmt)]

    def frame(name: str, stmt: Any) -> pl.DataFrame:
        from royalty_engine.terms import SCHEMAS

        schema = SCHEMAS[name]
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
    return Terms.from_frames(terms)


# --- inputs ---------------------------------------------------------------------------------
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


# --- state ----------------------------------------------------------------------------------
SETTLED = (RunStatus.APPROVED, RunStatus.LOCKED)
ZERO_CENTS = Decimal("0.00")


def _current_runs(session: Session, org_id: int, *, lock: bool = False) -> dict[str, RoyaltyRun]:
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


def _opening(current: dict[str, RoyaltyRun], period: Period) -> RoyaltyRun | None:
    """The run a period opens from: the current run of the latest earlier period."""
    earlier = [r for r in current.values() if r.period_end < period.start]
    return max(earlier, key=lambda r: r.period_end) if earlier else None


def _check_chain(
    current: dict[str, RoyaltyRun],
    period: Period,
    opened_from: int | None,
    *,
    doing: str,
    correcting: bool = False,
) -> RoyaltyRun | None:
    """The periods of an organisation form one chain, each opening from the closing state of
    the one before: return the run ``period`` opens from, or refuse what would break it.

    - no gap: the period before must have been run (``period_gap``);
    - it must be approved or locked (``previous_not_approved``);
    - it must itself open from the current run before it: a period whose predecessor was
      rerun or corrected since must be rerun or corrected first (``stale_previous``);
    - ``opened_from`` (the run this one was computed from, when approving or locking) must
      still be that run (``stale_opening``: rerun it);
    - a period of another length overlapping an approved or locked run is refused
      (``period_overlaps``);
    - a period cannot be rerun under an approved or locked later period (only corrected
      after its lock): ``later_period_settled``."""
    for r in current.values():
        if (
            r.period != period.label
            and r.status in SETTLED
            and r.period_start <= period.end
            and r.period_end >= period.start
        ):
            raise RunError(
                "period_overlaps",
                f"{period.label} overlaps run {r.id} of period {r.period} ({r.status.value}); "
                "a period is run in one length",
            )
    if not correcting:
        later = sorted(
            (r for r in current.values() if r.period_start > period.end and r.status in SETTLED),
            key=lambda r: r.period_start,
        )
        if later:
            raise RunError(
                "later_period_settled",
                f"cannot {doing} {period.label}: the later period {later[0].period} is already "
                f"{later[0].status.value} (run {later[0].id}) and opens from this one; "
                "correct a period after its lock instead (--correction)",
            )
    previous = _opening(current, period)
    if previous is None:
        if opened_from is not None:
            raise RunError(
                "stale_opening",
                f"{period.label} was computed from run {opened_from}, which is no longer the "
                f"current run of its period: run {period.label} again",
            )
        return None
    if previous.period_end + dt.timedelta(days=1) != period.start:
        raise RunError(
            "period_gap",
            f"cannot {doing} {period.label}: the latest period run before it is "
            f"{previous.period} (ending {previous.period_end}); run the periods in between "
            f"first, in order",
            [{"previous_period": previous.period, "period_start": str(period.start)}],
        )
    if previous.status not in SETTLED:
        raise RunError(
            "previous_not_approved",
            f"cannot {doing} {period.label}: {previous.period} (run {previous.id}, version "
            f"{previous.version}) is {previous.status.value}; approve it first, as "
            f"{period.label} opens from its closing balances",
        )
    before = _opening(current, parse_period(previous.period))
    if (before.id if before else None) != previous.previous_run_id:
        raise RunError(
            "stale_previous",
            f"cannot {doing} {period.label}: {previous.period} (run {previous.id}) opened from "
            f"run {previous.previous_run_id}, which is no longer the current run of its "
            f"period; rerun or correct {previous.period} first",
        )
    if opened_from is not None and opened_from != previous.id:
        raise RunError(
            "stale_opening",
            f"{period.label} was computed from run {opened_from}, but {previous.period}'s "
            f"current run is {previous.id}: run {period.label} again",
        )
    return previous


def _load_state(run: RoyaltyRun | None) -> dict[int, ContractState]:
    if run is None:
        return {}
    return state_from_frame(pl.read_parquet(Path(run.output_dir) / "state.parquet"))


# --- the run --------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_run(
    stage: Path,
    terms: Terms,
    state_in: dict[int, ContractState],
    inputs: list[dict[str, Any]],
    result: RunResult,
    context: dict[str, pl.DataFrame] | None = None,
) -> dict[str, str]:
    """Write everything into ``stage``; return {relative path: sha256}."""
    files: dict[str, str] = {}

    def put(rel: str, frame: pl.DataFrame) -> None:
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="zstd", statistics=True)
        files[rel] = lake.sha256_file(path)

    for name, frame in terms.frames().items():
        put(f"snapshot/{name}.parquet", frame)
    put("state_in.parquet", state_frame(state_in))
    (stage / "inputs.json").write_text(json.dumps(inputs, indent=1, sort_keys=True))
    files["inputs.json"] = lake.sha256_file(stage / "inputs.json")
    for name, frame in result.outputs().items():
        put(f"outputs/{name}.parquet", frame)
    put("state.parquet", state_frame(result.state))
    for name, frame in (context or {}).items():
        put(f"context/{name}.parquet", frame)
    return files


def _inputs(data_dir: Path, files: list[Path]) -> list[dict[str, Any]]:
    return [
        {
            "path": str(p.relative_to(data_dir)),
            "sha256": lake.sha256_file(p),
            "size": p.stat().st_size,
        }
        for p in files
    ]


@dataclass
class _Prepared:
    period: Period
    currency: str
    existing: list[RoyaltyRun]
    locked: list[RoyaltyRun]
    previous: RoyaltyRun | None
    state_in: dict[int, ContractState]
    terms: Terms
    context: dict[str, pl.DataFrame]


def _prepare(
    factory: sessionmaker[Session], org_id: int, period: str, correction: str | None
) -> _Prepared:
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
        if locked and correction is None:
            raise RunError(
                "period_locked",
                f"{p.label} is locked (run {locked[-1].id}, version {locked[-1].version}); "
                "a change after the lock is a correction: run again with --correction REASON",
            )
        if correction is not None and not locked:
            raise RunError("not_locked", f"{p.label} is not locked: no correction needed, rerun it")
        # a correction opens from the current run of the period before it (itself perhaps
        # corrected since this period was locked), as any run does
        previous = _check_chain(
            _current_runs(session, org_id),
            p,
            None,
            doing="correct" if correction is not None else "run",
            correcting=correction is not None,
        )
        state_in = _load_state(previous)
        terms = snapshot(session, org_id)
        context = statement_context(session, org_id)
        session.expunge_all()
    return _Prepared(p, currency, existing, locked, previous, state_in, terms, context)


# --- a run spread over payee buckets (the DAG maps one task per bucket) ----------------------
PLAN = "plan.json"
PART_FRAMES = ("royalties", "matched", "suspense", "slots", "unsplit", "read", "bases")


def plan_run(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    period: str,
    buckets: int,
    correction: str | None = None,
) -> Path:
    """Take the snapshot a partitioned run will use and write it, with the lake files it
    reads, into a plan folder beside the period's runs; each bucket (``earn_part``) and the
    final ``run_period(plan=...)`` read it from there, so they all see the same terms."""
    if buckets < 1:
        raise RunError("buckets_invalid", f"buckets must be at least 1, not {buckets}")
    prep = _prepare(factory, org_id, period, correction)
    files = lake_files(factory, data_dir, org_id, prep.period)
    root = _period_dir(data_dir, org_id, prep.period.label)
    folder = root / f".plan-{uuid.uuid4().hex}"
    stage = root / f".{folder.name}.tmp"
    with _period_lock(data_dir, org_id, prep.period.label):
        stage.mkdir(parents=True)
        _write_plan(stage, folder, prep, data_dir, files, org_id, buckets, correction)
    return folder


def _write_plan(
    stage: Path,
    folder: Path,
    prep: _Prepared,
    data_dir: Path,
    files: list[Path],
    org_id: int,
    buckets: int,
    correction: str | None,
) -> None:
    try:
        for name, frame in prep.terms.frames().items():
            (stage / "snapshot").mkdir(exist_ok=True)
            frame.write_parquet(stage / "snapshot" / f"{name}.parquet")
        state_frame(prep.state_in).write_parquet(stage / "state_in.parquet")
        plan = {
            "org_id": org_id,
            "period": prep.period.label,
            "buckets": buckets,
            "correction": correction,
            "currency": prep.currency,
            "previous_run_id": prep.previous.id if prep.previous else None,
            "inputs": _inputs(data_dir, files),
        }
        (stage / PLAN).write_text(json.dumps(plan, indent=1, sort_keys=True))
        os.replace(stage, folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _plan_terms(folder: Path) -> Terms:
    return Terms.from_frames(
        {n: pl.read_parquet(folder / "snapshot" / f"{n}.parquet") for n in Terms.__annotations__}
    )


def earn_part(data_dir: Path, plan: Path, bucket: int) -> Path:
    """Compute one payee bucket's earnings of a planned run into ``plan/part-<bucket>/``
    (a rerun of the same bucket replaces its part; nothing is half-written)."""
    from royalty_engine.earnings import payee_buckets
    from royalty_engine.engine import earn_bucket

    meta = json.loads((plan / PLAN).read_text())
    if not 0 <= bucket < meta["buckets"]:
        raise RunError("bucket_invalid", f"bucket {bucket} is not in 0..{meta['buckets'] - 1}")
    terms = _plan_terms(plan)
    ids = payee_buckets(terms, meta["buckets"])[bucket]
    earned = earn_bucket(
        scan_lines([data_dir / i["path"] for i in meta["inputs"]]),
        terms,
        state_from_frame(pl.read_parquet(plan / "state_in.parquet")),
        parse_period(meta["period"]),
        accounting_currency=meta["currency"],
        contract_ids=None if meta["buckets"] == 1 else ids,
    )
    final = plan / f"part-{bucket}"
    stage = plan / f".part-{bucket}-{uuid.uuid4().hex}"
    stage.mkdir()
    try:
        for name in PART_FRAMES:
            getattr(earned, name).write_parquet(stage / f"{name}.parquet")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final


def _merged_parts(plan: Path, buckets: int) -> Any:
    from royalty_engine.earnings import Earnings, merge_earnings

    missing = [b for b in range(buckets) if not (plan / f"part-{b}").is_dir()]
    if missing:
        raise RunError(
            "buckets_missing",
            f"the plan {plan.name} has no earnings yet for bucket(s) {missing}",
        )
    return merge_earnings(
        [
            Earnings(
                **{n: pl.read_parquet(plan / f"part-{b}" / f"{n}.parquet") for n in PART_FRAMES}
            )
            for b in range(buckets)
        ]
    )


def run_period(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    period: str,
    actor: str,
    correction: str | None = None,
    plan: Path | None = None,
) -> RunReport:
    """Compute the period and record it as ``calculated``; see the module docstring. With
    ``plan`` (``plan_run`` + ``earn_part`` per bucket) the earnings come from the buckets and
    the snapshot from the plan; the plan folder is removed once the run is recorded.
    Starts by finishing what a killed run, approval or lock left (``recover``)."""
    recover(factory, data_dir, org_id)
    if plan is None:
        prep = _prepare(factory, org_id, period, correction)
        files = lake_files(factory, data_dir, org_id, prep.period)
        inputs = _inputs(data_dir, files)
        earned = None
    else:
        meta = json.loads((plan / PLAN).read_text())
        if (meta["org_id"], meta["period"]) != (org_id, parse_period(period).label):
            raise RunError("plan_mismatch", f"plan {plan.name} is for another org or period")
        correction = meta["correction"]
        prep = _prepare(factory, org_id, period, correction)
        if (prep.previous.id if prep.previous else None) != meta["previous_run_id"]:
            raise RunError(
                "plan_stale",
                "another run of the period was recorded after this plan was made; plan again",
            )
        prep.terms = _plan_terms(plan)
        prep.state_in = state_from_frame(pl.read_parquet(plan / "state_in.parquet"))
        inputs = meta["inputs"]
        files = [data_dir / i["path"] for i in inputs]
        earned = _merged_parts(plan, meta["buckets"])
    p, currency, existing = prep.period, prep.currency, prep.existing
    previous, state_in, terms = prep.previous, prep.state_in, prep.terms
    result = compute(
        scan_lines(files), terms, state_in, p, accounting_currency=currency, earned=earned
    )
    version = (existing[-1].version + 1) if existing else 1
    final = _period_dir(data_dir, org_id, p.label) / f"v{version}"
    stage = final.with_name(f".v{version}-{uuid.uuid4().hex}")
    committed = False
    with _period_lock(data_dir, org_id, p.label):
        try:
            written = _write_run(stage, terms, state_in, inputs, result, prep.context)
            manifest = {
                "org_id": org_id,
                "period": p.label,
                "version": version,
                "accounting_currency": currency,
                "previous_run_id": previous.id if previous else None,
                "inputs": inputs,
                "files": written,
                "totals": result.totals,
                "counts": result.counts,
            }
            (stage / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
            manifest_sha = lake.sha256_file(stage / "manifest.json")
            killpoint("run.staged")
            # the ledger's lock is held from before the commit to after the append: a
            # committed run without its entry is then always one whose process died
            with audit_ledger.held(data_dir, org_id) as append:
                with db.transaction(factory, actor=actor) as session:
                    report = _commit_run(
                        session,
                        prep,
                        org_id=org_id,
                        version=version,
                        final=final,
                        manifest_sha=manifest_sha,
                        result=result,
                        inputs=inputs,
                        actor=actor,
                        correction=correction,
                    )
                    killpoint("run.recorded")
                # the commit point: from here on the run exists whatever happens to this
                # process (``recover`` finishes the rename and the entry if it dies)
                committed = True
                killpoint("run.committed")
                _put_in_place(stage, final)
                report.outputs = _output_paths(final)
                killpoint("run.renamed")
                append(
                    "calculated",
                    run_id=report.run_id,
                    period=p.label,
                    version=version,
                    actor=actor,
                    manifest_sha256=manifest_sha,
                    files=_ledger_files(data_dir, final, written, manifest_sha),
                    totals=result.totals,
                    correction=correction,
                )
            killpoint("run.ledgered")
        except BaseException:
            if not committed:
                shutil.rmtree(stage, ignore_errors=True)
            raise
    if plan is not None:
        shutil.rmtree(plan, ignore_errors=True)
    return report


def _ledger_files(
    data_dir: Path, final: Path, written: dict[str, str], manifest_sha: str
) -> dict[str, str]:
    """What a ``calculated`` entry lists: every file of the run folder (relative to the
    data folder) with its SHA-256, the manifest included."""
    rel = {f"{final.relative_to(data_dir)}/{k}": v for k, v in written.items()}
    rel[f"{final.relative_to(data_dir)}/manifest.json"] = manifest_sha
    return rel


def _commit_run(
    session: Session,
    prep: _Prepared,
    *,
    org_id: int,
    version: int,
    final: Path,
    manifest_sha: str,
    result: RunResult,
    inputs: list[dict[str, Any]],
    actor: str,
    correction: str | None,
) -> RunReport:
    """Record the run's rows in the open transaction, after checking again what was checked
    before the computation."""
    p, existing, locked, previous = prep.period, prep.existing, prep.locked, prep.previous
    # What was checked before the computation may have changed while it ran (another run,
    # approval or lock of this period, or of the one it opens from): checked again on rows
    # locked until this transaction ends.
    current = _current_runs(session, org_id, lock=True)
    now = session.scalars(
        sa.select(RoyaltyRun)
        .where(RoyaltyRun.org_id == org_id, RoyaltyRun.period == p.label)
        .order_by(RoyaltyRun.version)
        .with_for_update()
    ).all()
    if [(r.id, r.status) for r in now] != [(r.id, r.status) for r in existing]:
        raise RunError(
            "run_changed",
            f"{p.label} was run, approved or locked by someone else while this run "
            "was computed; nothing was recorded: run it again",
        )
    _check_chain(
        current,
        p,
        previous.id if previous else None,
        doing="correct" if correction is not None else "run",
        correcting=correction is not None,
    )
    run = RoyaltyRun(
        org_id=org_id,
        period=p.label,
        period_start=p.start,
        period_end=p.end,
        version=version,
        status=RunStatus.CALCULATED,
        currency=prep.currency,
        previous_run_id=previous.id if previous else None,
        supersedes_id=existing[-1].id if existing else None,
        reason=correction or "",
        output_dir=str(final),
        manifest_sha256=manifest_sha,
        totals=result.totals,
        counts=result.counts,
        created_by=actor,
    )
    session.add(run)
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:  # the same version, recorded meanwhile
        raise RunError(
            "run_changed",
            f"{p.label} v{version} was recorded by another run while this one was "
            "computed; nothing was recorded: run it again",
        ) from exc
    replaced = [
        r.id
        for r in existing
        if r.status in (RunStatus.CALCULATED, RunStatus.APPROVED, RunStatus.DRAFT)
    ]
    for old in session.scalars(sa.select(RoyaltyRun).where(RoyaltyRun.id.in_(replaced))):
        old.status = RunStatus.SUPERSEDED
    session.flush()
    if locked:
        run.diff = diff_runs(
            locked[-1], result, prep.terms, inputs, state_in=prep.state_in, previous=previous
        )
    _record(session, run, result)
    return RunReport(
        run_id=run.id,
        org_id=org_id,
        period=p.label,
        version=version,
        status=run.status.value,
        totals=result.totals,
        counts=result.counts,
        outputs={},  # once the folder is in place
        diff=run.diff,
    )


def _output_paths(final: Path) -> dict[str, str]:
    out = {p.stem: str(p) for p in sorted((final / "outputs").glob("*.parquet"))}
    out["manifest"] = str(final / "manifest.json")
    out["snapshot"] = str(final / "snapshot")
    return out


def _record(session: Session, run: RoyaltyRun, result: RunResult) -> None:
    for row in result.statements.iter_rows(named=True):
        session.add(
            StatementSummary(
                org_id=run.org_id,
                run_id=run.id,
                payee_id=row["payee_id"],
                period=run.period,
                currency=row["currency"],
                contracts=row["contracts"],
                **{k: row[k] for k in SUMMARY_FIELDS},
            )
        )
    for row in result.ledger.iter_rows(named=True):
        session.add(
            ContractBalance(
                org_id=run.org_id,
                run_id=run.id,
                contract_id=row["contract_id"],
                payee_id=row["payee_id"],
                period=run.period,
                currency=row["currency"],
                reserves_outstanding=row["reserves_outstanding"],
                status=row["status"],
                **{k: row[k] for k in SUMMARY_FIELDS},
            )
        )


def diff_runs(
    locked: RoyaltyRun,
    result: RunResult,
    terms: Terms,
    inputs: list[dict[str, Any]],
    *,
    state_in: dict[int, ContractState] | None = None,
    previous: RoyaltyRun | None = None,
) -> list[dict[str, Any]]:
    """Per payee and currency: each statement figure that changed (old, new, delta), and why:
    which input files were added or removed, which snapshot tables changed, and (per payee)
    which of its contracts opened differently (``state_in``: balance, reserves, charges
    charged, escalation positions), naming the corrected run of the period before
    (``previous``) that moved them."""
    old_dir = Path(locked.output_dir)
    old_manifest = json.loads((old_dir / "manifest.json").read_text())
    old_inputs = {i["path"]: i["sha256"] for i in old_manifest["inputs"]}
    new_inputs = {i["path"]: i["sha256"] for i in inputs}
    reasons = []
    added = sorted(set(new_inputs) - set(old_inputs))
    removed = sorted(set(old_inputs) - set(new_inputs))
    changed = sorted(k for k in set(old_inputs) & set(new_inputs) if old_inputs[k] != new_inputs[k])
    if added:
        reasons.append(f"revenue files added: {', '.join(added)}")
    if removed:
        reasons.append(f"revenue files removed: {', '.join(removed)}")
    if changed:
        reasons.append(f"revenue files changed (rematched): {', '.join(changed)}")
    for name, frame in terms.frames().items():
        old = pl.read_parquet(old_dir / "snapshot" / f"{name}.parquet")
        if not old.equals(frame):
            reasons.append(f"{name} changed")
    opening: dict[int, str] = {}
    if state_in is not None:
        old_state = state_from_frame(pl.read_parquet(old_dir / "state_in.parquet"))
        opening = _opening_reasons(old_state, state_in, terms, locked, previous)
    old_st = pl.read_parquet(old_dir / "outputs" / "statements.parquet")
    new_st = result.statements
    keys = ["payee_id", "currency"]
    joined = old_st.join(new_st, on=keys, how="full", suffix="_new", coalesce=True).sort(keys)
    out = []
    for row in joined.iter_rows(named=True):
        changes = {}
        for f in SUMMARY_FIELDS:
            # a payee new (or gone) in this version: its missing figures are 0.00
            a: Decimal = ZERO_CENTS if row.get(f) is None else row[f]
            b: Decimal = ZERO_CENTS if row.get(f"{f}_new") is None else row[f"{f}_new"]
            if a != b:
                changes[f] = {"old": str(a), "new": str(b), "delta": str(b - a)}
        if changes:
            why = [*reasons, *([opening[row["payee_id"]]] if row["payee_id"] in opening else [])]
            out.append(
                {
                    "payee_id": row["payee_id"],
                    "currency": row["currency"],
                    "changes": changes,
                    "why": why or ["no input or term changed: the engine's result differs"],
                }
            )
    return out


def _opening_reasons(
    old: dict[int, ContractState],
    new: dict[int, ContractState],
    terms: Terms,
    locked: RoyaltyRun,
    previous: RoyaltyRun | None,
) -> dict[int, str]:
    """Per payee: how its contracts' opening state differs between the locked run and its
    correction (the period before was corrected since), in one sentence."""
    contracts = {r["contract_id"]: r for r in terms.contracts.iter_rows(named=True)}
    # the slots whose position can change a rate (a slot without tiers pays one rate)
    tiered = {
        f"{r['contract_id']}|{r['usage_type']}|{r['channel']}|{r['territories']}"
        for r in terms.rates.iter_rows(named=True)
        if r["tiers"] not in (None, "", "[]")
    }
    items: dict[int, list[str]] = {}
    kinds: dict[int, set[str]] = {}
    for cid in sorted(set(old) | set(new)):
        a, b = old.get(cid, ContractState()), new.get(cid, ContractState())
        ref = contracts[cid]["reference"] if cid in contracts else f"contract {cid}"
        found = []
        if Decimal(a.balance) != Decimal(b.balance):
            found.append(("balances", f"{ref} opening {Decimal(a.balance):.2f} -> {b.balance:.2f}"))
        held = [sum((Decimal(r["amount"]) for r in x.reserves), ZERO_CENTS) for x in (a, b)]
        if held[0] != held[1]:
            found.append(("balances", f"{ref} reserves held {held[0]:.2f} -> {held[1]:.2f}"))
        if sorted(a.charged) != sorted(b.charged):
            found.append(
                (
                    "balances",
                    f"{ref} charges already charged {_ids(a.charged)} -> {_ids(b.charged)}",
                )
            )
        for slot in sorted((set(a.units) | set(b.units)) & tiered):
            before, after = a.units.get(slot, 0), b.units.get(slot, 0)
            if before != after:
                name = slot.split("|", 1)[1] if "|" in slot else slot
                found.append(
                    ("escalation", f"{ref} escalation position {name} {before} -> {after} units")
                )
        if not found:
            continue
        payee = int(contracts[cid]["payee_id"]) if cid in contracts else -1
        items.setdefault(payee, []).extend(text for _, text in found)
        kinds.setdefault(payee, set()).update(kind for kind, _ in found)
    if previous is not None and previous.id != locked.previous_run_id:
        said = f", '{previous.reason}'" if previous.reason else ""
        source = (
            f"the previous period {previous.period} was corrected "
            f"(run {previous.id}, version {previous.version}{said})"
        )
    else:
        source = "the opening state differs from the locked run's"
    what = {
        frozenset({"balances"}): "opening balances changed",
        frozenset({"escalation"}): "escalation positions changed",
        frozenset({"balances", "escalation"}): "opening balances and escalation positions changed",
    }
    return {
        payee: f"{what[frozenset(kinds[payee])]}: {source}: {'; '.join(texts)}"
        for payee, texts in items.items()
    }


def _ids(ids: list[int]) -> str:
    return "[" + ", ".join(str(i) for i in sorted(ids)) + "]"


# --- crash recovery ---------------------------------------------------------------------------
def _period_dir(data_dir: Path, org_id: int, label: str) -> Path:
    return data_dir / "runs" / f"org={org_id}" / f"period={label}"


@contextmanager
def _period_lock(data_dir: Path, org_id: int, label: str) -> Iterator[None]:
    """Hold the period folder's lock (``flock`` on ``period=<label>.lock`` beside it,
    released if the process dies): taken by whatever writes a temporary folder there (a run
    from its stage to its rename, a plan) and by ``recover``, which so never mistakes a folder
    being written for one a killed process left."""
    folder = _period_dir(data_dir, org_id, label)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _put_in_place(stage: Path, final: Path) -> None:
    """Rename a committed run's folder from its temporary name to ``v<version>``. A folder
    already there belongs to no committed run (an attempt that never committed): it is set
    aside and removed, never read as this run's."""
    if final.exists():
        aside = final.with_name(f".{final.name}-orphan-{uuid.uuid4().hex}")
        os.replace(final, aside)
        log.warning("run folder %s belonged to no committed run: replaced", final)
        os.replace(stage, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(stage, final)


def _manifest_sha(folder: Path) -> str | None:
    path = folder / "manifest.json"
    return lake.sha256_file(path) if path.is_file() else None


def recover(factory: sessionmaker[Session], data_dir: Path, org_id: int) -> list[dict[str, Any]]:
    """Finish or undo what a process killed during a run, an approval or a lock left, so the
    next command starts clean; return what was done (each also logged). The store row is the
    one commit point:

    - a run folder still under its temporary name (``.v<version>-*``) whose manifest is the one
      a committed run of that version records is renamed into place (``run_completed``);
    - any other temporary folder of a run or plan (``.v<version>-*``, ``.*.tmp``: an attempt
      that never committed, or a leftover beside a folder already in place) is removed
      (``stage_removed``);
    - a committed run, approval or lock with no ledger entry (the process died between its
      commit and its append) gets one, rebuilt from the store and the run's manifest and
      marked ``recovered``: appended, never rewritten, so the chain stays whole
      (``entry_recovered``).

    Run at the start of every run, approval and lock, and by ``tunemantra audit repair``."""
    actions: list[dict[str, Any]] = []

    def done(code: str, message: str, **fields: Any) -> None:
        log.warning("recovery, org %s: %s", org_id, message)
        actions.append({"org_id": org_id, "code": code, "message": message, **fields})

    root = data_dir / "runs" / f"org={org_id}"
    labels = sorted(p.name.split("=", 1)[1] for p in root.glob("period=*") if p.is_dir())
    for label in labels:
        with _period_lock(data_dir, org_id, label), factory() as session:
            shas = dict(
                session.execute(
                    sa.select(RoyaltyRun.version, RoyaltyRun.manifest_sha256).where(
                        RoyaltyRun.org_id == org_id, RoyaltyRun.period == label
                    )
                ).all()
            )
            folder = _period_dir(data_dir, org_id, label)
            for temp in sorted(folder.glob(".*")):
                if not temp.is_dir() or temp.name.startswith(".plan-"):
                    continue  # a plan waits for its buckets (``plan_run``)
                head = temp.name[2:].split("-", 1)[0] if temp.name.startswith(".v") else ""
                version = int(head) if head.isdigit() else None
                final = folder / f"v{version}"
                sha = shas.get(version) if version is not None else None
                if sha is not None and _manifest_sha(final) != sha and _manifest_sha(temp) == sha:
                    _put_in_place(temp, final)
                    done("run_completed", f"{label} v{version} was committed, its folder "
                         f"{temp.name} is now renamed into place", period=label)  # fmt: skip
                elif version is not None or temp.name.endswith(".tmp"):
                    shutil.rmtree(temp, ignore_errors=True)
                    done("stage_removed", f"{label}: removed {temp.name}, left by a run that "
                         "never committed or already in place", period=label)  # fmt: skip
    with audit_ledger.held(data_dir, org_id) as append:
        said = {
            (int(e["run_id"]), e["event"])
            for e in audit_ledger.read(data_dir, org_id)
            if e.get("event") in ("calculated", "approved", "locked")
        }
        with factory() as session:
            runs = session.scalars(
                sa.select(RoyaltyRun)
                .where(RoyaltyRun.org_id == org_id, RoyaltyRun.status != RunStatus.DRAFT)
                .order_by(RoyaltyRun.id)
            ).all()
            for r in runs:
                for event, actor, at in (
                    ("calculated", r.created_by, r.created_at),
                    ("approved", r.approved_by, r.approved_at),
                    ("locked", r.locked_by, r.locked_at),
                ):
                    if not actor or (r.id, event) in said:
                        continue
                    fields: dict[str, Any] = {}
                    if event == "calculated":
                        final = _period_dir(data_dir, org_id, r.period) / f"v{r.version}"
                        if _manifest_sha(final) != r.manifest_sha256:
                            log.error("run %s (%s v%s): its folder is not the one it "
                                      "committed; no entry recovered", r.id, r.period,
                                      r.version)  # fmt: skip
                            break
                        manifest = json.loads((final / "manifest.json").read_text())
                        fields = {
                            "files": _ledger_files(
                                data_dir, final, manifest["files"], r.manifest_sha256
                            ),
                            "totals": r.totals,
                            "correction": r.reason or None,
                        }
                    append(
                        event,
                        run_id=r.id,
                        period=r.period,
                        version=r.version,
                        actor=actor,
                        manifest_sha256=r.manifest_sha256,
                        **fields,
                        recovered=True,
                        committed_at=at.isoformat() if at else None,
                    )
                    done("entry_recovered", f"run {r.id} ({r.period} v{r.version}) was "
                         f"{event} in the store with no ledger entry: entry appended, marked "
                         "recovered", run_id=r.id, event=event)  # fmt: skip
    return actions


# --- approve / lock -------------------------------------------------------------------------
def _latest(session: Session, org_id: int, period: str) -> RoyaltyRun:
    run = session.scalars(
        sa.select(RoyaltyRun)
        .where(RoyaltyRun.org_id == org_id, RoyaltyRun.period == parse_period(period).label)
        .order_by(RoyaltyRun.version.desc())
        .limit(1)
    ).first()
    if run is None:
        raise RunError("run_missing", f"no run for {period}: run `tunemantra royalty run` first")
    return run


def _unended_override(
    period: str, to: str, today: dt.date | None, allow_unended: str | None
) -> dict[str, str] | None:
    """A period is approved or locked only once it has ended (``Period.has_ended``); before,
    its run is a preview. ``allow_unended``, the reason for doing it anyway, is the explicit
    override: returned for the audit log and the ledger (None when the period has ended)."""
    p = parse_period(period)
    on = today or dt.datetime.now(dt.UTC).date()
    if p.has_ended(on):
        return None
    reason = (allow_unended or "").strip()
    if not reason:
        raise RunError(
            "period_not_ended",
            f"{p.label} ends on {p.end.isoformat()} and today is {on.isoformat()}: its run is a "
            f"preview until then and cannot be {to}; to do it anyway, give the reason as an "
            'override (--allow-unended "why"), which is audited',
        )
    return {
        "rule": "period_not_ended",
        "period_end": p.end.isoformat(),
        "today": on.isoformat(),
        "reason": reason,
    }


def _record_override(
    session: Session, run: RoyaltyRun, actor: str, to: str, override: dict[str, str]
) -> None:
    """The store's audit log keeps who overrode which rule for which run, and why."""
    session.add(
        AuditEntry(
            org_id=run.org_id,
            actor=actor,
            api_key_id=session.info.get("api_key_id"),
            entity=RoyaltyRun.__tablename__,
            entity_id=run.id,
            action="override",
            after={"rule": override["rule"], "to": to, "period": run.period}
            | {k: v for k, v in override.items() if k != "rule"},
        )
    )


def transition(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    period: str,
    actor: str,
    to: str,
    run_id: int | None = None,
    today: dt.date | None = None,
    allow_unended: str | None = None,
) -> RunReport:
    """calculated -> approved (``to="approved"``), approved -> locked (``to="locked"``).
    ``run_id``: the run that was reviewed; refused if the period's latest run is another
    (rerun since). The run must still open from the current run of the period before it,
    and no approved or locked run of another length may overlap it (``_check_chain``).
    A period that has not ended on ``today`` (default: today's UTC date) is refused
    (``period_not_ended``) unless ``allow_unended`` says why (``_unended_override``).
    A run already ``to`` is left as it is (a command retried after a crash finds its work
    done). Starts by finishing what a killed run, approval or lock left (``recover``)."""
    override = _unended_override(period, to, today, allow_unended)
    target = RunStatus(to)
    allowed = {RunStatus.APPROVED: RunStatus.CALCULATED, RunStatus.LOCKED: RunStatus.APPROVED}
    recover(factory, data_dir, org_id)
    with audit_ledger.held(data_dir, org_id) as append:  # held to after the append
        with db.transaction(factory, actor=actor) as session:
            current = _current_runs(session, org_id, lock=True)
            run = _latest(session, org_id, period)
            if run_id is not None and run.id != run_id:
                raise RunError(
                    "run_changed",
                    f"run {run_id} is not the latest run of {run.period}: run {run.id} "
                    f"(version {run.version}, {run.status.value}) is; review that one",
                )
            already = run.status == target
            if already:
                log.info("run %s (%s v%s) is already %s", run.id, run.period, run.version, to)
            elif run.status != allowed[target]:
                raise RunError(
                    "bad_transition",
                    f"run {run.id} ({run.period} v{run.version}) is {run.status.value}; only a "
                    f"{allowed[target].value} run can become {target.value}",
                )
            else:
                _check_chain(
                    current,
                    parse_period(run.period),
                    run.previous_run_id,
                    doing="approve" if target == RunStatus.APPROVED else "lock",
                    # a correction's later periods are corrected after it, in order
                    correcting=bool(run.reason),
                )
                now = dt.datetime.now(dt.UTC)
                run.status = target
                if target == RunStatus.APPROVED:
                    run.approved_by, run.approved_at = actor, now
                else:
                    run.locked_by, run.locked_at = actor, now
                if override is not None:
                    _record_override(session, run, actor, to, override)
            report = RunReport(
                run_id=run.id,
                org_id=org_id,
                period=run.period,
                version=run.version,
                status=run.status.value,
                totals=run.totals,
                counts=run.counts,
                outputs=_output_paths(Path(run.output_dir)),
                diff=run.diff,
            )
            manifest_sha = run.manifest_sha256
        killpoint("transition.committed")
        if not already:  # (a run already there got its entry then, or from ``recover``)
            append(  # once committed (see ``run_period``)
                target.value,
                run_id=report.run_id,
                period=report.period,
                version=report.version,
                actor=actor,
                manifest_sha256=manifest_sha,
                **({"override": override} if override is not None else {}),
            )
    killpoint("transition.ledgered")
    return report


def verify_store(session: Session, data_dir: Path, org_id: int) -> list[dict[str, Any]]:
    """The ledger against the store: every run has its ``calculated`` entry (same manifest
    and totals), every approval and lock its entry (same actor), and no entry says what the
    store contradicts. Catches a ledger truncated or deleted, and a store edited by hand."""
    entries = audit_ledger.read(data_dir, org_id)
    by_run: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for e in entries:
        if e.get("event") in ("calculated", "approved", "locked"):
            by_run.setdefault((int(e["run_id"]), e["event"]), []).append(e)
    runs = session.scalars(
        sa.select(RoyaltyRun)
        .where(RoyaltyRun.org_id == org_id, RoyaltyRun.status != RunStatus.DRAFT)
        .order_by(RoyaltyRun.id)
    ).all()
    problems: list[dict[str, Any]] = []

    def problem(run_id: int, code: str, message: str) -> None:
        problems.append({"run_id": run_id, "code": code, "message": message})

    known = {r.id for r in runs}
    hashed: dict[str, str | None] = {}
    for (run_id, event), found in sorted(by_run.items()):
        if run_id not in known:
            problem(run_id, "unknown_run", f"the ledger's {event} entry names run {run_id}, "
                    "which the store does not have")  # fmt: skip
        elif len(found) > 1:
            problem(run_id, "duplicate_entry", f"run {run_id} is {event} {len(found)} times")
    for r in runs:
        label = f"run {r.id} ({r.period} v{r.version})"
        calc = by_run.get((r.id, "calculated"), [])
        if not calc:
            problem(r.id, "missing_entry", f"{label} has no calculated entry in the ledger")
        elif calc[0].get("manifest_sha256") != r.manifest_sha256:
            problem(r.id, "manifest_mismatch", f"{label}: the store's manifest hash differs "
                    "from the ledger's")  # fmt: skip
        elif calc[0].get("totals") != r.totals:
            problem(r.id, "totals_mismatch", f"{label}: the store's totals differ from the "
                    "ledger's")  # fmt: skip
        for event, actor in (("approved", r.approved_by), ("locked", r.locked_by)):
            said = by_run.get((r.id, event), [])
            if actor and not said:
                problem(r.id, "missing_entry", f"{label} is {event} by {actor} in the store, "
                        "not in the ledger")  # fmt: skip
            elif said and said[0].get("actor") != actor:
                who = said[0].get("actor")
                problem(r.id, "actor_mismatch", f"{label} was {event} by {who} per the "
                        f"ledger, by {actor} per the store")  # fmt: skip
        if by_run.get((r.id, "locked")) and r.status != RunStatus.LOCKED:
            problem(r.id, "status_mismatch", f"{label} was locked per the ledger, is "
                    f"{r.status.value} in the store")  # fmt: skip
        for table, differs in _rows_differ(session, r).items():
            if differs:
                problem(r.id, "rows_changed", f"{label}: {table} in the store differ from the "
                        "run's own output files (what payees see through the API)")  # fmt: skip
        if r.status in SETTLED:
            for code, rel in _inputs_changed(data_dir, r, hashed):
                problems.append(
                    {
                        "run_id": r.id,
                        "code": code,
                        "file": rel,
                        "message": f"{label} is {r.status.value}: its input {rel} "
                        + ("is missing" if code == "input_missing" else "changed since it ran"),
                    }
                )
    return problems


def _inputs_changed(
    data_dir: Path, run: RoyaltyRun, hashed: dict[str, str | None]
) -> list[tuple[str, str]]:
    """The lake files an approved or locked run read (its ``inputs.json``) that are missing
    (``input_missing``) or no longer hash as recorded (``input_changed``); ``hashed`` caches
    each file's hash across runs. A missing ``inputs.json``: not checked here
    (``audit_ledger.verify`` reports it)."""
    path = Path(run.output_dir) / "inputs.json"
    if not path.is_file():
        return []
    out = []
    for i in json.loads(path.read_text()):
        rel = i["path"]
        if rel not in hashed:
            lake_file = data_dir / rel
            hashed[rel] = lake.sha256_file(lake_file) if lake_file.is_file() else None
        if hashed[rel] is None:
            out.append(("input_missing", rel))
        elif hashed[rel] != i["sha256"]:
            out.append(("input_changed", rel))
    return out


def _rows_differ(session: Session, run: RoyaltyRun) -> dict[str, bool]:
    """Whether the store's statement summaries and balance rows of ``run`` differ from its
    output Parquet files (whose hashes the ledger holds). Missing outputs: not compared
    here (``audit_ledger.verify`` reports them)."""
    outputs = Path(run.output_dir) / "outputs"
    out: dict[str, bool] = {}
    for table, model, name, key in (
        ("statement summaries", StatementSummary, "statements", ["payee_id", "currency"]),
        ("contract balances", ContractBalance, "ledger", ["contract_id"]),
    ):
        path = outputs / f"{name}.parquet"
        if not path.exists():
            continue
        cols = [*key, *SUMMARY_FIELDS]
        expected = pl.read_parquet(path, columns=cols).sort(key).rows()
        stored = sorted(
            tuple(getattr(row, c) for c in cols)
            for row in session.scalars(sa.select(model).where(model.run_id == run.id))
        )
        out[table] = stored != expected
    return out


@dataclass
class PastRun:
    """A recorded run read back from its folder: what is needed to recompute any part of it."""

    run_id: int
    org_id: int
    folder: Path
    currency: str
    period: Period
    manifest: dict[str, Any]
    changed_inputs: list[str]  # lake files that are missing or no longer hash as recorded
    manifest_sha256: str = ""  # the store's hash of the manifest

    def terms(self) -> Terms:
        return Terms.from_frames(
            {
                n: pl.read_parquet(self.folder / "snapshot" / f"{n}.parquet")
                for n in Terms.__annotations__
            }
        )

    def lines(self, data_dir: Path) -> pl.LazyFrame:
        return scan_lines([data_dir / i["path"] for i in self.manifest["inputs"]])


def open_run(factory: sessionmaker[Session], data_dir: Path, run_id: int) -> PastRun:
    with factory() as session:
        run = session.get(RoyaltyRun, run_id)
        if run is None:
            raise RunError("run_missing", f"no run {run_id}")
        folder = Path(run.output_dir)
        org_id, currency, period = run.org_id, run.currency, parse_period(run.period)
        manifest_sha = run.manifest_sha256
    manifest = json.loads((folder / "manifest.json").read_text())
    changed = [
        i["path"]
        for i in manifest["inputs"]
        if not (data_dir / i["path"]).exists()
        or lake.sha256_file(data_dir / i["path"]) != i["sha256"]
    ]
    return PastRun(run_id, org_id, folder, currency, period, manifest, changed, manifest_sha)


def reproduce(factory: sessionmaker[Session], data_dir: Path, *, run_id: int) -> dict[str, Any]:
    """Recompute a past run from its snapshot, opening state and inputs (checked against
    their recorded hashes) and compare every output byte for byte."""
    past = open_run(factory, data_dir, run_id)
    if past.changed_inputs:
        return {"run_id": run_id, "identical": False, "inputs_changed": past.changed_inputs}
    terms, folder, manifest = past.terms(), past.folder, past.manifest
    state_in = state_from_frame(pl.read_parquet(folder / "state_in.parquet"))
    result = compute(
        past.lines(data_dir), terms, state_in, past.period, accounting_currency=past.currency
    )
    # the statement context (payee names, addresses) was frozen from the store when the
    # run was made: it is written again from its own files, so a changed one shows
    context = {p.stem: pl.read_parquet(p) for p in sorted((folder / "context").glob("*.parquet"))}
    scratch = folder.with_name(f".reproduce-{uuid.uuid4().hex}")
    try:
        written = _write_run(scratch, terms, state_in, manifest["inputs"], result, context)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # identical to the manifest, and to the files on disk (what payees and the warehouse read)
    differ = sorted(
        k
        for k, v in written.items()
        if manifest["files"].get(k) != v
        or not (folder / k).is_file()
        or lake.sha256_file(folder / k) != v
    )
    if lake.sha256_file(folder / "manifest.json") != past.manifest_sha256:
        differ.append("manifest.json")
    return {"run_id": run_id, "org_id": past.org_id, "identical": not differ, "differ": differ}


# --- checks and the preview finance ops approve from ----------------------------------------
def verify_outputs(factory: sessionmaker[Session], *, run_id: int) -> dict[str, Any]:
    """Re-read a run from disk: every file's hash matches its manifest, and the written
    ledger and totals still reconcile (revenue = payees + retained + suspense)."""
    with factory() as session:
        run = session.get(RoyaltyRun, run_id)
        if run is None:
            raise RunError("run_missing", f"no run {run_id}")
        folder, manifest_sha, totals = Path(run.output_dir), run.manifest_sha256, run.totals
    problems = []
    if lake.sha256_file(folder / "manifest.json") != manifest_sha:
        problems.append("manifest.json changed")
    manifest = json.loads((folder / "manifest.json").read_text())
    for rel, sha in manifest["files"].items():
        if lake.sha256_file(folder / rel) != sha:
            problems.append(f"{rel} changed")
    for cur, t in totals.items():
        if "revenue" in t:
            parts = Decimal(t["payees"]) + Decimal(t["retained"]) + Decimal(t["suspense"])
            if parts != Decimal(t["revenue"]):
                problems.append(f"{cur}: revenue {t['revenue']} != {parts}")
    ledger = pl.read_parquet(folder / "outputs" / "ledger.parquet")
    for (currency,), group in ledger.group_by("currency"):
        earned = sum(group["earnings"].to_list(), Decimal(0))
        if str(earned) != totals.get(currency, {}).get("royalties", str(earned)):
            problems.append(f"{currency}: ledger earnings {earned} != run total")
    if problems:
        raise RunError("verification_failed", "; ".join(problems))
    return {"run_id": run_id, "files": len(manifest["files"]), "verified": True}


def preview(factory: sessionmaker[Session], *, run_id: int) -> dict[str, Any]:
    """What a finance user looks at before approving: totals, the share of revenue in
    suspense, each payee's variance against the previous period, and contracts whose balance
    became zero or negative."""
    with factory() as session:
        run = session.get(RoyaltyRun, run_id)
        if run is None:
            raise RunError("run_missing", f"no run {run_id}")
        names = dict(
            session.execute(sa.select(Payee.id, Payee.name).where(Payee.org_id == run.org_id)).all()
        )
        refs = dict(
            session.execute(
                sa.select(Contract.id, Contract.reference).where(Contract.org_id == run.org_id)
            ).all()
        )

        def summaries(rid: int | None) -> dict[tuple[int, str], StatementSummary]:
            if rid is None:
                return {}
            rows = session.scalars(
                sa.select(StatementSummary).where(StatementSummary.run_id == rid)
            )
            return {(r.payee_id, r.currency): r for r in rows}

        def balances(rid: int | None) -> dict[int, ContractBalance]:
            if rid is None:
                return {}
            rows = session.scalars(sa.select(ContractBalance).where(ContractBalance.run_id == rid))
            return {r.contract_id: r for r in rows}

        now, before = summaries(run.id), summaries(run.previous_run_id)
        bal_now, bal_before = balances(run.id), balances(run.previous_run_id)
        totals, period, version = run.totals, run.period, run.version
        previous_period = (
            session.get(RoyaltyRun, run.previous_run_id).period  # type: ignore[union-attr]
            if run.previous_run_id
            else None
        )
    variance = []
    for key in sorted(set(now) | set(before)):
        a = before[key].earnings if key in before else Decimal(0)
        b = now[key].earnings if key in now else Decimal(0)
        pct = None if a == 0 else str(((b - a) / abs(a) * 100).quantize(Decimal("0.1")))
        variance.append(
            {
                "payee_id": key[0],
                "payee": names.get(key[0], ""),
                "currency": key[1],
                "previous": str(a),
                "earnings": str(b),
                "change": str(b - a),
                "change_pct": pct,
            }
        )
    flagged = []
    for cid, row in sorted(bal_now.items()):
        prev_closing = bal_before[cid].closing if cid in bal_before else Decimal(0)
        if row.closing < 0 and prev_closing >= 0:
            flagged.append(
                {
                    "contract": refs.get(cid, str(cid)),
                    "flag": "newly_negative",
                    "closing": str(row.closing),
                }
            )
        elif row.earnings == 0 and cid in bal_before and bal_before[cid].earnings != 0:
            flagged.append(
                {
                    "contract": refs.get(cid, str(cid)),
                    "flag": "earnings_stopped",
                    "closing": str(row.closing),
                }
            )
    suspense_share = {}
    for cur, t in totals.items():
        if "revenue" in t and Decimal(t["revenue"]) != 0:
            share = Decimal(t["suspense"]) / Decimal(t["revenue"]) * 100
            suspense_share[cur] = str(share.quantize(Decimal("0.01")))
    lines = [
        f"## Royalty run {run_id}: {period} v{version}",
        "",
        "| currency | " + " | ".join(sorted({k for t in totals.values() for k in t})) + " |",
    ]
    keys = sorted({k for t in totals.values() for k in t})
    lines.append("|---" * (len(keys) + 1) + "|")
    for cur, t in sorted(totals.items()):
        lines.append(f"| {cur} | " + " | ".join(t.get(k, "") for k in keys) + " |")
    lines += ["", f"Suspense share of revenue: {suspense_share or 'none'} %", ""]
    lines.append(f"Variance against {previous_period or 'no previous period'}:")
    lines += [
        f"- {v['payee']} ({v['currency']}): {v['previous']} -> {v['earnings']}"
        + (f" ({v['change_pct']} %)" if v["change_pct"] else "")
        for v in variance
    ]
    if flagged:
        lines += ["", "Flags:"] + [
            f"- {f['contract']}: {f['flag']} ({f['closing']})" for f in flagged
        ]
    return {
        "run_id": run_id,
        "period": period,
        "previous_period": previous_period,
        "totals": totals,
        "suspense_share_pct": suspense_share,
        "variance": variance,
        "flags": flagged,
        "markdown": "\n".join(lines),
    }


def statement_detail(
    factory: sessionmaker[Session], data_dir: Path, *, run_id: int, payee_id: int
) -> pl.DataFrame:
    """A payee's line-level detail for a run (see ``run_detail``)."""
    return run_detail(factory, data_dir, run_id=run_id, payee_ids=[payee_id])


def run_detail(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    run_id: int,
    payee_ids: list[int] | None = None,
) -> pl.DataFrame:
    """Line-level detail for a run (by contract, track, source, territory, usage type and
    month) for some payees, or all when ``payee_ids`` is None, derived in one pass from the
    run's inputs (checked against their hashes) and its snapshot; the amounts of each
    contract add up to its earnings in the run."""
    from royalty_engine.detail import contract_detail

    past = open_run(factory, data_dir, run_id)
    if past.changed_inputs:
        raise RunError(
            "inputs_changed",
            f"the lake files of run {run_id} changed since it ran: "
            + ", ".join(past.changed_inputs[:5]),
        )
    folder = past.folder
    ledger = pl.read_parquet(folder / "outputs" / "ledger.parquet")
    mine = ledger if payee_ids is None else ledger.filter(pl.col("payee_id").is_in(payee_ids))
    contracts = mine["contract_id"].to_list()
    if not contracts:
        raise RunError("payee_missing", f"payee(s) {payee_ids} have no contract in run {run_id}")
    return contract_detail(
        past.lines(data_dir),
        past.terms(),
        period=past.period,
        accounting_currency=past.currency,
        slots=pl.read_parquet(folder / "outputs" / "slots.parquet"),
        ledger=ledger,
        contract_ids=contracts,
    )
