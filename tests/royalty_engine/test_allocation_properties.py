"""One largest-remainder rule (``money.largest_remainder``), three callers: ``money.allocate``
(Decimals), ``engine.allocate_frame`` (a run's breakdowns) and the DSR parser's allocation of a
summary's revenue over its lines. On any input the three forms agree (hypothesis)."""

from __future__ import annotations

from decimal import Decimal, localcontext

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.formats.dsr import _largest_remainder
from connectors.formats.dsr.allocation import _Plan
from royalty_engine.engine import allocate_frame
from schemas.money import CENT, EXACT, allocate

D = Decimal

exact_parts = st.lists(
    st.decimals(min_value=D("-1000"), max_value=D("1000"), places=12, allow_nan=False),
    min_size=1,
    max_size=12,
)


def _frame_allocate(total: Decimal, parts: list[Decimal]) -> list[Decimal]:
    frame = pl.DataFrame(
        {
            "contract_id": [1] * len(parts),
            "dimension": ["track"] * len(parts),
            "key": [f"{i:03d}" for i in range(len(parts))],  # key order = part order
            "exact": parts,
            "_total": [total] * len(parts),
        },
        schema_overrides={"exact": EXACT, "_total": EXACT},
    )
    out = allocate_frame(frame).sort("key")
    return [Decimal(str(v)).quantize(CENT) for v in out["amount"]]


@settings(max_examples=300, deadline=None)
@given(parts=exact_parts, shift=st.integers(min_value=-30, max_value=30))
def test_python_and_frame_allocation_agree(parts: list[Decimal], shift: int) -> None:
    # the total is the parts' sum in cents, give or take some cents (a residue to absorb)
    total = sum(parts, D(0)).quantize(CENT) + shift * CENT
    allocated = allocate(total, parts)
    assert sum(allocated, D(0)) == total
    assert all(abs(a - p) < 1 + abs(shift) for a, p in zip(allocated, parts, strict=True))
    assert allocated == _frame_allocate(total, parts)


@settings(max_examples=300, deadline=None)
@given(
    revenue=st.integers(min_value=-(10**15), max_value=10**15),
    units=st.lists(st.integers(min_value=-50, max_value=5000), min_size=1, max_size=12),
    equal=st.booleans(),
)
def test_dsr_allocation_agrees_with_allocate(revenue: int, units: list[int], equal: bool) -> None:
    """A summary of revenue ``R`` (units of 10^-12) over its lines' usages ``w``: each line's
    exact share is ``R * w / D``; the parser's units are ``allocate``'s, read in 10^-12."""
    weights = [1] * len(units) if equal else units
    den = sum(weights)
    if den == 0:
        return  # the parser splits evenly then: that is the ``equal`` case
    sign = -1 if den < 0 else 1
    den = abs(den)
    plan = _Plan()
    target = revenue  # ``T`` is ``R`` when every line of the summary is kept
    plan.add(0, revenue, den, sign, equal, target, max(abs(u) for u in units) or 1)
    lines = pl.DataFrame({"sidx": [0] * len(units), "units": units})
    got = _largest_remainder(lines, plan).to_list()
    with localcontext() as ctx:
        ctx.prec = 80
        parts = [D(revenue * w * sign) / den * CENT for w in weights]
        want = allocate(target * CENT, parts)
    assert got == [int(a / CENT) for a in want]
    assert sum(got) == target
