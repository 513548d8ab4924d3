"""The analytics_dbt DAG: scheduled on the lake and runs Assets, prepare -> dbt -> publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DAG_ID = "analytics_dbt"


def test_dag_is_scheduled_on_ingestion_and_royalty_assets(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert dag is not None
    assert dag.dag_id == Path(dag.fileloc).stem == DAG_ID
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {"tunemantra", "analytics"} <= set(dag.tags)
    uris = {asset.name for asset in dag.timetable.asset_condition.objects}
    assert uris == {"tunemantra-lake://revenue_lines", "tunemantra-runs://royalty_runs"}
    ids = {t.task_id for t in dag.tasks}
    assert {"prepare", "publish"} <= ids
    # cosmos renders one task per model/seed inside the dbt group, tests attached to models
    assert "dbt.fct_run_reconciliation.run" in ids
    assert "dbt.fct_run_reconciliation.test" in ids
    prepare_down = dag.get_task("prepare").downstream_task_ids
    assert prepare_down and all(t.startswith("dbt.") for t in prepare_down)
    assert all(t.startswith("dbt.") for t in dag.get_task("publish").upstream_task_ids)
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
