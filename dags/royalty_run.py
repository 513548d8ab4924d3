"""The period run: snapshot and compute -> verify -> preview -> approval -> lock -> Asset."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Asset, Param, dag, task

ROYALTY_RUNS = Asset("tunemantra-runs://royalty_runs")
COMMENT = Param(
    None,
    type=["null", "string"],  # optional: the form does not insist
    title="Comment",
    description="Why you approve or reject (kept with your decision in the audit log)",
    source="task",
)


class RoyaltyApproval(ApprovalOperator):
    """Airflow's approval; a rejection is recorded with its comment before the task fails."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event and list(event.get("chosen_options") or []) == [self.REJECT]:
            from pipelines.tasks.royalty import transition

            user = event.get("responded_by_user") or {}
            transition(
                context["params"]["org"],
                context["params"]["period"],
                "rejected",
                f"airflow:{user.get('name', 'unknown')}",
                run_id=int(context["ti"].xcom_pull(task_ids="calculate")["run_id"]),
                comment=(event.get("params_input") or {}).get("comment"),
            )
        return super().execute_complete(context=context, event=event)


DOC = """
### Royalty run for one period

1. **plan**: snapshots the organisation's contracts, rates, splits, charges, PPD prices and
   FX and lists the lake files of the period. A locked period is refused unless the
   `correction` param says why it is recalculated.
2. **earn** (one mapped task per payee bucket, `buckets` param): each bucket's royalties from
   the Parquet lake — splits, rates, escalations. With Celery or Kubernetes executors the
   buckets run on different workers (they need the same data directory); on one machine
   the default is one bucket.
3. **calculate**: merges the buckets and settles every contract: recoupment,
   cross-collateralisation, reserves, withholding tax, minimum payments. The run must
   reconcile to the cent per currency (revenue = payees + retained + suspense) or nothing is
   recorded. The snapshot (Parquet + SHA-256) is kept beside the run.
4. **verify**: re-reads every file the run wrote against its manifest hashes.
5. **preview**: what needs a look (contracts that became negative or stopped earning, payees
   whose royalties changed by at least `flag_pct` % and `flag_minimum`, the accounting
   warnings), the revenue reconciliation in the accounting currency, the royalties per
   contract currency, and each payee against the previous period (see its XCom and the
   approval's text).
6. **approval**: a finance user approves or rejects in *Required actions* (Airflow's
   human-in-the-loop), with a comment that the audit log keeps with the decision. With the
   `auto_approve` param (the demo's choice) it is approved as `airflow:auto`. Rejecting
   leaves the run *calculated*, records the rejection and fails the DAG run (the approval
   task fails, nothing after it runs): a rejected period never shows green.
   A period that has not ended yet is refused here (`period_not_ended`): run it as a
   preview, or give the `allow_unended` param (why), which the audit log keeps.
7. **lock**: the period is locked (corrections become new versions with a per-payee diff) and
   the `tunemantra-runs://royalty_runs` Asset is emitted for statements and analytics.

Every step is also appended to the organisation's hash-chained audit ledger
(`tunemantra audit verify`).

**Params**: `org` (slug), `period` (`2026-01`, `2026-Q1`, `2026-H1`), `auto_approve`,
`buckets` (payee buckets to spread the earnings over; 1 on a single machine),
`allow_unended` (empty, or the reason to approve and lock a period before its end date),
`correction` (empty, or why a **locked** period is recalculated: the run becomes a new
version with a per-payee diff against the locked one, shown on the approval screen),
`flag_pct` and `flag_minimum` (a payee's change against the previous period is flagged from
this percentage and this amount in its currency; 25 % and 50.00 by default).
"""


@dag(
    dag_id="royalty_run",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tunemantra", "royalties"],
    params={
        "org": Param("demo", type="string", description="organisation slug"),
        "period": Param(
            "2026-H1",
            type="string",
            pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4]|H[12])$",
            description="2026-01, 2026-Q1 or 2026-H1",
        ),
        "auto_approve": Param(False, type="boolean", description="approve without a human"),
        "buckets": Param(
            1,
            type="integer",
            minimum=1,
            maximum=256,
            description="payee buckets: one earn task each (spread over workers)",
        ),
        "allow_unended": Param(
            "",
            type="string",
            description="approve and lock a period that has not ended: why (audited); "
            "empty: such a period is refused",
        ),
        "correction": Param(
            "",
            type="string",
            description="recalculate a LOCKED period as a new version: why (audited); "
            "empty: a locked period is refused",
        ),
        "flag_pct": Param(
            25,
            type="number",
            minimum=0,
            description="flag a payee whose royalties changed by at least this % ...",
        ),
        "flag_minimum": Param(
            50,
            type="number",
            minimum=0,
            description="... and by at least this amount (in the payee's currency)",
        ),
    },
    doc_md=DOC,
)
def royalty_run() -> None:
    @task
    def plan(org: str, period: str, **context: Any) -> dict[str, Any]:
        from pipelines.tasks.royalty import plan as run

        params = context["params"]
        return run(org, period, int(params["buckets"]), params["correction"])

    @task
    def buckets_of(planned: dict[str, Any]) -> list[int]:
        return list(planned["buckets"])

    @task(max_active_tis_per_dag=2)
    def earn(bucket: int, planned: dict[str, Any]) -> str:
        from pipelines.tasks.royalty import earn as run

        return run(planned["plan"], bucket)

    @task
    def calculate(org: str, period: str, planned: dict[str, Any], _parts: Any) -> dict[str, Any]:
        from pipelines.tasks.royalty import calculate as run

        return run(org, period, planned["plan"])

    @task
    def verify(report: dict[str, Any]) -> dict[str, Any]:
        from pipelines.tasks.royalty import verify as run

        return run(int(report["run_id"]))

    @task
    def preview(
        report: dict[str, Any], _verified: dict[str, Any], **context: Any
    ) -> dict[str, Any]:
        from pipelines.tasks.royalty import preview as run

        params = context["params"]
        return run(int(report["run_id"]), params["flag_pct"], params["flag_minimum"])

    @task.branch
    def who_approves(**context: Any) -> str:
        return "auto_approval" if context["params"]["auto_approve"] else "approval"

    @task
    def auto_approval() -> dict[str, Any]:
        return {
            "chosen_options": ["Approve"],
            "responded_by_user": {"name": "airflow:auto"},
            "params_input": {"comment": "approved automatically (auto_approve param)"},
        }

    approval = RoyaltyApproval(
        task_id="approval",
        subject="Approve royalty run {{ params.org }} {{ params.period }}?",
        body="{{ ti.xcom_pull(task_ids='preview')['markdown'] }}",
        params={"comment": COMMENT},
        fail_on_reject=True,  # a rejected period ends the DAG run failed, never green
    )

    @task(trigger_rule="none_failed_min_one_success")
    def approve(org: str, period: str, **context: Any) -> dict[str, Any]:
        from pipelines.tasks.royalty import transition

        ti = context["ti"]
        answer = ti.xcom_pull(task_ids="approval") or ti.xcom_pull(task_ids="auto_approval")
        user = (answer or {}).get("responded_by_user") or {}
        # the run that was previewed: refused if the period was run again since
        shown = int(ti.xcom_pull(task_ids="calculate")["run_id"])
        actor = f"airflow:{user.get('name', 'unknown')}"
        why = context["params"]["allow_unended"]
        comment = ((answer or {}).get("params_input") or {}).get("comment")
        return transition(
            org, period, "approved", actor, run_id=shown, allow_unended=why, comment=comment
        )

    @task(outlets=[ROYALTY_RUNS])
    def lock(org: str, period: str, approved: dict[str, Any], **context: Any) -> dict[str, Any]:
        from pipelines.tasks.royalty import transition

        report = transition(
            org,
            period,
            "locked",
            "airflow",
            run_id=int(approved["run_id"]),
            allow_unended=context["params"]["allow_unended"],
        )
        # The statements DAG reads which run to publish from the event.
        context["outlet_events"][ROYALTY_RUNS].extra = {
            "org": org,
            "period": period,
            "version": report["version"],
            "run_id": report["run_id"],
        }
        return report

    org, period = "{{ params.org }}", "{{ params.period }}"
    planned = plan(org, period)
    parts = earn.partial(planned=planned).expand(bucket=buckets_of(planned))
    report = calculate(org, period, planned, parts)
    shown = preview(report, verify(report))
    branch = who_approves()
    shown >> branch
    auto = auto_approval()
    branch >> [approval, auto]
    approved = approve(org, period)
    [approval, auto] >> approved
    lock(org, period, approved)


royalty_run()
