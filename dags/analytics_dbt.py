"""The analysts' warehouse: prepare -> dbt_build (one `dbt build`) -> publish (the swap)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task

REVENUE_LINES = Asset("tunemantra-lake://revenue_lines")
ROYALTY_RUNS = Asset("tunemantra-runs://royalty_runs")

DOC = """
### Analytics warehouse (dbt-duckdb)

Runs whenever ingestion adds revenue lines or a royalty run is approved or locked (the Assets
`tunemantra-lake://revenue_lines` and `tunemantra-runs://royalty_runs`). One run at a time.

1. **prepare**: exports the store's reference tables (catalogue, payees, contracts, run
   statuses, ingestion ledger, suspense) to Parquet and clears what a failed run left.
2. **dbt_build**: one `dbt build` into a *new* DuckDB file: seeds, staging -> intermediate ->
   marts, each model's tests right after it (key tests, relationships, and the money
   invariant royalty + retained + suspense = revenue per period and currency). A failing
   test skips what depends on it and fails the task: nothing is published and analysts keep
   the previous warehouse. dbt's log names every model and test with its status.
3. **publish**: swaps the new file in atomically; an analyst's read-only connection always
   opens. If someone holds the file with a write lock it waits a minute, then fails (its
   retry swaps the same build in, without rebuilding).

No params. Thresholds of the anomaly mart are dbt vars (`dbt/dbt_project.yml`).
"""

# Why one dbt invocation and not a task per model (astronomer-cosmos, used before): every
# model and test writes the same DuckDB file, and DuckDB allows one writing process per file,
# so tasks running side by side failed on its lock; cosmos's per-model test tasks also ran
# relationship tests before the models they join existed. `dbt build` orders seeds, models and
# tests by the DAG of refs in one process and one connection, so both problems go away, and
# each step below holds the data dir's build lock (no overlap with `tunemantra warehouse build`).


@dag(
    dag_id="analytics_dbt",
    schedule=(REVENUE_LINES | ROYALTY_RUNS),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tunemantra", "analytics"],
    default_args={"retries": 1},
    doc_md=DOC,
)
def analytics_dbt() -> None:
    @task
    def prepare() -> dict[str, int]:
        from pipelines.tasks.warehouse import prepare_task

        return prepare_task()

    @task
    def dbt_build() -> dict[str, int]:
        from pipelines.tasks.warehouse import dbt_build_task

        return dbt_build_task()

    @task
    def publish() -> str:
        from pipelines.tasks.warehouse import publish_task

        return publish_task()

    prepare() >> dbt_build() >> publish()


analytics_dbt()
