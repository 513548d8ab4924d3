"""The API's split sheet (``splits.applicable_splits``, per track, date and territory) and the
run (``earnings.resolve_splits``, per placement frame) resolve splits alike: on random splits,
territories and dates they pick the same splits and leave the label the same share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from royalty_engine.earnings import resolve_splits, territory_classes
from royalty_engine.splits import applicable_splits

START = dt.date(2024, 1, 1)
TERRITORY_SETS = ["WW", "GB", "JP", "GB,JP", "WW,-JP", "WW,-GB,-US", "US"]
PROBES = ["GB", "JP", "US", "FR"]
TRACK, OTHER_TRACK, RELEASE, OTHER_RELEASE = 1, 2, 10, 20


@dataclass(frozen=True)
class Row:
    split_id: int
    track_id: int | None
    release_id: int | None
    share: Decimal
    territories: str
    effective_from: dt.date
    effective_to: dt.date | None


def _day(months: int) -> dt.date:
    return START + dt.timedelta(days=30 * months)


split = st.fixed_dictionaries(
    {
        "target": st.sampled_from(
            [(TRACK, None), (None, RELEASE), (OTHER_TRACK, None), (None, OTHER_RELEASE)]
        ),
        "share": st.sampled_from(["0.01", "0.05", "0.1", "0.125", "0.2"]),
        "territories": st.sampled_from(TERRITORY_SETS),
        "start": st.integers(0, 8),
        "months": st.none() | st.integers(0, 6),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    drawn=st.lists(split, max_size=5),
    days=st.lists(st.integers(-30, 400), min_size=1, max_size=6),
)
def test_split_sheet_and_run_resolve_alike(drawn: list[dict], days: list[int]) -> None:
    rows = [
        Row(
            i,
            d["target"][0],
            d["target"][1],
            Decimal(d["share"]),
            d["territories"],
            _day(d["start"]),
            None if d["months"] is None else _day(d["start"] + d["months"]) - dt.timedelta(days=1),
        )
        for i, d in enumerate(drawn, start=1)
    ]
    dates = sorted({START + dt.timedelta(days=n) for n in days})
    mapping, members = territory_classes(PROBES, [r.territories for r in rows])
    class_of = dict(mapping.iter_rows())
    placements = pl.DataFrame(
        sorted({(TRACK, RELEASE, day, class_of[code]) for day in dates for code in PROBES}),
        schema={
            "track_id": pl.Int64,
            "release_id": pl.Int64,
            "as_of": pl.Date,
            "class_id": pl.Int32,
        },
        orient="row",
    )
    frame = pl.DataFrame(
        [
            {
                "split_id": r.split_id,
                "track_id": r.track_id,
                "release_id": r.release_id,
                "payee_id": 100 + r.split_id,
                "contract_id": 200 + r.split_id,
                "share": r.share,
                "territories": r.territories,
                "effective_from": r.effective_from,
                "effective_to": r.effective_to,
            }
            for r in rows
        ],
        schema={
            "split_id": pl.Int64,
            "track_id": pl.Int64,
            "release_id": pl.Int64,
            "payee_id": pl.Int64,
            "contract_id": pl.Int64,
            "share": pl.Decimal(38, 12),
            "territories": pl.String,
            "effective_from": pl.Date,
            "effective_to": pl.Date,
        },
    )
    resolved = resolve_splits(placements, frame, members)
    for day in dates:
        for code in PROBES:
            sheet, rest = applicable_splits(
                rows, track_id=TRACK, release_id=RELEASE, as_of=day, territory=code
            )
            run = resolved.filter((pl.col("as_of") == day) & (pl.col("class_id") == class_of[code]))
            assert sorted(s.split_id for s in sheet) == sorted(run["split_id"].to_list())
            run_rest = Decimal(1) - sum((Decimal(str(v)) for v in run["share"]), Decimal(0))
            assert rest == run_rest
