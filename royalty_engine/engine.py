"""One royalty run: normalised lines + terms snapshot + carried state -> statement data.

``compute`` is pure: frames in, frames out. It raises ``EngineError`` (with a code and the
offending items) for input it cannot compute from, and ``ReconciliationError`` when the money
does not add up, so a run either reconciles to the cent or produces nothing.

Reconciliation, per accounting currency:
  revenue (every line of the period) = payees + retained + suspense,
where ``payees`` is the sum of each contract's royalties rounded to the cent, ``suspense`` the
unmatched lines and ``retained`` what the label keeps (matched revenue without a split, the
unsplit remainder, and the payees' rounding residue). Independently, the exact (12-place)
totals must balance: the matched and suspense aggregates must add up to the lines read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import polars as pl

from royalty_engine.balances import Balances, settle
from royalty_engine.earnings import (
    Earnings,
    FxTable,
    compute_earnings,
    exact_royalties,
    merge_earnings,
    payee_buckets,
)
from royalty_engine.periods import Period
from royalty_engine.terms import ContractState, EngineError, Terms
from schemas.money import CENTS, EXACT, RATE, cents, largest_remainder, to_decimal

# What the run itself breaks each contract's earnings down by (cheap at the run's grain).
# By source, territory and track: ``royalty_engine.detail`` derives them per payee on demand.
DIMENSIONS = ("release_id", "usage_type", "reporting_period")
ZERO = Decimal("0.00")

BREAKDOWN_SCHEMA: dict[str, pl.DataType] = {
    "contract_id": pl.Int64(),
    "payee_id": pl.Int64(),
    "currency": pl.String(),
    "dimension": pl.String(),
    "key": pl.String(),
    "amount": CENTS,
    "exact": EXACT,
    "quantity": pl.Int64(),
}


class ReconciliationError(EngineError):
    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__("not_reconciled", message, details)


@dataclass
class RunResult:
    period: Period
    totals: dict[str, dict[str, str]]
    counts: dict[str, int]
    ledger: pl.DataFrame  # per contract (balances.LEDGER_SCHEMA)
    statements: pl.DataFrame  # per payee and currency
    breakdown: pl.DataFrame  # per contract x dimension x key (BREAKDOWN_SCHEMA)
    suspense: pl.DataFrame
    slots: pl.DataFrame  # escalation trackers used
    state: dict[int, ContractState]

    def outputs(self) -> dict[str, pl.DataFrame]:
        """The frames a run writes, each sorted so its bytes are reproducible."""
        return {
            "ledger": self.ledger.sort("contract_id"),
            "statements": self.statements.sort("payee_id", "currency"),
            "breakdown": self.breakdown.sort("contract_id", "dimension", "key"),
            "suspense": self.suspense.sort(pl.all(), nulls_last=True),
            "slots": self.slots.sort("slot", "rate_id"),
        }


def compute(
    lines: pl.LazyFrame,
    terms: Terms,
    state: dict[int, ContractState],
    period: Period,
    *,
    accounting_currency: str,
    buckets: int = 1,
    earned: Earnings | None = None,
) -> RunResult:
    """A period from its lines, terms and opening state. ``buckets`` > 1 computes the
    earnings one payee bucket at a time (what the DAG spreads over workers, see
    ``earn_bucket``); ``earned`` passes in earnings already computed that way. The result is
    the same either way."""
    prior_units = opening_units(state)
    if earned is None:
        parts = [
            earn_bucket(
                lines,
                terms,
                state,
                period,
                accounting_currency=accounting_currency,
                contract_ids=None if buckets == 1 else ids,
            )
            for ids in payee_buckets(terms, buckets)
        ]
        earned = parts[0] if buckets == 1 else merge_earnings(parts)
    read = earned.read
    fx = FxTable(terms.fx)
    contracts = {r["contract_id"]: r for r in terms.contracts.iter_rows(named=True)}
    # Each royalty in its contract's currency (rate of its reporting month).
    to_contract = _contract_fx(
        pl.concat(
            [
                earned.royalties.select("contract_id", "reporting_period"),
                earned.bases.select("contract_id", "reporting_period"),
            ]
        ),
        contracts,
        fx,
        accounting_currency,
    )
    fx.raise_missing()
    royalties = earned.royalties.join(
        to_contract, on=["contract_id", "reporting_period"], how="left"
    ).with_columns((pl.col("royalty") * pl.col("to_contract")).cast(EXACT).alias("royalty_cc"))
    # Each contract's royalty, exact (accounting currency and contract currency): rounded
    # once, to the cent, on its statement line (``balances.settle``) and in the totals.
    rate_cc = {(cid, month): to_decimal(r) for cid, month, r in to_contract.rows()}
    per_contract: dict[int, Fraction] = defaultdict(Fraction)
    earnings_cc: dict[int, Fraction] = defaultdict(Fraction)
    for (cid, month), royalty in sorted(exact_royalties(earned.bases).items()):
        per_contract[cid] += royalty
        earnings_cc[cid] += royalty * Fraction(rate_cc[(cid, month)])
    balances = settle(
        terms.contracts,
        terms.payees,
        terms.charges,
        earnings_cc,
        state,
        period,
        # a charge in another currency: at the rate of the month it was incurred (what the
        # advance or cost was worth when paid); asked only for the charges charged now
        charge_fx=lambda ch: fx.rate(
            ch["currency"],
            contracts[ch["contract_id"]]["currency"],
            ch["incurred_on"].strftime("%Y-%m"),
        ),
    )
    fx.raise_missing()
    # The escalation tracker: what each slot had before, plus every unit of its rates now.
    per_slot = earned.slots.group_by("slot").agg(pl.col("units").sum())
    for slot, added in per_slot.rows():
        cid = int(slot.split("|", 1)[0])
        if cid in balances.state:
            balances.state[cid].units[slot] = prior_units.get(slot, 0) + int(added)
    totals, counts = _reconcile(earned, read, per_contract, balances, accounting_currency)
    breakdown = _breakdown(royalties, balances.ledger)
    counts["breakdown_rows"] = breakdown.height
    return RunResult(
        period=period,
        totals=totals,
        counts=counts,
        ledger=balances.ledger,
        statements=_statements(balances.ledger),
        breakdown=breakdown,
        suspense=earned.suspense,
        slots=earned.slots,
        state=balances.state,
    )


def opening_units(state: dict[int, ContractState]) -> dict[str, int]:
    """Every escalation slot's units before the period."""
    prior: dict[str, int] = {}
    for s in state.values():
        prior.update(s.units)
    return prior


def earn_bucket(
    lines: pl.LazyFrame,
    terms: Terms,
    state: dict[int, ContractState],
    period: Period,
    *,
    accounting_currency: str,
    contract_ids: list[int] | None,
) -> Earnings:
    """The earnings of one payee bucket (``payee_buckets``), or of every contract."""
    return compute_earnings(
        lines,
        terms,
        period=period,
        accounting_currency=accounting_currency,
        prior_units=opening_units(state),
        contract_ids=contract_ids,
    )


def _contract_fx(
    royalties: pl.DataFrame, contracts: dict[int, dict[str, Any]], fx: FxTable, acct: str
) -> pl.DataFrame:
    rows = []
    for cid, month in (
        royalties.select("contract_id", "reporting_period").unique().sort(pl.all()).rows()
    ):
        rows.append((cid, month, fx.rate(acct, contracts[cid]["currency"], month)))
    return pl.DataFrame(
        rows,
        schema={"contract_id": pl.Int64, "reporting_period": pl.String, "to_contract": RATE},
        orient="row",
    )


def _reconcile(
    earned: Earnings,
    read: pl.DataFrame,
    per_contract: dict[int, Fraction],
    balances: Balances,
    acct: str,
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    def by_currency(frame: pl.DataFrame, col: str = "amount") -> dict[str, Decimal]:
        summed = frame.group_by("currency").agg(pl.col(col).sum())
        return {cur: to_decimal(amount) for cur, amount in summed.rows() if cur is not None}

    revenue_exact = by_currency(read)
    matched_exact = by_currency(earned.matched)
    suspense_exact = by_currency(earned.suspense)
    unsplit = by_currency(earned.unsplit)
    royalty_exact = sum(per_contract.values(), Fraction(0))
    payees_cents = sum((cents(v) for v in per_contract.values()), ZERO)
    problems: list[dict[str, Any]] = []
    for cur in sorted(set(revenue_exact) | set(matched_exact) | set(suspense_exact)):
        accounted = matched_exact.get(cur, Decimal(0)) + suspense_exact.get(cur, Decimal(0))
        if accounted != revenue_exact.get(cur, Decimal(0)):
            problems.append(
                {
                    "currency": cur,
                    "revenue": str(revenue_exact.get(cur, Decimal(0))),
                    "matched_plus_suspense": str(accounted),
                    "difference": str(revenue_exact.get(cur, Decimal(0)) - accounted),
                }
            )
    if set(revenue_exact) - {acct}:
        problems.append({"currencies": sorted(revenue_exact), "expected": acct})
    n_lines = int(read["lines"].sum() or 0)
    n_matched = int(earned.matched["lines"].sum() or 0)
    n_suspense = int(earned.suspense["lines"].sum() or 0)
    if n_lines != n_matched + n_suspense:
        problems.append({"lines": n_lines, "matched": n_matched, "suspense": n_suspense})
    revenue = cents(revenue_exact.get(acct, Decimal(0)))
    suspense = cents(suspense_exact.get(acct, Decimal(0)))
    retained = revenue - payees_cents - suspense
    retained_exact = Fraction(matched_exact.get(acct, Decimal(0))) - royalty_exact
    residue = retained - cents(retained_exact)
    # Each rounded figure is within half a cent of its exact value.
    if abs(residue) > Decimal("0.005") * (len(per_contract) + 3):
        problems.append(
            {
                "retained": str(retained),
                "exact": str(Decimal(retained_exact.numerator) / retained_exact.denominator),
            }
        )
    if problems:
        raise ReconciliationError(
            "the run does not reconcile: revenue != payees + retained + suspense", problems
        )
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    t = totals[acct]
    t["revenue"], t["payees"], t["retained"], t["suspense"] = (
        revenue,
        payees_cents,
        retained,
        suspense,
    )
    t["retained_unsplit"] = cents(unsplit.get(acct, Decimal(0)))
    t["rounding_residue"] = residue
    ledger = balances.ledger
    for row in ledger.iter_rows(named=True):
        c = totals[row["currency"]]
        for key in ("payable", "carried_forward", "reserve_held", "reserve_released", "tax"):
            c[key] += to_decimal(row[key])
        c["royalties"] += to_decimal(row["earnings"])
    for c in totals.values():
        c["reserves_held"] = c.pop("reserve_held", ZERO)
        c["reserves_released"] = c.pop("reserve_released", ZERO)
        c["tax_withheld"] = c.pop("tax", ZERO)
    counts = {
        "lines": n_lines,
        "matched_lines": n_matched,
        "suspense_lines": n_suspense,
        "contracts": ledger.height,
        "payees": ledger["payee_id"].n_unique() if ledger.height else 0,
        "unsplit_lines": int(earned.unsplit["lines"].sum() or 0),
        # unmatched lines with no FX rate yet: in suspense, in no accounting-currency total
        "suspense_unconverted_lines": int(
            earned.suspense.filter(pl.col("currency").is_null())["lines"].sum() or 0
        ),
    }
    return (
        {cur: {k: str(v) for k, v in sorted(vals.items())} for cur, vals in sorted(totals.items())},
        counts,
    )


def _statements(ledger: pl.DataFrame) -> pl.DataFrame:
    money = [c for c, t in ledger.schema.items() if t == CENTS]
    return (
        ledger.group_by("payee_id", "currency")
        .agg(*(pl.col(c).sum().cast(CENTS) for c in money), pl.len().alias("contracts"))
        .sort("payee_id", "currency")
    )


def _breakdown(royalties: pl.DataFrame, ledger: pl.DataFrame) -> pl.DataFrame:
    """Each contract's earnings by source, territory, track, usage type and month, in cents
    that add up to the contract's earnings (largest remainder, see ``money.allocate``)."""
    frames = []
    base = royalties
    for dim in DIMENSIONS:
        frames.append(
            base.group_by("contract_id", "payee_id", pl.col(dim).cast(pl.String).alias("key"))
            .agg(
                pl.col("royalty_cc").sum().cast(EXACT).alias("exact"),
                pl.col("quantity").sum().alias("quantity"),
            )
            .with_columns(pl.lit(dim).alias("dimension"))
        )
    exact = pl.concat(frames).join(
        ledger.select("contract_id", "currency", pl.col("earnings").alias("_total")),
        on="contract_id",
        how="inner",
    )
    return allocate_frame(exact).select(list(BREAKDOWN_SCHEMA)).cast(BREAKDOWN_SCHEMA)  # type: ignore[arg-type]


def allocate_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``money.allocate`` within each (contract_id, dimension): ``exact`` -> ``amount`` in
    cents summing to ``_total``, in integer arithmetic: each part's cents rounded down, the
    cents left over handed out by ``money.largest_remainder`` (ties: by key)."""
    scaled = (pl.col("exact") * 100).cast(EXACT)
    groups = ["contract_id", "dimension"]
    out = frame.with_columns(
        scaled.floor().cast(pl.Int64).alias("_floor"),
        ((scaled - scaled.floor()) * 10**10).cast(pl.Int64).alias("_rem"),
    )
    # in rank order (largest remainder first, ties by key), the order the rows come out in
    out = out.sort([*groups, "_rem", "key"], descending=[False, False, True, False])
    total = (pl.col("_total").cast(CENTS) * 100).cast(pl.Int64)
    units = largest_remainder(pl.col("_floor"), pl.col("_rem"), total, over=groups)
    return out.with_columns((units.cast(CENTS) / 100).cast(CENTS).alias("amount"))
