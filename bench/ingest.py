"""``tunemantra bench ingest``: end-to-end ingestion speed on generated files.

Generates an N-line gzipped DDEX DSR file and an N-line distributor CSV, then ingests each
in a fresh child process (parse + validate + match + convert + write Parquet + ledger,
against a SQLite store holding the sample label's catalogue) and reports wall time,
lines/s and the child's peak RSS. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa


def write_distributor_csv(path: Path, lines: int, isrcs: list[str], seed: int) -> None:
    """An N-line distributor statement, generated column-wise (no Python loop per line)."""
    n = lines
    idx = pl.int_range(0, n, eager=True)
    countries = ["GB", "DE", "US", "FR", "NL", "SE", "JP", "BR"]
    stores = ["Deezer", "Amazon Music", "Tidal", "Apple Music"]
    k = len(isrcs)
    frame = (
        pl.DataFrame({"i": idx})
        .with_columns(
            pl.lit("2026-01").alias("Statement Period"),
            pl.when(pl.col("i") % 97 == 0)
            .then(pl.lit("Void"))
            .otherwise(pl.lit("Sale"))
            .alias("Sale Type"),
            pl.col("i").mod(len(stores)).replace_strict(range(len(stores)), stores).alias("Store"),
            (pl.col("i") * 7 + seed)
            .mod(len(countries))
            .replace_strict(range(len(countries)), countries)
            .alias("Country"),
            pl.lit("Stream").alias("Usage"),
            pl.lit("").alias("Release Title"),
            pl.format("Track {}", pl.col("i") % k).alias("Track Title"),
            pl.lit("Artist").alias("Artist"),
            pl.lit("").alias("UPC"),
            (pl.col("i") * 31 + seed).mod(k).replace_strict(range(k), isrcs).alias("ISRC"),
            pl.lit("").alias("Catalog Number"),
            ((pl.col("i") * 13) % 5000 + 1).alias("Units"),
            pl.lit("").alias("Gross Amount"),
            pl.lit("85").alias("Split %"),
            pl.format(
                "{}.{}",
                (pl.col("i") % 50),
                ((pl.col("i") * 7919) % 1_000_000).cast(pl.String).str.zfill(6),
            ).alias("Net Amount"),
            pl.lit("EUR").alias("Currency"),
        )
        .drop("i")
    )
    frame.write_csv(path)


def _child(args: list[str]) -> tuple[float, dict[str, Any], int]:
    """Run one ingestion in a fresh process: (wall seconds, its outcome, its own peak RSS in
    KiB as the child reports it: RUSAGE_CHILDREN here would give the largest child so far)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest", *args], check=True, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    outcome = json.loads(out.stdout.strip().splitlines()[-1])
    return elapsed, outcome, int(outcome["peak_rss_kib"])


def run(lines: int, *, seed: int = 1, keep: Path | None = None) -> dict[str, Any]:
    from demo.dsr_writer import write_dsr
    from demo.label import run_demo
    from schemas.store import db
    from schemas.store.models import Track

    work = Path(tempfile.mkdtemp(prefix="tm-bench-", dir=keep))
    try:
        data, store = work / "data", work / "bench.db"
        engine = db.make_engine(f"sqlite:///{store}")
        db.upgrade(engine)
        factory = db.session_factory(engine)
        org_id = run_demo(factory, seed=seed, secret_key="bench-secret", data_dir=data).org_id
        with factory() as s:
            isrcs = list(s.scalars(sa.select(Track.isrc)))
        engine.dispose()
        t0 = time.perf_counter()
        dsr_plain = work / "DSR_Northbound_Spotify_Premium_2026-01_WW_1of1_20260205T000000.tsv"
        write_dsr(dsr_plain, lines=lines, seed=seed)
        dsr = dsr_plain.with_name(dsr_plain.name + ".gz")
        with dsr_plain.open("rb") as src, gzip.open(dsr, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        dsr_plain.unlink()
        csv = work / "statement_bench_2026-01.csv"
        write_distributor_csv(csv, lines, isrcs, seed)
        generated = time.perf_counter() - t0
        results = []
        cores = os.cpu_count() or 1
        for path in (dsr, csv):
            wall, outcome, peak = _child(["--one", str(store), str(data), str(org_id), str(path)])
            _, floor, _ = _child(["--floor", str(path)])
            results.append(
                {
                    "file": path.name,
                    "bytes": path.stat().st_size,
                    "format": outcome["format"],
                    "status": outcome["status"],
                    "lines": outcome["lines"],
                    "seconds": round(outcome["seconds"], 2),
                    "cpu_seconds": round(outcome["cpu_seconds"], 2),
                    "process_seconds": round(wall, 2),
                    "lines_per_second": round(outcome["lines"] / outcome["seconds"]),
                    "peak_rss_mib": round(peak / 1024),
                    # the least any ingestion must do (``ingest_floor``), for the same lines
                    "floor_seconds": round(floor["seconds"], 2),
                    "floor_cpu_seconds": round(floor["cpu_seconds"], 2),
                    "floor_lines_per_second": round(outcome["lines"] / floor["seconds"]),
                    # the floor's CPU spread perfectly over every core: no ingestion is faster
                    "floor_bound_lines_per_second": round(
                        outcome["lines"] / (floor["cpu_seconds"] / cores)
                    ),
                    "ratio": round(outcome["seconds"] / floor["seconds"], 2),
                }
            )
        return {
            "lines_per_file": lines,
            "generate_seconds": round(generated, 2),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "results": results,
        }
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _peak_rss_kib() -> int:
    """This process's own peak RSS. Linux's ``VmHWM`` starts afresh at exec; ``ru_maxrss``
    would also count the parent's peak before the fork (here: generating the files)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def ingest_floor(path: Path) -> dict[str, Any]:
    """The least any ingestion of ``path`` must do, with the fastest calls we know, and
    nothing else: SHA-256 of the file (the raw store's address), decompress it, read every
    line's text, SHA-256 of every line (its ``raw_hash``), split the lines into their fields
    (as text: no typing, validation, matching, conversion, batch checks or ledger) and write
    the fields and hashes as Parquet the way the lake does (zstd 1, statistics). Its
    CPU-seconds divided by the cores bound the wall time of a full ingestion from below."""
    import io

    import polars_hash as plh
    from isal import igzip  # what ingestion decompresses with

    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if path.suffix == ".gz":
        data = igzip.decompress(data)
    sep = "\t" if b"\t" in data[:4096] else ","
    # as many columns as the widest line of the first 4 MiB (a DSR's records differ)
    width = max(line.count(sep.encode()) for line in data[: 4 << 20].splitlines()) + 1
    # every line whole: a separator and quote that never occur in these files
    raw = pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        schema={"raw": pl.String},
    )
    hashes = raw.select(plh.col("raw").chash.sha2_256().alias("raw_hash"))
    del raw
    fields = pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator=sep,
        quote_char='"' if sep == "," else None,
        schema={f"f{i}": pl.String for i in range(width)},
        truncate_ragged_lines=True,
        missing_columns="insert",
    )
    del data
    out = fields.hstack([hashes.to_series()])
    with tempfile.TemporaryDirectory() as tmp:
        out.write_parquet(
            Path(tmp) / "floor.parquet", compression="zstd", compression_level=1, statistics=True
        )
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "lines": out.height,
        "columns": out.width,
        "fields": int(fields.height * fields.width - sum(fields.null_count().row(0))),
        "sha256": sha,
    }


def _floor(path: str) -> None:
    sys.stdout.write(json.dumps({**ingest_floor(Path(path)), "peak_rss_kib": _peak_rss_kib()}))
    sys.stdout.write("\n")


def _one(store: str, data: str, org_id: str, path: str) -> None:
    from pipelines.ingest.expectations import preload

    preload()  # a one-off import (~6 s) per process: not ingestion time
    from pipelines.ingest.files import ingest_path
    from pipelines.resources import Resources
    from schemas.store import db

    res = Resources.of(db.session_factory(db.make_engine(f"sqlite:///{store}")), Path(data))
    p = Path(path)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    out = ingest_path(res, org_id=int(org_id), path=p, name=p.name)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    sys.stdout.write(
        json.dumps(
            {
                "format": out.format,
                "status": out.status,
                "lines": out.lines,
                "seconds": seconds,
                "cpu_seconds": (after.ru_utime - before.ru_utime)
                + (after.ru_stime - before.ru_stime),
                "quarantine": out.quarantine,
                "peak_rss_kib": _peak_rss_kib(),
            }
        )
        + "\n"
    )


if __name__ == "__main__":  # the child process of `run`
    if sys.argv[1] == "--one":
        _one(*sys.argv[2:6])
    elif sys.argv[1] == "--floor":
        _floor(sys.argv[2])
