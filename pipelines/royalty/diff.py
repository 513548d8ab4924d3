"""A correction's per-payee diff against the locked run it replaces, with the reasons."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from royalty_engine.engine import RunResult
from royalty_engine.terms import ContractState, Terms, state_from_frame
from schemas.statement_figures import SUMMARY_FIELDS
from schemas.store.runs import RoyaltyRun

ZERO_CENTS = Decimal("0.00")


def diff_runs(
    locked: RoyaltyRun,
    result: RunResult,
    terms: Terms,
    inputs: list[dict[str, Any]],
    *,
    state_in: dict[int, ContractState] | None = None,
    previous: RoyaltyRun | None = None,
) -> list[dict[str, Any]]:
    """Per payee and currency: each statement figure that changed (old, new, delta), and why:
    which input files were added or removed, which snapshot tables changed, and (per payee)
    which of its contracts opened differently (``state_in``: balance, reserves, charges
    charged, escalation positions), naming the corrected run of the period before
    (``previous``) that moved them."""
    old_dir = Path(locked.output_dir)
    old_manifest = json.loads((old_dir / "manifest.json").read_text())
    old_inputs = {i["path"]: i["sha256"] for i in old_manifest["inputs"]}
    new_inputs = {i["path"]: i["sha256"] for i in inputs}
    reasons = []
    added = sorted(set(new_inputs) - set(old_inputs))
    removed = sorted(set(old_inputs) - set(new_inputs))
    changed = sorted(k for k in set(old_inputs) & set(new_inputs) if old_inputs[k] != new_inputs[k])
    if added:
        reasons.append(f"revenue files added: {', '.join(added)}")
    if removed:
        reasons.append(f"revenue files removed: {', '.join(removed)}")
    if changed:
        reasons.append(f"revenue files changed (rematched): {', '.join(changed)}")
    for name, frame in terms.frames().items():
        old = pl.read_parquet(old_dir / "snapshot" / f"{name}.parquet")
        if not old.equals(frame):
            reasons.append(f"{name} changed")
    opening: dict[int, str] = {}
    if state_in is not None:
        old_state = state_from_frame(pl.read_parquet(old_dir / "state_in.parquet"))
        opening = opening_reasons(old_state, state_in, terms, locked, previous)
    old_st = pl.read_parquet(old_dir / "outputs" / "statements.parquet")
    new_st = result.statements
    keys = ["payee_id", "currency"]
    joined = old_st.join(new_st, on=keys, how="full", suffix="_new", coalesce=True).sort(keys)
    out = []
    for row in joined.iter_rows(named=True):
        changes = {}
        for f in SUMMARY_FIELDS:
            # a payee new (or gone) in this version: its missing figures are 0.00
            a: Decimal = ZERO_CENTS if row.get(f) is None else row[f]
            b: Decimal = ZERO_CENTS if row.get(f"{f}_new") is None else row[f"{f}_new"]
            if a != b:
                changes[f] = {"old": str(a), "new": str(b), "delta": str(b - a)}
        if changes:
            why = [*reasons, *([opening[row["payee_id"]]] if row["payee_id"] in opening else [])]
            out.append(
                {
                    "payee_id": row["payee_id"],
                    "currency": row["currency"],
                    "changes": changes,
                    "why": why or ["no input or term changed: the engine's result differs"],
                }
            )
    return out


def opening_reasons(
    old: dict[int, ContractState],
    new: dict[int, ContractState],
    terms: Terms,
    locked: RoyaltyRun,
    previous: RoyaltyRun | None,
) -> dict[int, str]:
    """Per payee: how its contracts' opening state differs between the locked run and its
    correction (the period before was corrected since), in one sentence."""
    contracts = {r["contract_id"]: r for r in terms.contracts.iter_rows(named=True)}
    # the slots whose position can change a rate (a slot without tiers pays one rate)
    tiered = {
        f"{r['contract_id']}|{r['usage_type']}|{r['channel']}|{r['territories']}"
        for r in terms.rates.iter_rows(named=True)
        if r["tiers"] not in (None, "", "[]")
    }
    items: dict[int, list[str]] = {}
    kinds: dict[int, set[str]] = {}
    for cid in sorted(set(old) | set(new)):
        a, b = old.get(cid, ContractState()), new.get(cid, ContractState())
        ref = contracts[cid]["reference"] if cid in contracts else f"contract {cid}"
        found = []
        if Decimal(a.balance) != Decimal(b.balance):
            found.append(("balances", f"{ref} opening {Decimal(a.balance):.2f} -> {b.balance:.2f}"))
        held = [sum((Decimal(r["amount"]) for r in x.reserves), ZERO_CENTS) for x in (a, b)]
        if held[0] != held[1]:
            found.append(("balances", f"{ref} reserves held {held[0]:.2f} -> {held[1]:.2f}"))
        if sorted(a.charged) != sorted(b.charged):
            found.append(
                (
                    "balances",
                    f"{ref} charges already charged {_ids(a.charged)} -> {_ids(b.charged)}",
                )
            )
        for slot in sorted((set(a.units) | set(b.units)) & tiered):
            before, after = a.units.get(slot, 0), b.units.get(slot, 0)
            if before != after:
                name = slot.split("|", 1)[1] if "|" in slot else slot
                found.append(
                    ("escalation", f"{ref} escalation position {name} {before} -> {after} units")
                )
        if not found:
            continue
        payee = int(contracts[cid]["payee_id"]) if cid in contracts else -1
        items.setdefault(payee, []).extend(text for _, text in found)
        kinds.setdefault(payee, set()).update(kind for kind, _ in found)
    if previous is not None and previous.id != locked.previous_run_id:
        said = f", '{previous.reason}'" if previous.reason else ""
        source = (
            f"the previous period {previous.period} was corrected "
            f"(run {previous.id}, version {previous.version}{said})"
        )
    else:
        source = "the opening state differs from the locked run's"
    what = {
        frozenset({"balances"}): "opening balances changed",
        frozenset({"escalation"}): "escalation positions changed",
        frozenset({"balances", "escalation"}): "opening balances and escalation positions changed",
    }
    return {
        payee: f"{what[frozenset(kinds[payee])]}: {source}: {'; '.join(texts)}"
        for payee, texts in items.items()
    }


def _ids(ids: list[int]) -> str:
    return "[" + ", ".join(str(i) for i in sorted(ids)) + "]"
