"""What finance ops look at before approving, and a run's line-level detail.

``preview`` gathers a run's figures from the store (``Preview``); ``render_markdown`` words
them for the approval screen (Airflow's human-in-the-loop body, the CLI and the API): labelled
tables, every amount with its currency and two decimals (``schemas.money.format_amount``), each
payee's variance against the previous period, and flags worded for people.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.royalty.verification import open_run
from pipelines.royalty.warnings import warnings_for_run
from royalty_engine.periods import RunError
from royalty_engine.warnings import RunWarning
from schemas.money import cents, format_amount
from schemas.statement_figures import FIGURE_LABELS
from schemas.store.models import Contract, Payee
from schemas.store.runs import ContractBalance, RoyaltyRun, StatementSummary

log = logging.getLogger(__name__)

MINUS = "\u2212"  # the typographic minus: the approval screen is read, not parsed


@dataclass(frozen=True)
class VarianceThreshold:
    """When a payee's change against the previous period is flagged: at least ``pct`` per
    cent of the previous period's royalties *and* at least ``minimum`` in the payee's currency
    (a payee going from 0.10 to 0.20 is +100 % and not worth a look). A payee with royalties
    now and none before (or the reverse) is flagged when the amount reaches ``minimum``."""

    pct: Decimal = Decimal(25)
    minimum: Decimal = Decimal(50)


DEFAULT_THRESHOLD = VarianceThreshold()


def money(amount: Decimal | str, currency: str | None = None) -> str:
    """An amount on the approval screen (``−2.94 GBP``)."""
    return format_amount(amount, currency, minus=MINUS)


def _pct(value: Decimal | None) -> str:
    if value is None:
        return "—"
    sign = "+" if value > 0 else (MINUS if value < 0 else "")
    return f"{sign}{abs(value):,.1f} %"


@dataclass(frozen=True)
class Variance:
    """One payee's royalties (in one currency) this period against the previous period."""

    payee_id: int
    payee: str
    currency: str
    previous: Decimal | None  # None: no previous run to compare with
    earnings: Decimal
    payable: Decimal = Decimal(0)
    closing: Decimal = Decimal(0)
    flag: str | None = None  # "rose", "fell", "new", "stopped" (see ``variance``)

    @property
    def change(self) -> Decimal | None:
        return None if self.previous is None else self.earnings - self.previous

    @property
    def change_pct(self) -> Decimal | None:
        if self.previous is None or self.previous == 0:
            return None
        return ((self.earnings - self.previous) / abs(self.previous) * 100).quantize(Decimal("0.1"))

    def message(self, previous_period: str | None) -> str:
        """The flag in a sentence: ``Mara Ellison: royalties up 48.0 % (150.00 → 222.00 GBP)``."""
        before = money(self.previous or Decimal(0), self.currency)
        now = money(self.earnings, self.currency)
        was = f"in {previous_period}" if previous_period else "the period before"
        text = {
            "rose": f"royalties up {_pct(self.change_pct)} ({before} {was} → {now})",
            "fell": f"royalties down {_pct(self.change_pct)} ({before} {was} → {now})",
            "new": f"first royalties ({now}; none {was})",
            "stopped": f"no royalties this period ({before} {was})",
        }.get(self.flag or "", "")
        return f"{self.payee}: {text}"

    def as_dict(self) -> dict[str, Any]:
        change, pct = self.change, self.change_pct
        return {
            "payee_id": self.payee_id,
            "payee": self.payee,
            "currency": self.currency,
            "previous": None if self.previous is None else str(cents(self.previous)),
            "earnings": str(cents(self.earnings)),
            "change": None if change is None else str(cents(change)),
            "change_pct": None if pct is None else str(pct),
            "payable": str(cents(self.payable)),
            "closing": str(cents(self.closing)),
            "flag": self.flag,
        }


def variance(
    payee_id: int,
    payee: str,
    currency: str,
    previous: Decimal | None,
    earnings: Decimal,
    threshold: VarianceThreshold = DEFAULT_THRESHOLD,
    **figures: Decimal,
) -> Variance:
    """A payee's variance, flagged by ``threshold`` (never without a previous run)."""
    flag = None
    if previous is not None and abs(earnings - previous) >= threshold.minimum:
        if previous == 0:
            flag = "new"
        elif earnings == 0:
            flag = "stopped"
        elif abs(earnings - previous) / abs(previous) * 100 >= threshold.pct:
            flag = "rose" if earnings > previous else "fell"
    return Variance(payee_id, payee, currency, previous, earnings, flag=flag, **figures)


@dataclass(frozen=True)
class ContractFlag:
    """A contract whose balance needs a look: ``newly_negative`` (its closing balance went
    below zero this period) or ``earnings_stopped`` (it earned before and nothing now)."""

    contract: str
    flag: str
    currency: str
    closing: Decimal
    cause: str = ""  # what explains it, in words ("Apple return on 2026-07")

    def message(self) -> str:
        if self.flag == "newly_negative":
            text = f"newly negative ({money(self.closing, self.currency)})"
        elif self.flag == "earnings_stopped":
            text = "earned nothing this period"
        else:
            text = self.flag.replace("_", " ")
        return f"{self.contract}: {text}" + (f", {self.cause}" if self.cause else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "flag": self.flag,
            "currency": self.currency,
            "closing": str(cents(self.closing)),
            "cause": self.cause,
            "message": self.message(),
        }


def negative_cause(balance: Any, returns: tuple[str, str, Decimal] | None = None) -> str:
    """Why a contract's balance went negative, in words: the biggest return (``returns``: the
    source as the run's detail names it (``statement_figures.source_expr``), month, amount)
    when its royalties were negative, else the advance or costs it has not recouped yet."""
    cur = balance.currency
    if balance.earnings < 0:
        if returns is not None:
            source, month, _amount = returns
            return f"{source or 'Unknown source'} return on {month}"
        return f"negative royalties this period ({money(balance.earnings, cur)}: returns)"
    parts = []
    if balance.advances:
        parts.append(f"advance of {money(balance.advances, cur)}")
    if balance.costs:
        parts.append(f"recoupable costs of {money(balance.costs, cur)}")
    if not parts:
        return ""
    return " and ".join(parts) + f" not yet recouped ({money(balance.recouped, cur)} recouped)"


# The run's totals (``RoyaltyRun.totals``) by currency, labelled, in reading order: the
# reconciliation in the accounting currency, then the royalties per contract currency.
RECONCILIATION = {
    "revenue": "Revenue",
    "payees": "Payees",
    "retained": "Retained by the label",
    "retained_unsplit": "of which unsplit",
    "suspense": "Suspense",
    "rounding_residue": "Rounding residue",
}
ROYALTIES = {
    "royalties": "Royalties",
    "reserves_held": "Reserves held",
    "reserves_released": "Reserves released",
    "tax_withheld": "Tax withheld",
    "payable": "Payable",
    "carried_forward": "Carried forward",
}
EXPLAIN = (
    "**Payees** is what the payees earned, in the accounting currency ({acct}): the figure "
    "that reconciles with revenue (revenue = payees + retained + suspense, to the cent). "
    "**Royalties** are the same earnings in each contract's own currency, converted at the "
    "run's rates: what the statements show and the payees are paid."
)


@dataclass
class Preview:
    """What a finance user decides on (see ``render_markdown``)."""

    run_id: int
    period: str
    version: int
    status: str
    currency: str  # the accounting currency
    previous_period: str | None
    totals: dict[str, dict[str, str]]
    variance: list[Variance]
    flags: list[ContractFlag]
    threshold: VarianceThreshold = DEFAULT_THRESHOLD
    correction: str = ""  # why this version corrects a locked run ("" for a first version)
    diff: list[dict[str, Any]] = field(default_factory=list)
    payee_names: dict[int, str] = field(default_factory=dict)
    # the accountant's warnings on the run's terms (``royalty_engine.warnings``)
    warnings: list[RunWarning] = field(default_factory=list)

    @property
    def suspense_share(self) -> dict[str, Decimal]:
        """Per currency with revenue: suspense as a percentage of revenue (two decimals)."""
        out = {}
        for cur, t in self.totals.items():
            if Decimal(t.get("revenue") or 0) != 0:
                share = Decimal(t.get("suspense") or 0) / Decimal(t["revenue"]) * 100
                out[cur] = share.quantize(Decimal("0.01"))
        return out

    def needs_a_look(self) -> list[str]:
        """Every flag, worded: the contracts first, then the payees' variances."""
        return [f.message() for f in self.flags] + [
            v.message(self.previous_period) for v in self.variance if v.flag
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "period": self.period,
            "version": self.version,
            "previous_period": self.previous_period,
            "currency": self.currency,
            "totals": self.totals,
            "suspense_share_pct": {k: str(v) for k, v in self.suspense_share.items()},
            "variance": [v.as_dict() for v in self.variance],
            "variance_threshold": {
                "pct": str(self.threshold.pct),
                "minimum": str(self.threshold.minimum),
            },
            "flags": [f.as_dict() for f in self.flags],
            "needs_a_look": self.needs_a_look(),
            "warnings": [w.as_dict() for w in self.warnings],
            "markdown": render_markdown(self),
        }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """A Markdown table; the first ``left`` columns are text, the rest right-aligned."""
    if not rows:
        return []
    align = ["---"] * left + ["---:"] * (len(header) - left)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def _totals_table(totals: dict[str, dict[str, str]], labels: dict[str, str]) -> list[str]:
    rows = []
    for cur, t in sorted(totals.items()):
        if not any(k in t for k in labels):
            continue
        rows.append([cur] + [money(t[k], cur) if t.get(k) else "—" for k in labels])
    return _table(["Currency", *labels.values()], rows)


def render_markdown(p: Preview) -> str:
    """The approval screen's text: what the run is, what needs a look (flags, warnings),
    the totals, each payee against the previous period, and a correction's changes."""
    name = f"version {p.version}" + (" (a correction)" if p.correction else "")
    compared = (
        f"compared with {p.previous_period}"
        if p.previous_period
        else "no earlier period has been run: nothing to compare with"
    )
    out = [
        f"## Royalty run {p.run_id}: {p.period}, {name}",
        "",
        f"Status **{p.status}** · accounting currency **{p.currency}** · {compared}.",
        "",
        EXPLAIN.format(acct=p.currency),
        "",
    ]
    if p.correction:
        out += [f"**Why this correction**: {p.correction}", ""]
    looks = p.needs_a_look()
    out.append(f"### Needs a look ({len(looks)})" if looks else "### Needs a look: nothing")
    out += [f"- {line}" for line in looks] + [""]
    if p.warnings:
        out.append(f"### Warnings ({len(p.warnings)})")
        out += [f"- **{w.code}**: {w.message}" for w in p.warnings] + [""]

    share = p.suspense_share
    out.append(f"### Revenue and where it went (accounting currency, {p.currency})")
    rows = []
    for cur, t in sorted(p.totals.items()):
        if "revenue" not in t:
            continue
        cells = [money(t[k], cur) if t.get(k) else "—" for k in RECONCILIATION]
        rows.append([cur, *cells, f"{share[cur] + 0:.2f} %" if cur in share else "—"])
    out += [*_table(["Currency", *RECONCILIATION.values(), "Suspense share"], rows), ""]
    out.append("### Royalties (per contract currency)")
    out += [*_totals_table(p.totals, ROYALTIES), ""]
    known = set(RECONCILIATION) | set(ROYALTIES)
    others = sorted({k for t in p.totals.values() for k in t} - known)
    if others:  # a total this screen has no label for yet: shown, never hidden
        labels = {k: k.replace("_", " ").capitalize() for k in others}
        out += ["### Other totals", *_totals_table(p.totals, labels), ""]

    if p.previous_period:
        out += [
            f"### Payees: {p.period} against {p.previous_period}",
            f"Flagged when royalties change by at least {p.threshold.pct} % and at least "
            f"{money(p.threshold.minimum)} in the payee's currency.",
            "",
        ]
        header = ["Payee", "Flag", f"Royalties {p.previous_period}", f"Royalties {p.period}"]
        header += ["Change", "Change %", "Payable", "Closing balance"]
    else:
        out.append(f"### Payees: {p.period}")
        header = ["Payee", "Flag", f"Royalties {p.period}", "Payable", "Closing balance"]
    rows = []
    for v in p.variance:
        row = [v.payee, f"⚑ {v.flag}" if v.flag else ""]
        if p.previous_period:
            row.append("—" if v.previous is None else money(v.previous, v.currency))
        row.append(money(v.earnings, v.currency))
        if p.previous_period:
            row += ["—" if v.change is None else money(v.change, v.currency), _pct(v.change_pct)]
        rows.append([*row, money(v.payable, v.currency), money(v.closing, v.currency)])
    out += [*_table(header, rows, left=2), ""]
    if p.diff:
        out.append("### Changes against the locked version")
        for entry in p.diff:
            who = p.payee_names.get(int(entry["payee_id"]), f"payee {entry['payee_id']}")
            cur = entry["currency"]
            moves = "; ".join(
                f"{FIGURE_LABELS.get(k, k)} {money(c['old'], cur)} → {money(c['new'], cur)}"
                for k, c in entry["changes"].items()
            )
            why = "; ".join(entry.get("why") or [])
            out.append(f"- {who}: {moves}" + (f" (why: {why})" if why else ""))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def preview(
    factory: sessionmaker[Session],
    *,
    run_id: int,
    threshold: VarianceThreshold = DEFAULT_THRESHOLD,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """What a finance user looks at before approving (``build_preview``), as JSON with its
    Markdown (``markdown``)."""
    return build_preview(factory, run_id=run_id, threshold=threshold, data_dir=data_dir).as_dict()


def build_preview(
    factory: sessionmaker[Session],
    *,
    run_id: int,
    threshold: VarianceThreshold = DEFAULT_THRESHOLD,
    data_dir: Path | None = None,
) -> Preview:
    """Totals, the share of revenue in suspense, each payee's variance against the previous
    period (flagged by ``threshold``), and contracts whose balance became negative or that
    stopped earning. With ``data_dir`` a contract made negative by returns names the biggest
    return (source and month, from the run's line-level detail)."""
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
        previous = session.get(RoyaltyRun, run.previous_run_id) if run.previous_run_id else None
        shown = Preview(
            run_id=run.id,
            period=run.period,
            version=run.version,
            status=run.status.value,
            currency=run.currency,
            previous_period=previous.period if previous else None,
            totals=run.totals,
            variance=[],
            flags=[],
            threshold=threshold,
            correction=run.reason or "",
            diff=list(run.diff or []),
            payee_names=names,
        )
    for key in sorted(set(now) | set(before), key=lambda k: (names.get(k[0], ""), k)):
        row = now.get(key)
        shown.variance.append(
            variance(
                key[0],
                names.get(key[0], f"payee {key[0]}"),
                key[1],
                None
                if previous is None
                else (before[key].earnings if key in before else None) or Decimal(0),
                row.earnings if row else Decimal(0),
                threshold,
                payable=row.payable if row else Decimal(0),
                closing=row.closing if row else Decimal(0),
            )
        )
    order = sorted(bal_now.items(), key=lambda kv: refs.get(kv[0], str(kv[0])))
    negative = [
        bal
        for cid, bal in order
        if bal.closing < 0 and (bal_before[cid].closing if cid in bal_before else 0) >= 0
    ]
    returns = _biggest_returns(factory, data_dir, run_id, negative) if data_dir else {}
    for cid, bal in order:
        ref = refs.get(cid, f"contract {cid}")
        if bal in negative:
            cause = negative_cause(bal, returns.get(cid))
            shown.flags.append(
                ContractFlag(ref, "newly_negative", bal.currency, bal.closing, cause)
            )
        elif bal.earnings == 0 and cid in bal_before and bal_before[cid].earnings != 0:
            was = money(bal_before[cid].earnings, bal.currency)
            cause = f"{was} in {shown.previous_period}" if shown.previous_period else was
            shown.flags.append(
                ContractFlag(ref, "earnings_stopped", bal.currency, bal.closing, cause)
            )
    if data_dir is not None:
        shown.warnings = warnings_for_run(factory, data_dir, run_id=run_id)
    return shown


def _biggest_returns(
    factory: sessionmaker[Session],
    data_dir: Path,
    run_id: int,
    balances: Sequence[ContractBalance],
) -> dict[int, tuple[str, str, Decimal]]:
    """Per contract with negative royalties: its biggest negative (source, month) in the
    run's line-level detail, with the amount. Empty when the detail cannot be derived (the
    flag then says "returns" without naming one)."""
    wanted = [b for b in balances if b.earnings < 0]
    if not wanted:
        return {}
    try:
        detail = run_detail(
            factory, data_dir, run_id=run_id, payee_ids=sorted({b.payee_id for b in wanted})
        )
    except Exception as exc:  # the flag is still shown, only less specific
        log.warning("no line-level detail for the flags of run %s: %s", run_id, exc)
        return {}
    worst = (
        detail.filter(pl.col("contract_id").is_in([b.contract_id for b in wanted]))
        .group_by("contract_id", "source", "reporting_period")
        .agg(pl.col("amount").sum())
        .filter(pl.col("amount") < 0)
        .sort("amount", "source", "reporting_period")
        .unique("contract_id", keep="first", maintain_order=True)
    )
    return {
        int(cid): (str(source), str(month), Decimal(str(amount)))
        for cid, source, month, amount in worst.iter_rows()
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
