"""Money rules, in one place.

* Inside a run, amounts are exact decimals with 12 places (Polars ``Decimal(38, 12)``);
  products of an amount and a share or rate are rounded half-even at the 12th place.
  A rate that has no finite decimal form (an escalation's blended rate, 260 / 1200) is kept
  as an exact fraction: a contract's total is then an exact ``Fraction``, never rounded at
  the 12th place before its one rounding to the cent (else an exact tie, 27.625, would go
  the wrong way).
* **Rounding to cents happens once**: on a contract's total for a period and a currency
  (the statement line), half-even. Breakdowns of that total (by source, territory, track,
  usage type) are allocated by the largest-remainder method so they add up to the rounded
  total exactly, and the label's retained share absorbs the residue of the payees' rounding,
  so that revenue = payees + retained + suspense holds to the cent in every currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import polars as pl

CENT = Decimal("0.01")
EXACT = pl.Decimal(38, 12)
CENTS = pl.Decimal(38, 2)
RATE = pl.Decimal(38, 12)


def cents(value: Decimal | Fraction) -> Decimal:
    """Round half-even to the cent: the single rounding rule for money on statements.
    An exact ``Fraction`` is rounded exactly (a tie is a tie, whatever its decimal form)."""
    if isinstance(value, Fraction):
        hundredths = value * 100
        whole, rest = divmod(hundredths.numerator, hundredths.denominator)
        if 2 * rest > hundredths.denominator or (2 * rest == hundredths.denominator and whole % 2):
            whole += 1
        return Decimal(whole).scaleb(-2)
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def allocate(total: Decimal, parts: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (already in cents) over ``parts`` (exact amounts) in cents, so that the
    results add up to ``total`` exactly: round each part down to the cent (towards minus
    infinity), then hand the remaining cents to the largest remainders (ties: first part).
    """
    if not parts:
        if total != 0:
            raise ValueError(f"cannot allocate {total} over no parts")
        return []
    floors = [p.quantize(CENT, rounding="ROUND_FLOOR") for p in parts]
    left = int((total - sum(floors, Decimal(0))) / CENT)
    order = sorted(range(len(parts)), key=lambda i: (-(parts[i] - floors[i]), i))
    out = list(floors)
    if left >= 0:
        for k in range(left):
            out[order[k % len(order)]] += CENT
    else:
        for k in range(-left):
            out[order[::-1][k % len(order)]] -= CENT
    return out


def to_decimal(value: object) -> Decimal:
    """A Polars decimal/None/str scalar as an exact Decimal (None -> 0)."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
