"""Payee statements: render a locked (or approved) run's statements -> publish -> summary."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, Param, dag, task

# The royalty_run DAG's Asset (dags/royalty_run.py emits it when a period is locked).
ROYALTY_RUNS = Asset("tunemantra-runs://royalty_runs")

DOC = """
### Publish payee statements

Runs when the `royalty_run` DAG locks a period (the `tunemantra-runs://royalty_runs` Asset),
or by hand with `org` and `period`.

1. **render**: renders every payee's statement of the run (PDF, XLSX, CSV, JSON and the
   self-billing invoice where one is due) into the run's statement folder on this machine.
   Only an *approved* or *locked* run is published; a calculated run is refused (approve it
   first). Which run: the `org`/`period` params when set; else the period the triggering
   Asset event names; else every approved or locked run that no target has published yet.
2. **publish**: sends the files to each enabled statement target of the organisation
   (`tunemantra statements target list`; without any, the local folder
   `outbound/org=<slug>` under the data dir): `<period>/v<version>/payee<id>/...` and then
   `manifest.json` (every file with its SHA-256). A target without `manifest.json` did not
   receive the run. Uploads are retried with back-off; a target that stays down is marked
   *failed* and the others go on. Publishing again changes nothing (*unchanged*); a drop whose
   files were changed since is never overwritten (*refused*, `remote_differs`). A correction
   (new version) goes to its own `v<version>` folder.
3. **summary**: a table of every target's result; the task fails when any target failed or
   refused, so finance ops see it (re-run after fixing the target, or publish from the CLI:
   `tunemantra statements publish --org ORG --period PERIOD`).

**Params**: `org` (slug; empty: every organisation), `period` (`2026-01`, `2026-Q1`,
`2026-H1`; empty: from the triggering royalty run, else every run not yet published).
"""


@dag(
    dag_id="statements_publish",
    schedule=[ROYALTY_RUNS],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tunemantra", "royalties", "statements"],
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "org": Param("", type="string", description="organisation slug; empty: every one"),
        "period": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-(0[1-9]|1[0-2]|Q[1-4]|H[12]))?$",
            description="2026-01, 2026-Q1 or 2026-H1; empty: the triggering run's period",
        ),
    },
    doc_md=DOC,
)
def statements_publish() -> None:
    @task
    def render(org: str, period: str, **context: Any) -> list[dict[str, Any]]:
        from pipelines.tasks.statements import render_task

        events = context.get("triggering_asset_events") or {}
        extras = [dict(e.extra or {}) for evs in events.values() for e in evs]
        return render_task(org, period, extras)

    @task
    def publish(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from pipelines.tasks.statements import publish_task

        return publish_task(runs)

    @task(retries=0)  # a failed target needs a person, not a retry
    def summary(results: list[dict[str, Any]]) -> str:
        from pipelines.tasks.statements import summary_task

        return summary_task(results)

    summary(publish(render("{{ params.org }}", "{{ params.period }}")))


statements_publish()
