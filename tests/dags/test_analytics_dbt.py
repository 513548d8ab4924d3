"""The analytics_dbt DAG: scheduled on the lake and runs Assets; a real ``dag.test()`` run on
the demo label builds the warehouse and swaps it in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from demo.label import ingest_demo_reports
from demo.royalty import run_demo_period
from pipelines import resources
from pipelines.settings import get_settings
from schemas.store.models import IngestFile, IngestStatus
from tests.dags.conftest import demo_store

DAG_ID = "analytics_dbt"


def test_dag_is_scheduled_on_ingestion_and_royalty_assets(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert dag is not None
    assert {"tunemantra", "analytics"} <= set(dag.tags)
    uris = {asset.name for asset in dag.timetable.asset_condition.objects}
    assert uris == {"tunemantra-lake://revenue_lines", "tunemantra-runs://royalty_runs"}
    # One dbt invocation writes the build file; prepare -> dbt_build -> publish, in a line.
    assert dag.get_task("prepare").upstream_task_ids == set()
    assert dag.get_task("dbt_build").upstream_task_ids == {"prepare"}
    assert dag.get_task("publish").upstream_task_ids == {"dbt_build"}
    assert "dbt build" in dag.doc_md and "previous warehouse" in dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id


# --- dag.test() on the demo label -----------------------------------------------------------


@dataclass
class Label:
    factory: sessionmaker[Session]
    data_dir: Path
    org_id: int

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse" / "tunemantra.duckdb"


@pytest.fixture
def label(
    airflow_home: Path, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Label]:
    """The demo label ingested and its period run and locked, no warehouse built yet."""
    factory, data_dir, org_id = demo_store(sqlite_template, tmp_path, monkeypatch, seed=7)
    ingest_demo_reports(factory, data_dir, org_id, seed=7)
    run_demo_period(factory, data_dir, org_id)
    try:
        yield Label(factory, data_dir, org_id)
    finally:
        resources.get_engine().dispose()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.settings import Session as AirflowSession

    with AirflowSession() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


@pytest.mark.slow
def test_dag_run_builds_the_warehouse_and_swaps_it_in(
    dagbag: Any, label: Label, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert not label.warehouse.exists()
    dag_run = dag.test()
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert set(states.values()) == {"success"}, states
    # Swapped in: the served file is there, nothing is left where it was built.
    assert label.warehouse.is_file()
    assert not label.warehouse.with_name("tunemantra.duckdb.wal").exists()
    assert list((label.data_dir / "warehouse" / ".build").glob("**/*.duckdb")) == []
    with label.factory() as s:
        accepted = s.scalar(
            sa.select(sa.func.sum(IngestFile.lines_accepted)).where(
                IngestFile.org_id == label.org_id, IngestFile.status == IngestStatus.INGESTED
            )
        )
    manifest = json.loads(
        next((label.data_dir / "runs").glob("org=*/period=2026-H1/v1/manifest.json")).read_text()
    )
    gbp = manifest["totals"]["GBP"]
    with duckdb.connect(str(label.warehouse), read_only=True) as con:
        lines = con.execute("select count(*) from fct_revenue_lines").fetchone()
        assert accepted and lines == (accepted,)
        rec = con.execute(
            "select revenue, royalty, retained, suspense from fct_run_reconciliation "
            "where org_id = ? and currency = 'GBP'",
            [label.org_id],
        ).fetchall()
        assert rec == [
            (
                Decimal(gbp["revenue"]),
                Decimal(gbp["payees"]),
                Decimal(gbp["retained"]),
                Decimal(gbp["suspense"]),
            )
        ]
        marts = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_name like 'fct_%' or table_name like 'dim_%'"
            ).fetchall()
        }
        assert {"fct_revenue_monthly", "fct_royalty_liabilities", "dim_tracks"} <= marts

    # A build that fails (a lake file lost a column) fails the run and publishes nothing:
    # analysts keep the warehouse they had.
    served = label.warehouse.stat()
    part = sorted((label.data_dir / "lake" / "revenue_lines").glob("**/*.parquet"))[0]
    pl.read_parquet(part).drop("converted_amount").write_parquet(part)
    for task in dag.tasks:  # dag.test() would wait out the retry delay
        monkeypatch.setattr(task, "retries", 0)
    failed = dag.test()
    states = task_states(failed)
    assert str(failed.state) == "failed", states
    assert states == {"prepare": "success", "dbt_build": "failed", "publish": "upstream_failed"}
    after = label.warehouse.stat()
    assert (after.st_ino, after.st_mtime_ns) == (served.st_ino, served.st_mtime_ns)
    assert list((label.data_dir / "warehouse" / ".build").glob("**/*.duckdb")) == []
