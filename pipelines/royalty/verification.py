"""Checks of recorded runs: the ledger against the store, a run's files against its
manifest, and a past run recomputed byte for byte."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines import lake
from pipelines.royalty import audit_ledger
from pipelines.royalty.folder import read_snapshot, write_run
from pipelines.royalty.snapshot import scan_lines
from royalty_engine.engine import compute
from royalty_engine.periods import SETTLED, Period, RunError, parse_period
from royalty_engine.terms import Terms, state_from_frame
from schemas.statement_figures import SUMMARY_FIELDS
from schemas.store.runs import ContractBalance, RoyaltyRun, RunStatus, StatementSummary


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
        return read_snapshot(self.folder)

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
        written = write_run(scratch, terms, state_in, manifest["inputs"], result, context)
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
