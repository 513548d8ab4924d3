"""The end of ``make demo``: build the analysts' warehouse and print three figures from its
marts, read as an analyst would (a read-only connection)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import typer
from sqlalchemy.orm import Session, sessionmaker

from pipelines.warehouse import build


def headlines(path: Path, org_id: int) -> list[str]:
    """Three figures from the marts, read through a read-only connection as an analyst would."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        revenue = con.execute(
            "select currency, sum(revenue), count(distinct reporting_period) "
            "from fct_revenue_monthly where org_id = ? group by 1 order by 2 desc",
            [org_id],
        ).fetchall()
        owed = con.execute(
            "select currency, sum(payable), sum(carried_forward), count(*) "
            "from fct_royalty_liabilities where org_id = ? group by 1 order by 1",
            [org_id],
        ).fetchall()
        top = con.execute(
            "select track_title, currency, revenue from fct_top_tracks "
            "where org_id = ? and rank_in_org = 1 order by currency limit 1",
            [org_id],
        ).fetchall()
        unmatched = con.execute(
            "select currency, sum(amount) from fct_unmatched_revenue_ageing "
            "where org_id = ? group by 1 order by 1",
            [org_id],
        ).fetchall()
    lines = []
    lines.append(
        "Revenue: "
        + ", ".join(f"{c} {_money(a)} over {n} month(s)" for c, a, n in revenue)
        + (f"; top track: {top[0][0]} ({top[0][1]} {_money(top[0][2])})" if top else "")
    )
    lines.append(
        "Owed to payees (latest approved/locked runs): "
        + (", ".join(f"{c} {_money(p)} payable" for c, p, _, _ in owed) or "none")
    )
    lines.append(
        "Unmatched revenue in suspense: "
        + (", ".join(f"{c} {_money(a)}" for c, a in unmatched) or "none")
    )
    return lines


def _money(value: Decimal | None) -> str:
    return f"{value or Decimal(0):,.2f}"


def print_demo_warehouse(factory: sessionmaker[Session], data_dir: Path, org_id: int) -> None:
    """The end of ``make demo``: build the warehouse and print three figures from its marts."""
    result = build(factory, data_dir)
    typer.echo(f"Warehouse: {result.path} ({result.seconds} s, {result.results})")
    for line in headlines(result.path, org_id):
        typer.echo(f"  {line}")
