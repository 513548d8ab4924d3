"""The demo's last step: render the locked period's statements, publish them to the label's
local outbound folder, and show each payee's payable amount, the path of their PDF and how to
open the payee portal with a sample payee's key."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from demo.royalty import DEMO_PERIOD
from pipelines.statements.publish import publish_run
from schemas.store import db
from schemas.store.keys import issue_key
from schemas.store.models import Payee, Role
from schemas.store.runs import RoyaltyRun, StatementSummary

SAMPLE_PAYEE = "Mara Ellison"  # self-billing, unrecouped: her statement shows how


@dataclass
class DemoStatements:
    # payee, currency, payable, closing, statement PDF, self-billing invoice PDF ("" if none)
    rows: list[tuple[str, str, Decimal, Decimal, str, str]]
    published: list[str]  # "target: status (files) -> folder"
    payee_name: str
    payee_key: str


def publish_demo_statements(
    factory: sessionmaker[Session], data_dir: Path, org_id: int, *, secret_key: str
) -> DemoStatements:
    results = publish_run(factory, data_dir, org_id=org_id, period=DEMO_PERIOD, actor="demo")
    published = [
        f"{r.target} ({r.url}): {r.status}, {r.files} files in {r.folder}" for r in results
    ]
    with factory() as session:
        run = session.scalars(
            sa.select(RoyaltyRun)
            .where(RoyaltyRun.org_id == org_id, RoyaltyRun.period == DEMO_PERIOD)
            .order_by(RoyaltyRun.version.desc())
        ).first()
        assert run is not None
        rows = session.execute(
            sa.select(StatementSummary, Payee.name)
            .join(Payee, Payee.id == StatementSummary.payee_id)
            .where(StatementSummary.run_id == run.id)
            .order_by(Payee.name, StatementSummary.currency)
        ).all()
        version, period = run.version, run.period
    from pipelines.layout import DataDir

    folder = DataDir(data_dir).statements(org_id, period, version)
    table: list[tuple[str, str, Decimal, Decimal, str, str]] = []
    for summary, name in rows:
        here = folder / f"payee{summary.payee_id}"
        pdfs = sorted(here.glob(f"statement_*_{summary.currency}.pdf"))
        invoices = sorted(here.glob(f"invoice_*_{summary.currency}.pdf"))
        table.append(
            (
                name,
                summary.currency,
                summary.payable,
                summary.closing,
                _shown(pdfs[0]) if pdfs else "",
                invoices[0].name if invoices else "",
            )
        )
    with db.transaction(factory, actor="demo") as session:
        payee_id = session.scalar(
            sa.select(Payee.id).where(Payee.org_id == org_id, Payee.name == SAMPLE_PAYEE)
        )
        _, key = issue_key(
            session,
            org_id=org_id,
            role=Role.PAYEE,
            payee_id=payee_id,
            secret_key=secret_key,
            label="demo portal",
        )
    return DemoStatements(table, published, SAMPLE_PAYEE, key)


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_statements(result: DemoStatements) -> None:
    console = Console(width=200)
    table = Table(title=f"Statements {DEMO_PERIOD}: payable and the PDF each payee receives")
    for col in ("payee", "currency", "payable", "closing balance", "PDF", "self-billing invoice"):
        table.add_column(col, justify="right" if col in {"payable", "closing balance"} else "left")
    for name, currency, payable, closing, pdf, invoice in result.rows:
        table.add_row(name, currency, f"{payable:,.2f}", f"{closing:,.2f}", pdf, invoice)
    console.print(table)
    for line in result.published:
        console.print(f"Published to {line}")
    console.print(
        "Payee portal: run `make api` (or `uv run tunemantra api`), open "
        "http://127.0.0.1:8000/portal/ and sign in as "
        f"{result.payee_name} with the key {result.payee_key}"
    )
