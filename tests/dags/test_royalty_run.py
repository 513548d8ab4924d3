"""The royalty_run DAG: configuration, and real ``dag.test()`` runs through the approval step.

The sample label ``demo`` is built in a fresh SQLite store and its month of reports ingested;
then the DAG calculates, verifies, previews, is approved (automatically, or by a human whose
response is recorded exactly as Airflow's HITL REST endpoint records it), locks the period
and emits the royalty-runs Asset.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from tests.dags.conftest import DAGS, demo_store

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


def own_dag() -> Any:
    """The DAG parsed again: a run's params (and HITL answers) stay on the tasks of the DAG
    object that ran in-process, so a run whose params should not leak into the next tests'
    runs (or that must show a fresh form) gets a DAG object of its own."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS)).get_dag(DAG_ID)


def decisions(label: Label) -> list[tuple[str, str, str]]:
    """The approval decisions in the store's audit log: (decision, actor, comment)."""
    from schemas.store.models import AuditEntry

    with label.factory() as s:
        rows = s.scalars(sa.select(AuditEntry).where(AuditEntry.entity == "royalty_runs"))
        return [
            (e.action, e.actor, e.after["comment"])
            for e in rows
            if e.action in ("approved", "rejected")
        ]


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


def respond(
    choice: str,
    user: str,
    stop: threading.Event,
    look: Callable[[str], None] | None = None,
) -> None:
    """Wait for the approval task to park, ``look`` at it (given the DAG run's id), then record
    a human response the way Airflow's ``PATCH .../hitlDetails`` endpoint does (HITL detail
    row + event-driven resume)."""
    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLDetail, HITLUser
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.settings import Session as AirflowSession
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.state import TaskInstanceState

    parked = sa.select(TaskInstance).where(
        TaskInstance.dag_id == DAG_ID,
        TaskInstance.task_id == "approval",
        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
    )
    while not stop.is_set():
        with AirflowSession() as session:
            ti = session.scalar(parked)
            run_id = ti and ti.run_id
        if run_id is None:
            time.sleep(0.5)
            continue
        if look is not None:
            look(run_id)
        with AirflowSession() as session:
            ti = session.scalar(parked)
            detail = session.scalar(sa.select(HITLDetail).where(HITLDetail.ti_id == ti.id))
            assert detail is not None and detail.options == ["Approve", "Reject"]
            assert "Royalty run" in (detail.body or "")  # the preview is shown
            assert set(detail.params or {}) == {"comment"}  # the comment field
            detail.responded_by = HITLUser(id=user, name=user)
            detail.responded_at = timezone.utcnow()
            detail.chosen_options = [choice]
            detail.params_input = {"comment": f"{choice} by {user}: checked"}
            session.add(detail)
            handle_event_submit(
                TriggerEvent(detail.as_resume_event_payload()),
                task_instance=ti,
                session=session,
            )
            session.commit()
            return


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
    assert approval.serialized_params["comment"]["value"] is None  # optional
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
    # With a ``correction`` reason the locked period is recalculated as version 2, which the
    # approval screen names as a correction, and approved and locked in turn.
    conf = {"org": "demo", "period": "2026-01", "auto_approve": True, "correction": "late report"}
    fixed = own_dag().test(run_conf=conf)
    assert str(fixed.state) == "success", task_states(fixed)
    first, second = label.runs()
    assert (second.version, second.reason, second.status) == (2, "late report", RunStatus.LOCKED)
    assert second.supersedes_id == first.id
    shown = xcom(fixed, "preview")["markdown"]
    assert "version 2 (a correction)" in shown and "**Why this correction**: late report" in shown
    assert (
        decisions(label)
        == [("approved", "airflow:airflow:auto", "approved automatically (auto_approve param)")] * 2
    )


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
    # the decision is in the audit log with the comment given in the form
    decision = "approved" if choice == "Approve" else "rejected"
    assert decisions(label) == [(decision, "airflow:fin-ops", f"{choice} by fin-ops: checked")]
    entry = audit_ledger.read(label.data_dir, label.org_id)[1]  # after "calculated"
    assert (entry["event"], entry["comment"]) == (decision, f"{choice} by fin-ops: checked")
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


ARTIFACTS = Path(os.environ.get("TM_TEST_ARTIFACTS", "var/test-artifacts"))


@contextmanager
def airflow_ui(home: Path) -> Iterator[str]:
    """Airflow's API server and UI on a free loopback port, on the tests' Airflow (its
    metadata DB), everyone an admin (no login page); yields its base URL."""
    from tests.dags.conftest import airflow_env
    from tests.servers.postgres import free_port

    port = free_port()
    env = {
        **os.environ,
        **airflow_env(home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    log = (home / f"api-server-{port}.log").open("w")
    airflow = Path(sys.executable).with_name("airflow")
    server = subprocess.Popen(
        [str(airflow), "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        last: OSError | None = None
        while True:
            assert server.poll() is None, (home / f"api-server-{port}.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError as exc:  # not listening yet: keep the last reason for the failure below
                last = exc
            assert time.monotonic() < deadline, f"Airflow's API server did not start: {last!r}"
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.mark.integration  # Airflow's API server and UI, and Chromium
def test_the_approval_screen_in_airflows_ui(
    dagbag: Any, label: Label, airflow_home: Path, chromium: Any
) -> None:
    """Finance's view of a run waiting for approval, in Airflow's own UI (its *Required
    action* page): the preview's labelled tables and amounts, and the comment field. A
    screenshot is kept under ``$TM_TEST_ARTIFACTS``; the run is then approved with a comment."""
    from urllib.parse import quote

    browser = chromium.driver
    shot = ARTIFACTS / "approval-screen.png"
    seen: dict[str, str] = {}

    def look(url: str) -> Callable[[str], None]:
        def at(run_id: str) -> None:
            page = f"{url}/dags/{DAG_ID}/runs/{quote(run_id)}/tasks/approval/required_actions"
            browser.set_window_size(1280, 2600)
            try:
                browser.get(page)
                deadline = time.monotonic() + 90
                text = ""
                while "Royalties (per contract currency)" not in text or "Comment" not in text:
                    assert time.monotonic() < deadline, text[-2000:]
                    time.sleep(1)
                    text = browser.find_element("tag name", "body").text
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(shot))
                seen["text"] = text
            finally:
                browser.set_window_size(1280, 1600)

        return at

    with airflow_ui(airflow_home) as url:
        stop = threading.Event()
        responder = threading.Thread(
            target=respond, args=("Approve", "fin-ops", stop, look(url)), daemon=True
        )
        responder.start()
        try:
            conf = {"org": "demo", "period": "2026-01", "auto_approve": False}
            dag_run = own_dag().test(run_conf=conf)
        finally:
            stop.set()
            responder.join(timeout=10)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert shot.is_file() and shot.stat().st_size > 10_000
    text = seen["text"]
    for label_ in (
        "Approve royalty run demo 2026-01?",
        "Revenue and where it went (accounting currency, GBP)",
        "Revenue\tPayees\tRetained by the label",
        "Royalties (per contract currency)",
        "Payee\tFlag\tRoyalties 2026-01\tPayable\tClosing balance",
        "Payees is what the payees earned, in the accounting currency (GBP)",
        "Comment",
    ):
        assert label_.replace("\t", " ") in text.replace("\t", " "), label_
    assert re.search(r"\d{1,3}(,\d{3})*\.\d{2} GBP", text)  # amounts: separators, decimals
    for raw in ("{'", "none %", "None"):
        assert raw not in text, raw
    assert decisions(label) == [("approved", "airflow:fin-ops", "Approve by fin-ops: checked")]
