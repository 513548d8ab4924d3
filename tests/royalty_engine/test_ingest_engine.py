"""Validation, matching and FX on small inline frames."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from royalty_engine.fx import convert
from royalty_engine.matching import match_lines
from royalty_engine.validate import check_lines, split_by_errors, validate_lines
from schemas.revenue import PARSED, conform
from schemas.territories import ALL_TERRITORIES

CURRENCIES = frozenset({"EUR", "USD", "GBP"})


def lines(rows: list[dict[str, object]]) -> pl.LazyFrame:
    base = {
        "usage_start": dt.date(2026, 1, 1),
        "usage_end": dt.date(2026, 1, 31),
        "territory": "GB",
        "quantity": 1,
        "amount": "1.00",
        "currency": "EUR",
        "isrc": "GBABC2600001",
    }
    full = [{"line_no": i + 2, **base, **r} for i, r in enumerate(rows)]
    df = pl.DataFrame(full, infer_schema_length=None).with_columns(
        pl.col("amount").cast(pl.String).str.to_decimal(scale=12)
    )
    return conform(df, PARSED)


def findings(lf: pl.LazyFrame) -> set[tuple[int, str, str, str]]:
    out = check_lines(
        lf,
        territories=ALL_TERRITORIES,
        currencies=CURRENCIES,
        period_start=dt.date(2026, 1, 1),
        period_end=dt.date(2026, 1, 31),
    )
    return {(r["line_no"], r["field"], r["code"], r["severity"]) for r in out.collect().to_dicts()}


def test_each_check_names_line_field_and_code() -> None:
    lf = lines(
        [
            {},  # fine
            {"territory": "UK"},
            {"currency": "XYZ"},
            {"amount": None},
            {"isrc": "NOPE"},
            {"usage_start": dt.date(2025, 12, 1)},
            {"usage_start": dt.date(2025, 12, 1), "adjustment_type": "Backpay"},
            {"upc": "036000291453"},
            {"isrc": None},
        ]
    )
    assert findings(lf) == {
        (3, "territory", "unknown_territory", "error"),
        (4, "currency", "unknown_currency", "error"),
        (5, "amount", "missing", "error"),
        (6, "isrc", "invalid_isrc", "warning"),
        (7, "usage_start", "outside_period", "error"),
        (9, "upc", "invalid_upc", "warning"),
        (10, "isrc", "no_identifier", "warning"),
    }


def test_one_pass_validation_gives_the_same_findings_and_rejects_exactly_the_errors(
    capfd: pytest.CaptureFixture[str],
) -> None:
    lf = lines(
        [
            {},
            {"territory": "UK", "currency": "XYZ"},  # two errors on one line
            {"isrc": "NOPE"},  # a warning only: kept
            {"upc": "036000291453"},  # a warning only (check digit): kept
            {"upc": "036000291452"},  # a valid UPC
            {"amount": None},
            {"usage_start": dt.date(2025, 12, 1)},
            {"usage_start": dt.date(2025, 12, 1), "adjustment_type": "Backpay"},
        ]
    )
    period = {"period_start": dt.date(2026, 1, 1), "period_end": dt.date(2026, 1, 31)}
    common = {"territories": ALL_TERRITORIES, "currencies": CURRENCIES, **period}
    bad, found = validate_lines(lf.collect(), **common)
    expected = check_lines(lf, **common).collect()
    key = ["line_no", "field", "code"]
    assert_frame_equal(found.sort(key), expected.sort(key))
    errors = set(expected.filter(pl.col("severity") == "error")["line_no"])
    assert errors == {3, 7, 8}
    assert set(lf.collect().filter(bad)["line_no"]) == errors
    clean, none = validate_lines(lines([{}, {}]).collect(), **common)
    assert not clean.any() and none.is_empty() and none.schema == expected.schema
    # Polars prints (not warns) a deprecated call from its engine: none here
    assert "Deprecat" not in capfd.readouterr().err


def test_units_and_amount_of_opposite_signs_are_flagged_and_kept() -> None:
    """A return is negative in both units and amount; a sale positive in both. Units -5 with
    a positive amount (or 5 with a negative one) is suspicious, not unreadable: the amount is
    what the DSP pays, so the line is kept with a ``sign_mismatch`` warning naming both fields.
    Adjustments (backpay, corrections) and lines of 0 units or 0 amount are not flagged."""
    lf = lines(
        [
            {"quantity": -5, "amount": "-2.50"},  # a return: fine
            {"quantity": -5, "amount": "2.50"},
            {"quantity": 5, "amount": "-2.50"},
            {"quantity": 0, "amount": "2.50"},
            {"quantity": -5, "amount": "0"},
            {"quantity": -5, "amount": "2.50", "adjustment_type": "Backpay"},
        ]
    )
    assert findings(lf) == {
        (3, "amount", "sign_mismatch", "warning"),
        (4, "amount", "sign_mismatch", "warning"),
    }
    bad, found = validate_lines(
        lf.collect(),
        territories=ALL_TERRITORIES,
        currencies=CURRENCIES,
        period_start=None,
        period_end=None,
    )
    assert not bad.any()  # kept: a warning only
    assert found["message"].to_list() == [
        "units -5 and amount 2.500000000000 have opposite signs (quantity, amount)",
        "units 5 and amount -2.500000000000 have opposite signs (quantity, amount)",
    ]


def test_split_keeps_warnings_and_sets_errors_aside() -> None:
    lf = lines([{}, {"territory": "UK"}, {"isrc": "NOPE"}])
    found = check_lines(
        lf, territories=ALL_TERRITORIES, currencies=CURRENCIES, period_start=None, period_end=None
    ).collect()
    ok, bad = split_by_errors(lf, found)
    assert ok.collect()["line_no"].to_list() == [2, 4]
    assert bad.collect()["line_no"].to_list() == [3]


def _catalog() -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    tracks = pl.LazyFrame(
        {"isrc": ["GBABC2600001", "GBABC2600002"], "track_id": [1, 2], "release_id": [10, 10]}
    )
    releases = pl.LazyFrame({"upc": ["036000291452"], "release_id": [10]})
    rules = pl.LazyFrame(
        {
            "kind": ["isrc", "dsp_resource_id", "title_artist"],
            # a DSP's id is keyed with its service (as reported, case-folded)
            "key": ["USXYZ2600009", "spotify:sp:track:1", "night drive|nova"],
            "track_id": [2, 1, 2],
            "release_id": [10, 10, 10],
        }
    )
    return tracks, releases, rules


def test_matching_order_and_suspense_reasons() -> None:
    lf = lines(
        [
            {"isrc": "gb-abc-26-00001", "upc": "4006381333931"},  # ISRC wins over UPC
            {"isrc": "USXYZ2600009"},  # remembered alias
            {"isrc": None, "upc": "0036000291452"},  # EAN-13 form of the UPC-A
            {"isrc": None, "dsp_resource_id": "sp:track:1", "service": "Spotify"},
            {"isrc": None, "title": "Night Drive ", "artist": "NOVA"},
            {"isrc": "USXYZ2600010"},
            {"isrc": "BAD"},
            {"isrc": None, "upc": "4006381333931"},
            {"isrc": None},
        ]
    )
    out = match_lines(lf, *_catalog()).collect()
    got = list(
        zip(
            out["track_id"],
            out["release_id"],
            out["match_method"],
            out["suspense_reason"],
            strict=True,
        )
    )
    assert got == [
        (1, 10, "isrc", None),
        (2, 10, "isrc_alias", None),
        (None, 10, "upc", None),
        (1, 10, "dsp_resource_id", None),
        (2, 10, "title_artist", None),
        (None, None, None, "unknown_isrc"),
        (None, None, None, "invalid_isrc"),
        (None, None, None, "unknown_upc"),
        (None, None, None, "no_identifier"),
    ]
    assert out.height == 9  # no fan-out


def test_fx_period_average_with_rate_and_source_on_each_line() -> None:
    lf = lines(
        [
            {"amount": "10.00", "currency": "USD"},
            {"amount": "2.50"},
            {"amount": "1.00", "currency": "GBP"},
        ]
    ).with_columns(pl.lit("2026-01").alias("reporting_period"))
    rates = pl.LazyFrame(
        {
            "base": ["USD", "USD"],
            "quote": ["EUR", "EUR"],
            "period": ["2026-01", "2025-12"],
            "rate": ["0.9123", "0.8"],
            "source": ["ECB monthly average", "old"],
        }
    ).with_columns(pl.col("rate").str.to_decimal(scale=12))
    out = convert(lf, rates, target="EUR").sort("line_no").collect()
    assert out["converted_amount"].to_list() == [Decimal("9.123"), Decimal("2.5"), None]
    assert out["fx_source"].to_list() == ["ECB monthly average", "identity", None]
    assert out["fx_rate"].to_list() == [Decimal("0.9123"), Decimal(1), None]
    assert out.schema["converted_amount"] == pl.Decimal(38, 12)


@pytest.mark.parametrize("amount", ["0.000000000001", "-12345678.123456789012", "0"])
def test_fx_never_goes_through_float(amount: str) -> None:
    lf = lines([{"amount": amount, "currency": "USD"}]).with_columns(
        pl.lit("2026-01").alias("reporting_period")
    )
    rates = pl.LazyFrame(
        {"base": ["USD"], "quote": ["EUR"], "period": ["2026-01"], "rate": ["1"], "source": ["s"]}
    ).with_columns(pl.col("rate").str.to_decimal(scale=12))
    out = convert(lf, rates, target="EUR").collect()
    assert out["converted_amount"].to_list() == [Decimal(amount)]
