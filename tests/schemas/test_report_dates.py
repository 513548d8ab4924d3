"""Report dates (``schemas.report_dates``): month names, US, European and ISO dates, read the
same by the Python and the Polars reader; and Apple's fiscal calendar (what its financial
reports' file names count months in): weeks
Sunday to Saturday, the year ending on the last Saturday of September, quarters of 5-4-4
weeks, the 53rd week of a long year going to December (a first quarter of 14 weeks)."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import polars as pl
import pytest

from schemas.report_dates import apple_fiscal_month, parse_date, parse_date_expr

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


# (text, forms) -> the date, or None
DATES = [
    # month names and abbreviations, any case, two-digit years: the month's first day
    ("June 2025", ["month"], D(2025, 6, 1)),
    ("JUN-25", ["month"], D(2025, 6, 1)),
    ("jun 2025", ["month"], D(2025, 6, 1)),
    ("Sept 2025", ["month"], D(2025, 9, 1)),
    ("Sep. 2025", ["month"], D(2025, 9, 1)),
    ("Jun'25", ["month"], D(2025, 6, 1)),
    ("2025-Jun", ["month"], D(2025, 6, 1)),
    ("2025-06", ["month"], D(2025, 6, 1)),
    ("202506", ["month"], D(2025, 6, 1)),
    ("06/2025", ["month"], D(2025, 6, 1)),
    ("  June   2025 ", ["month"], D(2025, 6, 1)),
    ("Juni 2025", ["month"], None),  # English month names only
    ("2025-13", ["month"], None),
    # ISO dates (a time after them ignored) and compact ISO
    ("2025-06-30", ["iso"], D(2025, 6, 30)),
    ("2025-06-30T23:59:59Z", ["iso"], D(2025, 6, 30)),
    ("20250630", ["iso"], D(2025, 6, 30)),
    ("2025-02-30", ["iso"], None),
    # US (month first) and European (day first) dates
    ("6/30/2025", ["us"], D(2025, 6, 30)),
    ("06/30/25", ["us"], D(2025, 6, 30)),
    ("30/06/2025", ["us"], None),
    ("30/06/2025", ["eu"], D(2025, 6, 30)),
    ("30.06.2025", ["eu"], D(2025, 6, 30)),
    ("05/06/2025", ["eu"], D(2025, 6, 5)),
    ("05/06/2025", ["us"], D(2025, 5, 6)),
    # days with month names
    ("30 Jun 2025", ["text"], D(2025, 6, 30)),
    ("30-JUN-25", ["text"], D(2025, 6, 30)),
    ("June 30, 2025", ["text"], D(2025, 6, 30)),
    # any: every form that cannot be read two ways, never a slash date
    ("June 2025", ["any"], D(2025, 6, 1)),
    ("2025-06-30", ["any"], D(2025, 6, 30)),
    ("30 Jun 2025", ["any"], D(2025, 6, 30)),
    ("06/30/2025", ["any"], None),
    # strptime patterns: month names in any case; a pattern without a day: the first
    ("jun 2025", ["%B %Y"], D(2025, 6, 1)),
    ("JUNE 2025", ["%b %Y"], D(2025, 6, 1)),
    ("2025-06", ["%Y-%m"], D(2025, 6, 1)),
    ("30.06.2025", ["%d.%m.%Y"], D(2025, 6, 30)),
    ("12/28/25", ["%m/%d/%Y"], None),  # the year 25 is a misreading, not a date
    # forms are tried in order
    ("12/28/25", ["%m/%d/%Y", "us"], D(2025, 12, 28)),
    (None, ["any"], None),
    ("", ["any"], None),
]


@pytest.mark.parametrize(("text", "forms", "day"), DATES)
def test_dates_as_reports_write_them(text: str | None, forms: list[str], day: D | None) -> None:
    assert parse_date(text, forms) == day


@pytest.mark.parametrize("forms", sorted({tuple(f) for _, f, _ in DATES}))
def test_the_polars_twin_reads_every_date_the_same(forms: tuple[str, ...]) -> None:
    texts = [t for t, _, _ in DATES]
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    got = frame.select(parse_date_expr("t", forms))["t"].to_list()
    assert got == [parse_date(t, forms) for t in texts]


def test_an_apple_fiscal_july_file_is_july_though_its_usage_ends_in_august() -> None:
    """The issue's case, for a few years: the file for fiscal July reports period July."""
    for year, end in ((2024, D(2024, 8, 3)), (2025, D(2025, 8, 2)), (2026, D(2026, 8, 1))):
        start, last = apple_fiscal_month(year, 7)
        assert last == end and last.month == 8 and start.month == 6
