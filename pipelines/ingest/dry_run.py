"""A dry run of ingestion: parse and validate a file with one spec, write nothing.

What ``tunemantra formats infer`` shows after drafting a spec: the lines the file would give,
the totals per currency (accepted and rejected), the rejected lines with their reasons (the
parser's row errors and the validation's error findings, as ingestion records them), and
whether the file's own declared total is met. No store, no lake: only a scratch directory.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from connectors.formats.base import FileRejected
from connectors.formats.registry import parse_file
from connectors.formats.spec import SpecParser
from pipelines.ingest.files import rejected_reasons, with_reader_findings
from royalty_engine.validate import validate_lines
from schemas import revenue
from schemas.format_spec import FormatSpec
from schemas.territories import REPORTED_TERRITORIES, is_valid_currency

REJECTED_SHOWN = 20


def _fmt(d: Decimal) -> str:
    return format(d.normalize(), "f") if d else "0"


def dry_run(
    spec: FormatSpec, path: Path, filename: str, *, max_rejected_share: float = 0.5
) -> dict[str, Any]:
    """What ingesting ``path`` with ``spec`` would produce (JSON-ready), or its quarantine.

    As ingestion would, it says ``would_quarantine`` when the lines do not sum to the total
    the file declares, or when more than ``max_rejected_share`` of them (or all) are rejected.
    """
    with tempfile.TemporaryDirectory(prefix="tm-dry-run-") as tmp:
        try:
            parsed = parse_file(
                path, filename, Path(tmp), format=spec.name, registry={spec.name: SpecParser(spec)}
            )
        except FileRejected as exc:
            return {"status": "quarantined", "code": exc.code, "message": exc.message}
    read: dict[str, Decimal] = {}
    accepted: dict[str, Decimal] = {}
    declared: dict[str, Decimal] = {}
    lines = n_accepted = 0
    rejected: list[dict[str, Any]] = []
    findings: list[pl.DataFrame] = []
    drift: list[str] = []
    for piece in parsed:
        frame = revenue.conform(piece.lines, revenue.PARSED).collect()
        currencies = frozenset(
            c for c in frame["currency"].drop_nulls().unique() if is_valid_currency(c)
        )
        bad, found = validate_lines(
            frame,
            territories=REPORTED_TERRITORIES,
            currencies=currencies,
            period_start=piece.meta.period_start,
            period_end=piece.meta.period_end,
        )
        found = with_reader_findings(piece, found)
        found = found.with_columns(pl.lit(piece.meta.extra.get("member") or filename).alias("file"))
        findings.append(found)
        unread = {e.row for e in piece.errors if e.row is not None}
        bad = bad | frame["line_no"].is_in(list(unread))
        lines += frame.height + len(unread - set(frame["line_no"].to_list()))
        good = frame.filter(~bad)
        n_accepted += good.height
        for sums, part in ((read, frame), (accepted, good)):
            grouped = part.group_by("currency").agg(pl.col("amount").sum())
            for cur, amt in grouped.iter_rows():
                key = str(cur)
                sums[key] = sums.get(key, Decimal(0)) + Decimal(str(amt))
        for cur, amt in piece.meta.declared_totals.items():
            declared[cur] = declared.get(cur, Decimal(0)) + amt
        drift += [d for d in piece.drift if d not in drift]
        reasons = (
            found.filter(pl.col("severity") == "error")
            .group_by("line_no", maintain_order=True)
            .agg(pl.concat_str("field", "code", "message", separator=": ").alias("reasons"))
            .sort("line_no")
        )
        for row in reasons.head(REJECTED_SHOWN - len(rejected)).iter_rows(named=True):
            rejected.append({"line": row["line_no"], "reasons": row["reasons"]})
    all_found = pl.concat(findings, how="vertical")
    totals = {
        cur: {
            "read": _fmt(read[cur]),
            "accepted": _fmt(accepted.get(cur, Decimal(0))),
            "rejected": _fmt(read[cur] - accepted.get(cur, Decimal(0))),
            **({"declared": _fmt(declared[cur])} if cur in declared else {}),
        }
        for cur in sorted(read)
    }
    off = [c for c in declared if declared[c] != read.get(c, Decimal(0))]
    too_many = not n_accepted or lines - n_accepted > max_rejected_share * lines
    return {
        "status": "would_quarantine" if off or too_many else "would_ingest",
        "lines": lines,
        "accepted": n_accepted,
        "rejected": lines - n_accepted,
        "totals": totals,
        "control_total_mismatch": off,
        "rejected_lines": rejected,
        "top_reasons": rejected_reasons(all_found),
        "warnings": int((all_found["severity"] == "warning").sum()),
        "warning_reasons": [
            {"field": f, "code": c, "lines": n}
            for f, c, n in all_found.filter(pl.col("severity") == "warning")
            .group_by("field", "code")
            .agg(pl.len())
            .sort("len", descending=True)
            .iter_rows()
        ],
        "drift": drift,
    }
