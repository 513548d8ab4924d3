"""The statements_publish DAG: configuration, and real ``dag.test()`` runs on a locked period
of the sample label: published from the pending-runs fallback, unchanged when run again with
the period as params, and a failing summary when a target is down."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipelines import resources
from pipelines.settings import get_settings
from schemas.store import db
from schemas.store.models import Organisation
from schemas.store.statements import StatementPublication, StatementTarget
from tests.servers.s3 import free_ports
from tests.snapshots import Snapshots, sqlite_url
from tests.statements.conftest import LockedPeriod, copy_locked_period

DAG_ID = "statements_publish"
pytestmark = pytest.mark.slow


def test_dag_is_configured_for_finance_ops(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert set(dag.params) == {"org", "period"}
    assert dag.doc_md and "manifest.json" in dag.doc_md and "remote_differs" in dag.doc_md
    condition = dag.timetable.asset_condition  # schedule=[asset]: all of these assets
    uris = [a.uri.rstrip("/") for a in getattr(condition, "objects", [condition])]
    assert uris == ["tunemantra-runs://royalty_runs"]
    assert dag.get_task("publish").upstream_task_ids == {"render"}
    assert dag.get_task("summary").upstream_task_ids == {"publish"}
    assert dag.get_task("summary").retries == 0 and dag.get_task("publish").retries >= 1


@pytest.fixture
def label(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshots: Snapshots
) -> Iterator[LockedPeriod]:
    period = copy_locked_period(snapshots, tmp_path / "period")
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(period.data))
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", sqlite_url(tmp_path / "period"))
    monkeypatch.delenv("TUNEMANTRA_ENV", raising=False)
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        yield period
    finally:
        resources.get_engine().dispose()
        period.factory.kw["bind"].dispose()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.settings import Session as AirflowSession

    with AirflowSession() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.settings import Session as AirflowSession

    with AirflowSession() as session:
        rows = list(
            session.scalars(
                XComModel.get_many(
                    run_id=dag_run.run_id, dag_ids=DAG_ID, task_ids=task_id, key="return_value"
                )
            )
        )
        return XComModel.deserialize_value(rows[0]) if rows else None


def test_a_locked_run_is_published_once(dagbag: Any, label: LockedPeriod) -> None:
    dag = dagbag.get_dag(DAG_ID)
    with label.factory() as s:
        slug = s.scalar(sa.select(Organisation.slug).where(Organisation.id == label.org_id))
    # No params and no Asset event: every locked run not yet published.
    first = dag.test(run_conf={"org": "", "period": ""})
    states = task_states(first)
    assert str(first.state) == "success", states
    (rendered,) = xcom(first, "render")
    assert rendered["run_id"] == label.run_id and rendered["files"] > 0
    (result,) = xcom(first, "publish")
    assert result["target"] == "local" and result["status"] == "published"
    outbound = label.data / "outbound" / f"org={slug}" / "2026-H1" / "v1"
    manifest = json.loads((outbound / "manifest.json").read_bytes())
    for f in manifest["files"]:
        assert hashlib.sha256((outbound / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert "| local | published |" in xcom(first, "summary")

    # Again, with the period as params: nothing changes.
    mtimes = {p: p.stat().st_mtime_ns for p in outbound.rglob("*")}
    again = dag.test(run_conf={"org": slug, "period": "2026-H1"})
    assert str(again.state) == "success", task_states(again)
    assert [r["status"] for r in xcom(again, "publish")] == ["unchanged"]
    assert {p: p.stat().st_mtime_ns for p in outbound.rglob("*")} == mtimes

    # A target that is down fails the summary; the local target is still fine.
    (port,) = free_ports(1)
    with db.transaction(label.factory, actor="test") as s:
        s.add(
            StatementTarget(
                org_id=label.org_id,
                name="partner",
                url=f"sftp://nobody@127.0.0.1:{port}/drop",
                formats=["csv"],
                enabled=True,
            )
        )
    down = dag.test(run_conf={"org": slug, "period": "2026-H1"})
    states = task_states(down)
    assert states["render"] == "success" and states["publish"] == "success", states
    assert states["summary"] == "failed"
    by_target = {r["target"]: r for r in xcom(down, "publish")}
    assert by_target["local"]["status"] == "unchanged"
    assert by_target["partner"]["status"] == "failed"
    assert by_target["partner"]["error"]["code"] == "unreachable"
    with label.factory() as s:
        statuses = dict(
            s.execute(
                sa.select(StatementTarget.name, StatementPublication.status).join(
                    StatementTarget, StatementTarget.id == StatementPublication.target_id
                )
            ).all()
        )
    assert {k: v.value for k, v in statuses.items()} == {"local": "published", "partner": "failed"}
