"""The figures of a statement, in one table: key, label and sign.

Every place that shows or records the figures derives from :data:`TABLE`: the run's summary
per statement (:data:`SUMMARY_FIELDS`, the columns of ``StatementSummary``), the statements'
figures and labels (PDF, XLSX, CSV/JSON), the API and the portal's balance history. The
labels are the PDF statement's wording.

``sign`` is the figure's part in reaching the closing balance: ``+`` adds to it, ``−`` takes
from it, ``=`` is the closing balance reached, and ``""`` is not a term of the sum (the opening
balance it starts from, the recouped part of the earnings that is already in the other
figures, the balance carried forward, the reserves outstanding):
``closing = opening + sum of the signed terms`` (a cross-collateralised pool's settlement
moves the rest, see ``POOL_FIGURES``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    sign: str  # "+", "−", "=" or "" (see the module docstring)
    summary: bool = True  # recorded per statement by the run (else a balance-only figure)


TABLE: tuple[Figure, ...] = (
    Figure("opening", "Opening balance", ""),
    Figure("earnings", "Royalties earned", "+"),
    Figure("advances", "Advances", "−"),
    Figure("costs", "Recoupable costs", "−"),
    Figure("recouped", "Recouped this period", ""),
    Figure("reserve_held", "Reserves held", "−"),
    Figure("reserve_released", "Reserves released", "+"),
    Figure("tax", "Tax withheld", "−"),
    Figure("payable", "Payable", "−"),
    Figure("closing", "Closing balance", "="),
    Figure("carried_forward", "Carried forward", ""),
    Figure("reserves_outstanding", "Reserves outstanding", "", summary=False),
)
# Per contract of a cross-collateralised pool (balances.py, step 4): the other contracts'
# earnings that recouped it, its earnings that recouped the others, and the balance moved
# in (+) or out (-) when the pool was paid.
POOL_TABLE: tuple[Figure, ...] = (
    Figure("recouped_from_pool", "Recouped from the pool", "", summary=False),
    Figure("recouped_for_pool", "Recouped for the pool", "", summary=False),
    Figure("pool_transfer", "Moved within the pool", "", summary=False),
)

# The figures the run records per statement (payee, currency), in the order the balance is
# reached.
SUMMARY_FIELDS: tuple[str, ...] = tuple(f.key for f in TABLE if f.summary)
# The figures shown on every statement, in the same order.
FIGURES: tuple[str, ...] = tuple(f.key for f in TABLE)
POOL_FIGURES: tuple[str, ...] = tuple(f.key for f in POOL_TABLE)
FIGURE_LABELS: dict[str, str] = {f.key: f.label for f in (*TABLE, *POOL_TABLE)}
# closing = opening + sum(sign * figure) over these
SIGNED: dict[str, int] = {f.key: 1 if f.sign == "+" else -1 for f in TABLE if f.sign in ("+", "−")}
