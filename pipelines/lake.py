"""Where ingestion writes, under ``TUNEMANTRA_DATA_DIR``, always atomically (temp + rename).

```
raw/org=<id>/<sha256[:2]>/<sha256><suffix>          immutable raw files, by content
quarantine/org=<id>/<sha256>.json                      why a file was refused
lake/revenue_lines/org=<id>/period=<YYYY-MM>/source=<format>/file=<file_id>/part-<n>.parquet
lake/rejected_lines/org=<id>/period=<YYYY-MM>/source=<format>/file=<file_id>/part-<n>.parquet
reports/ingest/org=<id>/file=<file_id>/findings.json   every row error and warning
staging/<id>/...                                       one ingestion's parts, before they count
```
A file is ingested in chunks, one part file per chunk and partition. All parts are first
written under ``staging/`` (same file system) and moved into ``lake/`` only when the whole file
has passed (``promote``): a file that fails half-way leaves nothing in the lake. Rewriting the
same (org, file) first removes its earlier parts: a rerun never adds a second copy. Readers
glob ``**/*.parquet`` under a table (older ledgers may still hold ``file=<id>.parquet``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import polars as pl


def scan_revenue(files: list[Path]) -> pl.LazyFrame:
    """The revenue lines of ``files`` as ``schemas.revenue.CANONICAL``. Parts written before a
    column was added (``member``) read it as null; a column the schema does not know is left
    out; a known column of another type is an error."""
    from schemas.revenue import CANONICAL

    if not files:
        return pl.DataFrame(schema=CANONICAL).lazy()
    return pl.scan_parquet(
        files,
        schema=CANONICAL,
        hive_partitioning=False,
        missing_columns="insert",
        extra_columns="ignore",
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    tmp = _atomic(path)
    try:
        # zstd level 1: about a third faster to write than the default level, files ~4% larger
        frame.write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(data: Any, path: Path) -> Path:
    tmp = _atomic(path)
    try:
        tmp.write_text(json.dumps(data, indent=1, default=str))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def keep_raw(src: Path, data_dir: Path, org_id: int, sha: str, suffix: str) -> Path:
    """Copy a delivered file into the content-addressed raw store (idempotent)."""
    dest = data_dir / "raw" / f"org={org_id}" / sha[:2] / f"{sha}{suffix}"
    if not dest.exists():
        tmp = _atomic(dest)
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def partition(
    data_dir: Path, table: str, org_id: int, period: str, source: str, file_id: int
) -> Path:
    """The folder holding one ingested file's parts of one (table, org, period, source)."""
    return (
        data_dir
        / "lake"
        / table
        / f"org={org_id}"
        / f"period={period}"
        / f"source={source}"
        / f"file={file_id}"
    )


def part_name(seq: int) -> str:
    return f"part-{seq:05d}.parquet"


def file_id_of(path: Path) -> int:
    """The ingestion ledger id of a lake part (``.../file=<id>/part-n.parquet``) or of an older
    single-file partition (``.../file=<id>.parquet``)."""
    for name in (path.parent.name, path.stem):
        if name.startswith("file="):
            return int(name.removeprefix("file="))
    raise ValueError(f"{path} is not a lake file")


def new_staging(data_dir: Path) -> Path:
    """An empty staging folder for one ingestion, beside the lake (same file system)."""
    root = data_dir / "staging" / uuid.uuid4().hex
    root.mkdir(parents=True)
    return root


def staged(staging: Path, lake_dir: Path) -> Path:
    """Where a lake folder's parts are written while staged."""
    return staging / lake_dir.relative_to(lake_dir.parents[5])


def promote(staging: Path, data_dir: Path) -> list[Path]:
    """Move every staged partition folder (``.../file=<id>``) into the lake; returns the lake
    part files. One rename per partition folder; the staging folder is removed."""
    moved: list[Path] = []
    for folder in sorted(staging.glob("lake/*/org=*/period=*/source=*/file=*")):
        if not any(folder.glob("*.parquet")):
            continue  # emptied (its parts moved to another period)
        target = data_dir / folder.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
        moved += sorted(target.glob("*.parquet"))
    shutil.rmtree(staging, ignore_errors=True)
    return moved


def remove_file_outputs(data_dir: Path, org_id: int, file_id: int) -> None:
    """Remove every part of one ingested file (before rewriting it), in either layout."""
    for table in ("revenue_lines", "rejected_lines"):
        root = data_dir / "lake" / table / f"org={org_id}"
        for p in root.glob(f"period=*/source=*/file={file_id}.parquet"):
            p.unlink()
        for folder in root.glob(f"period=*/source=*/file={file_id}"):
            shutil.rmtree(folder)
