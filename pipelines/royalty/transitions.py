"""Approving and locking a run (calculated -> approved -> locked)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.killpoints import killpoint
from pipelines.royalty import audit_ledger
from pipelines.royalty.folder import output_paths
from pipelines.royalty.record import RunReport, recover
from pipelines.royalty.snapshot import current_runs
from royalty_engine.periods import (
    RunError,
    check_chain,
    check_transition,
    parse_period,
    unended_override,
)
from schemas.store import db
from schemas.store.models import AuditEntry
from schemas.store.runs import RoyaltyRun, RunStatus

log = logging.getLogger(__name__)


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


def _reviewed(session: Session, org_id: int, period: str, run_id: int | None) -> RoyaltyRun:
    """The period's latest run; refused if it is not ``run_id``, the one that was reviewed
    (the period was run again since)."""
    run = _latest(session, org_id, period)
    if run_id is not None and run.id != run_id:
        raise RunError(
            "run_changed",
            f"run {run_id} is not the latest run of {run.period}: run {run.id} "
            f"(version {run.version}, {run.status.value}) is; review that one",
        )
    return run


def _report(run: RoyaltyRun, org_id: int) -> RunReport:
    return RunReport(
        run_id=run.id,
        org_id=org_id,
        period=run.period,
        version=run.version,
        status=run.status.value,
        totals=run.totals,
        counts=run.counts,
        outputs=output_paths(Path(run.output_dir)),
        diff=run.diff,
    )


def _unended_override(
    period: str, to: str, today: dt.date | None, allow_unended: str | None
) -> dict[str, str] | None:
    """``periods.unended_override`` on ``today`` (default: today's UTC date)."""
    on = today or dt.datetime.now(dt.UTC).date()
    return unended_override(parse_period(period), to, on, allow_unended)


def _record(session: Session, run: RoyaltyRun, actor: str, action: str, after: dict) -> None:
    """One entry in the store's audit log about ``run``: an override of a period rule
    (``override``: which rule, why) or an approval decision (``approved``, ``rejected``,
    ``locked``: with the approver's comment)."""
    session.add(
        AuditEntry(
            org_id=run.org_id,
            actor=actor,
            api_key_id=session.info.get("api_key_id"),
            entity=RoyaltyRun.__tablename__,
            entity_id=run.id,
            action=action,
            after=after,
        )
    )


def _decision(run: RoyaltyRun, decision: str, comment: str | None) -> dict[str, object]:
    return {
        "decision": decision,
        "period": run.period,
        "version": run.version,
        "comment": comment or "",
    }


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
    comment: str | None = None,
) -> RunReport:
    """calculated -> approved (``to="approved"``), approved -> locked (``to="locked"``).
    ``run_id``: the run that was reviewed; refused if the period's latest run is another
    (rerun since). The run must still open from the current run of the period before it,
    and no approved or locked run of another length may overlap it (``periods.check_chain``).
    A period that has not ended on ``today`` (default: today's UTC date) is refused
    (``period_not_ended``) unless ``allow_unended`` says why (``_unended_override``).
    A run already ``to`` is left as it is (a command retried after a crash finds its work
    done). Starts by finishing what a killed run, approval or lock left (``recover``).
    ``to="rejected"``: the run reviewed is rejected instead (``reject``).
    ``comment``: what the approver said, kept with the decision in the audit log and the
    audit ledger (an approval is recorded as a decision even without one)."""
    if to == "rejected":
        return reject(
            factory,
            data_dir,
            org_id=org_id,
            period=period,
            actor=actor,
            run_id=run_id,
            comment=comment,
        )
    override = _unended_override(period, to, today, allow_unended)
    target = RunStatus(to)
    recover(factory, data_dir, org_id)
    with audit_ledger.held(data_dir, org_id) as append:  # held to after the append
        with db.transaction(factory, actor=actor) as session:
            current = current_runs(session, org_id, lock=True)
            run = _reviewed(session, org_id, period, run_id)
            already = not check_transition(run, target)
            if already:
                log.info("run %s (%s v%s) is already %s", run.id, run.period, run.version, to)
            else:
                check_chain(
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
                    rule = {"rule": override["rule"], "to": to, "period": run.period}
                    rest = {k: v for k, v in override.items() if k != "rule"}
                    _record(session, run, actor, "override", rule | rest)
                if target == RunStatus.APPROVED or comment:
                    _record(session, run, actor, to, _decision(run, to, comment))
            report = _report(run, org_id)
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
                **({"comment": comment} if comment else {}),
            )
    killpoint("transition.ledgered")
    return report


def reject(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    period: str,
    actor: str,
    run_id: int | None = None,
    comment: str | None = None,
) -> RunReport:
    """A finance user rejects the period's calculated run (``run_id``: the one reviewed):
    it stays *calculated* (to be corrected at the source and run again), and the decision,
    who took it and their ``comment`` are kept in the audit log and the audit ledger."""
    with audit_ledger.held(data_dir, org_id) as append:
        with db.transaction(factory, actor=actor) as session:
            run = _reviewed(session, org_id, period, run_id)
            if run.status != RunStatus.CALCULATED:
                raise RunError(
                    "not_calculated",
                    f"run {run.id} of {run.period} is {run.status.value}: only a calculated "
                    "run can be rejected",
                )
            _record(session, run, actor, "rejected", _decision(run, "rejected", comment))
            report = _report(run, org_id)
        append(
            "rejected",
            run_id=report.run_id,
            period=report.period,
            version=report.version,
            actor=actor,
            comment=comment or "",
        )
    return report
