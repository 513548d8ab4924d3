"""The "in force on a date" rule: its Python and Polars forms agree, ends included."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from schemas.effective import in_force, in_force_expr

days = st.dates(min_value=dt.date(2023, 12, 1), max_value=dt.date(2024, 3, 1))


def test_both_ends_are_included_and_none_is_open_ended() -> None:
    start, end = dt.date(2024, 1, 1), dt.date(2024, 1, 31)
    assert in_force(start, end, start) and in_force(start, end, end)
    assert not in_force(start, end, dt.date(2023, 12, 31))
    assert not in_force(start, end, dt.date(2024, 2, 1))
    assert in_force(start, None, dt.date(2999, 1, 1))


@given(rows=st.lists(st.tuples(days, st.none() | days, days), min_size=1, max_size=20))
def test_python_and_polars_forms_agree(
    rows: list[tuple[dt.date, dt.date | None, dt.date]],
) -> None:
    frame = pl.DataFrame(
        rows,
        schema={"effective_from": pl.Date, "effective_to": pl.Date, "as_of": pl.Date},
        orient="row",
    )
    got = frame.select(in_force_expr().alias("in_force"))["in_force"].to_list()
    assert got == [in_force(*row) for row in rows]
