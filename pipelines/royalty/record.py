"""Recording a run in the store (the one commit point) and finishing or undoing what a
killed run, approval or lock left (``recover``)."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.layout import DataDir
from pipelines.royalty import audit_ledger
from pipelines.royalty.diff import diff_runs
from pipelines.royalty.folder import (
    ledger_files,
    manifest_hash,
    period_dir,
    period_lock,
    put_in_place,
)
from pipelines.royalty.snapshot import Prepared, current_runs
from royalty_engine.engine import RunResult
from royalty_engine.periods import RunError, check_chain
from schemas.statement_figures import SUMMARY_FIELDS
from schemas.store.runs import ContractBalance, RoyaltyRun, RunStatus, StatementSummary

log = logging.getLogger(__name__)


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


def commit_run(
    session: Session,
    prep: Prepared,
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
    current = current_runs(session, org_id, lock=True)
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
    check_chain(
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
    record_rows(session, run, result)
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


def record_rows(session: Session, run: RoyaltyRun, result: RunResult) -> None:
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

    root = DataDir(data_dir).runs(org_id)
    labels = sorted(p.name.split("=", 1)[1] for p in root.glob("period=*") if p.is_dir())
    for label in labels:
        with period_lock(data_dir, org_id, label), factory() as session:
            shas = dict(
                session.execute(
                    sa.select(RoyaltyRun.version, RoyaltyRun.manifest_sha256).where(
                        RoyaltyRun.org_id == org_id, RoyaltyRun.period == label
                    )
                ).all()
            )
            folder = period_dir(data_dir, org_id, label)
            for temp in sorted(folder.glob(".*")):
                if not temp.is_dir() or temp.name.startswith(".plan-"):
                    continue  # a plan waits for its buckets (``plan_run``)
                head = temp.name[2:].split("-", 1)[0] if temp.name.startswith(".v") else ""
                version = int(head) if head.isdigit() else None
                final = folder / f"v{version}"
                sha = shas.get(version) if version is not None else None
                if sha is not None and manifest_hash(final) != sha and manifest_hash(temp) == sha:
                    put_in_place(temp, final)
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
                        final = period_dir(data_dir, org_id, r.period) / f"v{r.version}"
                        if manifest_hash(final) != r.manifest_sha256:
                            log.error("run %s (%s v%s): its folder is not the one it "
                                      "committed; no entry recovered", r.id, r.period,
                                      r.version)  # fmt: skip
                            break
                        manifest = json.loads((final / "manifest.json").read_text())
                        fields = {
                            "files": ledger_files(
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
