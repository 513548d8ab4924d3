"""Every DAG file in dags/, one parametrised test each: what any DAG of the project must be.

Parsed the way the DAG processor parses it, without import errors; one DAG per file whose id is
the file stem; parsing imports neither the project's packages nor the data libraries (task
bodies import them when they run); no cycle; the house rules for configuration (static,
timezone-aware start date, no catchup, one active run, tagged ``tunemantra`` and an area, a
``doc_md`` for finance ops, typed and described params); and its task ids. What is particular
to one DAG (its dependencies, trigger rules, assets, runs) is tested in ``test_<dag>.py``.
"""

from __future__ import annotations

import graphlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import DAGS, airflow_env

DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
# Task ids of each DAG: a DAG file added to dags/ is added here too.
TASKS = {
    "analytics_dbt": {"prepare", "dbt_build", "publish"},
    "dsp_ack_poll": {"poll"},
    "dsp_delivery": {"plan", "package", "upload"},
    "revenue_ingest": {"list_new_files", "ingest_file", "summarise", "announce"},
    "royalty_run": {
        *("plan", "buckets_of", "earn", "calculate", "verify", "preview"),
        *("who_approves", "auto_approval", "approval", "approve", "lock"),
    },
    "statements_publish": {"render", "publish", "summary"},
}
HEAVY = (
    *("polars", "pyarrow", "pandas", "numpy", "duckdb", "great_expectations"),
    *("boto3", "paramiko", "lxml", "soundfile", "PIL", "fpdf", "xlsxwriter"),
)
OURS = ("pipelines", "connectors", "royalty_engine", "schemas", "api")
TASK_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def test_every_dag_file_is_listed() -> None:
    assert {p.stem for p in DAG_FILES} == set(TASKS)


@pytest.fixture(scope="module")
def parse_imports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    """Per DAG file, what parsing it imported (top-level packages, and SQLAlchemy modules)
    beyond ``airflow.sdk`` and the files parsed before it: one fresh interpreter for all."""
    tmp = tmp_path_factory.mktemp("dag-imports")
    probe = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        import airflow.sdk
        found = {{}}
        for path in {[str(p) for p in DAG_FILES]!r}:
            before = set(sys.modules)
            spec = importlib.util.spec_from_file_location("dag_under_test", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            new = sorted(set(sys.modules) - before)
            found[path] = {{
                "top": sorted({{m.partition(".")[0] for m in sys.modules}}),
                "sqlalchemy": [m for m in new if m.partition(".")[0] == "sqlalchemy"],
            }}
        print(json.dumps(found))
        """
    )
    env = {**os.environ, **airflow_env(tmp / "airflow"), "PYTHONPATH": str(DAGS.parent)}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    found: dict[str, dict[str, list[str]]] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_parsing_the_dag_file_imports_nothing_heavy(
    dag_file: Path, parse_imports: dict[str, dict[str, list[str]]]
) -> None:
    """The DAG processor parses every file every few seconds: no data library, none of the
    project's packages, and no more of SQLAlchemy than Airflow itself imports (a dialect or a
    session would be a database touched at parse time)."""
    imported = parse_imports[str(dag_file)]
    assert not set(imported["top"]) & {*HEAVY, *OURS}, sorted(
        set(imported["top"]) & {*HEAVY, *OURS}
    )
    assert imported["sqlalchemy"] == []


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_dag_is_one_per_file_acyclic_and_configured(dagbag: Any, dag_file: Path) -> None:
    assert not {f for f in dagbag.import_errors if Path(f).name == dag_file.name}
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc).name == dag_file.name]
    assert [d.dag_id for d in dags] == [dag_file.stem]  # one DAG per file, id = stem
    (dag,) = dags
    # no cycle: every task can be ordered after its upstream tasks
    order = graphlib.TopologicalSorter({t.task_id: t.upstream_task_ids for t in dag.tasks})
    assert len(list(order.static_order())) == len(dag.tasks)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert "tunemantra" in dag.tags and len(dag.tags) >= 2, dag.tags  # the project and an area
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    assert dag.doc_md and len(dag.doc_md.strip()) > 100
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("type") and param.description, (name, param.schema)
    for task in dag.tasks:
        assert TASK_ID.match(task.task_id), task.task_id
    assert {t.task_id for t in dag.tasks} == TASKS[dag.dag_id]
