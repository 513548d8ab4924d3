"""Revenue ingestion, one file at a time: keep raw -> parse -> validate -> match -> convert ->
write Parquet -> record in the ledger. Used by the CLI and by the Airflow DAG.

Guarantees: the same bytes twice are recorded once and add no lines; a file that cannot be
read is quarantined with a machine-readable reason and nothing of it reaches the lake; every
line is either accepted (lake), rejected with its reasons (rejected_lines), or — when the
parser could not read it at all — a row error; totals per currency reconcile with what the
file declares, or the file is quarantined.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import logging
import os
import queue
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from connectors.formats.base import FileMeta, FileRejected, ParsedFile, RowError
from pipelines import lake
from pipelines.ingest.expectations import (
    FINDINGS_KEYS,
    SUMMARY_KEYS,
    accepted_summary,
    combine_summaries,
    findings_summary,
    run_batch_expectations,
)
from pipelines.killpoints import killpoint
from pipelines.layout import DataDir
from pipelines.resources import Resources
from royalty_engine.fx import convert
from royalty_engine.matching import match_lines
from royalty_engine.validate import ERRORS_SCHEMA, validate_lines
from schemas import revenue
from schemas.store import db
from schemas.store.fx import PERIOD as MONTH
from schemas.store.models import (
    FxRate,
    IngestFile,
    IngestStatus,
    MatchRule,
    Organisation,
    Release,
    Track,
)
from schemas.territories import REPORTED_TERRITORIES

T = TypeVar("T")
ERROR_SAMPLE = 50
SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,8}){1,3}$")


def _currencies() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies)


@dataclass
class IngestOutcome:
    name: str
    status: str  # ingested | duplicate | quarantined | failed (not recorded: tried again)
    file_id: int | None = None
    sha256: str = ""
    format: str | None = None
    format_version: int | None = None  # the organisation's own spec version (None: shipped)
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


log = logging.getLogger(__name__)


def _arrived_again(seen: IngestFile, where: str) -> None:
    """Record on a ledger row that its content arrived again from ``where``."""
    if where not in (seen.source_url, seen.original_name, *seen.other_names):
        seen.other_names = [*seen.other_names, where]


class _SameContent(Exception):
    """The file holds exactly the lines of a file already ingested (``file_id``), or of one
    a concurrent ingestion committed first (``file_id`` None: found by ``content``)."""

    def __init__(self, file_id: int | None, format: str | None, content: str = "") -> None:
        super().__init__(f"same content as ingested file {file_id or content}")
        self.file_id, self.format, self.content = file_id, format, content


class _LostRace(Exception):
    """A concurrent ingestion of the same bytes committed its ledger row first."""


DATA_FAULTS = (
    ValueError,
    ArithmeticError,
    LookupError,
    TypeError,
    csv.Error,  # a reader's refusal of a line (it once took CR-only line ends for one field)
    pl.exceptions.PolarsError,
)
INTERNAL = "internal_error"  # the quarantine code of a file that failed on a fault of ours


def _period_of(meta: FileMeta) -> str | None:
    if meta.reporting_period:  # a fiscal month the file declares (Apple's file names)
        return meta.reporting_period
    day = meta.period_end or meta.period_start
    return f"{day.year:04d}-{day.month:02d}" if day else None


def _totals(lines: pl.DataFrame) -> dict[str, Decimal]:
    if lines.is_empty():
        return {}
    grouped = lines.group_by("currency").agg(pl.col("amount").sum())
    return {str(cur): Decimal(str(amt)) for cur, amt in grouped.iter_rows() if cur is not None}


def _month_of_usage_end(frame: pl.DataFrame) -> pl.Expr:
    """``YYYY-MM`` of each line's ``usage_end``: formatted once per distinct date."""
    days = frame["usage_end"].drop_nulls().unique()
    return pl.col("usage_end").replace_strict(
        days, days.dt.strftime("%Y-%m"), default=None, return_dtype=pl.String
    )


def _summary_totals(summary: pl.DataFrame) -> dict[str, Decimal]:
    """Per currency, the amounts of an ``accepted_summary`` (no second pass over the lines)."""
    return _totals(summary.select("currency", "amount"))


def _add(into: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for cur, amt in more.items():
        into[cur] = into.get(cur, Decimal(0)) + amt


def _fmt(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _reasons(findings: pl.DataFrame) -> pl.DataFrame:
    """``line_no`` -> ``reasons`` ("field:code;...") of the lines with error findings."""
    return (
        findings.filter(pl.col("severity") == "error")
        .group_by("line_no", maintain_order=True)
        .agg(
            pl.concat_str([pl.col("field"), pl.col("code")], separator=":")
            .str.join(";")
            .alias("reasons")
        )
    )


TOP_REASONS = 5


def rejected_reasons(findings: pl.DataFrame, top: int = TOP_REASONS) -> list[dict[str, Any]]:
    """The most frequent reasons lines were rejected (error findings by field and code): the
    lines each concerns, and its first line as an example (file, row, message)."""
    errors = findings.filter(pl.col("severity") == "error")
    grouped = (
        errors.group_by("field", "code", maintain_order=True)
        .agg(
            pl.col("line_no").n_unique().alias("lines"),
            pl.col("file").first(),
            pl.col("line_no").first().alias("row"),
            pl.col("message").first(),
        )
        .sort("lines", descending=True, maintain_order=True)
        .head(top)
    )
    return [
        {
            "field": r["field"],
            "code": r["code"],
            "lines": r["lines"],
            "example": {"file": r["file"], "row": r["row"], "message": r["message"]},
        }
        for r in grouped.iter_rows(named=True)
    ]


def with_reader_findings(piece: ParsedFile, found: pl.DataFrame) -> pl.DataFrame:
    """The validation's findings on a piece with the reader's own: its row errors (lines it
    could not read) first, and what it kept but flags (a territory read as unknown) as
    warnings after."""
    if piece.errors:
        row_errors = pl.DataFrame(
            [(e.row, e.field, e.code, e.message, "error") for e in piece.errors],
            schema=ERRORS_SCHEMA,
            orient="row",
        )
        found = pl.concat([row_errors, found], how="vertical")
    if piece.warnings is not None and piece.warnings.height:
        kept = piece.warnings.select(
            *[pl.col(c) for c in ("line_no", "field", "code", "message")],
            pl.lit("warning").alias("severity"),
        ).cast(ERRORS_SCHEMA)  # type: ignore[arg-type]
        found = pl.concat([found, kept], how="vertical")
    return found


@dataclass
class _Run:
    """What one ingestion gathers chunk by chunk: totals, counts, findings and summaries,
    never the lines themselves (those go to staged Parquet parts)."""

    org_id: int
    source: str
    sha: str
    file_id: int
    catalog: Catalog
    staging: Path
    period: str | None  # the reporting period override (--period)
    first_meta: FileMeta | None = None  # the first member's final meta (the file's period)
    declared: dict[str, Decimal] = field(default_factory=dict)
    read: dict[str, Decimal] = field(default_factory=dict)
    accepted_totals: dict[str, Decimal] = field(default_factory=dict)
    rejected_totals: dict[str, Decimal] = field(default_factory=dict)
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    matched: int = 0
    parser_errors: int = 0
    drift: list[str] = field(default_factory=list)
    findings: list[pl.DataFrame] = field(default_factory=list)
    summaries: list[pl.DataFrame] = field(default_factory=list)
    found: list[pl.DataFrame] = field(default_factory=list)
    parts: list[tuple[str, str | None, Path]] = field(default_factory=list)  # table, period, path
    seq: int = 0
    writer: ThreadPoolExecutor | None = None  # writes parts while the next chunk is worked on
    writing: list[Future[Path]] = field(default_factory=list)
    content: Any = field(default_factory=hashlib.sha256)  # see ``_fingerprint``
    archive: bool = False  # a zip of reports: each line says which one (``member``)
    readable: bool = False  # some line was parsed (``_fingerprint``)
    blind: bool = False  # some unreadable line came without its raw hash (``_fingerprint``)

    def file_period(self) -> str | None:
        if self.period:
            return self.period
        return _period_of(self.first_meta) if self.first_meta is not None else None

    def _fingerprint(self, lines: pl.DataFrame, errors: list[RowError]) -> None:
        """Add a chunk to the file's content hash: its parsed lines' raw hashes, in file order
        as parsed (they do not depend on the compression or the encoding), the range of their
        usage dates, and the numbers and raw hashes of the lines the parser could not read
        (two reports differing only in an unreadable line are two reports). Chunks come in
        file order."""
        # 16 of each hash's 64 hex digits: a different report matches only if every line's
        # 64-bit prefix does, in order; hashing a quarter of the text keeps this cheap
        hashes, first, last = lines.select(
            pl.col("raw_hash").str.slice(0, 16).str.join(""),
            # usage dates a layout takes from the file name (Spotify's month), which the
            # raw lines do not show: the same rows for another month are another report
            pl.col("usage_start").min(),
            pl.col("usage_end").max(),
        ).row(0)
        self.content.update(f"{hashes or ''}[{first}~{last}]".encode())
        unread = sorted({(e.row, e.raw_hash or "") for e in errors if e.row is not None})
        if unread:
            self.content.update(("!" + ",".join(f"{r}:{h}" for r, h in unread)).encode())
            # a line known by its number alone (a record the parser could not place): were
            # nothing else readable, the file's own bytes are what tells it from another
            self.blind |= any(not h for _, h in unread)
        self.readable |= lines.height > 0

    def fingerprint(self) -> str:
        """The file's content hash (``_fingerprint``) with what the lines alone do not say:
        the layout, and the period the file (or its name) declares. A report for February
        whose rows happen to be January's is a report of its own, not a duplicate."""
        meta = self.first_meta
        declared = (meta.period_start, meta.period_end) if meta is not None else (None, None)
        content = self.content.copy()
        content.update(f"|{self.source}|{self.file_period()}|{declared}".encode())
        if self.blind and not self.readable:
            content.update(f"|sha256={self.sha}".encode())
        return str(content.hexdigest())

    def chunk(self, piece: ParsedFile) -> None:
        """Validate, match, convert and stage one chunk of parsed lines. At most one earlier
        chunk is still being written meanwhile (bounded memory)."""
        self.flush()
        # the file's period: the first member's (complete on its last piece; on every piece
        # when the HEAD or the file name declares it, else unknown until the end: restamp)
        meta = self.first_meta or piece.meta
        file_period = self.file_period() or _period_of(meta)
        lines = revenue.conform(piece.lines, revenue.PARSED)
        self._fingerprint(piece.lines, piece.errors)
        checks: dict[str, Any] = {
            "territories": REPORTED_TERRITORIES,
            "currencies": _currencies(),
            "period_start": meta.period_start,
            "period_end": meta.period_end,
        }
        frame = lines.collect()
        month = pl.lit(file_period) if file_period else _month_of_usage_end(frame)
        stamp = [
            pl.lit(self.org_id).alias("org_id"),
            pl.lit(self.source).alias("source"),
            pl.lit(self.sha).alias("file_sha256"),
            month.alias("reporting_period"),
            pl.lit(self.file_id, dtype=pl.Int64).alias("file_id"),
            # which report of the delivery (a zip's members each count lines from 1)
            pl.lit(piece.meta.extra.get("member") if self.archive else None, pl.String).alias(
                "member"
            ),
        ]
        bad_rows, found = validate_lines(frame, **checks)
        if piece.errors:
            rows = [e.row for e in piece.errors if e.row is not None]
            bad_rows = bad_rows | frame["line_no"].is_in(rows)
        if bad_rows.any():
            good, rej = frame.filter(~bad_rows), frame.filter(bad_rows).with_columns(stamp)
        else:  # the usual case: no copy of the lines just to split them
            good, rej = frame, frame.clear().with_columns(stamp)
        matched = match_lines(
            good.lazy().with_columns(stamp),
            self.catalog.tracks.lazy(),
            self.catalog.releases.lazy(),
            self.catalog.rules.lazy(),
        )
        accepted = revenue.conform(
            convert(matched, self.catalog.rates.lazy(), target=self.catalog.currency),
            revenue.CANONICAL,
        )
        acc = accepted.collect()
        del frame, good
        found = with_reader_findings(piece, found)
        found = found.sort("line_no", maintain_order=True)
        if rej.height:
            rej = rej.join(_reasons(found), on="line_no", how="left", maintain_order="left")
        summary = accepted_summary(acc)
        acc_totals, rej_totals = _summary_totals(summary), _totals(rej)
        for into in (self.accepted_totals, self.read):
            _add(into, acc_totals)
        for into in (self.rejected_totals, self.read):
            _add(into, rej_totals)
        # lines the parser could not read: one per line, however many of its cells are bad
        n_errors = len({e.row for e in piece.errors if e.row is not None})
        self.lines += acc.height + rej.height + n_errors
        self.accepted += acc.height
        self.rejected += rej.height + n_errors
        self.parser_errors += n_errors
        self.matched += int(summary.filter(pl.col("matched"))["lines"].sum())
        self.summaries.append(summary)
        self.found.append(findings_summary(found, acc.select("line_no")))
        if found.height:
            # which report of the delivery (a zip's members each count lines from 1)
            member = piece.meta.extra.get("member")
            self.findings.append(found.with_columns(pl.lit(member, pl.String).alias("file")))
        self._stage("revenue_lines", acc, file_period)
        self._stage("rejected_lines", rej, file_period)

    def _stage(self, table: str, frame: pl.DataFrame, period: str | None) -> None:
        if frame.is_empty():
            return
        groups: list[tuple[str | None, pl.DataFrame]]
        months = frame["reporting_period"].unique() if period is None else None
        if period is not None:  # the usual case: one period, no partition_by
            groups = [(period, frame)]
        elif months is not None and months.len() == 1:  # period not known yet, one month
            groups = [(months[0], frame)]
        else:  # no file period: each line's own usage month
            groups = [
                (None if key[0] is None else str(key[0]), part)
                for key, part in frame.partition_by("reporting_period", as_dict=True).items()
            ]
        for key, part in groups:
            folder = DataDir(self.staging).partition(
                table, self.org_id, str(key), self.source, self.file_id
            )
            path = folder / self._name()
            self.parts.append((table, key, path))
            if self.writer is None:
                lake.write_parquet(part, path)
            else:
                self.writing.append(self.writer.submit(lake.write_parquet, part, path))

    def flush(self) -> None:
        """Wait for the parts being written; the first failure is raised here."""
        while self.writing:
            self.writing.pop(0).result()

    def _name(self) -> str:
        self.seq += 1
        return lake.part_name(self.seq - 1)

    def restamp(self) -> None:
        """Parts staged before the file's period was known (a spec layout whose period comes
        from its lines is only known at the end) move to that period, FX converted again."""
        final = self.file_period()
        if final is None:
            if any(key is None for table, key, _ in self.parts if table == "revenue_lines"):
                # neither the file nor these lines say when the usage was: no run would ever
                # find them (they would sit under period=None)
                raise FileRejected(
                    "no_period",
                    "some lines have no usage date and the file declares no period; "
                    "pass the reporting period (--period YYYY-MM)",
                )
            return
        for i, (table, key, path) in enumerate(self.parts):
            if key == final:
                continue
            frame = pl.read_parquet(path).with_columns(pl.lit(final).alias("reporting_period"))
            if table == "revenue_lines":
                rates = self.catalog.rates.lazy()
                converted = convert(frame.lazy(), rates, target=self.catalog.currency)
                frame = revenue.conform(converted, revenue.CANONICAL).collect()
            folder = DataDir(self.staging).partition(
                table, self.org_id, final, self.source, self.file_id
            )
            moved = lake.write_parquet(frame, folder / path.name)
            path.unlink()
            self.parts[i] = (table, final, moved)

    def reconcile(self) -> None:
        """What the file declares per currency = what was read (accepted + rejected lines),
        or the file is refused. A line the parser could not read has no amount: a file whose
        readable lines do not reach what it declares is refused too (the unreadable lines
        may explain the gap, or a line may be lost: nobody can tell which)."""
        if not self.declared:
            return
        diff = {
            cur: self.declared.get(cur, Decimal(0)) - self.read.get(cur, Decimal(0))
            for cur in set(self.read) | set(self.declared)
        }
        off = sorted(cur for cur, d in diff.items() if d != 0)
        if off:
            unread = ""
            if self.parser_errors:
                n = self.parser_errors
                unread = (
                    f" ({n} line{'s' if n > 1 else ''} could not be read: "
                    "their amounts are not in the sum; correct and send the file again)"
                )
            raise FileRejected(
                "control_total_mismatch",
                "; ".join(
                    f"{cur}: declared {_fmt(self.declared.get(cur, Decimal(0)))}, "
                    f"lines sum to {_fmt(self.read.get(cur, Decimal(0)))}, "
                    f"difference {_fmt(diff[cur])}"
                    for cur in off
                )
                + unread,
            )

    def check_rejected(self, data: DataDir, name: str, max_share: float) -> None:
        """A file whose lines are all rejected, or more of them than ``max_share``, is not
        ingested: it is refused with its findings summarised (the top reasons, each with its
        count of lines and an example), and every finding is kept beside its quarantine
        reason (file, row, field, code, reason) so that nothing of it is lost."""
        if not self.lines or (self.accepted and self.rejected <= max_share * self.lines):
            return
        findings = self.all_findings().with_columns(pl.col("file").fill_null(name))
        path = data.quarantine_findings(self.org_id, self.sha)
        lake.write_json(
            findings.select(
                "file",
                pl.col("line_no").alias("row"),
                "field",
                "code",
                pl.col("message").alias("reason"),
                "severity",
            ).to_dicts(),
            path,
        )
        top = rejected_reasons(findings)
        share = self.rejected / self.lines
        what = "every line" if not self.accepted else f"{share:.0%} of the lines"
        reasons = "; ".join(
            f"{r['field']}:{r['code']} on {r['lines']} line{'s' if r['lines'] > 1 else ''} "
            f"(e.g. line {r['example']['row']})"
            for r in top
        )
        raise FileRejected(
            "rejected_lines",
            f"{what} rejected ({self.rejected} of {self.lines}; more than "
            f"{max_share:.0%} is not ingested): {reasons}",
            details={
                "lines": self.lines,
                "accepted": self.accepted,
                "rejected": self.rejected,
                "rejected_share": round(share, 4),
                "max_rejected_share": max_share,
                "top_reasons": top,
                "findings": str(path),
                "finding_count": findings.height,
            },
        )

    def all_findings(self) -> pl.DataFrame:
        if not self.findings:
            return pl.DataFrame(schema={**ERRORS_SCHEMA, "file": pl.String()})
        # in delivery order: member by member, each sorted by line
        return pl.concat(self.findings, how="vertical")

    def totals(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for cur in sorted(set(self.read) | set(self.declared)):
            entry = {
                "read": _fmt(self.read.get(cur, Decimal(0))),
                "accepted": _fmt(self.accepted_totals.get(cur, Decimal(0))),
                "rejected": _fmt(self.rejected_totals.get(cur, Decimal(0))),
            }
            if cur in self.declared:
                entry["declared"] = _fmt(self.declared[cur])
            out[cur] = entry
        return out


CHUNK_BYTES = 64 << 20
"""Text per chunk: each chunk's working memory is a few hundred MiB, whatever the file size."""

PENDING_WAIT = 900.0
"""Seconds an ingestion waits for a live ingestion of the same bytes to finish."""
_POLL = 0.2


KILL_STEPS = (
    "ingest.pending_committed",  # the pending row is committed; nothing read yet
    "ingest.staged",  # every part written under staging/, none in the lake
    "ingest.promoting",  # some partition folders moved into the lake, others not
    "ingest.promoted",  # every part in the lake, the row still pending
    "ingest.committed",  # the row is ingested: the file counts
)
"""The named steps of an ingestion where a crash is injected (``pipelines.killpoints``)."""

LEASE = dt.timedelta(hours=6)
"""How long a pending ingestion of another host is taken to be alive (its process cannot be
checked from here)."""


def ingest_path(
    res: Resources,
    *,
    org_id: int,
    path: Path,
    name: str,
    source_url: str = "",
    format: str | None = None,
    period: str | None = None,
    actor: str = "ingest",
    chunk_bytes: int | None = None,
    wait: float = PENDING_WAIT,
) -> IngestOutcome:
    """Ingest one local file (already fetched from its drop). Idempotent by content.

    The file is read in chunks of about ``chunk_bytes`` of text (``CHUNK_BYTES`` by default);
    each is validated, matched, converted and written as its own Parquet part into a staging
    folder. The parts move into the lake only once the whole file has passed (its control
    totals included), so memory stays bounded and a file refused at its end leaves nothing.

    One commit point: the ledger row is committed ``pending`` first (a short transaction:
    the file id), the file is read with no transaction open, its parts are promoted into
    the lake under that id, and one short transaction flips the row to ``ingested``. Only
    then do the parts count (``lake.committed_parts``); a crash before leaves parts no
    reader takes, which ``recover`` removes. The steps are ``KILL_STEPS``.
    """
    from connectors.formats.registry import iter_parse_file, org_registry, org_version
    from schemas.store import org_formats

    if period is not None and not MONTH.match(period):
        # it names a lake folder: anything but a month could write outside the lake
        raise ValueError(f"reporting period {period!r} is not a month (YYYY-MM)")
    factory, data = res.factory, res.data
    sha = lake.sha256_file(path)
    raw = data.raw(org_id, sha, _suffix(name))
    size = path.stat().st_size
    claim = _claim(
        res,
        org_id=org_id,
        sha=sha,
        name=name,
        source_url=source_url,
        size=size,
        format=format,
        period=period,
        raw=raw,
        actor=actor,
        wait=wait,
    )
    if isinstance(claim, IngestOutcome):
        return claim  # seen before: duplicate, or its quarantine
    file_id, received, catalog = claim
    # The ledger row is committed ``pending``: from here on no store transaction is open
    # until the commit point, so SQLite's write lock is not held while the file is read.
    killpoint("ingest.pending_committed")
    fmt: str | None = format
    staging = lake.new_staging(data, org_id, file_id)
    promoted: list[int] = []  # the file id whose parts are in the lake, until the commit

    def undo() -> None:
        """Nothing of a failed ingestion stays: its staging, and the parts already moved
        into the lake if the commit is what failed (they would sit there, no one's input,
        until recovery removed them)."""
        shutil.rmtree(staging, ignore_errors=True)
        for done in promoted:
            lake.remove_file_outputs(data, org_id, done)
            shutil.rmtree(data.ingest_report(org_id, done), ignore_errors=True)

    try:
        lake.keep_raw(path, data, org_id, sha, _suffix(name))
        work = staging / "work"  # the parser's temporary files: found by recovery
        work.mkdir()
        with factory() as session:  # the organisation's own formats first, then the shipped
            own = [(f.spec, f.version) for f in org_formats.current(session, org_id)]
        registry = org_registry(own)
        pieces = iter_parse_file(
            raw,
            name,
            work,
            format=format,
            registry=registry,
            batch_bytes=chunk_bytes or CHUNK_BYTES,
        )
        first = next(pieces)
        fmt = first.meta.format
        fmt_version = org_version(registry[fmt]) if fmt in registry else None
        run = _Run(
            org_id,
            fmt,
            sha,
            file_id,
            catalog,
            staging,
            period,
            archive=name.lower().endswith(".zip"),
        )
        held = [first]
        del first  # the first piece must not outlive its turn (bounded memory)
        with ThreadPoolExecutor(1, thread_name_prefix="tm-write") as writer:
            run.writer = writer
            try:
                _consume(run, prefetch(_chained(held, pieces)))
            finally:
                run.writer = None
                run.flush()
        content = run.fingerprint() if run.lines else None
        with factory() as session:
            _check_content(session, org_id, content)
        run.reconcile()
        run.check_rejected(data, name, res.settings.ingest_max_rejected_share)
        run.restamp()
        killpoint("ingest.staged")
        promoted.append(run.file_id)
        outcome = _finish(run, data, name, sha, received)
        outcome.format_version = fmt_version
        killpoint("ingest.promoted")
        with db.transaction(factory, actor=actor) as session:
            # the commit point: the row turns ``ingested`` and its parts become inputs
            row = session.get(IngestFile, file_id)
            if row is None or row.status != IngestStatus.PENDING:
                # recovery took this ingestion for dead (another host's, past its lease)
                raise RuntimeError(f"ingestion ledger row {file_id} is no longer pending")
            # a concurrent ingestion of the same content committed first: checked again
            _check_content(session, org_id, content)
            row.content_sha256 = content
            row.status = IngestStatus.INGESTED
            row.format = fmt
            row.format_version = fmt_version
            row.owner_host = row.owner_pid = row.owner_start = None
            meta = run.first_meta
            row.reporting_period = run.file_period()
            row.period_start = meta.period_start if meta else None
            row.period_end = meta.period_end if meta else None
            row.lines_read = outcome.lines
            row.lines_accepted, row.lines_rejected = outcome.accepted, outcome.rejected
            row.lines_matched, row.lines_suspense = outcome.matched, outcome.suspense
            row.totals, row.drift = outcome.totals, outcome.drift
            row.errors_sample, row.error_count = outcome.errors, outcome.error_count
            row.outputs = outcome.outputs
            try:
                # unique (org, content_sha256): of two ingestions of one content in other
                # wrappings running at once (mapped Airflow tasks), the second to get here
                # waits for the other's commit and fails if it committed
                session.flush()
            except sa.exc.IntegrityError as exc:
                raise _SameContent(None, None, content or "") from exc
        killpoint("ingest.committed")
        return outcome
    except _SameContent as same:
        # the same report in other wrapping (gzipped, zipped, re-encoded): recorded on the
        # file that was read, as the same bytes under another name are; nothing is added
        undo()
        raw.unlink(missing_ok=True)
        with db.transaction(factory, actor=actor) as session:
            _drop_pending(session, file_id)
            if same.file_id is not None:
                seen = session.get(IngestFile, same.file_id)
            else:
                seen = session.scalar(
                    sa.select(IngestFile).where(
                        IngestFile.org_id == org_id, IngestFile.content_sha256 == same.content
                    )
                )
            if seen is not None:
                _arrived_again(seen, source_url or name)
                same.file_id, same.format = seen.id, seen.format
        return IngestOutcome(
            name=name, status="duplicate", file_id=same.file_id, sha256=sha, format=same.format
        )
    except (FileRejected, *DATA_FAULTS) as exc:
        undo()
        if not isinstance(exc, FileRejected):
            # Content no check foresaw made our code fail (a fault of ours, not the
            # sender's): this file is quarantined with the error and the batch goes on. The
            # machine's faults (OSError: disk full; the database) are raised, for a retry.
            log.exception("ingesting %s failed", name)
            exc = FileRejected(INTERNAL, f"{type(exc).__name__}: {exc}"[:2000])
        return _quarantine(
            res,
            org_id=org_id,
            sha=sha,
            name=name,
            source_url=source_url,
            raw=raw,
            size=size,
            fmt=fmt,
            exc=exc,
            actor=actor,
            pending_id=file_id,
        )
    except BaseException:
        undo()
        try:
            with db.transaction(factory, actor=actor) as session:
                _drop_pending(session, file_id)
        except Exception:  # the store is what failed: recovery removes the row later
            log.exception("could not remove the pending ledger row %s", file_id)
        raise


def _claim(
    res: Resources,
    *,
    org_id: int,
    sha: str,
    name: str,
    source_url: str,
    size: int,
    format: str | None,
    period: str | None,
    raw: Path,
    actor: str,
    wait: float,
) -> IngestOutcome | tuple[int, dt.datetime, Catalog]:
    """Commit the file's ``pending`` ledger row (short transaction): its id, when, and the
    organisation's catalogue. Or the answer for bytes seen before (duplicate, or their
    quarantine). Bytes another live ingestion is reading are waited for (``wait`` seconds,
    then answered as a duplicate of it); those of a dead one are recovered first."""
    factory = res.factory
    deadline = time.monotonic() + wait
    while True:
        dead: IngestFile | None = None
        busy: int | None = None
        try:
            with db.transaction(factory, actor=actor) as session:
                seen = session.scalar(
                    sa.select(IngestFile).where(
                        IngestFile.org_id == org_id, IngestFile.sha256 == sha
                    )
                )
                retry = (
                    seen is not None
                    and seen.status == IngestStatus.QUARANTINED
                    and (
                        format is not None or period is not None or seen.quarantine_code == INTERNAL
                    )
                )
                if seen is not None and seen.status == IngestStatus.PENDING:
                    if _owner_alive(seen, dt.datetime.now(dt.UTC), LEASE):
                        busy = seen.id
                    else:
                        dead = seen
                elif seen is not None and retry:
                    # A quarantined file is read again when an operator says how (--format,
                    # --period) or when it failed on a fault of ours: it wrote no lines, so
                    # its ledger row gives way to the new outcome (its reason stays in
                    # quarantine/).
                    session.delete(seen)
                    session.flush()
                    seen = None
                elif seen is not None:
                    _arrived_again(seen, source_url or name)
                    return _seen_outcome(seen, name, sha)
                if seen is None:
                    host, pid, start = _this_process()
                    received = dt.datetime.now(dt.UTC)
                    row = IngestFile(
                        received_at=received,
                        org_id=org_id,
                        sha256=sha,
                        original_name=name,
                        source_url=source_url,
                        size=size,
                        format=format,
                        status=IngestStatus.PENDING,
                        raw_path=str(raw),
                        owner_host=host,
                        owner_pid=pid,
                        owner_start=start,
                    )
                    session.add(row)
                    try:
                        session.flush()
                    except sa.exc.IntegrityError as exc:
                        # unique (org, sha256): the same bytes, claimed concurrently first
                        raise _LostRace from exc
                    return row.id, received, Catalog.load(session, org_id)
        except _LostRace as lost:
            with factory() as session:
                won = session.scalar(
                    sa.select(IngestFile.id).where(
                        IngestFile.org_id == org_id, IngestFile.sha256 == sha
                    )
                )
            if won is None:  # not that race (another integrity error): raise it, not loop
                raise (lost.__cause__ or lost) from None
            continue  # ask again: it is pending, ingested or quarantined now
        if dead is not None:
            log.warning("ingestion of file %s (%s) died: recovering it", dead.id, name)
            recover(res, org_id=org_id, only=dead.id)
            continue
        if busy is not None and time.monotonic() >= deadline:
            log.warning("file %s is still being ingested as file %s: not waiting", name, busy)
            return IngestOutcome(name=name, status="duplicate", file_id=busy, sha256=sha)
        time.sleep(_POLL)


def _seen_outcome(seen: IngestFile, name: str, sha: str) -> IngestOutcome:
    """The answer for bytes the ledger holds already: their quarantine, or a duplicate."""
    if seen.status == IngestStatus.QUARANTINED:  # not "duplicate": nothing was read
        reason = {
            "code": seen.quarantine_code,
            "message": (seen.quarantine_reason or "")
            + " (quarantined before; pass --format or --period to read it again)",
            "row": None,
            "field": None,
            "file": name,
        }
        return IngestOutcome(
            name=name,
            status="quarantined",
            file_id=seen.id,
            sha256=sha,
            format=seen.format,
            quarantine=reason,
            error_count=1,
            errors=[reason],
        )
    return IngestOutcome(
        name=name, status="duplicate", file_id=seen.id, sha256=sha, format=seen.format
    )


def _check_content(session: Session, org_id: int, content: str | None) -> None:
    """Raise ``_SameContent`` when an ingested file of the organisation has this content."""
    same = content and session.scalar(
        sa.select(IngestFile).where(
            IngestFile.org_id == org_id,
            IngestFile.content_sha256 == content,
            IngestFile.status == IngestStatus.INGESTED,
        )
    )
    if same:
        raise _SameContent(same.id, same.format)


def _drop_pending(session: Session, file_id: int) -> None:
    """Delete a ledger row while it is still ``pending`` (nothing of it counted)."""
    session.execute(
        sa.delete(IngestFile).where(
            IngestFile.id == file_id, IngestFile.status == IngestStatus.PENDING
        )
    )


# --- crash recovery ---------------------------------------------------------------------------
def _start_of(pid: int) -> str | None:
    """The start time of a process (clock ticks after boot, from ``/proc``), None if there is
    no such process (or no ``/proc``): a pid reused by a later process has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _this_process() -> tuple[str, int, str | None]:
    pid = os.getpid()
    return socket.gethostname(), pid, _start_of(pid)


def _owner_alive(row: IngestFile, now: dt.datetime, lease: dt.timedelta) -> bool:
    """Whether the process reading a pending file may still be at it."""
    if row.owner_host == socket.gethostname() and row.owner_pid is not None:
        if Path("/proc").is_dir():
            start = _start_of(row.owner_pid)
            return start is not None and (row.owner_start in (None, start))
        try:
            os.kill(row.owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    received = row.received_at
    if received.tzinfo is None:  # SQLite gives naive UTC back
        received = received.replace(tzinfo=dt.UTC)
    return now - received < lease


def recover(
    res: Resources,
    org_id: int | None = None,
    *,
    lease: dt.timedelta = LEASE,
    only: int | None = None,
) -> list[str]:
    """Complete what a crashed ingestion left: remove the files (lake parts, report folder,
    staging) of pending ledger rows whose process is gone, then the rows (the same bytes can
    be ingested again); lake parts and report folders of no ledger row, or of a quarantined
    one; staging folders of no live ingestion (with the parser's work folders in them).
    Never the files of a live ingestion. Returns (and logs) what was removed.

    The folders are listed before the ledger is read: a live ingestion commits its pending
    row before it writes anything, so every folder listed has its row in what is read."""
    factory, data = res.factory, res.data
    removed: list[str] = []
    outputs = list(lake.file_outputs(data, org_id))
    staging = [s for s in lake.staging_folders(data) if org_id is None or s[0] == org_id]
    now = dt.datetime.now(dt.UTC)
    with factory() as session:
        query = sa.select(IngestFile)
        if org_id is not None:
            query = query.where(IngestFile.org_id == org_id)
        if only is not None:
            query = query.where(IngestFile.id == only)
        rows = {(r.org_id, r.id): r for r in session.scalars(query)}
        dead = {
            key: (r.owner_host, r.owner_pid)
            for key, r in rows.items()
            if r.status == IngestStatus.PENDING and not _owner_alive(r, now, lease)
        }
        status = {key: r.status for key, r in rows.items()}

    def gone(org: int, file_id: int) -> bool:
        if only is not None and file_id != only:
            return False
        key = (org, file_id)
        return key in dead or status.get(key) != IngestStatus.PENDING

    def remove(path: Path, why: str) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.warning("recovery: removed %s (%s)", path, why)
        removed.append(str(path))

    for org, file_id, path in outputs:
        if only is not None and file_id != only:
            continue
        key = (org, file_id)
        if key in dead:
            remove(path, f"file {file_id} was being ingested by a process that died")
        elif key not in status:
            remove(path, f"no ledger row for file {file_id}")
        elif status[key] == IngestStatus.QUARANTINED:
            remove(path, f"file {file_id} is quarantined")
    for owner_org, owner_file, folder in staging:
        if gone(owner_org, owner_file):
            remove(folder, "staging of no live ingestion")
    if dead:
        with db.transaction(factory, actor="recovery") as session:
            for (_, file_id), (host, pid) in dead.items():
                # still that owner's pending row (not one a new ingestion claimed since)
                session.execute(
                    sa.delete(IngestFile).where(
                        IngestFile.id == file_id,
                        IngestFile.status == IngestStatus.PENDING,
                        IngestFile.owner_host.is_not_distinct_from(host),
                        IngestFile.owner_pid.is_not_distinct_from(pid),
                    )
                )
                log.warning("recovery: removed the pending ledger row of file %s", file_id)
                removed.append(f"ingest_files/{file_id}")
    return removed


_DONE = object()


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items``, produced one step ahead in a background thread: the next chunk is parsed
    while this one is validated and written (Polars releases the GIL, so on two cores the
    steps overlap). An exception in ``items`` is raised here, in order; stopping early stops
    and closes ``items`` in its own thread."""
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                del item
                if stop.is_set():
                    return
            box.put(("end", _DONE))
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="tm-parse", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
            del value
    finally:
        stop.set()
        while worker.is_alive():  # let a blocked producer finish its put and see the stop
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                continue
        worker.join()


def _chained(held: list[ParsedFile], rest: Iterator[ParsedFile]) -> Iterator[ParsedFile]:
    """The held pieces, then ``rest``; closing this closes ``rest`` (its temporary files)."""
    yield from _drain(held)
    yield from rest


def _drain(items: list[ParsedFile]) -> Iterator[ParsedFile]:
    """Hand out and forget the items of ``items``, first to last."""
    while items:
        yield items.pop(0)


def _consume(run: _Run, pieces: Iterator[ParsedFile]) -> None:
    """Feed every chunk of every member through ``run.chunk``; gather file-level meta."""
    for piece in pieces:
        final = bool(piece.meta.extra.get("final", True))
        run.chunk(piece)
        if final:
            if run.first_meta is None:
                run.first_meta = piece.meta
            elif run.period is None and _period_of(piece.meta) != _period_of(run.first_meta):
                # one delivery, one period: the ledger row and the lake folder are the
                # first report's, and this one's lines were checked against its dates
                first, this = run.first_meta.extra, piece.meta.extra
                raise FileRejected(
                    "mixed_periods",
                    f"{this.get('member')} is for {_period_of(piece.meta)}, "
                    f"{first.get('member')} in the same delivery for "
                    f"{_period_of(run.first_meta)}: send one file per period",
                )
            _add(run.declared, piece.meta.declared_totals)
            run.drift += [d for d in piece.drift if d not in run.drift]
        del piece


def _finish(run: _Run, data: DataDir, name: str, sha: str, received: dt.datetime) -> IngestOutcome:
    """Data Docs, the findings report, the staged parts into the lake; the outcome."""
    findings = run.all_findings()
    fmt = run.first_meta.format if run.first_meta else run.source
    lake.remove_file_outputs(data, run.org_id, run.file_id)
    report_dir = data.ingest_report(run.org_id, run.file_id)
    findings_path = lake.write_json(findings.to_dicts(), report_dir / "findings.json")
    report = run_batch_expectations(
        summaries=(
            combine_summaries(run.summaries, SUMMARY_KEYS),
            combine_summaries(run.found, FINDINGS_KEYS),
        ),
        declared_totals=run.declared,
        rejected_totals=run.rejected_totals,
        rejected_findings=findings,
        rejected_lines=run.rejected,
        file_label=f"{fmt}-file-{run.file_id}",
        out_dir=report_dir,
        run_time=received,
    )
    written: dict[str, list[str]] = {"revenue_lines": [], "rejected_lines": []}
    for p in lake.promote(run.staging, data):
        written[p.relative_to(data.lake_root()).parts[0]].append(str(p))
    periods = {k for t, k, _ in run.parts if t == "revenue_lines" and k is not None}
    outputs: dict[str, Any] = {**written, "findings": str(findings_path)}
    outputs["data_docs"] = str(report.docs_index)
    outputs["expectations"] = {
        "success": report.success,
        "failed": [r["expectation_type"] for r in report.results if not r["success"]],
    }
    return IngestOutcome(
        name=name,
        status="ingested",
        file_id=run.file_id,
        sha256=sha,
        format=fmt,
        reporting_periods=sorted(periods),
        lines=run.lines,
        accepted=run.accepted,
        rejected=run.rejected,
        matched=run.matched,
        suspense=run.accepted - run.matched,
        totals=run.totals(),
        drift=list(run.drift),
        error_count=findings.height,
        errors=findings.head(ERROR_SAMPLE).to_dicts(),
        outputs=outputs,
    )


def _quarantine(
    res: Resources,
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
    pending_id: int | None = None,
) -> IngestOutcome:
    reason = {
        "code": exc.code,
        "message": exc.message,
        "row": exc.row,
        "field": exc.field,
        "file": name,
        **exc.details,
    }
    lake.write_json(reason, res.data.quarantine(org_id, sha))
    top = exc.details.get("top_reasons")
    sample = (
        [
            RowError(
                r["example"]["file"] or name,
                r["example"]["row"],
                r["field"],
                r["code"],
                f"{r['lines']} lines: {r['example']['message']}",
            ).as_dict()
            for r in top
        ]
        if top
        else [RowError(name, exc.row, exc.field, exc.code, exc.message).as_dict()]
    )
    count = int(exc.details.get("finding_count", len(sample)))
    with db.transaction(res.factory, actor=actor) as session:
        if pending_id is not None:  # the quarantine takes the place of the pending row
            _drop_pending(session, pending_id)
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
            errors_sample=sample,
            error_count=count,
            lines_read=int(exc.details.get("lines", 0)),
            lines_accepted=int(exc.details.get("accepted", 0)),
            lines_rejected=int(exc.details.get("rejected", 0)),
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
        lines=int(exc.details.get("lines", 0)),
        accepted=int(exc.details.get("accepted", 0)),
        rejected=int(exc.details.get("rejected", 0)),
        quarantine=reason,
        error_count=count,
        errors=[reason],
    )
