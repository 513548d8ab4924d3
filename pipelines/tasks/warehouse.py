"""What the ``analytics_dbt`` DAG's tasks call: prepare -> dbt_build -> publish, each on the
data directory of the process's settings, in the DAG's own build slot."""

from __future__ import annotations

from pipelines.resources import Resources
from pipelines.warehouse import AIRFLOW_SLOT, dbt_build, prepare, publish


def prepare_task() -> dict[str, int]:
    res = Resources.current()
    return prepare(res.factory, res.settings.data_dir, slot=AIRFLOW_SLOT)


def dbt_build_task() -> dict[str, int]:
    settings = Resources.current().settings
    return dbt_build(settings.data_dir, slot=AIRFLOW_SLOT, threads=settings.dbt_threads)


def publish_task() -> str:
    return publish(Resources.current().settings.data_dir, slot=AIRFLOW_SLOT)
