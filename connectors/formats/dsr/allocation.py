"""Which summary each usage line shares, and each summary's allocation plan: revenue ``R``,
denominator ``D``, sign, equal split and target ``T`` (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from connectors.formats.base import FileMeta
from connectors.formats.dsr.header import _Header, _Summary
from connectors.formats.dsr.layouts import (
    _ERR,
    SCALE,
    _money,
    _round_div,
)
from schemas.revenue import AMOUNT


@dataclass
class _Plan:
    """Per summary index: (R, D, sign, equal split, target T, max |units|), all exact ints."""

    rows: dict[int, tuple[int, int, int, bool, int, int]] = field(default_factory=dict)
    unallocatable: list[int] = field(default_factory=list)

    def add(
        self, idx: int, rev: int, den: int, sign: int, equal: bool, target: int, w_max: int
    ) -> None:
        self.rows[idx] = (rev, den, sign, equal, target, w_max)

    def fits_int64(self) -> bool:
        """Whether every product and sum of the allocation stays below 2^62 in magnitude."""
        limit = 1 << 62
        for rev, den, _sign, _equal, target, w_max in self.rows.values():
            q = abs(rev) // den + 1
            if abs(rev) >= limit or abs(target) >= limit or (q * w_max) >= limit // 4:
                return False
            if den * max(w_max, 1) >= limit // 4:
                return False
        return True


def _amount(units: pl.Series) -> pl.Series:
    """Integer units of 10^-12 -> AMOUNT, by reinterpreting the decimal128 buffer (no math)."""
    arrow = units.cast(pl.Decimal(38, 0)).to_arrow()
    scaled = pa.Array.from_buffers(pa.decimal128(38, SCALE), len(arrow), arrow.buffers())
    out = pl.from_arrow(scaled)
    assert isinstance(out, pl.Series)
    return out.cast(AMOUNT).alias(units.name)


class _Allocation(_Header):
    """Which summary each usage line shares, and each summary's allocation plan."""

    def _flags(self, usage: pl.DataFrame, summaries: Mapping[str, _Summary]) -> pl.DataFrame:
        """``sidx`` (the summary's index), ``err`` (an ``_ERR`` code, 0 = kept; not yet
        ``unallocatable``) and ``weighted`` (the line takes a share of its summary)."""
        size = len(summaries)
        ids = [s.sid for s in summaries.values()]
        ok = pl.Series([s.ok for s in summaries.values()], dtype=pl.Boolean)
        if "sid" in usage.columns and size:
            sidx = usage["sid"].replace_strict(
                ids, list(range(size)), default=None, return_dtype=pl.Int32
            )
        else:
            sidx = pl.Series("sidx", [None] * usage.height, dtype=pl.Int32)
        usage = usage.with_columns(sidx.alias("sidx"))
        s_ok = pl.lit(ok).gather(pl.col("sidx")) if size else pl.lit(None, dtype=pl.Boolean)
        own = pl.col("own_s").is_null() if "own_s" in usage.columns else pl.lit(True)
        err = (
            pl.when(pl.col("num_err") != 0)
            .then(pl.col("num_err"))
            .when(pl.col("sid").is_null())
            .then(pl.lit(_ERR["missing_summary"], dtype=pl.UInt8))
            .when(pl.col("sidx").is_null())
            .then(pl.lit(_ERR["unknown_summary"], dtype=pl.UInt8))
            .when(s_ok.not_())
            .then(pl.lit(_ERR["invalid_summary"], dtype=pl.UInt8))
            .otherwise(pl.col("ref_err"))
        )
        return usage.with_columns(
            err.alias("err"),
            (pl.col("units").is_not_null() & s_ok.fill_null(False) & own).alias("weighted"),
        )

    @staticmethod
    def _final_err(usage: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
        """``err`` with the lines of summaries whose share cannot be computed set aside."""
        if not plan.unallocatable:
            return usage
        stuck = (pl.col("err") == 0) & pl.col("sidx").is_in(plan.unallocatable).fill_null(False)
        return usage.with_columns(
            pl.when(stuck)
            .then(pl.lit(_ERR["unallocatable"], dtype=pl.UInt8))
            .otherwise(pl.col("err"))
            .alias("err")
        )

    def _plan(
        self, usage: pl.DataFrame, summaries: Mapping[str, _Summary], meta: FileMeta
    ) -> _Plan:
        """Per summary: revenue ``R``, denominator ``D`` (> 0), sign, equal split, target ``T``."""
        ok_line = pl.col("err") == 0
        weighted = pl.col("weighted")
        s_ok = pl.lit(pl.Series([s.ok for s in summaries.values()], dtype=pl.Boolean))
        stats = (
            usage.filter(pl.col("sidx").is_not_null())
            .filter(s_ok.gather(pl.col("sidx")))
            .group_by("sidx")
            .agg(
                pl.col("units").filter(weighted).sum().alias("w_all"),
                weighted.sum().alias("n_all"),
                pl.col("units").filter(weighted & ok_line).sum().alias("w_ok"),
                (weighted & ok_line).sum().alias("n_ok"),
                pl.col("units").sum().alias("units_all"),
                pl.col("units").is_null().any().alias("unreadable"),
                pl.col("units").filter(weighted).abs().max().alias("w_max"),
            )
            if summaries
            else pl.DataFrame()
        )
        by_idx = {row[0]: row[1:] for row in stats.iter_rows()}
        plan = _Plan()
        declared: dict[str, Decimal] = {}
        report: dict[str, Decimal] = {}
        detail: list[dict[str, Any]] = []
        mismatches: list[dict[str, Any]] = []
        for s in summaries.values():
            if not s.ok:
                continue
            revenue = s.revenue or 0
            w_all, n_all, w_ok, n_ok, units_all, unreadable, w_max = by_idx.get(
                s.index, (0, 0, 0, 0, 0, False, 0)
            )
            w_all, w_ok, units_all, w_max = w_all or 0, w_ok or 0, units_all or 0, w_max or 0
            equal = unallocatable = False
            if self.multi:
                # the same summary in every file of the report: divide by its declared usages
                den = s.declared_usages or 0
                unallocatable = den == 0 and units_all != 0
            else:
                den = w_all
                if unreadable and s.declared_usages and s.declared_usages > abs(w_all):
                    # a line's count cannot be read: keep its share out via the declared total
                    den = s.declared_usages * (1 if w_all >= 0 else -1)
                if den == 0 and n_all:
                    equal = True  # units cancel out or are all zero: split evenly
                    den, w_ok, units_all, w_max = n_all, n_ok, n_all, 1
            sign = -1 if den < 0 else 1
            den = abs(den) or 1
            target = 0 if unallocatable else _round_div(revenue * sign * w_ok, den)
            share = revenue
            if self.multi:
                share = 0 if unallocatable else _round_div(revenue * sign * units_all, den)
            if unallocatable:
                plan.unallocatable.append(s.index)
            plan.add(s.index, revenue, den, sign, equal, target, w_max)
            if s.currency is not None and s.revenue is not None:
                declared[s.currency] = declared.get(s.currency, Decimal(0)) + _money(share)
                report[s.currency] = report.get(s.currency, Decimal(0)) + _money(revenue)
            if not self.multi and not equal and s.declared_usages not in (None, units_all):
                mismatches.append(
                    {"summary": s.sid, "declared": s.declared_usages, "reported": units_all}
                )
            detail.append(
                {
                    "summary": s.sid, "record": s.code, "line": s.line, "territory": s.territory,
                    "commercial_model": s.commercial_model, "currency": s.currency,
                    "revenue": None if s.revenue is None else str(_money(revenue)),
                    "revenue_cell": s.revenue_cell, "declared_usages": s.declared_usages,
                    "reported_units": units_all,
                }
            )  # fmt: skip
            if s.revenue is None and units_all:
                self.extra.setdefault("summaries_without_revenue", []).append(s.sid)
            if equal:
                self.extra.setdefault("equal_split_summaries", []).append(s.sid)
        meta.declared_totals = declared
        self.extra["summaries"] = detail
        if mismatches:
            self.extra["usage_mismatches"] = mismatches
        if self.multi:
            self.extra["report_declared_totals"] = {k: str(v) for k, v in report.items()}
        return plan
