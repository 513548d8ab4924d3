"""Airflow for the DAG tests: a throwaway AIRFLOW_HOME with a fresh SQLite metadata DB, the
project's dags/ folder, no examples, low parallelism; and the project's DAGs loaded from it.

Airflow reads its configuration once, when ``airflow`` is first imported, so the environment
is set before that import and nothing else in the test session may import Airflow first.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
SECRET = "test-secret-key-not-a-placeholder"


def demo_store(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, seed: int
) -> tuple[Any, Path, int]:
    """TuneMantra's settings pointed at a fresh SQLite store and data folder (as the DAG's
    task processes see them), and the sample label built there: (factory, data dir, org)."""
    import shutil

    from demo.label import run_demo
    from pipelines import resources
    from pipelines.settings import get_settings

    store = tmp_path / "tunemantra.db"
    shutil.copy(sqlite_template, store)
    data_dir = tmp_path / "var"
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", f"sqlite:///{store}")
    monkeypatch.delenv("TUNEMANTRA_ENV", raising=False)
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    factory = resources.get_session_factory()
    org_id = run_demo(factory, seed=seed, secret_key=SECRET, data_dir=data_dir).org_id
    return factory, data_dir, org_id


def airflow_env(home: Path) -> dict[str, str]:
    """The environment of a local Airflow for tests (as `make airflow`, minus the servers)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """AIRFLOW_HOME in a temporary folder, with its metadata DB reset (dropped and created)."""
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in airflow_env(home).items():
            mp.setenv(name, value)
        if "airflow" in sys.modules:  # configured already: only usable if it is this home
            from airflow.configuration import AIRFLOW_HOME

            assert Path(AIRFLOW_HOME) == home, "Airflow was imported before the DAG tests"
        from airflow.utils import db

        db.resetdb()
        yield home


@pytest.fixture(scope="session")
def dagbag(airflow_home: Path) -> Any:
    """Every DAG in the project's dags/ folder, parsed the way the DAG processor parses them."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag
