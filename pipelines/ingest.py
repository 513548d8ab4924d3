"""Revenue ingestion, one file at a time: keep raw -> parse -> validate -> match -> convert ->
write Parquet -> record in the ledger. Used by the CLI and by the Airflow DAG.

Guarantees: the same bytes twice are recorded once and add no lines; a file that cannot be
read is quarantined with a machine-readable reason and nothing of it reaches the lake; every
line is either accepted (lake), rejected with its reasons (rejected_lines), or — when the
parser could not read it at all — a row error; totals per currency reconcile with what the
file declares, or the file is quarantined.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.formats.base import FileMeta, FileRejected, ParsedFile, RowError
from pipelines import lake
from pipelines.expectations import run_batch_expectations
from royalty_engine.fx import convert
from royalty_engine.matching import match_lines
from royalty_engine.validate import ERRORS_SCHEMA, check_lines, split_by_errors
from schemas import revenue
from schemas.store import db
from schemas.store.models import (
    FxRate,
    IngestFile,
    IngestStatus,
    MatchRule,
    Organisation,
    Release,
    Track,
)
from schemas.territories import ALL_TERRITORIES

ERROR_SAMPLE = 50
SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,3}$")


def _currencies() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies)


@dataclass
class IngestOutcome:
    name: str
    status: str  # ingested | duplicate | quarantined
    file_id: int | None = None
    sha256: str = ""
    format: str | None = None
    reporting_periods: list[str] = field(default_factory=list)
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    matched: int = 0
    suspense: int = 0
    totals: dict[str, dict[str, str]] = field(default_factory=dict)
    drift: list[str] = field(default_factory=list)
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    quarantine: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Catalog:
    """The organisation's matching dimensions and FX rates, read once per run."""

    tracks: pl.DataFrame
    releases: pl.DataFrame
    rules: pl.DataFrame
    rates: pl.DataFrame
    currency: str

    @classmethod
    def load(cls, session: Session, org_id: int) -> Catalog:
        def frame(stmt: Any, schema: dict[str, Any]) -> pl.DataFrame:
            return pl.DataFrame(
                [tuple(r) for r in session.execute(stmt)], schema=schema, orient="row"
            )

        org = session.get(Organisation, org_id)
        assert org is not None
        return cls(
            tracks=frame(
                sa.select(Track.isrc, Track.id, Track.release_id).where(Track.org_id == org_id),
                {"isrc": pl.String, "track_id": pl.Int64, "release_id": pl.Int64},
            ),
            releases=frame(
                sa.select(Release.upc, Release.id).where(Release.org_id == org_id),
                {"upc": pl.String, "release_id": pl.Int64},
            ),
            rules=frame(
                sa.select(
                    MatchRule.kind, MatchRule.key, MatchRule.track_id, MatchRule.release_id
                ).where(MatchRule.org_id == org_id),
                {"kind": pl.String, "key": pl.String, "track_id": pl.Int64, "release_id": pl.Int64},
            ),
            rates=frame(
                sa.select(
                    FxRate.base,
                    FxRate.quote,
                    FxRate.period,
                    sa.cast(FxRate.rate, sa.String),
                    FxRate.source,
                ).where(FxRate.org_id == org_id),
                {
                    "base": pl.String,
                    "quote": pl.String,
                    "period": pl.String,
                    "rate": pl.String,
                    "source": pl.String,
                },
            ).with_columns(pl.col("rate").str.to_decimal(scale=12)),
            currency=org.default_currency,
        )


def _suffix(name: str) -> str:
    m = SUFFIX.search(Path(name).name)
    return m.group(0).lower() if m else ""


def _period_of(meta: FileMeta) -> str | None:
    day = meta.period_end or meta.period_start
    return f"{day.year:04d}-{day.month:02d}" if day else None


def _totals(lines: pl.DataFrame) -> dict[str, Decimal]:
    if lines.is_empty():
        return {}
    grouped = lines.group_by("currency").agg(pl.col("amount").sum())
    return {str(cur): Decimal(str(amt)) for cur, amt in grouped.iter_rows() if cur is not None}


def _fmt(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _combine(parsed: Sequence[ParsedFile]) -> ParsedFile:
    if len(parsed) == 1:
        return parsed[0]
    meta = parsed[0].meta
    totals: dict[str, Decimal] = {}
    for p in parsed:
        for cur, amt in p.meta.declared_totals.items():
            totals[cur] = totals.get(cur, Decimal(0)) + amt
    return ParsedFile(
        lines=pl.concat([p.lines for p in parsed], how="vertical"),
        meta=FileMeta(
            format=meta.format,
            period_start=meta.period_start,
            period_end=meta.period_end,
            service=meta.service,
            declared_totals=totals,
        ),
        errors=[e for p in parsed for e in p.errors],
        drift=[d for p in parsed for d in p.drift],
    )


def ingest_path(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    path: Path,
    name: str,
    source_url: str = "",
    format: str | None = None,
    period: str | None = None,
    actor: str = "ingest",
) -> IngestOutcome:
    """Ingest one local file (already fetched from its drop). Idempotent by content."""
    from connectors.formats.registry import parse_file

    sha = lake.sha256_file(path)
    with db.transaction(factory, actor=actor) as session:
        seen = session.scalar(
            sa.select(IngestFile).where(IngestFile.org_id == org_id, IngestFile.sha256 == sha)
        )
        if seen is not None:
            also = source_url or name  # where the same bytes arrived again
            if also not in (seen.source_url, seen.original_name, *seen.other_names):
                seen.other_names = [*seen.other_names, also]
            return IngestOutcome(
                name=name, status="duplicate", file_id=seen.id, sha256=sha, format=seen.format
            )
        catalog = Catalog.load(session, org_id)
    raw = lake.keep_raw(path, data_dir, org_id, sha, _suffix(name))
    quarantine = partial(
        _quarantine,
        factory,
        data_dir,
        org_id=org_id,
        sha=sha,
        name=name,
        source_url=source_url,
        raw=raw,
        size=path.stat().st_size,
        actor=actor,
    )
    outcome = IngestOutcome(name=name, status="ingested", sha256=sha)
    with tempfile.TemporaryDirectory(prefix="tm-ingest-") as work:
        try:
            parsed = _combine(parse_file(raw, name, Path(work), format=format))
        except FileRejected as exc:
            return quarantine(fmt=format, exc=exc)
    outcome.format = parsed.meta.format
    file_period = period or _period_of(parsed.meta)
    lines = revenue.conform(parsed.lines, revenue.PARSED).collect()
    findings = check_lines(
        lines.lazy(),
        territories=ALL_TERRITORIES,
        currencies=_currencies(),
        period_start=parsed.meta.period_start,
        period_end=parsed.meta.period_end,
    ).collect()
    row_errors = pl.DataFrame(
        [(e.row, e.field, e.code, e.message, "error") for e in parsed.errors],
        schema=ERRORS_SCHEMA,
        orient="row",
    )
    findings = pl.concat([row_errors, findings], how="vertical").sort("line_no")
    # Reconcile before anything is written: what the file declares = what was read.
    read_totals = _totals(lines)
    if parsed.meta.declared_totals and not parsed.errors:
        diff = {
            cur: parsed.meta.declared_totals.get(cur, Decimal(0)) - read_totals.get(cur, Decimal(0))
            for cur in set(read_totals) | set(parsed.meta.declared_totals)
        }
        off = {cur: d for cur, d in diff.items() if d != 0}
        if off:
            mismatch = FileRejected(
                "control_total_mismatch",
                "; ".join(
                    f"{cur}: declared {_fmt(parsed.meta.declared_totals.get(cur, Decimal(0)))}, "
                    f"lines sum to {_fmt(read_totals.get(cur, Decimal(0)))}"
                    for cur in sorted(off)
                ),
            )
            return quarantine(fmt=parsed.meta.format, exc=mismatch)
    accepted, rejected = split_by_errors(lines.lazy(), findings)
    month = pl.col("usage_end").dt.strftime("%Y-%m")
    stamp = [
        pl.lit(org_id).alias("org_id"),
        pl.lit(parsed.meta.format).alias("source"),
        pl.lit(sha).alias("file_sha256"),
        (pl.lit(file_period) if file_period else month).alias("reporting_period"),
    ]
    matched = match_lines(
        accepted.with_columns(stamp),
        catalog.tracks.lazy(),
        catalog.releases.lazy(),
        catalog.rules.lazy(),
    )
    converted = convert(matched, catalog.rates.lazy(), target=catalog.currency).collect()
    rejected_df = rejected.with_columns(stamp).collect()
    with db.transaction(factory, actor=actor) as session:
        received = dt.datetime.now(dt.UTC)
        row = IngestFile(
            received_at=received,
            org_id=org_id,
            sha256=sha,
            original_name=name,
            source_url=source_url,
            size=path.stat().st_size,
            format=parsed.meta.format,
            status=IngestStatus.INGESTED,
            reporting_period=file_period,
            period_start=parsed.meta.period_start,
            period_end=parsed.meta.period_end,
            raw_path=str(raw),
        )
        session.add(row)
        session.flush()
        file_id = row.id
        out = converted.with_columns(pl.lit(file_id).alias("file_id"))
        canonical = revenue.conform(out, revenue.CANONICAL).collect()
        outputs = _write(
            data_dir,
            org_id,
            file_id,
            parsed.meta.format,
            canonical,
            rejected_df.with_columns(pl.lit(file_id).alias("file_id")),
            findings,
        )
        report = run_batch_expectations(
            accepted=canonical,
            findings=findings,
            declared_totals=parsed.meta.declared_totals,
            rejected_totals=_totals(rejected_df),
            file_label=f"{parsed.meta.format}-file-{file_id}",
            out_dir=Path(outputs["findings"]).parent,
            run_time=received,
        )
        outputs["data_docs"] = str(report.docs_index)
        outputs["expectations"] = {
            "success": report.success,
            "failed": [r["expectation_type"] for r in report.results if not r["success"]],
        }
        outcome = _summarise(
            outcome, file_id, lines, canonical, rejected_df, findings, parsed, read_totals, outputs
        )
        row.lines_read = outcome.lines
        row.lines_accepted, row.lines_rejected = outcome.accepted, outcome.rejected
        row.lines_matched, row.lines_suspense = outcome.matched, outcome.suspense
        row.totals, row.drift = outcome.totals, outcome.drift
        row.errors_sample, row.error_count = outcome.errors, outcome.error_count
        row.outputs = outputs
    return outcome


def _write(
    data_dir: Path,
    org_id: int,
    file_id: int,
    source: str,
    accepted: pl.DataFrame,
    rejected: pl.DataFrame,
    findings: pl.DataFrame,
) -> dict[str, Any]:
    lake.remove_file_outputs(data_dir, org_id, file_id)
    written: dict[str, list[str]] = {"revenue_lines": [], "rejected_lines": []}
    for table, frame in (("revenue_lines", accepted), ("rejected_lines", rejected)):
        if frame.is_empty():
            continue
        for (period,), part in frame.partition_by("reporting_period", as_dict=True).items():
            target = lake.partition(data_dir, table, org_id, str(period), source, file_id)
            if table == "rejected_lines":
                reasons = (
                    findings.filter(pl.col("severity") == "error")
                    .group_by("line_no")
                    .agg(
                        pl.concat_str([pl.col("field"), pl.col("code")], separator=":")
                        .str.join(";")
                        .alias("reasons")
                    )
                )
                part = part.join(reasons, on="line_no", how="left")
            written[table].append(str(lake.write_parquet(part, target)))
    report = data_dir / "reports" / "ingest" / f"org={org_id}" / f"file={file_id}" / "findings.json"
    lake.write_json(findings.to_dicts(), report)
    return {**written, "findings": str(report)}


def _summarise(
    outcome: IngestOutcome,
    file_id: int,
    lines: pl.DataFrame,
    accepted: pl.DataFrame,
    rejected: pl.DataFrame,
    findings: pl.DataFrame,
    parsed: ParsedFile,
    read_totals: dict[str, Decimal],
    outputs: dict[str, Any],
) -> IngestOutcome:
    acc, rej = _totals(accepted), _totals(rejected)
    totals: dict[str, dict[str, str]] = {}
    for cur in sorted(set(read_totals) | set(parsed.meta.declared_totals)):
        entry = {
            "read": _fmt(read_totals.get(cur, Decimal(0))),
            "accepted": _fmt(acc.get(cur, Decimal(0))),
            "rejected": _fmt(rej.get(cur, Decimal(0))),
        }
        if cur in parsed.meta.declared_totals:
            entry["declared"] = _fmt(parsed.meta.declared_totals[cur])
        totals[cur] = entry
    matched = accepted.filter(pl.col("match_method").is_not_null()).height
    outcome.file_id = file_id
    outcome.reporting_periods = (
        sorted(accepted["reporting_period"].unique().drop_nulls().to_list())
        if accepted.height
        else []
    )
    outcome.lines = lines.height + len(parsed.errors)
    outcome.accepted, outcome.rejected = accepted.height, rejected.height + len(parsed.errors)
    outcome.matched, outcome.suspense = matched, accepted.height - matched
    outcome.totals, outcome.drift = totals, list(parsed.drift)
    outcome.error_count = findings.height
    outcome.errors = findings.head(ERROR_SAMPLE).to_dicts()
    outcome.outputs = outputs
    return outcome


def _quarantine(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    sha: str,
    name: str,
    source_url: str,
    raw: Path,
    size: int,
    fmt: str | None,
    exc: FileRejected,
    actor: str,
) -> IngestOutcome:
    reason = {
        "code": exc.code,
        "message": exc.message,
        "row": exc.row,
        "field": exc.field,
        "file": name,
    }
    lake.write_json(reason, data_dir / "quarantine" / f"org={org_id}" / f"{sha}.json")
    with db.transaction(factory, actor=actor) as session:
        row = IngestFile(
            org_id=org_id,
            sha256=sha,
            original_name=name,
            source_url=source_url,
            size=size,
            format=fmt,
            status=IngestStatus.QUARANTINED,
            quarantine_code=exc.code,
            quarantine_reason=exc.message[:2000],
            raw_path=str(raw),
            errors_sample=[RowError(name, exc.row, exc.field, exc.code, exc.message).as_dict()],
            error_count=1,
        )
        session.add(row)
        session.flush()
        file_id = row.id
    return IngestOutcome(
        name=name,
        status="quarantined",
        file_id=file_id,
        sha256=sha,
        format=fmt,
        quarantine=reason,
        error_count=1,
        errors=[reason],
    )
