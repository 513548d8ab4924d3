"""Fiscal calendars some DSPs count their reporting months in.

Apple's (its financial reports' file names carry the fiscal month, ``<vendor>_<MMYY>_<region>``):
weeks run Sunday to Saturday; the fiscal year ends on the last Saturday of September; each
quarter has 13 weeks in months of 5, 4 and 4 weeks; a 53-week year gives its extra week to the
end of the first quarter, December (a quarter of 14 weeks, as in fiscal 2023). Fiscal July 2026,
for one, runs from 28 June to 1 August 2026.
"""

from __future__ import annotations

import datetime as dt

_WEEKS = (5, 4, 4) * 4  # October .. September
_SATURDAY = 5


def _last_saturday_of_september(year: int) -> dt.date:
    last = dt.date(year, 9, 30)
    return last - dt.timedelta(days=(last.weekday() - _SATURDAY) % 7)


def apple_fiscal_month(year: int, month: int) -> tuple[dt.date, dt.date]:
    """First and last day of Apple's fiscal ``month`` of calendar ``year`` (fiscal October to
    December belong to the next fiscal year, but keep their calendar year: ``0126`` is
    fiscal January 2026, ``1025`` fiscal October 2025)."""
    if not 1 <= month <= 12:
        raise ValueError(f"not a month: {month}")
    fiscal_year = year + 1 if month >= 10 else year
    start = _last_saturday_of_september(fiscal_year - 1) + dt.timedelta(days=1)
    end = _last_saturday_of_september(fiscal_year)
    weeks = list(_WEEKS)
    if (end - start).days + 1 == 53 * 7:
        weeks[2] += 1  # December
    index = (month - 10) % 12
    first = start + dt.timedelta(weeks=sum(weeks[:index]))
    return first, first + dt.timedelta(weeks=weeks[index], days=-1)
