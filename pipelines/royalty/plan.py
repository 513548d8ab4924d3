"""A run spread over payee buckets (the DAG maps one task per bucket): the plan with the
snapshot every bucket uses, and each bucket's earnings."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.orm import Session, sessionmaker

from pipelines.royalty.folder import input_files, period_dir, period_lock, read_snapshot
from pipelines.royalty.snapshot import Prepared, lake_files, prepare, scan_lines
from royalty_engine.periods import RunError, parse_period
from royalty_engine.terms import state_frame, state_from_frame

PLAN = "plan.json"


PART_FRAMES = ("royalties", "matched", "suspense", "slots", "unsplit", "read", "bases")


def plan_run(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    period: str,
    buckets: int,
    correction: str | None = None,
) -> Path:
    """Take the snapshot a partitioned run will use and write it, with the lake files it
    reads, into a plan folder beside the period's runs; each bucket (``earn_part``) and the
    final ``run_period(plan=...)`` read it from there, so they all see the same terms."""
    if buckets < 1:
        raise RunError("buckets_invalid", f"buckets must be at least 1, not {buckets}")
    prep = prepare(factory, org_id, period, correction)
    files = lake_files(factory, data_dir, org_id, prep.period)
    root = period_dir(data_dir, org_id, prep.period.label)
    folder = root / f".plan-{uuid.uuid4().hex}"
    stage = root / f".{folder.name}.tmp"
    with period_lock(data_dir, org_id, prep.period.label):
        stage.mkdir(parents=True)
        _write_plan(stage, folder, prep, data_dir, files, org_id, buckets, correction)
    return folder


def _write_plan(
    stage: Path,
    folder: Path,
    prep: Prepared,
    data_dir: Path,
    files: list[Path],
    org_id: int,
    buckets: int,
    correction: str | None,
) -> None:
    try:
        for name, frame in prep.terms.frames().items():
            (stage / "snapshot").mkdir(exist_ok=True)
            frame.write_parquet(stage / "snapshot" / f"{name}.parquet")
        state_frame(prep.state_in).write_parquet(stage / "state_in.parquet")
        plan = {
            "org_id": org_id,
            "period": prep.period.label,
            "buckets": buckets,
            "correction": correction,
            "currency": prep.currency,
            "previous_run_id": prep.previous.id if prep.previous else None,
            "inputs": input_files(data_dir, files),
        }
        (stage / PLAN).write_text(json.dumps(plan, indent=1, sort_keys=True))
        os.replace(stage, folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def earn_part(data_dir: Path, plan: Path, bucket: int) -> Path:
    """Compute one payee bucket's earnings of a planned run into ``plan/part-<bucket>/``
    (a rerun of the same bucket replaces its part; nothing is half-written)."""
    from royalty_engine.earnings import payee_buckets
    from royalty_engine.engine import earn_bucket

    meta = json.loads((plan / PLAN).read_text())
    if not 0 <= bucket < meta["buckets"]:
        raise RunError("bucket_invalid", f"bucket {bucket} is not in 0..{meta['buckets'] - 1}")
    terms = read_snapshot(plan)
    ids = payee_buckets(terms, meta["buckets"])[bucket]
    earned = earn_bucket(
        scan_lines([data_dir / i["path"] for i in meta["inputs"]]),
        terms,
        state_from_frame(pl.read_parquet(plan / "state_in.parquet")),
        parse_period(meta["period"]),
        accounting_currency=meta["currency"],
        contract_ids=None if meta["buckets"] == 1 else ids,
    )
    final = plan / f"part-{bucket}"
    stage = plan / f".part-{bucket}-{uuid.uuid4().hex}"
    stage.mkdir()
    try:
        for name in PART_FRAMES:
            getattr(earned, name).write_parquet(stage / f"{name}.parquet")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(stage, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final


def merged_parts(plan: Path, buckets: int) -> Any:
    from royalty_engine.earnings import Earnings, merge_earnings

    missing = [b for b in range(buckets) if not (plan / f"part-{b}").is_dir()]
    if missing:
        raise RunError(
            "buckets_missing",
            f"the plan {plan.name} has no earnings yet for bucket(s) {missing}",
        )
    return merge_earnings(
        [
            Earnings(
                **{n: pl.read_parquet(plan / f"part-{b}" / f"{n}.parquet") for n in PART_FRAMES}
            )
            for b in range(buckets)
        ]
    )
