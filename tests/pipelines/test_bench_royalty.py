"""``tunemantra bench royalty`` on a small lake: the figures are there and the run reconciled."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from bench.royalty import PERIOD, build_terms, run, run_engine, scale, write_lake
from royalty_engine.earnings import Grain, aggregate, period_lines
from royalty_engine.periods import parse_period
from schemas.money import cents


@pytest.fixture(scope="module")
def result() -> dict:
    return run(20_000, profile=True)


def test_the_engine_read_every_generated_line(result: dict) -> None:
    lake, counts = result["lake"], result["engine_counts"]
    assert lake["lines"] == counts["lines"] == result["floor_check"]["lines"] == 20_000
    assert lake["files"] >= 90  # 6 months x 15 sources
    assert 0 < lake["suspense_lines"] == counts["suspense_lines"] < 0.06 * 20_000
    assert counts["matched_lines"] == 20_000 - lake["suspense_lines"]


def test_money_reconciles_with_the_generated_lake(result: dict) -> None:
    totals = {k: Decimal(v) for k, v in result["engine_totals"].items()}
    generated = Decimal(result["lake"]["amount"])
    assert Decimal(result["floor_check"]["amount"]) == generated
    assert totals["revenue"] == cents(generated)
    assert totals["revenue"] == totals["payees"] + totals["retained"] + totals["suspense"]
    assert totals["payees"] > 0 and totals["suspense"] > 0 and totals["retained_unsplit"] > 0


def test_figures_and_profile_are_reported(result: dict) -> None:
    assert result["engine_seconds"] > 0 and result["floor_seconds"] > 0
    assert result["ratio"] == pytest.approx(
        result["engine_seconds"] / result["floor_seconds"], rel=0.02
    )
    assert result["engine_lines_per_second"] == pytest.approx(
        20_000 / result["engine_seconds"], rel=0.01
    )
    assert result["peak_rss_mib"] >= result["engine_peak_rss_mib"] > 0
    assert result["outputs"]["ledger"] == result["engine_counts"]["contracts"] > 0
    assert result["outputs"]["breakdown"] > 0
    steps = {s["step"]: s for s in result["profile"]["steps"]}
    # (a need's rate: ``rate_candidates`` does the matching, ``resolve_rates`` keeps the first)
    assert {"compute", "compute_earnings", "resolve_splits", "rate_candidates"} <= set(steps)
    assert steps["compute_earnings"]["where"].startswith("earnings.py:")
    # cProfile's figures (a second, untimed run): inclusive within it, exclusive at most
    # inclusive, and the engine's work shows up as Polars calls made by its functions
    assert steps["compute"]["inclusive"] <= result["profile"]["seconds"]
    for step in steps.values():
        assert 0 <= step["seconds"] <= step["inclusive"] + 0.001
        assert step["polars_seconds"] <= step["inclusive"] + 0.001
    assert steps["compute_earnings"]["polars_calls"] > 0


def test_the_grain_floor_sums_the_lines_as_the_engine_aggregates_them(result: dict) -> None:
    """The grain floor stands for the engine's first step: the same matched lines and
    amount, into as many groups as the engine's own aggregation makes."""
    check, counts = result["grain_floor_check"], result["engine_counts"]
    assert check["lines"] == counts["matched_lines"]
    assert check["groups"] == engine_groups(20_000) > 0
    assert result["grain_floor_seconds"] > 0
    # both figures are rounded (ratio to 2 places, seconds to 3): a small lake's ratio is
    # near 1, where that rounding is worth up to about 0.01
    assert result["grain_floor_ratio"] == pytest.approx(
        result["grain_floor_seconds"] / result["floor_seconds"], rel=0.02, abs=0.015
    )
    suspense = Decimal(result["lake"]["amount"]) - Decimal(check["amount"])
    assert cents(suspense) == Decimal(result["engine_totals"]["suspense"])


def engine_groups(lines: int, seed: int = 1) -> int:
    """How many matched aggregates the engine's own first step (``earnings.aggregate``, its
    public function) makes of the lake ``run(lines)`` generates."""
    sizes = scale(lines)
    terms = build_terms(sizes, seed)
    with tempfile.TemporaryDirectory() as tmp:
        lake = write_lake(Path(tmp), lines, sizes, seed)
        in_period = period_lines(pl.scan_parquet(lake.files), parse_period(PERIOD))
        matched, _, _ = aggregate(in_period, Grain.of(terms))
        return matched.collect().height


def test_catalogue_scales_down_and_terms_are_consistent() -> None:
    assert scale(10**9) == {"tracks": 1_000_000, "releases": 125_000, "contracts": 50_000}
    sizes = scale(20_000)
    assert sizes["tracks"] == 2_000 and sizes["contracts"] == 100
    terms = build_terms(sizes, seed=1)
    splits = terms.splits
    # about 2.5 release-level payees per release, and no split on an unknown contract
    per_release = splits.filter(splits["release_id"].is_not_null()).height / sizes["releases"]
    assert 2.2 < per_release < 3.2
    assert set(splits["contract_id"]) <= set(terms.contracts["contract_id"])
    assert terms.rates.filter(terms.rates["tiers"] != "[]").height > 0
    assert set(terms.fx["period"]) == {"2025-06", *(f"2026-{m:02d}" for m in range(1, 7))}


def test_aggregating_month_by_month_gives_the_same_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large periods are aggregated one reporting month at a time (bounded memory); the
    statement data must be identical, frame for frame, to one query over the whole period."""
    from royalty_engine import earnings

    sizes = scale(30_000)
    terms = build_terms(sizes, seed=3)
    lake = write_lake(tmp_path, 30_000, sizes, seed=3)
    whole_result, whole = run_engine(lake.files, terms)
    calls: list[int] = []
    real = earnings.aggregate

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(earnings, "MONTHLY_AGGREGATION_LINES", 0)
    monkeypatch.setattr(earnings, "aggregate", counted)
    monthly_result, monthly = run_engine(lake.files, terms)
    assert len(calls) == 6  # one query per month of 2026-H1
    assert monthly_result.totals == whole_result.totals
    assert monthly.keys() == whole.keys()
    for name, frame in whole.items():
        assert_frame_equal(monthly[name], frame, check_exact=True)
