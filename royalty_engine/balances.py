"""Contract balances for one period, in each contract's currency, in cents.

Per contract, in this order (the order is part of the contract and is printed on statements):

1. **opening**: the closing balance of the previous period (negative = unrecouped).
2. **earnings**: the period's royalties, rounded once to the cent (``money.cents``).
3. **recoupment**: advances and recoupable costs incurred up to the period end and not
   charged before are charged now; **recouped** is the part of the earnings (and of any
   reserve released, step 5) that went to cover unrecouped charges and negative balances.
4. **cross-collateralisation**: contracts of one payee in the same ``cross_collateral_group``
   are settled as one account: their balances are pooled (a surplus on one recoups another).
   The pool recoups ``min(what the pool owes, what the pool earned)``; the part a contract's
   own earnings did not cover is **recouped from the pool** (other contracts' earnings,
   shared over the contracts still owing, in proportion) and is the **recouped for the
   pool** of the contracts whose earnings did it (in proportion to what they had left). A
   contract's ``recouped`` is the part of its earnings that recouped: its own charges and
   balance, then (``recouped_for_pool``) the other contracts', so it never exceeds what it
   earned and the pool's contracts add up to what the pool recouped. When the pool is
   paid, the balance each contract gives to or receives from the others to settle at zero
   is its **pool transfer** (+ received, - given; 0 over the pool).
5. **reserves**: reserves held before and due now are **released** into the balance (in the
   first run that starts on or after their release period). Then ``reserve_rate`` x positive
   earnings is **held** back for ``reserve_periods`` of the contract's statement periods (after
   the one the run ends in), but only out of what the pool has left after recoupment: an
   unrecouped pool holds nothing (its earnings went to recoup), a pool with less left than its
   contracts' reserves holds what is left, shared in proportion (in cents that add up).
6. **balance** = opening + earnings - charges + reserve released - reserve held; every
   contract's row adds up: balance + pool transfer - tax - payable = closing.
7. A pooled balance is paid only on a statement date of the contract's frequency; then
   **withholding tax** (the payee's rate) is taken from it, and it is **payable** if the net
   reaches the **minimum payment** (the highest minimum in the pool); otherwise the whole
   balance, positive or negative, is **carried forward** untaxed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import polars as pl

from royalty_engine.periods import Period, parse_period, statement_period
from royalty_engine.terms import ContractState, EngineError
from schemas.money import CENTS, allocate, cents, to_decimal

ZERO = Decimal("0.00")

LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "contract_id": pl.Int64(),
    "payee_id": pl.Int64(),
    "reference": pl.String(),
    "pool": pl.String(),
    "currency": pl.String(),
    "opening": CENTS,
    "earnings": CENTS,
    "advances": CENTS,
    "costs": CENTS,
    "reserve_held": CENTS,
    "reserve_released": CENTS,
    "balance": CENTS,
    "recouped": CENTS,
    "recouped_from_pool": CENTS,  # other contracts' earnings that recouped this one's debt
    "recouped_for_pool": CENTS,  # this contract's earnings that recouped the others' debt
    "pool_transfer": CENTS,  # balance moved in (+) or out (-) when the pool was paid
    "tax": CENTS,
    "payable": CENTS,
    "closing": CENTS,
    "carried_forward": CENTS,
    "reserves_outstanding": CENTS,
    "status": pl.String(),  # paid | below_minimum | unrecouped | not_statement_date | zero
}


@dataclass
class Balances:
    ledger: pl.DataFrame  # one row per contract
    state: dict[int, ContractState] = field(default_factory=dict)


def settle(
    contracts: pl.DataFrame,
    payees: pl.DataFrame,
    charges: pl.DataFrame,
    earnings: Mapping[int, Decimal | Fraction],
    state: dict[int, ContractState],
    period: Period,
    *,
    charge_fx: Callable[[dict[str, Any]], Decimal] | None = None,
) -> Balances:
    """``earnings``: exact royalties per contract in its currency (rounded here, once);
    ``charge_fx``: the rate
    that converts a charge (row) into its contract's currency, asked only for the charges
    charged in this period."""
    withholding = {
        r["payee_id"]: to_decimal(r["withholding_rate"]) for r in payees.iter_rows(named=True)
    }
    due: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ch in charges.iter_rows(named=True):
        if ch["incurred_on"] <= period.end:
            due[ch["contract_id"]].append(ch)
    rows: dict[int, dict[str, Any]] = {}
    new_state: dict[int, ContractState] = {}
    for c in contracts.iter_rows(named=True):
        cid = c["contract_id"]
        prev = state.get(cid, ContractState())
        active = c["start_date"] <= period.end and (
            c["end_date"] is None or c["end_date"] >= period.start
        )
        fresh = [ch for ch in due.get(cid, []) if ch["charge_id"] not in prev.charged]
        if not (active or cid in earnings or cid in state or fresh):
            continue
        if c["payee_id"] not in withholding:
            raise EngineError(
                "payee_missing",
                f"contract {c['reference']} names payee {c['payee_id']}, not in the snapshot",
            )
        opening = cents(prev.balance)
        earned = cents(earnings.get(cid, Decimal(0)))
        advances = costs = ZERO
        for ch in fresh:
            rate = charge_fx(ch) if charge_fx is not None else Decimal(1)
            amount = cents(to_decimal(ch["amount"]) * rate)
            if ch["kind"] == "advance":
                advances += amount
            else:
                costs += amount
        rate, periods = to_decimal(c["reserve_rate"]), int(c["reserve_periods"] or 0)
        released = ZERO
        keep = []
        for bucket in prev.reserves:
            if parse_period(bucket["release_in"]).start <= period.start:
                released += Decimal(bucket["amount"])
            else:
                keep.append(bucket)
        # before any reserve is held (``_hold`` takes it out of what the pool has left)
        balance = opening + earned - advances - costs + released
        debt = max(ZERO, -(opening - advances - costs))
        recouped = min(debt, max(ZERO, earned + released))
        # "group:" and "contract:" keep a free-text group name (even one reading
        # "contract:7") from ever naming the same pool as an ungrouped contract.
        pool = (
            f"{c['payee_id']}:group:{c['cross_collateral_group']}"
            if c["cross_collateral_group"]
            else f"{c['payee_id']}:contract:{cid}"
        )
        rows[cid] = {
            "contract_id": cid,
            "payee_id": c["payee_id"],
            "reference": c["reference"],
            "pool": pool,
            "currency": c["currency"],
            "opening": opening,
            "earnings": earned,
            "advances": advances,
            "costs": costs,
            "reserve_held": ZERO,
            "reserve_released": released,
            "balance": balance,
            "recouped": recouped,
            "recouped_from_pool": ZERO,
            "recouped_for_pool": ZERO,
            "pool_transfer": ZERO,
            "tax": ZERO,
            "payable": ZERO,
            "closing": balance,
            "carried_forward": balance,
            "reserves_outstanding": sum((Decimal(b["amount"]) for b in keep), ZERO),
            "status": "",
            "_minimum": cents(to_decimal(c["minimum_payment"])),
            "_frequency": c["statement_frequency"],
            # the reserve this contract's terms ask for; ``_hold`` decides what is held
            "_wanted": cents(max(earned, ZERO) * rate) if periods > 0 and rate > 0 else ZERO,
            "_periods": periods,
            "_owed": debt,  # what the contract owed before its earnings
            "_earned": max(ZERO, earned + released),  # what could recoup
        }
        new_state[cid] = ContractState(
            balance=balance,
            reserves=keep,
            charged=sorted({*prev.charged, *(ch["charge_id"] for ch in fresh)}),
            units=dict(prev.units),
        )
    pools = _pools(rows)
    _cross(pools)
    _hold(pools, new_state, period)
    _pay(pools, withholding, period)
    for cid, row in rows.items():
        new_state[cid].balance = row["closing"]
    ledger = pl.DataFrame(
        [{k: v for k, v in rows[cid].items() if not k.startswith("_")} for cid in sorted(rows)],
        schema=LEDGER_SCHEMA,
        orient="row",
    )
    return Balances(ledger=ledger, state=new_state)


def _pools(rows: dict[int, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Contracts by pool, each pool in one currency (``pool_currency`` otherwise)."""
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows.values():
        pools[row["pool"]].append(row)
    mixed = [
        {"pool": pool, "contract_id": m["contract_id"], "currency": m["currency"]}
        for pool, members in sorted(pools.items())
        if len({m["currency"] for m in members}) > 1
        for m in sorted(members, key=lambda m: m["contract_id"])
    ]
    if mixed:
        raise EngineError(
            "pool_currency",
            "cross-collateralised contracts must share a currency (a balance in one cannot "
            "recoup another without a conversion): "
            + "; ".join(
                f"contract {d['contract_id']} ({d['currency']}) in pool {d['pool']}" for d in mixed
            ),
            mixed,
        )
    return pools


def _cross(pools: dict[str, list[dict[str, Any]]]) -> None:
    """Step 4: what a pool's earnings recouped across its contracts (see the module rule)."""
    for _pool, members in sorted(pools.items()):
        if len(members) < 2:
            continue
        owed = max(ZERO, -sum((m["opening"] - m["advances"] - m["costs"] for m in members), ZERO))
        earned = sum((m["_earned"] for m in members), ZERO)
        own = sum((m["recouped"] for m in members), ZERO)
        across = min(owed, earned) - own
        if across <= 0:
            continue
        takers = [(m, m["_owed"] - m["recouped"]) for m in members]
        givers = [(m, m["_earned"] - m["recouped"]) for m in members]
        for side, key in ((takers, "recouped_from_pool"), (givers, "recouped_for_pool")):
            weights = [max(ZERO, w) for _, w in side]
            total = sum(weights, ZERO)
            for (m, _), part in zip(
                side, allocate(across, [across * w / total for w in weights]), strict=True
            ):
                m[key] = part
        for m in members:
            m["recouped"] += m["recouped_for_pool"]


def _hold(
    pools: dict[str, list[dict[str, Any]]], state: dict[int, ContractState], period: Period
) -> None:
    """Step 5: hold each contract's reserve out of what its pool has left after recoupment
    and the reserves released; a bucket per contract, released N statement periods on."""
    for _pool, members in sorted(pools.items()):
        wanted = [m for m in members if m["_wanted"] > 0]
        if not wanted:
            continue
        left = max(ZERO, sum((m["balance"] for m in members), ZERO))
        asked = sum((m["_wanted"] for m in wanted), ZERO)
        if left >= asked:
            held = [m["_wanted"] for m in wanted]
        else:
            held = allocate(left, [left * m["_wanted"] / asked for m in wanted])
        for m, amount in zip(wanted, held, strict=True):
            if amount <= 0:
                continue
            m["reserve_held"] = amount
            m["balance"] -= amount
            m["closing"] = m["carried_forward"] = m["balance"]
            m["reserves_outstanding"] += amount
            state[m["contract_id"]].reserves.append(
                {
                    "held_in": period.label,
                    # N of the contract's own statement periods after the one this run
                    # ends in: the same release date whether the runs are monthly or not
                    "release_in": statement_period(period.end, m["_frequency"])
                    .shift(m["_periods"])
                    .label,
                    "amount": str(amount),
                }
            )


def _pay(
    pools: dict[str, list[dict[str, Any]]], withholding: dict[int, Decimal], period: Period
) -> None:
    for _pool, members in sorted(pools.items()):
        total = sum((m["balance"] for m in members), ZERO)
        statement_date = all(period.closes_statement(m["_frequency"]) for m in members)
        if not statement_date:
            status = "not_statement_date"
        elif total < 0:
            status = "unrecouped"
        elif total == 0:
            status = "zero"
        else:
            payee = members[0]["payee_id"]
            tax = cents(total * withholding.get(payee, ZERO))
            net = total - tax
            minimum = max(m["_minimum"] for m in members)
            status = "paid" if net >= minimum and net > 0 else "below_minimum"
        if status != "paid":
            for m in members:
                m["status"] = status
            continue
        # Paid: each contract of the pool settles to zero. Tax and payment are attributed to
        # the contracts with positive balances, in proportion, in cents that add up.
        positive = [m for m in members if m["balance"] > 0]
        weights = [m["balance"] for m in positive]
        share_tax = allocate(tax, [tax * w / sum(weights) for w in weights])
        share_net = allocate(net, [net * w / sum(weights) for w in weights])
        for m, t, n in zip(positive, share_tax, share_net, strict=True):
            m["tax"], m["payable"] = t, n
        for m in members:
            m["status"] = "paid"
            m["pool_transfer"] = m["tax"] + m["payable"] - m["balance"]
            m["closing"] = ZERO
            m["carried_forward"] = ZERO
