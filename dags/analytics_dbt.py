"""The analysts' warehouse: export -> dbt build (cosmos, one task per model) -> swap in."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from airflow.sdk import Asset, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode

REVENUE_LINES = Asset("tunemantra-lake://revenue_lines")
ROYALTY_RUNS = Asset("tunemantra-runs://royalty_runs")
DBT_DIR = Path(__file__).resolve().parent.parent / "dbt"
DBT_BIN = str(Path(sys.executable).parent / "dbt")  # the project venv's dbt
DATA_DIR = Path(os.environ.get("TUNEMANTRA_DATA_DIR", "var")).resolve()

DOC = """
### Analytics warehouse (dbt-duckdb)

Runs whenever ingestion adds revenue lines or a royalty run is approved or locked (the Assets
`tunemantra-lake://revenue_lines` and `tunemantra-runs://royalty_runs`).

1. **prepare**: exports the store's reference tables (catalogue, payees, contracts, run
   statuses, ingestion ledger, suspense) to Parquet and clears the build file.
2. **dbt**: one task per model, seed and test (astronomer-cosmos), into a *new* DuckDB file:
   staging -> intermediate -> marts, with key tests and the money invariant
   (royalty + retained + suspense = revenue per period and currency). A failing test stops
   the DAG before the swap: analysts keep the previous warehouse.
3. **publish**: swaps the new file in atomically; an analyst's read-only connection always
   opens. If someone holds the file with a write lock it waits, then fails.

No params. Thresholds of the anomaly mart are dbt vars (`dbt/dbt_project.yml`).
"""


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
    def prepare() -> int:
        from pipelines.resources import get_session_factory
        from pipelines.warehouse import prepare as run

        return len(run(get_session_factory(), DATA_DIR))

    @task
    def publish() -> str:
        from pipelines.warehouse import publish as run

        return run(DATA_DIR)

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            DBT_DIR,
            env_vars={
                "TUNEMANTRA_DATA_DIR": str(DATA_DIR),
                "TUNEMANTRA_WAREHOUSE_BUILD_PATH": str(
                    DATA_DIR / "warehouse" / ".build" / "tunemantra.duckdb"
                ),
                "TUNEMANTRA_DBT_THREADS": "1",
            },
        ),
        profile_config=ProfileConfig(
            profile_name="tunemantra",
            target_name="local",
            profiles_yml_filepath=DBT_DIR / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            dbt_executable_path=DBT_BIN, invocation_mode=InvocationMode.SUBPROCESS
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_LS,
            dbt_executable_path=DBT_BIN,
            invocation_mode=InvocationMode.SUBPROCESS,
        ),
    )
    prepare() >> dbt >> publish()


analytics_dbt()
