"""What the royalty_run DAG's task bodies call (settings from the environment, JSON out)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.resources import get_session_factory
from pipelines.settings import get_settings
from pipelines.tasks.ingest import _org


def plan(org: str, period: str, buckets: int, correction: str | None = None) -> dict[str, Any]:
    """Snapshot the terms for a run spread over ``buckets`` payee buckets. ``correction``:
    why a locked period is recalculated as a new version (else a locked period is refused)."""
    from pipelines.royalty.plan import plan_run

    settings = get_settings()
    folder = plan_run(
        get_session_factory(settings),
        settings.data_dir,
        org_id=_org(org),
        period=period,
        buckets=buckets,
        correction=correction or None,
    )
    return {"plan": str(folder), "buckets": list(range(buckets))}


def earn(plan: str, bucket: int) -> str:
    """One payee bucket's earnings (a mapped task; any worker that sees the data dir)."""
    from pipelines.royalty.plan import earn_part

    return str(earn_part(get_settings().data_dir, Path(plan), bucket))


def calculate(org: str, period: str, plan: str | None = None) -> dict[str, Any]:
    from pipelines.royalty.run import run_period

    settings = get_settings()
    report = run_period(
        get_session_factory(settings),
        settings.data_dir,
        org_id=_org(org),
        period=period,
        actor="airflow",
        plan=Path(plan) if plan else None,
    )
    return report.as_dict()


def verify(run_id: int) -> dict[str, Any]:
    from pipelines.royalty.verification import verify_outputs

    return verify_outputs(get_session_factory(), run_id=run_id)


def preview(
    run_id: int, flag_pct: float | str | None = None, flag_minimum: float | str | None = None
) -> dict[str, Any]:
    """The approval screen's figures and Markdown; a payee's variance is flagged from
    ``flag_pct`` per cent and ``flag_minimum`` (in its currency) of change."""
    from pipelines.royalty.preview import DEFAULT_THRESHOLD, VarianceThreshold
    from pipelines.royalty.preview import preview as build

    threshold = VarianceThreshold(
        pct=DEFAULT_THRESHOLD.pct if flag_pct is None else Decimal(str(flag_pct)),
        minimum=DEFAULT_THRESHOLD.minimum if flag_minimum is None else Decimal(str(flag_minimum)),
    )
    settings = get_settings()
    return build(
        get_session_factory(settings),
        run_id=run_id,
        threshold=threshold,
        data_dir=settings.data_dir,
    )


def transition(
    org: str,
    period: str,
    to: str,
    actor: str,
    run_id: int | None = None,
    allow_unended: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """``run_id``: the run that was previewed and approved; refused if the period was run
    again since (the approval is for what finance saw). A period that has not ended today
    (UTC) is refused unless ``allow_unended`` gives the reason (audited). ``comment``: the
    approver's, kept with the decision in the audit log."""
    from pipelines.royalty.transitions import transition as move

    settings = get_settings()
    report = move(
        get_session_factory(settings),
        settings.data_dir,
        org_id=_org(org),
        period=period,
        actor=actor,
        to=to,
        run_id=run_id,
        today=dt.datetime.now(dt.UTC).date(),
        allow_unended=allow_unended or None,
        comment=comment or None,
    )
    return report.as_dict()
