"""The royalty_run DAG: configuration, and real ``dag.test()`` runs through the approval step.

The sample label ``demo`` is built in a fresh SQLite store and its month of reports ingested;
then the DAG calculates, verifies, previews, is approved (automatically, or by a human whose
response is recorded exactly as Airflow's HITL REST endpoint records it), locks the period
and emits the royalty-runs Asset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from demo.label import ingest_demo_reports
from pipelines import resources
from pipelines.royalty import audit_ledger
from pipelines.settings import get_settings
from schemas.store.runs import RoyaltyRun, RunStatus
from tests.dags.conftest import demo_store

DAG_ID = "royalty_run"
pytestmark = pytest.mark.slow


@dataclass
class Label:
    factory: sessionmaker[Session]
    data_dir: Path
    org_id: int

    def runs(self) -> list[RoyaltyRun]:
        with self.factory() as s:
            return list(s.scalars(sa.select(RoyaltyRun).order_by(RoyaltyRun.id)))


@pytest.fixture
def label(
    airflow_home: Path, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Label]:
    factory, data_dir, org_id = demo_store(sqlite_template, tmp_path, monkeypatch, seed=7)
    ingest_demo_reports(factory, data_dir, org_id, seed=7)
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


def respond(choice: str, user: str, stop: threading.Event) -> None:
    """Wait for the approval task to park, then record a human response the way Airflow's
    ``PATCH .../hitlDetails`` endpoint does (HITL detail row + event-driven resume)."""
    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.settings import Session as AirflowSession
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState

    while not stop.is_set():
        with AirflowSession() as session:
            ti = session.scalar(
                sa.select(TaskInstance).where(
                    TaskInstance.dag_id == DAG_ID,
                    TaskInstance.task_id == "approval",
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            )
            if ti is not None:
                detail = session.scalar(sa.select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                assert detail is not None and detail.options == ["Approve", "Reject"]
                assert "Royalty run" in (detail.body or "")  # the preview is shown
                detail.responded_by = HITLUser(id=user, name=user)
                detail.responded_at = timezone.utcnow()
                detail.chosen_options = [choice]
                detail.params_input = {}
                session.add(detail)
                handle_event_submit(
                    TriggerEvent(detail.as_resume_event_payload()),
                    task_instance=ti,
                    session=session,
                )
                session.commit()
                return
        time.sleep(0.5)


def test_dag_is_configured_for_finance_ops(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert set(dag.params) == {
        *("org", "period", "auto_approve", "buckets", "allow_unended", "correction"),
        *("flag_pct", "flag_minimum"),
    }
    assert dag.params["allow_unended"] == dag.params["correction"] == ""  # none unless given
    assert (dag.params["flag_pct"], dag.params["flag_minimum"]) == (25, 50)
    approval = dag.task_dict["approval"]
    assert set(approval.serialized_params) == {"comment"}  # the form finance fills in
    assert approval.serialized_params["comment"]["value"] == ""
    assert dag.task_dict["earn"].upstream_task_ids == {"plan", "buckets_of"}
    assert "reconcile" in dag.doc_md and "human-in-the-loop" in dag.doc_md
    assert "ApprovalOperator" in [c.__name__ for c in type(approval).__mro__]
    outlets = dag.task_dict["lock"].outlets
    assert [a.uri.rstrip("/") for a in outlets] == ["tunemantra-runs://royalty_runs"]
    assert dag.task_dict["lock"].upstream_task_ids == {"approve"}


def test_auto_approved_run_is_locked_and_audited(dagbag: Any, label: Label) -> None:
    dag = dagbag.get_dag(DAG_ID)
    dag_run = dag.test(run_conf={"org": "demo", "period": "2026-01", "auto_approve": True})
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["approval"] == "skipped" and states["auto_approval"] == "success"
    (run,) = label.runs()
    assert run.status == RunStatus.LOCKED and run.approved_by == "airflow:airflow:auto"
    preview = xcom(dag_run, "preview")
    assert preview["run_id"] == run.id and "GBP" in preview["suspense_share_pct"]
    assert [e["event"] for e in audit_ledger.read(label.data_dir, label.org_id)] == [
        "calculated",
        "approved",
        "locked",
    ]
    assert audit_ledger.verify(label.data_dir, label.org_id) == []
    # A second run of a locked period fails at its first step and records nothing.
    again = dag.test(run_conf={"org": "demo", "period": "2026-01", "auto_approve": True})
    assert task_states(again)["plan"] == "failed"
    assert len(label.runs()) == 1


@pytest.mark.parametrize(("choice", "status"), [("Approve", "locked"), ("Reject", "calculated")])
def test_a_human_approves_or_rejects(dagbag: Any, label: Label, choice: str, status: str) -> None:
    dag = dagbag.get_dag(DAG_ID)
    stop = threading.Event()
    responder = threading.Thread(target=respond, args=(choice, "fin-ops", stop), daemon=True)
    responder.start()
    try:
        dag_run = dag.test(run_conf={"org": "demo", "period": "2026-01", "auto_approve": False})
    finally:
        stop.set()
        responder.join(timeout=10)
    states = task_states(dag_run)
    (run,) = label.runs()
    assert run.status.value == status
    if choice == "Approve":
        assert str(dag_run.state) == "success" and states["approval"] == "success", states
        assert run.approved_by == "airflow:fin-ops" and states["lock"] == "success"
    else:
        # a rejected approval is never a green run: the approval fails, nothing after it runs
        assert str(dag_run.state) == "failed" and states["approval"] == "failed", states
        assert states["approve"] == "upstream_failed" and states["lock"] == "upstream_failed"
        assert run.approved_by is None


def test_a_run_spread_over_payee_buckets(dagbag: Any, label: Label) -> None:
    """buckets=3: three mapped earn tasks, one run recorded and locked, the same figures as
    the run in one piece (see tests/pipelines for byte-equality of the outputs), the Asset
    event naming the run for the statements DAG."""
    from airflow.settings import Session as AirflowSession

    dag = dagbag.get_dag(DAG_ID)
    conf = {"org": "demo", "period": "2026-01", "auto_approve": True, "buckets": 3}
    dag_run = dag.test(run_conf=conf)
    assert str(dag_run.state) == "success", task_states(dag_run)
    with AirflowSession() as session:
        earns = [ti for ti in dag_run.get_task_instances(session=session) if ti.task_id == "earn"]
    assert sorted(ti.map_index for ti in earns) == [0, 1, 2]
    assert {str(ti.state) for ti in earns} == {"success"}
    (run,) = label.runs()
    assert run.status == RunStatus.LOCKED
    assert not list((label.data_dir / "runs").rglob(".plan-*"))  # the plan is cleaned up
    locked = xcom(dag_run, "lock")
    assert locked["run_id"] == run.id
    from airflow.models.asset import AssetEvent

    with AirflowSession() as session:
        extras = [e.extra for e in session.query(AssetEvent).all()]
    assert {"org": "demo", "period": "2026-01", "version": 1, "run_id": run.id} in extras
