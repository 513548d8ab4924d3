"""Where ingestion writes, under ``TUNEMANTRA_DATA_DIR``, always atomically (temp + rename):
raw files by content, quarantine reasons, the lake's ``revenue_lines`` and ``rejected_lines``
partitions (``.../file=<file_id>/part-<n>.parquet``), ingest reports and one staging folder per
ingestion; every path is a method of ``pipelines.layout.DataDir`` (its docstring shows the
tree), and these functions take one.

A file is ingested in chunks, one part file per chunk and partition. All parts are first
written under ``staging/`` (same file system) and moved into ``lake/`` only when the whole file
has passed (``promote``): a file that fails half-way leaves nothing in the lake. Rewriting the
same (org, file) first removes its earlier parts: a rerun never adds a second copy.

A part counts only through the ledger row that owns it: its ``file=<id>`` must be an
``ingested`` row of that organisation (``committed_file_ids``). Parts promoted by an ingestion
still ``pending`` (or killed before its commit, or with no row at all) are in the lake but no
reader takes them (``committed_parts``: the one rule every reader calls); recovery
(``pipelines.ingest.files.recover``) removes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pipelines.killpoints import killpoint
from pipelines.layout import DataDir
from schemas.store.models import IngestFile, IngestStatus

TABLES = ("revenue_lines", "rejected_lines")


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


def keep_raw(src: Path, data: DataDir, org_id: int, sha: str, suffix: str) -> Path:
    """Copy a delivered file into the content-addressed raw store (``DataDir.raw``;
    idempotent)."""
    dest = data.raw(org_id, sha, suffix)
    if not dest.exists():
        tmp = _atomic(dest)
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return dest


def part_name(seq: int) -> str:
    return f"part-{seq:05d}.parquet"


def file_id_of(path: Path) -> int:
    """The ingestion ledger id of a lake part (``.../file=<id>/part-n.parquet``)."""
    name = path.parent.name
    if name.startswith("file="):
        return int(name.removeprefix("file="))
    raise ValueError(f"{path} is not a lake file")


_STAGING = re.compile(r"^org=(\d+)-file=(\d+)$")


def new_staging(data: DataDir, org_id: int, file_id: int) -> Path:
    """An empty staging folder for the ingestion of one (pending) ledger row, beside the lake
    (same file system), named after it so that recovery knows whose it is. Anything left
    there by an earlier owner of the id (a crash) is not ours: removed first."""
    root = data.staging(org_id, file_id)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def staging_folders(data: DataDir) -> Iterator[tuple[int, int, Path]]:
    """Every ingestion's staging folder (``DataDir.staging``) as (org, file id, path)."""
    root = data.staging_root()
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        m = _STAGING.match(folder.name)
        if m:
            yield int(m.group(1)), int(m.group(2)), folder


def file_outputs(data: DataDir, org_id: int | None = None) -> Iterator[tuple[int, int, Path]]:
    """Every file's lake folders (``file=<id>/``) and its ingestion report folder, as
    (org, file id, path): what recovery checks against the ledger."""
    org = "*" if org_id is None else str(org_id)
    for table in TABLES:
        for p in sorted(data.lake_table(table).glob(f"org={org}/period=*/source=*/file=*")):
            if p.is_dir():
                yield _org_of(p.parents[2]), file_id_of(p / "x"), p
    for p in sorted(data.ingest_reports_root().glob(f"org={org}/file=*")):
        yield _org_of(p.parent), int(p.name.removeprefix("file=")), p


def _org_of(folder: Path) -> int:
    return int(folder.name.removeprefix("org="))


def committed_file_ids(session: Session, org_id: int) -> frozenset[int]:
    """The files whose lines count: ``ingested`` ledger rows of the organisation. A file's
    parts are in the lake before its row is committed ``ingested`` (the ingestion's commit
    point): until then, and for ever if it was killed, they are no one's input."""
    return frozenset(
        session.scalars(
            sa.select(IngestFile.id).where(
                IngestFile.org_id == org_id, IngestFile.status == IngestStatus.INGESTED
            )
        )
    )


def committed_parts(
    session: Session,
    data: DataDir,
    org_id: int,
    *,
    table: str = "revenue_lines",
    periods: Iterable[str] | None = None,
    committed: Collection[int] | None = None,
) -> list[Path]:
    """The lake parts of ``table`` that are inputs: those of the organisation's committed
    files (``committed_file_ids``, or ``committed`` when the caller has read it), of
    ``periods`` (all when None), in a stable order. Temporary files (names starting with a
    dot) are never inputs. Every reader of the lake takes its files from here."""
    ids = committed_file_ids(session, org_id) if committed is None else committed
    root = data.lake_table(table, org_id)
    bases = [root] if periods is None else [root / f"period={p}" for p in periods]
    files: list[Path] = []
    for base in bases:
        for p in base.rglob("*.parquet"):
            if any(part.startswith(".") for part in p.relative_to(base).parts):
                continue
            try:
                file_id = file_id_of(p)
            except ValueError:
                continue  # not a part of any file
            if file_id in ids:
                files.append(p)
    return sorted(files)


def promote(staging: Path, data: DataDir) -> list[Path]:
    """Move every staged partition folder (``.../file=<id>``; the staging folder is laid out
    as a data directory) into the lake; returns the lake part files. One rename per
    partition folder; the staging folder is removed."""
    staged = DataDir(staging)
    moved: list[Path] = []
    for folder in sorted(staged.lake_root().glob("*/org=*/period=*/source=*/file=*")):
        if not any(folder.glob("*.parquet")):
            continue  # emptied (its parts moved to another period)
        target = data.resolve(staged.relative(folder))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
        moved += sorted(target.glob("*.parquet"))
        killpoint("ingest.promoting")  # some partitions moved, others not yet
    shutil.rmtree(staging, ignore_errors=True)
    return moved


def remove_file_outputs(data: DataDir, org_id: int, file_id: int) -> None:
    """Remove every part of one ingested file (before rewriting it)."""
    for table in TABLES:
        for folder in data.lake_table(table, org_id).glob(f"period=*/source=*/file={file_id}"):
            shutil.rmtree(folder)
