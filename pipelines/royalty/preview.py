"""What finance ops look at before approving, and a run's line-level detail."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.royalty.verification import open_run
from pipelines.royalty.warnings import warnings_for_run
from royalty_engine.periods import RunError
from schemas.store.models import Contract, Payee
from schemas.store.runs import ContractBalance, RoyaltyRun, StatementSummary


def preview(
    factory: sessionmaker[Session], *, run_id: int, data_dir: Path | None = None
) -> dict[str, Any]:
    """What a finance user looks at before approving: totals, the share of revenue in
    suspense, each payee's variance against the previous period, contracts whose balance
    became zero or negative and, given the data directory, the accountant's ``warnings``
    (``royalty_engine.warnings.RunWarning`` as dicts: ``code``, ``message``, ``subject``)."""
    with factory() as session:
        run = session.get(RoyaltyRun, run_id)
        if run is None:
            raise RunError("run_missing", f"no run {run_id}")
        names = dict(
            session.execute(sa.select(Payee.id, Payee.name).where(Payee.org_id == run.org_id)).all()
        )
        refs = dict(
            session.execute(
                sa.select(Contract.id, Contract.reference).where(Contract.org_id == run.org_id)
            ).all()
        )

        def summaries(rid: int | None) -> dict[tuple[int, str], StatementSummary]:
            if rid is None:
                return {}
            rows = session.scalars(
                sa.select(StatementSummary).where(StatementSummary.run_id == rid)
            )
            return {(r.payee_id, r.currency): r for r in rows}

        def balances(rid: int | None) -> dict[int, ContractBalance]:
            if rid is None:
                return {}
            rows = session.scalars(sa.select(ContractBalance).where(ContractBalance.run_id == rid))
            return {r.contract_id: r for r in rows}

        now, before = summaries(run.id), summaries(run.previous_run_id)
        bal_now, bal_before = balances(run.id), balances(run.previous_run_id)
        totals, period, version = run.totals, run.period, run.version
        previous_period = (
            session.get(RoyaltyRun, run.previous_run_id).period  # type: ignore[union-attr]
            if run.previous_run_id
            else None
        )
    variance = []
    for key in sorted(set(now) | set(before)):
        a = before[key].earnings if key in before else Decimal(0)
        b = now[key].earnings if key in now else Decimal(0)
        pct = None if a == 0 else str(((b - a) / abs(a) * 100).quantize(Decimal("0.1")))
        variance.append(
            {
                "payee_id": key[0],
                "payee": names.get(key[0], ""),
                "currency": key[1],
                "previous": str(a),
                "earnings": str(b),
                "change": str(b - a),
                "change_pct": pct,
            }
        )
    flagged = []
    for cid, row in sorted(bal_now.items()):
        prev_closing = bal_before[cid].closing if cid in bal_before else Decimal(0)
        if row.closing < 0 and prev_closing >= 0:
            flagged.append(
                {
                    "contract": refs.get(cid, str(cid)),
                    "flag": "newly_negative",
                    "closing": str(row.closing),
                }
            )
        elif row.earnings == 0 and cid in bal_before and bal_before[cid].earnings != 0:
            flagged.append(
                {
                    "contract": refs.get(cid, str(cid)),
                    "flag": "earnings_stopped",
                    "closing": str(row.closing),
                }
            )
    suspense_share = {}
    for cur, t in totals.items():
        if "revenue" in t and Decimal(t["revenue"]) != 0:
            share = Decimal(t["suspense"]) / Decimal(t["revenue"]) * 100
            suspense_share[cur] = str(share.quantize(Decimal("0.01")))
    warnings = [] if data_dir is None else warnings_for_run(factory, data_dir, run_id=run_id)
    lines = [
        f"## Royalty run {run_id}: {period} v{version}",
        "",
        "| currency | " + " | ".join(sorted({k for t in totals.values() for k in t})) + " |",
    ]
    keys = sorted({k for t in totals.values() for k in t})
    lines.append("|---" * (len(keys) + 1) + "|")
    for cur, t in sorted(totals.items()):
        lines.append(f"| {cur} | " + " | ".join(t.get(k, "") for k in keys) + " |")
    lines += ["", f"Suspense share of revenue: {suspense_share or 'none'} %", ""]
    lines.append(f"Variance against {previous_period or 'no previous period'}:")
    lines += [
        f"- {v['payee']} ({v['currency']}): {v['previous']} -> {v['earnings']}"
        + (f" ({v['change_pct']} %)" if v["change_pct"] else "")
        for v in variance
    ]
    if flagged:
        lines += ["", "Flags:"] + [
            f"- {f['contract']}: {f['flag']} ({f['closing']})" for f in flagged
        ]
    return {
        "run_id": run_id,
        "period": period,
        "previous_period": previous_period,
        "totals": totals,
        "suspense_share_pct": suspense_share,
        "variance": variance,
        "flags": flagged,
        "warnings": [w.as_dict() for w in warnings],
        "markdown": "\n".join(lines),
    }


def statement_detail(
    factory: sessionmaker[Session], data_dir: Path, *, run_id: int, payee_id: int
) -> pl.DataFrame:
    """A payee's line-level detail for a run (see ``run_detail``)."""
    return run_detail(factory, data_dir, run_id=run_id, payee_ids=[payee_id])


def run_detail(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    run_id: int,
    payee_ids: list[int] | None = None,
) -> pl.DataFrame:
    """Line-level detail for a run (by contract, track, source, territory, usage type and
    month) for some payees, or all when ``payee_ids`` is None, derived in one pass from the
    run's inputs (checked against their hashes) and its snapshot; the amounts of each
    contract add up to its earnings in the run."""
    from royalty_engine.detail import contract_detail

    past = open_run(factory, data_dir, run_id)
    if past.changed_inputs:
        raise RunError(
            "inputs_changed",
            f"the lake files of run {run_id} changed since it ran: "
            + ", ".join(past.changed_inputs[:5]),
        )
    folder = past.folder
    ledger = pl.read_parquet(folder / "outputs" / "ledger.parquet")
    mine = ledger if payee_ids is None else ledger.filter(pl.col("payee_id").is_in(payee_ids))
    contracts = mine["contract_id"].to_list()
    if not contracts:
        raise RunError("payee_missing", f"payee(s) {payee_ids} have no contract in run {run_id}")
    return contract_detail(
        past.lines(data_dir),
        past.terms(),
        period=past.period,
        accounting_currency=past.currency,
        slots=pl.read_parquet(folder / "outputs" / "slots.parquet"),
        ledger=ledger,
        contract_ids=contracts,
    )
