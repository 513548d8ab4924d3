"""What the ``statements_publish`` DAG's tasks call: settings from the environment, JSON in
and out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.resources import Resources
from pipelines.statements.publish import (
    PublishError,
    ensure_export,
    find_run,
    publish_run,
    runs_to_publish,
    summary,
    targets,
)


def render_task(org: str, period: str, extras: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export every run to publish in the formats its targets take; the runs, with counts."""
    res = Resources.current()
    data_dir = res.settings.data_dir
    out = []
    for item in runs_to_publish(res.factory, org, period, extras):
        run = find_run(
            res.factory, org_id=item["org_id"], period=item["period"], version=item["version"]
        )
        _, formats = targets(
            res.factory, data_dir, org_id=run.org_id, org_slug=run.org_slug, actor="airflow"
        )
        folder, files = ensure_export(res.factory, data_dir, run, formats)
        out.append({**item, "files": len(files), "folder": str(folder)})
    return out


def publish_task(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Publish every exported run to its organisation's targets; one result per target."""
    res = Resources.current()
    results: list[dict[str, Any]] = []
    for item in runs:
        for r in publish_run(
            res.factory,
            res.settings.data_dir,
            org_id=int(item["org_id"]),
            period=str(item["period"]),
            version=int(item["version"]),
            actor="airflow",
            render=False,
        ):
            results.append({"org": item["org"], **r.as_dict()})
    return results


def summary_task(results: Sequence[dict[str, Any]]) -> str:
    """The summary; raises when a target failed or refused (the task fails, ops look)."""
    text = summary(results)
    bad = [r for r in results if r["status"] not in ("published", "unchanged")]
    if bad:
        raise PublishError(
            "publication_failed",
            f"{len(bad)} target(s) not published:\n{text}",
            [r.get("error") or {} for r in bad],
        )
    return text
