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
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
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


def converted(amount: Decimal, rate: Decimal) -> Decimal:
    """``amount`` in another currency at ``rate`` (units of the other currency per unit of
    ``amount``'s), rounded once by :func:`cents`: a statement's figures shown in the payee's
    statement currency. The amount converted is the source of truth; this is its display."""
    return cents(amount * rate)


# Digit grouping and decimal mark per locale: the one way an amount is written for people
# (statements, the portal). "en" is the default; the others are for payees who read them.
SEPARATORS: dict[str, tuple[str, str]] = {
    "en": (",", "."),
    "de": (".", ","),
    "fr": ("\u202f", ","),  # narrow no-break space
    "ch": ("\u2019", "."),  # right single quotation mark
}


def format_amount(
    amount: Decimal | str | int,
    currency: str | None = None,
    *,
    locale: str = "en",
    minus: str = "-",
) -> str:
    """An amount for people: ``-1,234.56 GBP``. Thousands separators, two decimals (rounded
    with :func:`cents`; an amount that rounds to zero is ``0.00``, never ``-0.00``), the
    currency code after it when given. ``locale`` picks the separators (:data:`SEPARATORS`);
    ``minus`` the sign's character (``"\u2212"``, the typographic minus, on screens that can
    show it). A value that is not a number is returned as it is (a blank cell stays blank)."""
    try:
        value = cents(amount if isinstance(amount, Decimal) else Decimal(amount))
    except (InvalidOperation, ValueError, TypeError):
        return str(amount)
    if not value.is_finite():
        return str(amount)
    group, mark = SEPARATORS[locale]
    text = f"{abs(value):,.2f}"
    if group != "," or mark != ".":
        text = text.replace(",", "\0").replace(".", mark).replace("\0", group)
    sign = minus if value < 0 else ""
    return f"{sign}{text}" if currency is None else f"{sign}{text} {currency}"


def vat_cents(value: Decimal) -> Decimal:
    """Round a VAT amount on a self-billing invoice to the penny, half-up: the VAT and its
    sterling equivalent. Not the statements' half-even rule (:func:`cents`): an invoice's tax is
    rounded to the nearest penny with halves going up, the usual commercial convention for VAT
    invoices (and how invoices have been issued since they were added). The project records no
    tax-authority source for it; check the rule with finance before changing it."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def largest_remainder(
    floor: pl.Expr, remainder: pl.Expr, total: pl.Expr, *, over: Sequence[str] = ()
) -> pl.Expr:
    """The largest-remainder rule, in whole units (cents, or 10^-12 of a unit): every
    allocation of a rounded total over exact parts goes through here.

    ``floor`` is each part rounded down to the unit, ``remainder`` what that rounding dropped
    (any type that orders the remainders), ``total`` the units the parts must add up to, one
    value per group of ``over``. The units left over, ``total - sum(floor)``, go one each to
    the largest remainders (ties: the earlier row), round and round again if there are more
    units than parts; units owed back are taken from the smallest remainders (ties: the later
    row) first. Returns the allocated units, one per row, in ``floor``'s integer type.
    """

    def within(expr: pl.Expr) -> pl.Expr:
        return expr.over(list(over)) if over else expr

    rank = within(remainder.rank("ordinal", descending=True)).cast(pl.Int64)
    n = within(pl.len()).cast(pl.Int64)
    left = total - within(floor.sum())
    # floor division and a modulo with the divisor's sign: for a negative ``left`` the
    # smallest remainders (the last ranks) give a unit more than the others
    extra = left // n + ((rank - 1) < (left % n)).cast(pl.Int64)
    return floor + extra


def allocate(total: Decimal, parts: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (already in cents) over ``parts`` (exact amounts) in cents, so that the
    results add up to ``total`` exactly: each part rounded down to the cent (towards minus
    infinity), the cents left over handed out by :func:`largest_remainder` (ties: first part).
    """
    if not parts:
        if total != 0:
            raise ValueError(f"cannot allocate {total} over no parts")
        return []
    floors = [p.quantize(CENT, rounding="ROUND_FLOOR") for p in parts]
    left = int((total - sum(floors, Decimal(0))) / CENT)
    if len(parts) == 1:
        # the rule with one part (it takes every cent left), without building a frame: a
        # payee's pool is usually one contract, and a run allocates once per pool
        return [floors[0] if left == 0 else floors[0] + left * CENT]
    remainders = [p - f for p, f in zip(parts, floors, strict=True)]
    # the remainders' order, exactly (Decimals compare exactly, whatever their digits)
    order = {r: i for i, r in enumerate(sorted(set(remainders)))}
    frame = pl.DataFrame(
        {
            "floor": [int(f.scaleb(2)) for f in floors],
            "remainder": [order[r] for r in remainders],
        },
        schema={"floor": pl.Int128, "remainder": pl.Int64},
    )
    total_cents = int(frame["floor"].sum()) + left
    units = frame.select(
        largest_remainder(pl.col("floor"), pl.col("remainder"), pl.lit(total_cents, pl.Int128))
    ).to_series()
    return [
        f if u == c else f + (u - c) * CENT
        for f, c, u in zip(floors, frame["floor"], units, strict=True)
    ]


def to_decimal(value: object) -> Decimal:
    """A Polars decimal/None/str scalar as an exact Decimal (None -> 0)."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
