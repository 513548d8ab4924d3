"""The dsp_delivery and dsp_ack_poll DAGs: configuration, and real ``dag.test()`` runs that
deliver a small label to a local DSP folder, rerun without duplicates, and read ACKs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.ddex.ack import ack_xml
from pipelines import resources
from pipelines.settings import get_settings
from schemas.store.deliveries import Delivery, DeliveryState
from tests.conftest import make_org
from tests.ddex.conftest import Label, make_label, profile_yaml

pytestmark = pytest.mark.slow


def test_dags_are_configured(dagbag: Any) -> None:
    dag = dagbag.get_dag("dsp_delivery")
    assert {"tunemantra", "delivery"} <= set(dag.tags)
    assert dag.doc_md and "lead time" in dag.doc_md and "BatchComplete" in dag.doc_md
    assert dag.get_task("upload").trigger_rule == "all_done"
    assert dag.get_task("package").upstream_task_ids == {"plan"}
    assert all(t.retries >= 1 for t in dag.tasks)
    poll = dagbag.get_dag("dsp_ack_poll")
    assert poll.doc_md and "ack_timeout" in poll.doc_md


@pytest.fixture
def label(
    airflow_home: Path, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Label]:
    store = tmp_path / "tunemantra.db"
    shutil.copy(sqlite_template, store)
    data_dir = tmp_path / "var"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    profile_yaml(profiles, "harbour")
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", f"sqlite:///{store}")
    monkeypatch.setenv("TUNEMANTRA_DSP_PROFILES", str(profiles))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    factory = resources.get_session_factory()
    org_id = make_org(factory, "demo")
    try:
        yield make_label(factory, org_id, get_settings().data_dir)
    finally:
        resources.get_engine().dispose()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def run_dag(
    dagbag: Any, dag_id: str, conf: dict[str, str]
) -> tuple[str, dict[tuple[str, int], Any]]:
    from airflow.models.xcom import XComModel
    from airflow.settings import Session as AirflowSession

    dag_run = dagbag.get_dag(dag_id).test(run_conf=conf)
    with AirflowSession() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_id, key="return_value")
        )
        xcoms = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in rows}
    return str(dag_run.state), xcoms


def test_delivery_dag_delivers_once_and_acks_are_read(dagbag: Any, label: Label) -> None:
    state, xcoms = run_dag(dagbag, "dsp_delivery", {"org": "demo", "as_of": "2026-03-02"})
    assert state == "success"
    planned = xcoms[("plan", -1)]
    assert sorted(p["upc"] for p in planned) == ["5063450000179", "5063450000346"]
    packaged = [v for (task, i), v in xcoms.items() if task == "package" and i >= 0]
    assert sorted(p["state"] for p in packaged) == ["packaged", "packaged"]
    assert xcoms[("upload", -1)]["harbour"]["uploaded"] == 2
    folder = label.data_dir / "dsp" / "harbour"
    (batch,) = [p for p in folder.iterdir() if p.is_dir()]
    assert (batch / f"BatchComplete_{batch.name}.xml").is_file()

    state, xcoms = run_dag(dagbag, "dsp_delivery", {"org": "demo", "as_of": "2026-03-02"})
    assert state == "success"
    assert sorted(v["state"] for (t, i), v in xcoms.items() if t == "package" and i >= 0) == [
        "uploaded",
        "uploaded",
    ]
    assert xcoms[("upload", -1)]["harbour"]["uploaded"] == 0
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 1  # no second batch

    with label.factory() as s:
        paths = list(s.scalars(sa.select(Delivery.message_path).order_by(Delivery.id)))
    (folder / "acknowledgements").mkdir()
    for n, path in enumerate(paths):
        (folder / "acknowledgements" / f"ack{n}.xml").write_bytes(
            ack_xml(path or "", "FileOK", ack_id=str(n))
        )
    state, xcoms = run_dag(dagbag, "dsp_ack_poll", {"org": "demo"})
    assert state == "success"
    assert xcoms[("poll", -1)]["harbour"]["applied"] == 2
    with label.factory() as s:
        assert set(s.scalars(sa.select(Delivery.state))) == {DeliveryState.ACKNOWLEDGED}
