"""Column types shared by the models.

``Money``/``Ratio`` keep ``decimal.Decimal`` exact on every backend. PostgreSQL gets a real
``NUMERIC``; SQLite has no decimal type (its NUMERIC affinity silently turns values into
binary floats), so there the value is stored as canonical text and parsed back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class ExactDecimal(TypeDecorator[Decimal]):
    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(self.precision + 2))
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                raise TypeError("money and ratios must be Decimal or str, never float")
            value = Decimal(str(value))
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        # Refuse what NUMERIC(p, s) would reject, on SQLite too (which would store anything).
        if value and value.adjusted() >= self.precision - self.scale:
            raise ValueError(
                f"{value} has more than {self.precision - self.scale} digits before the point"
            )
        # Exact: refuse silently dropping digits beyond the column's scale.
        if value != value.quantize(self._quantum):
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        value = value.quantize(self._quantum)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value).quantize(self._quantum)


def Money() -> ExactDecimal:  # noqa: N802 - reads like a type in column declarations
    """An amount of money: 20 digits, 6 decimal places (sub-cent DSP rates survive)."""
    return ExactDecimal(20, 6)


def Ratio() -> ExactDecimal:  # noqa: N802
    """A share or percentage as a fraction (0.15 = 15%), 10 decimal places."""
    return ExactDecimal(14, 10)


def Rate() -> ExactDecimal:  # noqa: N802
    """A currency rate or a royalty rate: 16 digits before the point and 12 after, as in the
    lake (1 USD = 16,250.5 IDR; 1 IDR = 0.000061535 USD; a per-unit rate of 12,000 VND)."""
    return ExactDecimal(28, 12)
