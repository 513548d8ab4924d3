"""What the royalty_run DAG's task bodies call (settings from the environment, JSON out)."""

from __future__ import annotations

from typing import Any

from pipelines.resources import get_session_factory
from pipelines.settings import get_settings
from pipelines.tasks import _org


def calculate(org: str, period: str) -> dict[str, Any]:
    from pipelines.royalty_run import run_period

    settings = get_settings()
    report = run_period(
        get_session_factory(settings),
        settings.data_dir,
        org_id=_org(org),
        period=period,
        actor="airflow",
    )
    return report.as_dict()


def verify(run_id: int) -> dict[str, Any]:
    from pipelines.royalty_run import verify_outputs

    return verify_outputs(get_session_factory(), run_id=run_id)


def preview(run_id: int) -> dict[str, Any]:
    from pipelines.royalty_run import preview as build

    return build(get_session_factory(), run_id=run_id)


def transition(org: str, period: str, to: str, actor: str) -> dict[str, Any]:
    from pipelines.royalty_run import transition as move

    settings = get_settings()
    report = move(
        get_session_factory(settings),
        settings.data_dir,
        org_id=_org(org),
        period=period,
        actor=actor,
        to=to,
    )
    return report.as_dict()
