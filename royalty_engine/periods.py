"""Accounting periods: ``2026-01`` (a month), ``2026-Q1`` (a quarter), ``2026-H1`` (a half).

A period is a whole number of calendar months. Revenue lines belong to a period through their
reporting period (``YYYY-MM``); reserves are released and escalation trackers carried over in
units of periods of the same length.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_FORMS = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4])|H([12]))$")
_LENGTH = {"month": 1, "quarter": 3, "half": 6}
# How often each contract is statemented, in months (StatementFrequency values).
FREQUENCY_MONTHS = {"monthly": 1, "quarterly": 3, "half_yearly": 6}


class PeriodError(ValueError):
    """A period string that is not a period."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"not a period: {value!r}; expected YYYY-MM (2026-01), YYYY-Qn (2026-Q1) "
            "or YYYY-Hn (2026-H1)"
        )
        self.value = value


@dataclass(frozen=True, order=True)
class Period:
    year: int
    first_month: int  # 1..12
    months_long: int  # 1, 3 or 6

    @property
    def label(self) -> str:
        if self.months_long == 1:
            return f"{self.year:04d}-{self.first_month:02d}"
        if self.months_long == 3:
            return f"{self.year:04d}-Q{(self.first_month - 1) // 3 + 1}"
        return f"{self.year:04d}-H{(self.first_month - 1) // 6 + 1}"

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, self.first_month, 1)

    @property
    def end(self) -> dt.date:
        y, m = divmod(self.first_month - 1 + self.months_long, 12)
        return dt.date(self.year + y, m + 1, 1) - dt.timedelta(days=1)

    @property
    def months(self) -> list[str]:
        """The reporting periods (``YYYY-MM``) inside this period."""
        out = []
        for i in range(self.months_long):
            y, m = divmod(self.first_month - 1 + i, 12)
            out.append(f"{self.year + y:04d}-{m + 1:02d}")
        return out

    def has_ended(self, today: dt.date) -> bool:
        """Whether the period is over on ``today``: its last day has passed (on that day its
        sales are still being made, and the reports for it are still to come)."""
        return self.end < today

    def shift(self, n: int) -> Period:
        """The period ``n`` periods of the same length later (earlier when negative)."""
        index = self.year * 12 + self.first_month - 1 + n * self.months_long
        y, m = divmod(index, 12)
        return Period(y, m + 1, self.months_long)

    def closes_statement(self, frequency: str) -> bool:
        """Whether a contract statemented at ``frequency`` has a statement date in this period:
        its statement period (calendar month, quarter or half) ends inside this period."""
        every = FREQUENCY_MONTHS[frequency]
        end_month = self.first_month + self.months_long - 1  # 1..12
        first = self.first_month
        return any(m % every == 0 for m in range(first, end_month + 1))

    def __str__(self) -> str:
        return self.label


def statement_period(day: dt.date, frequency: str) -> Period:
    """The statement period (calendar month, quarter or half, by the contract's
    ``frequency``) that ``day`` falls in: what reserves are held for, in a contract's own
    periods, whatever length of period a run covers."""
    every = FREQUENCY_MONTHS[frequency]
    return Period(day.year, (day.month - 1) // every * every + 1, every)


def parse_period(value: str) -> Period:
    m = _FORMS.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise PeriodError(str(value))
    year = int(m.group(1))
    if m.group(2):
        return Period(year, int(m.group(2)), 1)
    if m.group(3):
        return Period(year, (int(m.group(3)) - 1) * 3 + 1, 3)
    return Period(year, (int(m.group(4)) - 1) * 6 + 1, 6)
