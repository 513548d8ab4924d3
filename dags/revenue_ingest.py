"""Revenue ingestion: new report files in an organisation's drops -> the Parquet lake."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, Param, dag, task

REVENUE_LINES = Asset("tunemantra-lake://revenue_lines")

DOC = """
### Revenue ingestion

Every run lists the **ready** report files in the organisation's configured drops (local
folder, SFTP or S3; `tunemantra drop add`), skipping files still being uploaded (a DDEX
`.ctrl` semaphore missing, or a size that changed since the previous run) and files already
in the ingestion ledger. Each new file is one mapped task instance of **ingest_file**:
parse (format detected from name and header) → validate (every bad row with line, field and
reason) → match to the catalogue (ISRC, UPC, DSP ids, remembered matches) → convert currency →
write Parquet, then record it in the ledger. The same content under another name is recorded
as a duplicate and adds nothing. A file that cannot be read is **quarantined** with a
machine-readable reason; the rest of the batch goes on.

Each file's task log says what happened to it in one line: lines parsed, accepted and
rejected (with the top reasons), matched and left in suspense, or why it was quarantined.

**summarise** re-matches suspense lines against the current catalogue and returns the counts
(see its XCom). The per-file findings report is written to
`$TUNEMANTRA_DATA_DIR/reports/ingest/org=<id>/file=<id>/findings.json`.
**announce** emits the `tunemantra-lake://revenue_lines` Asset (for the warehouse) only when
the batch changed the lake (a file ingested or suspense re-matched); otherwise it is skipped.

**Params**: `org`: the organisation's slug (e.g. `demo`), or `*` (the default, what the
hourly schedule polls): every organisation that has an enabled drop.
"""


@dag(
    dag_id="revenue_ingest",
    schedule="@hourly",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tunemantra", "ingestion"],
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "org": Param(
            "*",
            type="string",
            description="organisation slug, or * for every organisation that has drops",
        )
    },
    doc_md=DOC,
)
def revenue_ingest() -> None:
    @task
    def list_new_files(org: str) -> list[dict[str, str]]:
        from pipelines.tasks.ingest import list_new_files as run

        return run(org)

    @task(map_index_template="{{ item['name'] }}")
    def ingest_file(org: str, item: dict[str, str]) -> dict[str, Any]:
        from pipelines.tasks.ingest import ingest_file as run

        return run(org, item)

    @task(trigger_rule="all_done")
    def summarise(org: str, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
        from pipelines.tasks.ingest import summarise_ingest

        # A slice fetches every mapped result in one request; iterating asks per item and
        # logs an "XCom not found" error for the one past the end.
        return summarise_ingest(org, list(outcomes[:]))

    @task(outlets=[REVENUE_LINES])
    def announce(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from pipelines.tasks.ingest import lake_changed

        if not lake_changed(summary):
            raise AirflowSkipException("nothing was ingested: no Asset event")
        extra = {k: summary[k] for k in ("files", "ingested", "lines")}
        context["outlet_events"][REVENUE_LINES].extra = extra
        return extra

    org = "{{ params.org }}"
    outcomes = ingest_file.partial(org=org).expand(item=list_new_files(org))
    announce(summarise(org, outcomes))


revenue_ingest()
