"""Where ingestion writes, under ``TUNEMANTRA_DATA_DIR``, always atomically (temp + rename).

```
raw/org=<id>/<sha256[:2]>/<sha256><suffix>          immutable raw files, by content
quarantine/org=<id>/<sha256>.json                      why a file was refused
lake/revenue_lines/org=<id>/period=<YYYY-MM>/source=<format>/file=<file_id>.parquet
lake/rejected_lines/org=<id>/period=<YYYY-MM>/source=<format>/file=<file_id>.parquet
reports/ingest/org=<id>/file=<file_id>/findings.json   every row error and warning
```
Rewriting the same (org, period, source, file) replaces that one file: a rerun never adds a
second copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl


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
        frame.write_parquet(tmp, compression="zstd", statistics=True)
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
    return (
        data_dir
        / "lake"
        / table
        / f"org={org_id}"
        / f"period={period}"
        / f"source={source}"
        / f"file={file_id}.parquet"
    )


def remove_file_outputs(data_dir: Path, org_id: int, file_id: int) -> None:
    """Remove every partition file of one ingested file (before rewriting it)."""
    for table in ("revenue_lines", "rejected_lines"):
        root = data_dir / "lake" / table / f"org={org_id}"
        for p in root.glob(f"period=*/source=*/file={file_id}.parquet"):
            p.unlink()
