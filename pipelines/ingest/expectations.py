"""Batch-level expectations for one ingested file, with Great Expectations 1.x and Data Docs.

Polars already checks every line (``royalty_engine.validate``). Great Expectations validates the
*batch*: it runs on four small frames derived from it, never on the raw lines, so a 10-million
line file costs one Polars ``group_by`` here, not a 10-million row pandas conversion:

* ``accepted_summary``: the accepted lines per (currency, territory, usage type, matched or in
  suspense) with line count, quantity and amount sums (amounts as exact decimal strings);
* ``findings_summary``: the row-level findings per (line status, field, code, severity);
* ``reconciliation``: one row with, per currency, the accepted/read/declared totals and the share
  of the amount that is in suspense, and the number of lines rejected;
* ``rejected_lines``: the row-level findings of the rejected lines (file, row, field, code,
  message; the first ``REJECTED_ROWS``, all of them are in ``findings.json``), each with its
  outcome: a file with a rejected line does not "succeed".

The pages need nothing from the network: the CDN scripts and stylesheets GX links are
stripped (the pages are plain HTML; GX's own local stylesheet stays).

The report is a Data Docs site in ``out_dir/data_docs/`` (``index.html``), built by an ephemeral
GX context: nothing is written outside ``out_dir``, no analytics, no progress bars, no network.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

SITE_NAME = "batch"
DOCS_DIR = "data_docs"
# The share of the (absolute) amount of a currency that may sit in suspense. Suspense never
# blocks the period, so the default only *reports* the share in the Data Docs; lower it to flag.
DEFAULT_SUSPENSE_THRESHOLD = 1.0
# A fixed run time keeps the report byte-for-byte reproducible when the caller has no data
# interval to pass: a rerun of the same batch writes the same files again.
FIXED_RUN_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DECIMAL_RE = r"^-?[0-9]+(?:\.[0-9]+)?$"  # no capture group: pandas warns on those
SEVERITIES = ("error", "warning")
GX_ASSET = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/"
    r"(?:logo-long|full_logo_dark)\.png(?:\?[^\"'\s)]*)?"
)
# <script src=...> and <link href=...> loading from another host (GX's CDN bootstrap,
# jQuery, font-awesome, vega): the Data Docs open offline, and call no one when opened
REMOTE_ASSET = re.compile(
    r"<script[^>]*\bsrc=[\"'](?:https?:)?//[^\"']*[\"'][^>]*>\s*</script>\s*"
    r"|<link[^>]*\bhref=[\"'](?:https?:)?//[^\"']*[\"'][^>]*/?>\s*",
    re.IGNORECASE,
)
REMOTE_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.IGNORECASE)  # in stylesheets
REJECTED_ROWS = 10_000  # row-level findings shown in the Data Docs (all in findings.json)
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
TIMESTAMP = re.compile(r"\b\d{8}T\d{6}\.\d{6}Z\b")  # GX's own "now" stamps (ge_load_time)


@dataclass
class BatchReport:
    success: bool  # no *critical* expectation failed (suspense is a warning, see below)
    results: list[dict[str, Any]] = field(default_factory=list)
    docs_index: Path = Path()
    seconds: float = 0.0  # wall time of the call (summaries, GX validation, Data Docs)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"]]


_GX = threading.RLock()


@contextmanager
def _quiet_gx() -> Iterator[None]:
    """Import and run GX 1.x silencing exactly the warnings it raises itself, nothing else.

    * importing GX imports the deprecated stdlib modules ``sre_constants`` and ``sre_parse``
      (from ``great_expectations.datasource.fluent.data_connector.file_path_data_connector``).

    GX also calls ``logging.captureWarnings(True)`` when imported: from then on every warning
    of the *process* goes to the "py.warnings" logger, which the stdlib gives a NullHandler, so
    warnings vanish unless logging is configured. That is undone right after the import.

    One thread at a time (``_GX``): the import is not safe to run from two threads at once
    (a circular import error), and warning filters are the process's.
    """
    with _GX, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"module 'sre_(constants|parse)' is deprecated",
            category=DeprecationWarning,
            module=r"great_expectations\.",
        )
        if "great_expectations" not in sys.modules:
            captured = warnings.showwarning is getattr(logging, "_showwarning", None)
            import great_expectations  # noqa: F401

            if not captured:
                logging.captureWarnings(False)
            # the import leaves ~300k long-lived objects: move them out of the collector's
            # sight, or every full collection during ingestion walks them all again (~6% of
            # ingestion time measured)
            gc.freeze()
            _compile_templates_once()
        yield


def _compile_templates_once() -> None:
    """Data Docs pages compiled once per process, not once per file.

    Every Data Docs build makes new GX views, each with its own Jinja environment, so each file
    parsed and compiled GX's ~50 page templates again: about 40% of a file's batch
    expectations. The views share one in-memory bytecode cache instead (keyed by template name
    and source checksum, as Jinja's own file cache is): the same pages, compiled once.
    """
    from great_expectations.render.view.view import DefaultJinjaView
    from jinja2 import BytecodeCache
    from jinja2.bccache import Bucket

    class _Compiled(BytecodeCache):
        def __init__(self) -> None:
            self.code: dict[str, bytes] = {}

        def load_bytecode(self, bucket: Bucket) -> None:
            if (code := self.code.get(bucket.key)) is not None:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket: Bucket) -> None:
            self.code[bucket.key] = bucket.bytecode_to_string()

    compiled, make_view = _Compiled(), DefaultJinjaView.__init__

    def init(self: DefaultJinjaView, *args: Any, **kwargs: Any) -> None:
        make_view(self, *args, **kwargs)
        self.env.bytecode_cache = compiled

    DefaultJinjaView.__init__ = init  # type: ignore[method-assign]


def preload() -> None:
    """Import Great Expectations now (about 6 s, once per process), quietly: long-running
    workers and the benchmark call it so that the import is not counted as ingestion."""
    with _quiet_gx():
        import great_expectations  # noqa: F401  (imported on entering; named here for clarity)


# ---------------------------------------------------------------------------------------------
# The three small frames (Polars, vectorised).


def _dec(value: Decimal) -> str:
    """Canonical text of an amount: equal amounts give equal strings, whatever their scale."""
    text = format(value.normalize() + 0, "f")
    return "0" if text in ("-0", "0") else text


_FINDINGS = {
    "line_no": pl.Int64(),
    "field": pl.String(),
    "code": pl.String(),
    "message": pl.String(),
    "severity": pl.String(),
}
SUMMARY_KEYS = ["currency", "territory", "usage_type", "matched"]
FINDINGS_KEYS = ["line_status", "field", "code", "severity"]


def accepted_summary(accepted: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The accepted lines per (currency, territory, usage type, matched): lines, quantity and
    amount sums. Summaries of consecutive chunks of one file combine with ``combine_summaries``."""
    return (
        accepted.lazy()
        .group_by(
            "currency",
            "territory",
            "usage_type",
            pl.col("match_method").is_not_null().alias("matched"),
        )
        .agg(
            pl.len().alias("lines"),
            pl.col("quantity").sum().alias("quantity"),
            pl.col("amount").sum().alias("amount"),
            pl.col("amount").abs().sum().alias("abs_amount"),
        )
        .sort(SUMMARY_KEYS, nulls_last=True)
        .collect()
    )


def findings_summary(
    findings: pl.DataFrame | pl.LazyFrame, accepted: pl.DataFrame | pl.LazyFrame
) -> pl.DataFrame:
    """The findings per (line status, field, code, severity); a finding's line is "accepted"
    when it is among ``accepted``'s lines. Per chunk, then ``combine_summaries``."""
    found = findings.lazy().collect()
    if found.height == 0:  # the usual chunk: nothing to look up among its lines
        return found.select(
            pl.lit(None, pl.String).alias("line_status"),
            *[pl.col(k) for k in FINDINGS_KEYS[1:]],
            pl.lit(None, pl.UInt32).alias("findings"),
        ).clear()
    kept = (
        accepted.lazy()
        .select("line_no")
        .filter(pl.col("line_no").is_in(found["line_no"].unique().implode()))
        .unique()
        .with_columns(pl.lit(True).alias("_kept"))
    )
    return (
        found.lazy()
        .join(kept, on="line_no", how="left")
        .with_columns(
            pl.when(pl.col("_kept"))
            .then(pl.lit("accepted"))
            .otherwise(pl.lit("rejected"))
            .alias("line_status")
        )
        .group_by(*FINDINGS_KEYS)
        .agg(pl.len().cast(pl.UInt32).alias("findings"))
        .sort(FINDINGS_KEYS, nulls_last=True)
        .collect()
    )


def combine_summaries(parts: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """Partial summaries (of ``accepted_summary`` or ``findings_summary``) of the chunks of one
    file, added up per key: the same frame as the summary of the whole file."""
    if len(parts) == 1:
        return parts[0]
    frame = pl.concat(parts, how="vertical")
    values = [c for c in frame.columns if c not in keys]
    return (
        frame.group_by(keys)
        .agg(pl.col(values).sum())
        .sort(keys, nulls_last=True)
        .select(frame.columns)
    )


def rejected_frame(findings: pl.DataFrame, limit: int = REJECTED_ROWS) -> pl.DataFrame:
    """The row-level findings of rejected lines (``severity`` error), first ``limit`` of them:
    file, row, field, code, message and the line's outcome (``rejected: field:code``)."""
    errors = findings.filter(pl.col("severity") == "error").head(limit)
    file = pl.col("file") if "file" in errors.columns else pl.lit(None, pl.String)
    return errors.select(
        file.alias("file"),
        pl.col("line_no").alias("row"),
        "field",
        "code",
        "message",
        pl.format("rejected: {}:{}", pl.col("field").fill_null(""), pl.col("code")).alias(
            "outcome"
        ),
    )


def _reconciliation(
    summary: pl.DataFrame,
    declared: Mapping[str, Decimal],
    rejected: Mapping[str, Decimal],
    file_label: str,
) -> dict[str, Any]:
    """One row: per currency the accepted, read (accepted + rejected) and declared totals."""
    per_cur: dict[str, dict[str, Decimal]] = {}
    for cur, matched, amount, abs_amount in summary.select(
        "currency", "matched", "amount", "abs_amount"
    ).iter_rows():
        if cur is None:
            continue
        entry = per_cur.setdefault(
            cur, {"amount": Decimal(0), "abs": Decimal(0), "susp": Decimal(0)}
        )
        entry["amount"] += Decimal(amount)
        entry["abs"] += Decimal(abs_amount)
        if not matched:
            entry["susp"] += Decimal(abs_amount)
    row: dict[str, Any] = {
        "file": file_label,
        "accepted_lines": int(summary["lines"].sum()) if summary.height else 0,
    }
    for cur in sorted(set(per_cur) | set(declared)):
        entry = per_cur.get(cur, {"amount": Decimal(0), "abs": Decimal(0), "susp": Decimal(0)})
        row[f"accepted_total_{cur}"] = _dec(entry["amount"])
        row[f"read_total_{cur}"] = _dec(entry["amount"] + rejected.get(cur, Decimal(0)))
        if cur in declared:
            row[f"declared_total_{cur}"] = _dec(declared[cur])
        share = entry["susp"] / entry["abs"] if entry["abs"] else Decimal(0)
        row[f"suspense_share_{cur}"] = float(round(share, 6))
    return row


# ---------------------------------------------------------------------------------------------
# The expectations, one suite per frame.


def _summary_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    return [
        # Every accepted line has a currency, written as an ISO 4217 code (3 upper-case letters).
        gxe.ExpectColumnValuesToNotBeNull(column="currency"),
        gxe.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
        # ... and a territory, written as an ISO 3166-1 alpha-2 code (2 upper-case letters).
        gxe.ExpectColumnValuesToNotBeNull(column="territory"),
        gxe.ExpectColumnValuesToMatchRegex(column="territory", regex=r"^[A-Z]{2}$"),
        # Money stayed exact: every amount sum is a plain decimal (no float, NaN or exponent).
        gxe.ExpectColumnValuesToMatchRegex(column="amount", regex=DECIMAL_RE),
    ]


def _findings_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    return [
        # Only known severities: a misspelt "Error" would let a bad line through unnoticed.
        gxe.ExpectColumnValuesToBeInSet(column="severity", value_set=list(SEVERITIES)),
        # Rejected lines were really set aside: no error finding remains on an accepted line.
        gxe.ExpectColumnValuesToNotBeInSet(
            column="severity",
            value_set=["error"],
            row_condition=Column("line_status") == "accepted",
        ),
    ]


def _reconciliation_expectations(row: Mapping[str, Any], threshold: float) -> list[Expectation]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    out: list[Expectation] = [
        # The batch is not empty: at least one line was accepted.
        gxe.ExpectColumnMinToBeBetween(column="accepted_lines", min_value=1),
        # No line was set aside: a file with rejected lines does not succeed (the lines and
        # their reasons are in ``rejected_lines``).
        gxe.ExpectColumnMaxToBeBetween(column="rejected_lines", min_value=0, max_value=0),
    ]
    for name in row:
        if name.startswith("declared_total_"):
            # What the file declares for a currency (FOOT, control totals) is what was read
            # (accepted + rejected). One expectation per currency, so a failure names it.
            cur = name.removeprefix("declared_total_")
            out.append(
                gxe.ExpectColumnPairValuesToBeEqual(column_A=name, column_B=f"read_total_{cur}")
            )
    for name in row:
        if name.startswith("suspense_share_"):
            # The share of the currency's absolute amount that is unmatched (in suspense),
            # reported per currency. A warning, never a blocker: unmatched lines wait in
            # suspense, they do not stop the period.
            out.append(
                gxe.ExpectColumnMaxToBeBetween(
                    column=name,
                    min_value=0,
                    max_value=threshold,
                    severity=FailureSeverity.WARNING,
                )
            )
    return out


def _rejected_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    return [
        # Every line was accepted: each rejected line is an unexpected value here, and the
        # Data Docs list the reasons (field:code) with their counts.
        gxe.ExpectColumnValuesToBeInSet(column="outcome", value_set=["accepted"]),
    ]


# ---------------------------------------------------------------------------------------------
# Running GX.


def _context(docs_dir: Path) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        # In-memory stores and no temporary docs site: nothing outside out_dir is written.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),  # the first batch's; see _Gx.start
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "show_how_to_buttons": False,  # no newsletter / tutorial footer for finance ops
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


FRAMES = ("accepted_summary", "findings_summary", "reconciliation", "rejected_lines")


class _Gx:
    """One ephemeral GX context per process, with a pandas data source and a batch definition
    per frame: made once (each addition re-serialises the context's whole configuration),
    then per batch its Data Docs folder is set, the previous batch's results are dropped (a
    report shows one batch) and the suites (the reconciliation's depend on the currencies)
    are replaced. Used under ``_GX`` only."""

    _made: _Gx | None = None

    def __init__(self, docs_dir: Path) -> None:
        self.context = _context(docs_dir)
        source = self.context.data_sources.add_pandas(name="batch")
        self.batches = {
            name: source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
            for name in FRAMES
        }
        self.defined: dict[str, tuple[str, Any]] = {}  # name -> (expectations, definition)

    @classmethod
    def get(cls, docs_dir: Path) -> _Gx:
        if cls._made is None:
            cls._made = cls(docs_dir)
        return cls._made

    def start(self, docs_dir: Path) -> None:
        site = self.context.variables.config.data_docs_sites[SITE_NAME]  # not a copy
        site["store_backend"]["base_directory"] = str(docs_dir)
        store = self.context.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)

    def definition(self, name: str, expectations: list[Expectation]) -> Any:
        """The frame's validation definition, its suite replaced when the expectations differ
        from the previous batch's (the reconciliation's follow the batch's currencies)."""
        import great_expectations as gx

        key = repr(expectations)  # before a suite gives them ids: the expectations' settings
        if self.defined.get(name, (None,))[0] != key:
            context = self.context
            if name in self.defined:
                context.validation_definitions.delete(name)
                context.suites.delete(name)
            suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
            self.defined[name] = (
                key,
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=name, data=self.batches[name], suite=suite)
                ),
            )
        return self.defined[name][1]


def _exception(info: Mapping[str, Any] | None) -> str | None:
    """The first exception message GX caught (its ``exception_info`` is flat or per metric)."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info["exception_message"]) if info["raised_exception"] else None
    messages = [_exception(v) for v in info.values() if isinstance(v, Mapping)]
    return next((m for m in messages if m), None)


def _result_dict(result: Any, frame: str) -> dict[str, Any]:
    from great_expectations.util import convert_to_json_serializable

    # Plain JSON types: GX leaves numpy scalars (np.float64 is a float subclass) in place.
    data = json.loads(json.dumps(convert_to_json_serializable(result.to_json_dict())))
    config, detail = data["expectation_config"], data.get("result") or {}
    kwargs = config["kwargs"]
    column = kwargs.get("column") or ", ".join(
        str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs
    )
    if "observed_value" in detail:
        observed = detail["observed_value"]
    else:
        observed = {
            "unexpected_count": detail.get("unexpected_count"),
            "unexpected": detail.get("partial_unexpected_list", []),
        }
    return {
        "frame": frame,
        "expectation_type": config["type"],
        "column": column or None,
        "success": bool(data["success"]),
        "severity": str(config.get("severity") or "critical"),
        "observed_value": observed,
        "exception": _exception(data.get("exception_info")),
    }


def run_batch_expectations(
    *,
    accepted: pl.DataFrame | None = None,
    findings: pl.DataFrame | None = None,
    declared_totals: dict[str, Decimal],
    file_label: str,
    out_dir: Path,
    rejected_totals: Mapping[str, Decimal] | None = None,
    suspense_threshold: float = DEFAULT_SUSPENSE_THRESHOLD,
    run_time: dt.datetime | None = None,
    summaries: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    rejected_findings: pl.DataFrame | None = None,
    rejected_lines: int | None = None,
) -> BatchReport:
    """Validate one batch and write its Data Docs to ``out_dir/data_docs/index.html``.

    ``accepted``: the accepted lines (``schemas.revenue.CANONICAL``); ``findings``: the row-level
    findings (``royalty_engine.validate.ERRORS_SCHEMA``) of *all* lines; ``declared_totals``: what
    the file declares per currency; ``rejected_totals``: the amounts of the lines set aside per
    currency, so that read = accepted + rejected is compared with what is declared; ``run_time``:
    shown in the report (e.g. the Airflow data interval end), a fixed epoch when not given.
    ``summaries``: instead of ``accepted`` and ``findings``, their ``accepted_summary`` and
    ``findings_summary`` (e.g. combined chunk by chunk, so the lines are never all in memory);
    then ``rejected_findings`` (the findings, or those of the rejected lines) and
    ``rejected_lines`` (how many lines were set aside) say what was rejected, which
    ``findings`` says otherwise.
    """
    started = time.perf_counter()
    docs_dir = out_dir.resolve() / DOCS_DIR  # GX needs an absolute path
    if summaries is None:
        if accepted is None or findings is None:
            raise ValueError("pass accepted and findings, or their summaries")
        summaries = (accepted_summary(accepted), findings_summary(findings, accepted))
    summary, found = summaries
    if rejected_findings is None:  # the findings of the lines that are not among the accepted
        rejected_findings = pl.DataFrame(schema=_FINDINGS)
        if findings is not None and accepted is not None:
            kept = accepted.lazy().select("line_no").collect()["line_no"]
            rejected_findings = findings.filter(~pl.col("line_no").is_in(kept.implode()))
    rejected = rejected_frame(rejected_findings)
    if rejected_lines is None:
        rejected_lines = int(
            rejected_findings.filter(pl.col("severity") == "error")["line_no"].n_unique()
        )
    row = _reconciliation(summary, declared_totals, rejected_totals or {}, file_label)
    row["rejected_lines"] = rejected_lines
    with _quiet_gx():
        frames = {
            "accepted_summary": (
                summary.drop("abs_amount").with_columns(pl.col("amount").cast(pl.String)),
                _summary_expectations(),
            ),
            "findings_summary": (found, _findings_expectations()),
            "reconciliation": (
                pl.DataFrame([row]),
                _reconciliation_expectations(row, suspense_threshold),
            ),
            "rejected_lines": (rejected, _rejected_expectations()),
        }
        results = _validate(frames, docs_dir, file_label, run_time or FIXED_RUN_TIME)
    critical_failed = any(not r["success"] and r["severity"] == "critical" for r in results)
    return BatchReport(
        success=not critical_failed,
        results=results,
        docs_index=docs_dir / "index.html",
        seconds=time.perf_counter() - started,
    )


def _validate(
    frames: Mapping[str, tuple[pl.DataFrame, list[Expectation]]],
    docs_dir: Path,
    file_label: str,
    run_time: dt.datetime,
) -> list[dict[str, Any]]:
    # This GX build has no analytics client left, but say so anyway: it is the documented switch.
    # A write, not a read of our configuration: GX reads it from the environment at import, so
    # it stays here (outside Settings, which only read ours), next to the import it is for.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from great_expectations.core.run_identifier import RunIdentifier

    if docs_dir.exists():  # a rerun replaces the report, it never adds a second one
        shutil.rmtree(docs_dir)
    gx = _Gx.get(docs_dir)
    gx.start(docs_dir)
    run_id = RunIdentifier(run_name=_path_safe(file_label), run_time=run_time)
    results: list[dict[str, Any]] = []
    for name, (frame, expectations) in frames.items():
        definition = gx.definition(name, expectations)
        suite = definition.suite
        outcome = definition.run(
            batch_parameters={"dataframe": frame.to_pandas()},
            result_format="COMPLETE",
            run_id=run_id,
        )
        order = {e.id: i for i, e in enumerate(suite.expectations)}  # suite order, not GX's
        ranked = sorted(outcome.results, key=lambda r: order.get(r.expectation_config.id, 0))
        results.extend(_result_dict(r, name) for r in ranked)
    gx.context.build_data_docs(site_names=[SITE_NAME])
    _scrub(docs_dir, run_time)
    return results


def _path_safe(label: str) -> str:
    """GX puts the run name into file paths: a label like ``../x`` must not leave ``out_dir``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "batch"


def _scrub(docs_dir: Path, run_time: dt.datetime) -> None:
    """Make the pages reproducible and keep them from calling GX's servers when opened.

    GX 1.x loads its navbar logo from its own S3 bucket with a ``?d=<now>`` query (a beacon
    that changes on every build), stamps each batch with ``ge_load_time`` = now and gives
    collapsible blocks random uuid4 ids. The logo is served from the site's own
    ``static/images`` instead, load times become the run time, ids are numbered per page;
    scripts and stylesheets from CDNs are stripped, remote ``url()`` images dropped.
    """
    stamp = run_time.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for page in docs_dir.rglob("*.html"):
        logo = os.path.relpath(docs_dir / "static" / "images" / "logo-long.png", page.parent)
        text = page.read_text(encoding="utf-8")
        text = GX_ASSET.sub(Path(logo).as_posix(), text)
        text = REMOTE_URL.sub("none", REMOTE_ASSET.sub("", text))
        text = _number_uuids(TIMESTAMP.sub(stamp, text))
        page.write_text(text, encoding="utf-8")
    for sheet in docs_dir.rglob("*.css"):  # GX's stylesheet draws its logo from S3
        css = sheet.read_text(encoding="utf-8")
        if REMOTE_URL.search(css):
            sheet.write_text(REMOTE_URL.sub("none", css), encoding="utf-8")


def _number_uuids(text: str) -> str:
    """Random element ids (uuid4) become ``id-0000``, ``id-0001``... in order of appearance."""
    ids: dict[str, str] = {}
    return UUID.sub(lambda m: ids.setdefault(m[0], f"id-{len(ids):04d}"), text)
