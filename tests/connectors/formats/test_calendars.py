"""Apple's fiscal calendar (what its financial reports' file names count months in): weeks
Sunday to Saturday, the year ending on the last Saturday of September, quarters of 5-4-4
weeks, the 53rd week of a long year going to December (a first quarter of 14 weeks)."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import pytest

from connectors.formats.calendars import apple_fiscal_month

D = dt.date


@pytest.mark.parametrize(
    ("year", "month", "start", "end"),
    [
        # Apple's published sales periods (fiscal calendars 2021 and 2024)
        (2020, 11, D(2020, 11, 1), D(2020, 11, 28)),
        (2021, 1, D(2020, 12, 27), D(2021, 1, 30)),
        (2021, 4, D(2021, 3, 28), D(2021, 5, 1)),
        (2021, 7, D(2021, 6, 27), D(2021, 7, 31)),
        (2021, 10, D(2021, 9, 26), D(2021, 10, 30)),
        (2024, 7, D(2024, 6, 30), D(2024, 8, 3)),
        # fiscal 2023 has 53 weeks: its December has five, its September ends on the 30th
        (2022, 12, D(2022, 11, 27), D(2022, 12, 31)),
        (2023, 9, D(2023, 9, 3), D(2023, 9, 30)),
        # the file: fiscal July 2026 is 28 June to 1 August
        (2026, 7, D(2026, 6, 28), D(2026, 8, 1)),
        (2026, 1, D(2025, 12, 28), D(2026, 1, 31)),
    ],
)
def test_apple_fiscal_months(year: int, month: int, start: dt.date, end: dt.date) -> None:
    assert apple_fiscal_month(year, month) == (start, end)


def test_apple_fiscal_months_tile_the_calendar_in_whole_weeks() -> None:
    days = []
    for year in range(2000, 2041):
        for month in range(1, 13):
            start, end = apple_fiscal_month(year, month)
            assert start.weekday() == 6 and end.weekday() == 5  # Sunday .. Saturday
            assert (end - start).days + 1 in (28, 35)
            # the fiscal month overlaps its calendar month by at least three weeks
            assert start <= D(year, month, 7) and end >= D(year, month, 21)
            days.append((start, end))
    for (_, end), (start, _) in pairwise(days):
        assert start == end + dt.timedelta(days=1)  # no gap, no overlap


def test_not_a_month_is_refused() -> None:
    with pytest.raises(ValueError, match="month"):
        apple_fiscal_month(2026, 13)
