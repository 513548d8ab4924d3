"""A run's folder under the data directory: where it lives, writing it, the lock held while
a temporary folder is written there, and putting a committed run's folder in place."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from pipelines import lake
from pipelines.layout import DataDir
from royalty_engine.engine import RunResult
from royalty_engine.terms import ContractState, Terms, state_frame

log = logging.getLogger(__name__)


def write_run(
    stage: Path,
    terms: Terms,
    state_in: dict[int, ContractState],
    inputs: list[dict[str, Any]],
    result: RunResult,
    context: dict[str, pl.DataFrame] | None = None,
) -> dict[str, str]:
    """Write everything into ``stage``; return {relative path: sha256}."""
    files: dict[str, str] = {}

    def put(rel: str, frame: pl.DataFrame) -> None:
        path = stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="zstd", statistics=True)
        files[rel] = lake.sha256_file(path)

    for name, frame in terms.frames().items():
        put(f"snapshot/{name}.parquet", frame)
    put("state_in.parquet", state_frame(state_in))
    (stage / "inputs.json").write_text(json.dumps(inputs, indent=1, sort_keys=True))
    files["inputs.json"] = lake.sha256_file(stage / "inputs.json")
    for name, frame in result.outputs().items():
        put(f"outputs/{name}.parquet", frame)
    put("state.parquet", state_frame(result.state))
    for name, frame in (context or {}).items():
        put(f"context/{name}.parquet", frame)
    return files


def read_snapshot(folder: Path) -> Terms:
    """The terms written into a run's (or a plan's) ``snapshot/`` folder."""
    return Terms.from_frames(
        {n: pl.read_parquet(folder / "snapshot" / f"{n}.parquet") for n in Terms.__annotations__}
    )


def input_files(data_dir: Path, files: list[Path]) -> list[dict[str, Any]]:
    return [
        {
            "path": str(p.relative_to(data_dir)),
            "sha256": lake.sha256_file(p),
            "size": p.stat().st_size,
        }
        for p in files
    ]


def ledger_files(
    data_dir: Path, final: Path, written: dict[str, str], manifest_sha: str
) -> dict[str, str]:
    """What a ``calculated`` entry lists: every file of the run folder (relative to the
    data folder) with its SHA-256, the manifest included."""
    rel = {f"{final.relative_to(data_dir)}/{k}": v for k, v in written.items()}
    rel[f"{final.relative_to(data_dir)}/manifest.json"] = manifest_sha
    return rel


def output_paths(final: Path) -> dict[str, str]:
    out = {p.stem: str(p) for p in sorted((final / "outputs").glob("*.parquet"))}
    out["manifest"] = str(final / "manifest.json")
    out["snapshot"] = str(final / "snapshot")
    return out


def period_dir(data_dir: Path, org_id: int, label: str) -> Path:
    return DataDir(data_dir).run_period(org_id, label)


@contextmanager
def period_lock(data_dir: Path, org_id: int, label: str) -> Iterator[None]:
    """Hold the period folder's lock (``flock`` on ``period=<label>.lock`` beside it,
    released if the process dies): taken by whatever writes a temporary folder there (a run
    from its stage to its rename, a plan) and by ``recover``, which so never mistakes a folder
    being written for one a killed process left."""
    folder = period_dir(data_dir, org_id, label)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def put_in_place(stage: Path, final: Path) -> None:
    """Rename a committed run's folder from its temporary name to ``v<version>``. A folder
    already there belongs to no committed run (an attempt that never committed): it is set
    aside and removed, never read as this run's."""
    if final.exists():
        aside = final.with_name(f".{final.name}-orphan-{uuid.uuid4().hex}")
        os.replace(final, aside)
        log.warning("run folder %s belonged to no committed run: replaced", final)
        os.replace(stage, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(stage, final)


def manifest_hash(folder: Path) -> str | None:
    path = folder / "manifest.json"
    return lake.sha256_file(path) if path.is_file() else None
