"""The demo's royalty period: calculate, approve and lock the sample label's first quarter,
then print each payee's statement figures and the reconciliation line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from pipelines.royalty.run import run_period
from pipelines.royalty.transitions import transition
from schemas.store.models import Payee
from schemas.store.runs import ContractBalance

# The label's artist deals account half-yearly (a few quarterly or monthly); the demo's
# reports are January's, so the demo closes the first half-year.
DEMO_PERIOD = "2026-H1"


def run_demo_period(factory: sessionmaker[Session], data_dir: Path, org_id: int) -> dict[str, Any]:
    report = run_period(factory, data_dir, org_id=org_id, period=DEMO_PERIOD, actor="demo")
    for step in ("approved", "locked"):
        transition(factory, data_dir, org_id=org_id, period=DEMO_PERIOD, actor="demo", to=step)
    out = report.as_dict()
    out["status"] = "locked"
    with factory() as session:
        rows = session.execute(
            sa.select(ContractBalance, Payee.name)
            .join(Payee, Payee.id == ContractBalance.payee_id)
            .where(ContractBalance.run_id == report.run_id, ContractBalance.org_id == org_id)
            .order_by(Payee.name, ContractBalance.currency)
        ).all()
    payees: dict[tuple[str, str], dict[str, Any]] = {}
    for balance, name in rows:
        entry = payees.setdefault(
            (name, balance.currency),
            {
                "statuses": set(),
                **dict.fromkeys(
                    ("earnings", "recouped", "reserve_held", "payable", "carried_forward"),
                    Decimal("0.00"),
                ),
            },
        )
        for k in ("earnings", "recouped", "reserve_held", "payable", "carried_forward"):
            entry[k] += getattr(balance, k)
        entry["statuses"].add(balance.status)
    out["payees"] = payees
    return out


def print_royalty(report: dict[str, Any]) -> None:
    console = Console(width=150)
    table = Table(
        title=f"Royalty run {report['period']} (v{report['version']}, {report['status']})"
    )
    for col in (
        "payee",
        "currency",
        "earnings",
        "recouped",
        "reserves held",
        "payable",
        "carried forward",
        "why",
    ):
        table.add_column(col, justify="left" if col in {"payee", "currency", "why"} else "right")
    for (name, currency), e in report["payees"].items():
        table.add_row(
            name,
            currency,
            *(
                f"{e[k]:,.2f}"
                for k in ("earnings", "recouped", "reserve_held", "payable", "carried_forward")
            ),
            ", ".join(sorted(e["statuses"])),
        )
    console.print(table)
    for cur, t in report["totals"].items():
        if "revenue" in t:
            console.print(
                f"Reconciled {cur}: revenue {t['revenue']} = payees {t['payees']} + "
                f"label retained {t['retained']} + suspense {t['suspense']}"
            )
    console.print(f"Run outputs: {Path(report['outputs']['manifest']).parent}")
