"""When an effective-dated row (a split, a rate, a price, a charge) is in force: from its
``effective_from`` through its ``effective_to``, both days included; an ``effective_to`` of
None is open-ended. One rule, in the three forms its callers need: Python values, a Polars
expression over ``effective_from``/``effective_to`` columns and a SQL condition on a model.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import sqlalchemy as sa

# A contract's terms that change with an effective date, like its rates: a contract's own
# columns are the first version (from its start date), ``contract_terms`` rows the later ones.
CONTRACT_TERM_FIELDS = (
    "distribution_fee",
    "reserve_rate",
    "reserve_periods",
    "minimum_payment",
    "statement_frequency",
)


def in_force(effective_from: dt.date, effective_to: dt.date | None, on: dt.date) -> bool:
    """Whether a row dated ``effective_from``..``effective_to`` is in force on ``on``."""
    return effective_from <= on and (effective_to is None or on <= effective_to)


def in_force_expr(on: str | pl.Expr = "as_of") -> pl.Expr:
    """:func:`in_force` over the ``effective_from``/``effective_to`` columns, on the date in
    the column ``on`` (or an expression)."""
    day = pl.col(on) if isinstance(on, str) else on
    return (pl.col("effective_from") <= day) & (
        pl.col("effective_to").is_null() | (day <= pl.col("effective_to"))
    )


def in_force_sql(model: Any, on: dt.date) -> sa.ColumnElement[bool]:
    """:func:`in_force` as a SQL condition on a model's ``effective_from``/``effective_to``."""
    return sa.and_(
        model.effective_from <= on,
        sa.or_(model.effective_to.is_(None), model.effective_to >= on),
    )
