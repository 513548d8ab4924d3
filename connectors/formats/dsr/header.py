"""HEAD, the file's structure (one HEAD first, one footer last), the FOOT counts and the
summary records (each summary's revenue base, currency, territory and declared usages)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from connectors.formats import archive
from connectors.formats.base import FileMeta, FileRejected, RowError
from connectors.formats.dsr.layouts import (
    _DEC_RE,
    _INT_RE,
    COMMERCIAL_MODELS,
    FILENAME_RE,
    FORMAT,
    Layout,
    _basename,
    _cell,
    _first_record,
    _scaled,
)
from connectors.formats.dsr.reading import _Parts, _Reading
from schemas.report_dates import iso_period


@dataclass
class _Summary:
    index: int
    sid: str
    line: int
    code: str
    territory: str | None
    commercial_model: str | None
    currency: str | None  # CurrencyOfReporting (1.1: Currency)
    currency_tx: str | None
    revenue: int | None  # revenue base in 10^-12 units
    revenue_cell: str | None  # which cell it came from
    declared_usages: int | None  # AllocatedUsages, else Usages / TotalUsages / UsagesInReporting
    ok: bool = True


class _Header(_Reading):
    """HEAD, structure, FOOT and the summary records."""

    def _begin(
        self,
    ) -> tuple[dict[str, Layout], str, str, FileMeta, tuple[list[int], list[int], list[str]]]:
        """What both ways of parsing start with: the file is not empty, has no enormous line,
        starts with a HEAD of a supported profile and ends with a footer. (layouts, footer
        record type, variant, the file's meta, and the cells to read: those of the usage
        records, those of them that are counts, the usage record types.)"""
        name = self.filename
        if self.path.stat().st_size == 0:
            raise FileRejected("empty_file", f"{name} is empty")
        archive.check_line_length(self.path)
        first = _first_record(self._read_text(archive.read_head(self.path)))
        if first is None or first[1][0] not in ("HEAD", "SRHE"):
            what = "no data line" if first is None else f"a {first[1][0][:12]!r} record"
            raise FileRejected(
                "missing_head", f"{name} does not start with a HEAD record (found {what})"
            )
        profile, version, layouts = self._profile(first[1])
        self.profile_key = (profile, version)
        footer_code = self._footer_code()
        variant = "single" if footer_code == "SRFO" else "block"
        meta = self._head(first[1], layouts["HEAD"], profile, version, variant)
        usage_layouts = [
            lay
            for lay in layouts.values()
            if lay.kind == "usage" and lay.single == (variant == "single")
        ]
        counts = {lay.cells[n] for lay in usage_layouts for n in lay.units}
        texts = {pos for lay in usage_layouts for n, pos in lay.cells.items() if n not in lay.units}
        usage_bases = sorted({lay.base for lay in layouts.values() if lay.kind == "usage"})
        return (
            layouts,
            footer_code,
            variant,
            meta,
            (sorted(texts | counts), sorted(counts - texts), usage_bases),
        )

    # ----------------------------------------------------------------------------------------
    # HEAD, structure, FOOT

    def _head(
        self, cells: list[str], layout: Layout, profile: str, version: str, variant: str
    ) -> FileMeta:
        def cell(name: str) -> str | None:
            return _cell(cells, layout, name)

        def integer(name: str) -> int:
            value = cell(name)
            if value is None or not re.fullmatch(r"\d+", value):
                raise FileRejected(
                    "invalid_head", f"HEAD {name} {value!r} is not a whole number", field=name
                )
            return int(value)

        def date(name: str, *, end: bool) -> dt.date:
            value = cell(name) or ""
            try:
                return iso_period(value, end=end)
            except ValueError as exc:
                raise FileRejected("invalid_head", f"HEAD {name}: {exc}", field=name) from exc

        x, y = integer("FileNumber"), integer("NumberOfFiles")
        if not 1 <= x <= y:
            raise FileRejected(
                "invalid_head", f"HEAD FileNumber {x} of NumberOfFiles {y}", field="FileNumber"
            )
        named = FILENAME_RE.match(_basename(self.filename))
        if named and (int(named["x"]), int(named["y"])) != (x, y):
            raise FileRejected(
                "xofy_mismatch",
                f"the file name says {named['x']}of{named['y']} but HEAD says FileNumber {x} "
                f"of NumberOfFiles {y}",
                field="FileNumber",
            )
        start, end = date("UsageStartDate", end=False), date("UsageEndDate", end=True)
        if end < start:
            raise FileRejected(
                "invalid_head", f"HEAD UsageEndDate {end} is before UsageStartDate {start}"
            )
        extra: dict[str, Any] = {
            "profile": profile,
            "profile_version": version,
            "variant": variant,
            "message_version": cell("MessageVersion"),
            "message_created": cell("MessageCreatedDateTime"),
            "sender_party_id": cell("SenderPartyId"),
            "recipient_party_id": cell("RecipientPartyId"),
            "recipient_name": cell("RecipientName"),
            "service_description": cell("ServiceDescription"),
        }
        if named:
            extra["file_name_parts"] = {
                k: named[k] for k in ("recipient", "sender", "service", "period", "territory")
            }
        self.period = (start, end)
        self.service = cell("SenderName")
        self.multi = y > 1
        return FileMeta(
            format=FORMAT,
            period_start=start,
            period_end=end,
            service=self.service,
            file_number=x,
            number_of_files=y,
            message_id=cell("MessageId"),
            extra=extra,
        )

    def _structure(self, parts: _Parts, n_lines: int) -> None:
        """Exactly one HEAD, first, and one footer, last, among the data lines."""
        kinds, first, last = parts.kinds, parts.first, parts.last
        heads = kinds["head"]["line_no"].to_list() if "head" in kinds else []
        foots = sorted(
            [
                *(kinds["foot"]["line_no"].to_list() if "foot" in kinds else []),
                *(kinds["srfo"]["line_no"].to_list() if "srfo" in kinds else []),
            ]
        )
        if heads != [first]:
            raise FileRejected(
                "misplaced_record",
                f"{self.filename}: HEAD must be the first record and appear once "
                f"(found at lines {heads})",
                row=heads[1] if len(heads) > 1 else None,
            )
        if foots != [last]:
            raise FileRejected(
                "misplaced_record",
                f"{self.filename}: the footer must be the last record and appear once "
                f"(found at lines {foots} of {n_lines})",
                row=foots[0] if foots else None,
            )

    def _unknown_records(self, part: pl.DataFrame | None) -> None:
        if part is None:
            return
        for row, code in part.select("line_no", "c0").iter_rows():
            self.errors.append(
                RowError(
                    self.filename, row, "RecordType", "unknown_record_type",
                    f"record type {code!r} is not part of this profile",
                )
            )  # fmt: skip

    def _check_footer(
        self,
        kinds: Mapping[str, pl.DataFrame],
        layouts: Mapping[str, Layout],
        code: str,
        n_lines: int,
        n_summaries: int,
        n_blocks: int,
        meta: FileMeta,
    ) -> None:
        layout = layouts[code]
        part = kinds["foot" if code == "FOOT" else "srfo"]
        cells = part["raw"][0].split("\t")
        row = int(part["line_no"][0])

        def number(name: str, *, required: bool) -> int | None:
            value = _cell(cells, layout, name)
            if value is None and not required:
                return None
            if value is None or not re.fullmatch(r"[+-]?\d+", value):
                raise FileRejected(
                    "foot_invalid",
                    f"{code} {name} {value!r} is not a whole number",
                    row=row,
                    field=name,
                )
            return int(value)

        checks: list[tuple[str, int, int, str]] = []
        if code == "FOOT":
            declared_lines = number("NumberOfLinesInFile", required=True)
            blocks = number("NumberOfBlocksInFile", required=True)
            assert declared_lines is not None and blocks is not None
            checks.append(("NumberOfLinesInFile", declared_lines, n_lines, "lines"))
            checks.append(("NumberOfBlocksInFile", blocks, n_blocks, "blocks"))
            meta.extra["lines_in_report"] = number("NumberOfLinesInReport", required=False)
            meta.extra["blocks_in_report"] = number("NumberOfBlocksInReport", required=False)
        else:
            declared_lines = number("NumberOfLinesInReport", required=True)
            assert declared_lines is not None
            if meta.number_of_files == 1:
                checks.append(("NumberOfLinesInReport", declared_lines, n_lines, "lines"))
            meta.extra["lines_in_report"] = declared_lines
        summaries = number("NumberOfSummaryRecords", required=True)
        assert summaries is not None
        checks.append(("NumberOfSummaryRecords", summaries, n_summaries, "summary records"))
        meta.declared_lines = declared_lines
        wrong = [c for c in checks if c[1] != c[2]]
        if wrong:
            parts = [
                f"{cell_name} is {want} but the file has {got} {what}"
                + (" (HEAD, footer, comment and blank lines included)" if what == "lines" else "")
                for cell_name, want, got, what in wrong
            ]
            raise FileRejected(
                "foot_mismatch", f"{code} " + "; ".join(parts), row=row, field=wrong[0][0]
            )

    # ----------------------------------------------------------------------------------------
    # summary records

    def _summaries(self, part: pl.DataFrame | None) -> dict[str, _Summary]:
        out: dict[str, _Summary] = {}
        if part is None:
            return out
        for row, code, raw in part.select("line_no", "c0", "raw").iter_rows():
            summary = self._summary(len(out), row, self.resolved[code], raw.split("\t"))
            if summary.sid in out:
                raise FileRejected(
                    "duplicate_summary",
                    f"SummaryRecordId {summary.sid!r} appears on lines {out[summary.sid].line} "
                    f"and {row}",
                    row=row,
                    field="SummaryRecordId",
                )
            out[summary.sid] = summary
        return out

    def _summary(self, index: int, row: int, layout: Layout, cells: list[str]) -> _Summary:
        def cell(name: str) -> str | None:
            return _cell(cells, layout, name)

        ok = True

        def error(name: str, code: str, message: str) -> None:
            nonlocal ok
            ok = False
            self.errors.append(RowError(self.filename, row, name, code, message))

        def integer(name: str) -> int | None:
            value = cell(name)
            if value is None:
                return None
            if not re.fullmatch(_INT_RE, value):
                error(name, "invalid_integer", f"cell {name!r}: {value!r} is not a whole number")
                return None
            return int(value)

        def decimal(name: str) -> int | None:
            value = cell(name)
            if value is None:
                return None
            if not re.fullmatch(_DEC_RE, value):
                error(name, "invalid_decimal", f"cell {name!r}: {value!r} is not a number")
                return None
            return _scaled(value)

        sid = cell("SummaryRecordId")
        if sid is None:
            error("SummaryRecordId", "missing_value", "cell 'SummaryRecordId' is empty")
            sid = f"<line {row}>"
        counts = [
            integer(name)
            for name in ("AllocatedUsages", "Usages", "TotalUsages", "UsagesInReportingPeriod")
        ]
        usages = next((v for v in counts if v is not None), None)
        revenue_cell = revenue = None
        for name in ("AllocatedNetRevenue", "NetRevenue"):
            value = decimal(name)
            if value is not None and revenue is None:
                revenue, revenue_cell = value, name
        given = [n for n in ("AllocatedNetRevenue", "NetRevenue") if n in layout.cells]
        if given and all(cell(n) is None for n in given):
            # NetRevenue is mandatory (minOccurs 1): an empty one is not zero revenue, and
            # the usage lines that share it are rejected with the summary, not paid nothing
            error(given[-1], "missing_value", f"cell {given[-1]!r} is empty")
        currency = cell("CurrencyOfReporting") or cell("Currency")
        if currency is None and revenue:
            error("CurrencyOfReporting", "missing_value", "the summary has revenue but no currency")
        model = cell("CommercialModel")
        return _Summary(
            index=index,
            sid=sid,
            line=row,
            code=layout.code,
            territory=cell("Territory"),
            commercial_model=None if model is None else COMMERCIAL_MODELS.get(model, "other"),
            currency=currency,
            currency_tx=cell("CurrencyOfTransaction"),
            revenue=revenue,
            revenue_cell=revenue_cell,
            declared_usages=usages,
            ok=ok,
        )
