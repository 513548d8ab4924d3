"""DSP delivery: releases due at each DSP -> QC -> DDEX ERN 4.3 -> batches on SFTP/S3/folders."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag, task

DOC = """
### DSP delivery (DDEX ERN 4.3)

**plan** lists every (release, DSP) pair that is due: a release is due at a DSP once its
release date minus the DSP's lead time (`lead_time_days` in `schemas/dsp_profiles/<dsp>.yaml`)
has come. Each pair is one mapped **package** task: QC of the audio (WAV/FLAC, ≥16-bit,
≥44.1 kHz, >30 s, not silent), the cover (JPEG/PNG, RGB, square, ≥3000×3000) and the metadata
(ISRC/UPC, deals), then the ERN message, validated against the official XSD, staged with its
resources. A release that fails QC ends in state `qc_failed` with every reason listed (see
`/v1/deliveries`); the others go on. A release version already packaged or delivered is
never packaged again.

**upload** (runs even if some packages failed) sends each DSP's packaged releases in batches:
one folder per batch, one subfolder per release, and the `BatchComplete_<batch>.xml` manifest
only after every file is up. A failed upload is retried by later runs with exponential
back-off, into the same batch folder. Acknowledgements are read by the `dsp_ack_poll` DAG.

**Params**: `org`: organisation slug; `as_of`: YYYY-MM-DD to plan for (default: the run's date).
"""


@dag(
    dag_id="dsp_delivery",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tunemantra", "delivery"],
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "org": Param("demo", type="string", description="organisation slug"),
        "as_of": Param("", type="string", description="YYYY-MM-DD; empty: the run's date"),
    },
    doc_md=DOC,
)
def dsp_delivery() -> None:
    @task
    def plan(org: str, as_of: str) -> list[dict[str, str]]:
        from pipelines.tasks.delivery import plan_task

        return plan_task(org, as_of)

    @task(map_index_template="{{ item['upc'] }} {{ item['dsp'] }}")
    def package(org: str, item: dict[str, str], now: str) -> dict[str, Any]:
        from pipelines.tasks.delivery import package_task

        return package_task(org, item, now)

    @task(trigger_rule="all_done")
    def upload(org: str, now: str) -> dict[str, Any]:
        from pipelines.tasks.delivery import upload_task

        return upload_task(org, now)

    org = "{{ params.org }}"
    now = "{{ dag_run.run_after.isoformat() }}"
    as_of = "{{ params.as_of or dag_run.run_after.date().isoformat() }}"
    packaged = package.partial(org=org, now=now).expand(item=plan(org, as_of))
    packaged >> upload(org, now)


dsp_delivery()
