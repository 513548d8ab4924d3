"""A ``RowError`` for each rejected usage line, with the share of revenue it leaves out."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import polars as pl

from connectors.formats.base import RowError
from connectors.formats.dsr.allocation import _Allocation, _Plan
from connectors.formats.dsr.header import _Summary
from connectors.formats.dsr.layouts import (
    _ERR,
    SCALE,
    Layout,
)


class _Rejects(_Allocation):
    """A ``RowError`` for each rejected usage line."""

    def _row_errors(
        self, bad: pl.DataFrame, plan: _Plan, summaries: Mapping[str, _Summary]
    ) -> None:
        """One ``RowError`` per rejected usage line (few: messages are built in Python)."""
        by_index = {s.index: s for s in summaries.values()}
        have = set(bad.columns)
        names = ["line_no", "err", "code", "raw", "sid", "sidx", "units", "weighted"]
        names += [c for c in ("block", "res_ref", "rel_ref", "dsp_resource_id") if c in have]
        for row in bad.select(names).iter_rows(named=True):
            layout = self.resolved[row["code"]]
            fld, code, message = self._describe(row, layout, by_index)
            info = plan.rows.get(row["sidx"]) if row["sidx"] is not None else None
            if (
                row["weighted"]
                and info is not None
                and row["units"] is not None
                and row["sidx"] not in plan.unallocatable
            ):
                rev, den, sign, equal = info[0], info[1], info[2], info[3]
                held = Decimal(rev * (1 if equal else row["units"] * sign)) / Decimal(den)
                held = held.scaleb(-SCALE).quantize(Decimal(1).scaleb(-SCALE), ROUND_HALF_EVEN)
                currency = by_index[row["sidx"]].currency
                message += f"; its share of summary '{row['sid']}' ({held} {currency}) is left out"
            raw = row["raw"]
            self.errors.append(
                RowError(
                    self.filename, row["line_no"], fld, code, message,
                    raw_hash=None if raw is None else hashlib.sha256(raw.encode()).hexdigest(),
                )
            )  # fmt: skip

    def _describe(
        self, row: dict[str, Any], layout: Layout, by_index: Mapping[int, _Summary]
    ) -> tuple[str, str, str]:
        """(field, code, message) of a rejected usage line."""
        err = row["err"]
        cells = row["raw"].split("\t")

        def value(name: str | None) -> str:
            pos = layout.cells.get(name or "", -1)
            return cells[pos].strip() if 0 <= pos < len(cells) else ""

        count = layout.units[0]
        returns = layout.units[1] if len(layout.units) > 1 else None
        own = layout.own_amount or "NetRevenue"
        if err == _ERR["missing_count"]:
            return count, "missing_value", f"cell {count!r} is empty"
        if err == _ERR["bad_count"]:
            kind, what = ("invalid_decimal", "number") if layout.units_decimal else (
                "invalid_integer", "whole number")  # fmt: skip
            return count, kind, f"cell {count!r}: {value(count)!r} is not a {what}"
        if err == _ERR["bad_returns"] and returns:
            return returns, "invalid_integer", (
                f"cell {returns!r}: {value(returns)!r} is not a whole number")  # fmt: skip
        if err == _ERR["missing_own"]:
            return own, "missing_value", f"cell {own!r} is empty"
        if err == _ERR["bad_own"]:
            return own, "invalid_decimal", f"cell {own!r}: {value(own)!r} is not a number"
        if err == _ERR["too_precise_own"]:
            return own, "amount_too_precise", (
                f"cell {own!r}: {value(own)!r} has more than {SCALE} decimal places "
                "(never rounded)")  # fmt: skip
        sid_field = "SummaryRecordId"
        if err == _ERR["missing_summary"]:
            return sid_field, "missing_value", "cell 'SummaryRecordId' is empty"
        if err == _ERR["unknown_summary"]:
            text = f"SummaryRecordId {row['sid']!r} matches no summary record in this file"
            return sid_field, "unknown_summary", text
        if err == _ERR["invalid_summary"]:
            s = by_index[row["sidx"]]
            text = f"summary record {s.sid!r} (line {s.line}) cannot be read; see its error"
            return sid_field, "invalid_summary", text
        block = row.get("block")
        if err == _ERR["unknown_resource"]:
            if layout.usage_type != "ugc":
                fld, ref = "TransactedResource", row.get("res_ref")
            elif "DspResourceId" in layout.cells:
                fld, ref = "DspResourceId", row.get("dsp_resource_id")
            else:
                fld, ref = "BlockId", block
            return fld, "unknown_resource", (
                f"{fld} {ref!r} matches no AS01/AS02 record in block {block!r}")  # fmt: skip
        if err == _ERR["unknown_release"]:
            return "TransactedRelease", "unknown_release", (
                f"TransactedRelease {row.get('rel_ref')!r} matches no RE01/RE02 record in block "
                f"{block!r}")  # fmt: skip
        return sid_field, "unallocatable", (
            f"summary record {row['sid']!r} declares no usages: this file's share of its revenue "
            "cannot be computed")  # fmt: skip
