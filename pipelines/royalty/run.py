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

The steps live beside this module: ``snapshot`` (the checks and what a run starts from),
``folder`` (the run folder), ``plan`` (a run spread over payee buckets), ``record`` (the
store rows and ``recover``), ``diff`` (a correction's diff), ``transitions`` (approve, lock),
``verification`` (ledger, files, reproduction) and ``preview``; the period-chain rules are
``royalty_engine.periods``.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path

import polars as pl
from sqlalchemy.orm import Session, sessionmaker

from pipelines import lake
from pipelines.killpoints import killpoint
from pipelines.royalty import audit_ledger
from pipelines.royalty.folder import (
    input_files,
    ledger_files,
    output_paths,
    period_dir,
    period_lock,
    put_in_place,
    read_snapshot,
    write_run,
)
from pipelines.royalty.plan import PLAN, merged_parts
from pipelines.royalty.record import RunReport, commit_run, recover
from pipelines.royalty.snapshot import lake_files, prepare, scan_lines
from royalty_engine.engine import compute
from royalty_engine.periods import RunError, parse_period
from royalty_engine.terms import state_from_frame
from schemas.store import db

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
        prep = prepare(factory, org_id, period, correction)
        files = lake_files(factory, data_dir, org_id, prep.period)
        inputs = input_files(data_dir, files)
        earned = None
    else:
        meta = json.loads((plan / PLAN).read_text())
        if (meta["org_id"], meta["period"]) != (org_id, parse_period(period).label):
            raise RunError("plan_mismatch", f"plan {plan.name} is for another org or period")
        correction = meta["correction"]
        prep = prepare(factory, org_id, period, correction)
        if (prep.previous.id if prep.previous else None) != meta["previous_run_id"]:
            raise RunError(
                "plan_stale",
                "another run of the period was recorded after this plan was made; plan again",
            )
        prep.terms = read_snapshot(plan)
        prep.state_in = state_from_frame(pl.read_parquet(plan / "state_in.parquet"))
        inputs = meta["inputs"]
        files = [data_dir / i["path"] for i in inputs]
        earned = merged_parts(plan, meta["buckets"])
    p, currency, existing = prep.period, prep.currency, prep.existing
    previous, state_in, terms = prep.previous, prep.state_in, prep.terms
    result = compute(
        scan_lines(files), terms, state_in, p, accounting_currency=currency, earned=earned
    )
    version = (existing[-1].version + 1) if existing else 1
    final = period_dir(data_dir, org_id, p.label) / f"v{version}"
    stage = final.with_name(f".v{version}-{uuid.uuid4().hex}")
    committed = False
    with period_lock(data_dir, org_id, p.label):
        try:
            written = write_run(stage, terms, state_in, inputs, result, prep.context)
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
                    report = commit_run(
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
                put_in_place(stage, final)
                report.outputs = output_paths(final)
                killpoint("run.renamed")
                append(
                    "calculated",
                    run_id=report.run_id,
                    period=p.label,
                    version=version,
                    actor=actor,
                    manifest_sha256=manifest_sha,
                    files=ledger_files(data_dir, final, written, manifest_sha),
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
