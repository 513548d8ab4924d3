"""What the royalty_run DAG's task bodies call (settings from the environment, JSON out)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pipelines.resources import get_session_factory
from pipelines.settings import get_settings
from pipelines.tasks.ingest import _org


def plan(org: str, period: str, buckets: int) -> dict[str, Any]:
    """Snapshot the terms for a run spread over ``buckets`` payee buckets."""
    from pipelines.royalty.plan import plan_run

    settings = get_settings()
    folder = plan_run(
        get_session_factory(settings),
        settings.data_dir,
        org_id=_org(org),
        period=period,
        buckets=buckets,
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


def preview(run_id: int) -> dict[str, Any]:
    from pipelines.royalty.preview import preview as build

    settings = get_settings()
    return build(get_session_factory(settings), run_id=run_id, data_dir=settings.data_dir)


def transition(
    org: str,
    period: str,
    to: str,
    actor: str,
    run_id: int | None = None,
    allow_unended: str | None = None,
) -> dict[str, Any]:
    """``run_id``: the run that was previewed and approved; refused if the period was run
    again since (the approval is for what finance saw). A period that has not ended today
    (UTC) is refused unless ``allow_unended`` gives the reason (audited)."""
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
    )
    return report.as_dict()
