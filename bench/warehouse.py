"""``tunemantra bench warehouse``: how long ``dbt build`` of the warehouse takes on N lines.

Generation (not timed), in a fresh data dir:

* the royalty bench's seeded synthetic lake (``pipelines/bench_royalty.py``: N canonical
  revenue lines for 2026-H1 under ``lake/revenue_lines/org=1/period=.../source=.../file=K.parquet``,
  which the ``lake.revenue_lines`` source glob ``lake/revenue_lines/**/*.parquet`` reads as is);
* one royalty run of that lake computed by the engine and laid out as ``royalty_run.py`` lays
  a run out: ``runs/org=1/period=2026-H1/v1/outputs/<name>.parquet`` and ``manifest.json``;
* every reference table the dbt sources read, written directly to
  ``warehouse/reference/<table>.parquet`` in exactly the exporter's schemas
  (``pipelines/warehouse.py``: ``REFERENCE``, ``FILE_TOTALS``, ``RUN_TOTALS``,
  ``SUSPENSE_AMOUNTS``) and consistent with the lake: organisation 1, the catalogue, payees
  and contracts of the terms snapshot, one locked run with the engine's totals, one ingestion
  ledger row per lake file with its accepted amount per currency, and the suspense items.

Timed: ``dbt build`` into a new DuckDB file and the swap (``run_dbt`` then ``publish``, the
same calls ``warehouse.build`` makes, without the store export). Reported: seconds, lines/s,
peak RSS while building (dbt and DuckDB run in this process), dbt's results per node type
and status, and whether every test passed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped]

from bench import royalty as br
from pipelines.layout import DataDir
from pipelines.warehouse import (
    COMMITTED_FILES,
    FILE_TOTALS,
    REFERENCE,
    RUN_TOTALS,
    SUSPENSE_AMOUNTS,
    WarehouseError,
    build_path,
    publish,
    run_dbt,
    write_table,
)

ORG_ID = 1
RUN_ID = 1
RECEIVED_AT = dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC)
RUN_CREATED_AT = dt.datetime(2026, 7, 2, 9, 0, tzinfo=dt.UTC)
RUN_LOCKED_AT = dt.datetime(2026, 7, 3, 9, 0, tzinfo=dt.UTC)


def _log(message: str) -> None:
    sys.stderr.write(f"[bench warehouse {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --- generation -----------------------------------------------------------------------------
def _reference_schema(name: str) -> pa.Schema:
    return pa.schema([(c, t) for c, _, t in REFERENCE[name][1]])


def _put(folder: Path, name: str, frame: pl.DataFrame, schema: pa.Schema) -> int:
    """Write ``frame`` as ``<name>.parquet`` in exactly ``schema`` (the exporter's)."""
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing:
        raise ValueError(f"{name}: no column(s) {missing}")
    table = frame.select(schema.names).to_arrow().cast(schema)
    write_table(table, folder / f"{name}.parquet")
    return int(table.num_rows)


def _lake_facts(files: list[Path]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Per file and reported currency the lines and amounts; the suspense items; their
    amounts per reported currency (exact: DuckDB sums DECIMAL(38, 12) exactly)."""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        con.execute(
            f"create view lines as select * from read_parquet([{listing}], "
            "hive_partitioning = false)"
        )
        per_file = con.sql(
            """
            select file_id, any_value(source) as source,
                any_value(reporting_period) as reporting_period, currency,
                count(*) as lines,
                count(*) filter (where match_method is not null) as lines_matched,
                count(*) filter (where match_method is null) as lines_suspense,
                cast(sum(amount) as decimal(38, 12)) as amount
            from lines group by file_id, currency order by file_id, currency
            """
        ).to_arrow_table()
        items = con.sql(
            """
            select row_number() over (order by isrc) as suspense_item_id, 'isrc' as kind,
                isrc as key, any_value(suspense_reason) as reason,
                any_value(title) as title, any_value(artist) as artist,
                count(*) as lines, cast(sum(quantity) as bigint) as quantity,
                min(reporting_period) as first_period, max(reporting_period) as last_period
            from lines where match_method is null group by isrc order by isrc
            """
        ).to_arrow_table()
        amounts = con.sql(
            """
            select isrc as key, currency, cast(sum(amount) as decimal(38, 12)) as amount
            from lines where match_method is null group by isrc, currency order by isrc, currency
            """
        ).to_arrow_table()
    finally:
        con.close()
    return _frame(per_file), _frame(items), _frame(amounts)


def _frame(table: pa.Table) -> pl.DataFrame:
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def _write_reference(
    data_dir: Path, terms: Any, sizes: dict[str, int], files: list[Path], totals: dict[str, Any]
) -> dict[str, int]:
    folder = DataDir(data_dir).warehouse_reference()
    counts: dict[str, int] = {}
    org = pl.lit(ORG_ID, dtype=pl.Int64).alias("org_id")

    counts["organisations"] = _put(
        folder,
        "organisations",
        pl.DataFrame(
            {
                "org_id": [ORG_ID],
                "slug": ["bench"],
                "name": ["Bench Records"],
                "default_currency": [br.ACCOUNTING_CURRENCY],
                "created_at": [dt.datetime(2020, 1, 1, tzinfo=dt.UTC)],
            }
        ),
        _reference_schema("organisations"),
    )
    n_releases = sizes["releases"]
    n_artists = max(1, n_releases // 4)
    artist_ids = pl.int_range(1, n_artists + 1, eager=True)
    counts["artists"] = _put(
        folder,
        "artists",
        pl.DataFrame({"artist_id": artist_ids}).with_columns(
            org,
            pl.format("Artist {}", "artist_id").alias("name"),
            pl.lit("person").alias("kind"),
            pl.lit("DE").alias("country"),
        ),
        _reference_schema("artists"),
    )
    release_artist = (pl.col("release_id") - 1) % n_artists + 1
    counts["releases"] = _put(
        folder,
        "releases",
        pl.DataFrame({"release_id": pl.int_range(1, n_releases + 1, eager=True)}).with_columns(
            org,
            pl.col("release_id").cast(pl.String).str.zfill(13).alias("upc"),
            pl.format("Release {}", "release_id").alias("title"),
            pl.lit("Album").alias("release_type"),
            pl.lit("Bench Records").alias("label_name"),
            release_artist.alias("artist_id"),
            pl.lit(dt.date(2024, 1, 1)).alias("original_release_date"),
            pl.lit("Pop").alias("genre"),
        ),
        _reference_schema("releases"),
    )
    counts["tracks"] = _put(
        folder,
        "tracks",
        terms.tracks.with_columns(
            org,
            pl.format("Track {}", "track_id").alias("title"),
            pl.lit(None, dtype=pl.String).alias("version"),
            release_artist.alias("artist_id"),
            pl.lit(200, dtype=pl.Int64).alias("duration_seconds"),
            pl.lit(False).alias("explicit"),
            pl.lit(1, dtype=pl.Int64).alias("disc_number"),
            ((pl.col("track_id") - 1) % br.TRACKS_PER_RELEASE + 1).alias("track_number"),
        ),
        _reference_schema("tracks"),
    )
    counts["payees"] = _put(
        folder,
        "payees",
        terms.payees.with_columns(
            org,
            pl.lit(None, dtype=pl.Int64).alias("artist_id"),
            pl.lit("DE").alias("country"),
        ),
        _reference_schema("payees"),
    )
    counts["contracts"] = _put(
        folder,
        "contracts",
        terms.contracts.with_columns(org, pl.format("Contract {}", "contract_id").alias("name")),
        _reference_schema("contracts"),
    )
    counts["royalty_runs"] = _put(
        folder,
        "royalty_runs",
        pl.DataFrame(
            {
                "run_id": [RUN_ID],
                "org_id": [ORG_ID],
                "period": [br.PERIOD],
                "period_start": [dt.date(2026, 1, 1)],
                "period_end": [dt.date(2026, 6, 30)],
                "version": [1],
                "status": ["locked"],
                "currency": [br.ACCOUNTING_CURRENCY],
                "supersedes_id": pl.Series([None], dtype=pl.Int64),
                "created_at": [RUN_CREATED_AT],
                "locked_at": [RUN_LOCKED_AT],
            }
        ),
        _reference_schema("royalty_runs"),
    )
    run_rows = [
        {
            "run_id": RUN_ID,
            "org_id": ORG_ID,
            "currency": cur,
            "measure": k,
            "amount": Decimal(v),
        }
        for cur, t in sorted(totals.items())
        for k, v in sorted(t.items())
    ]
    write_table(pa.Table.from_pylist(run_rows, RUN_TOTALS), folder / "royalty_run_totals.parquet")
    counts["royalty_run_totals"] = len(run_rows)

    per_file, items, amounts = _lake_facts(files)
    ledger = per_file.group_by("file_id", maintain_order=True).agg(
        pl.col("source").first(),
        pl.col("reporting_period").first(),
        pl.col("lines").sum(),
        pl.col("lines_matched").sum(),
        pl.col("lines_suspense").sum(),
    )
    counts["ingest_files"] = _put(
        folder,
        "ingest_files",
        ledger.with_columns(
            org,
            pl.format("bench-{}-{}-{}.csv", "source", "reporting_period", "file_id").alias(
                "original_name"
            ),
            pl.col("source").alias("format"),
            pl.lit("ingested").alias("status"),
            pl.col("lines").alias("lines_read"),
            pl.col("lines").alias("lines_accepted"),
            pl.lit(0, dtype=pl.Int64).alias("lines_rejected"),
            pl.lit(None, dtype=pl.String).alias("quarantine_code"),
            pl.lit(RECEIVED_AT).alias("received_at"),
        ),
        _reference_schema("ingest_files"),
    )
    # every generated file is committed (the ledger's ``ingested`` rows above): the lake's
    # staging models read only the parts of the files listed here
    counts["committed_files"] = _put(
        folder, "committed_files", ledger.select("file_id").with_columns(org), COMMITTED_FILES
    )
    counts["ingest_file_totals"] = _put(
        folder,
        "ingest_file_totals",
        per_file.with_columns(
            org,
            pl.col("amount").alias("read_amount"),
            pl.col("amount").alias("accepted_amount"),
            pl.lit(0).cast(br.EXACT).alias("rejected_amount"),
            pl.lit(None).cast(br.EXACT).alias("declared_amount"),
        ),
        FILE_TOTALS,
    )
    counts["suspense_items"] = _put(
        folder,
        "suspense_items",
        items.with_columns(org, pl.lit("open").alias("status")),
        _reference_schema("suspense_items"),
    )
    counts["suspense_item_amounts"] = _put(
        folder,
        "suspense_item_amounts",
        amounts.join(items.select("key", "suspense_item_id"), on="key").with_columns(org),
        SUSPENSE_AMOUNTS,
    )
    return counts


def _write_run(data_dir: Path, files: list[Path], result: Any, outputs: dict[str, Any]) -> Path:
    """The run's outputs and manifest, laid out as ``royalty.run.run_period`` lays them."""
    final = DataDir(data_dir).run_period(ORG_ID, br.PERIOD) / "v1"
    written: dict[str, str] = {}
    for name, frame in outputs.items():
        path = final / "outputs" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="zstd", statistics=True)
        written[f"outputs/{name}.parquet"] = "not hashed (bench)"
    manifest = {
        "org_id": ORG_ID,
        "period": br.PERIOD,
        "version": 1,
        "accounting_currency": br.ACCOUNTING_CURRENCY,
        "previous_run_id": None,
        "inputs": [{"path": str(p.relative_to(data_dir)), "size": p.stat().st_size} for p in files],
        "files": written,
        "totals": result.totals,
        "counts": result.counts,
    }
    (final / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return final


def generate(data_dir: Path, lines: int, seed: int = 1) -> dict[str, Any]:
    """Lake, one locked royalty run and the reference tables in ``data_dir``."""
    sizes = br.scale(lines)
    terms = br.build_terms(sizes, seed)
    _log(f"lake of {lines:,} lines, catalogue {sizes}")
    lake = br.write_lake(data_dir, lines, sizes, seed)
    _log(f"{len(lake.files)} lake files ({lake.bytes / 2**20:.0f} MiB); royalty run")
    result, outputs = br.run_engine(lake.files, terms)
    run_dir = _write_run(data_dir, lake.files, result, outputs)
    _log("reference tables")
    reference = _write_reference(data_dir, terms, sizes, lake.files, result.totals)
    return {
        "catalogue": sizes,
        "lake": lake.summary(),
        "run": {
            "dir": str(run_dir.relative_to(data_dir)),
            "totals": result.totals.get(br.ACCOUNTING_CURRENCY, {}),
            "outputs": {name: frame.height for name, frame in outputs.items()},
        },
        "reference_rows": reference,
    }


# --- the timed build ------------------------------------------------------------------------
def _kind(node: Any) -> str:
    kind = getattr(node, "resource_type", "unknown")
    return str(getattr(kind, "value", kind))


def timed_build(data_dir: Path, *, threads: int = 2) -> dict[str, Any]:
    """``dbt build`` into a new file and the swap, timed; dbt's results by type and status."""
    new = build_path(data_dir)
    new.parent.mkdir(parents=True, exist_ok=True)
    new.unlink(missing_ok=True)
    error: str | None = None
    results: list[Any] = []
    with br.RssSampler() as sampler:
        t0 = time.perf_counter()
        try:
            results = list(run_dbt(["build"], data_dir=data_dir, build_path=new, threads=threads))
            t1 = time.perf_counter()
            publish(data_dir)
        except WarehouseError as exc:
            error = str(exc)
            t1 = time.perf_counter()
        finally:
            new.unlink(missing_ok=True)
        t2 = time.perf_counter()
    nodes: dict[str, dict[str, int]] = {}
    for r in results:
        per = nodes.setdefault(_kind(r.node), {})
        per[str(r.status)] = per.get(str(r.status), 0) + 1
    bad = {"error", "fail", "runtime error", "skipped"}
    failed = sum(n for per in nodes.values() for s, n in per.items() if s in bad)
    tests = {k: v for k, v in nodes.items() if k in ("test", "unit_test")}
    return {
        "seconds": round(t2 - t0, 2),
        "dbt_seconds": round(t1 - t0, 2),
        "swap_seconds": round(t2 - t1, 2),
        "peak_rss_mib": br.mib(sampler.peak(t0, t2)),
        "nodes": nodes,
        "tests_passed": sum(per.get("pass", 0) for per in tests.values()),
        "tests_failed": sum(n for per in tests.values() for s, n in per.items() if s != "pass"),
        "passed": error is None and failed == 0 and bool(results),
        "error": error,
    }


def _warehouse_rows(data_dir: Path) -> dict[str, Any]:
    path = DataDir(data_dir).warehouse_file()
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        lines = con.execute("select count(*) from fct_revenue_lines").fetchone()
        recon = con.execute(
            "select currency, revenue, royalty, retained, suspense from fct_run_reconciliation"
        ).fetchall()
    return {
        "fct_revenue_lines": lines[0] if lines else 0,
        "run_reconciliation": [
            {
                "currency": c,
                "revenue": str(rv),
                "royalty": str(ry),
                "retained": str(rt),
                "suspense": str(s),
            }
            for c, rv, ry, rt, s in recon
        ],
    }


def run(lines: int, *, seed: int = 1, keep: Path | None = None, threads: int = 2) -> dict[str, Any]:
    """Generate the data dir (untimed), then time ``dbt build`` + swap of it."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="tm-bench-warehouse-", dir=keep)).resolve()
    try:
        g0 = time.perf_counter()
        generated = generate(data_dir, lines, seed)
        generate_s = time.perf_counter() - g0
        rss_before = br.rss_bytes()
        _log(f"generated in {generate_s:.1f} s; dbt build")
        build = timed_build(data_dir, threads=threads)
        _log(f"dbt build + swap {build['seconds']} s, passed: {build['passed']}")
        return {
            "lines": lines,
            "seed": seed,
            "threads": threads,
            "data_dir": str(data_dir) if keep is not None else None,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "generate_seconds": round(generate_s, 2),
            **generated,
            "seconds": build["seconds"],
            "lines_per_second": round(lines / build["seconds"]) if build["seconds"] else None,
            "build": build,
            "rss_before_build_mib": br.mib(rss_before),
            "process_peak_rss_mib": br.mib(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            ),
            "warehouse": _warehouse_rows(data_dir),
            "passed": build["passed"],
        }
    finally:
        if keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)
