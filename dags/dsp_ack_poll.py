"""DSP acknowledgements: ACK files in each DSP's acknowledgements/ folder -> delivery states."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, dag, task

DOC = """
### DSP acknowledgement poll

Reads new files in the `acknowledgements/` folder of every DSP's delivery drop (DDEX ECHO
`FtpAcknowledgementMessage`: acknowledged message path, `FileStatus`, `ErrorText`). `FileOK`
moves the delivery from `uploaded` to `acknowledged`; any other status to `rejected` with the
DSP's text. An ACK file that is malformed, declares a DTD or entities, or names no upload is
recorded with its reason and never read again. Uploads without an ACK after the DSP's
`ack_timeout_hours` become `failed` (`ack_timeout`). The XCom has the counts per DSP.
A DSP that cannot be reached (host unknown, connection refused, credentials) does not stop the
others: every other DSP is polled first, then the run fails naming each unreachable DSP and its
error (its uploads are not timed out meanwhile). Retries poll again; ACKs are read once.

**Params**: `org`: organisation slug.
"""


@dag(
    dag_id="dsp_ack_poll",
    schedule="*/30 * * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tunemantra", "delivery"],
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    params={"org": Param("demo", type="string", description="organisation slug")},
    doc_md=DOC,
)
def dsp_ack_poll() -> None:
    @task
    def poll(org: str, now: str) -> dict[str, Any]:
        from pipelines.tasks.delivery import poll_task

        return poll_task(org, now)

    poll("{{ params.org }}", "{{ dag_run.run_after.isoformat() }}")


dsp_ack_poll()
