"""The ingestion kill harness, on SQLite and PostgreSQL: a real ``tunemantra ingest`` process
is killed with SIGKILL at each named step of an ingestion (``pipelines.ingest.files.KILL_STEPS``,
injected through ``TUNEMANTRA_KILL_AT``, never by timing); the next command must leave every
line of the file in the lake exactly once, the totals equal to the file's (computed here
from the file itself), one ingested ledger row, nothing staged, and the organisation's other
files (and another organisation's) untouched. Before anything recovers, the run's input
selection (``pipelines.royalty.snapshot.lake_files``) must already ignore the killed file's parts.

The royalty run's half of the harness is ``test_kill_harness_run.py``."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from demo.reports import catalogue, write_distributor
from pipelines import lake
from pipelines.ingest.files import KILL_STEPS, ingest_path
from pipelines.killpoints import KILL_AT, KILL_TRACE
from pipelines.layout import DataDir
from pipelines.resources import Resources
from pipelines.royalty.snapshot import lake_files
from royalty_engine.periods import parse_period
from schemas.store.models import IngestFile, IngestStatus
from tests.pipelines.test_ingest import second_label as label

pytestmark = pytest.mark.slow

TUNEMANTRA = Path(sys.executable).parent / "tunemantra"
CHUNK = "300"  # bytes of text per chunk: the 40-line file is staged as many parts


def statement(factory: sessionmaker[Session], org_id: int, path: Path, seed: int) -> Path:
    """A distributor statement of 40 lines, one of them refused by the row checks (currency
    EUX: it goes to rejected_lines), so the file has parts in both tables."""
    with factory() as s:
        products = catalogue(s, org_id)[:40]
    write_distributor(path, products, random.Random(seed))
    # every amount readable, and every line a sale (a void line is the negative of its amount)
    path.write_text(path.read_text().replace("12,5O", "12.50").replace(",Void,", ",Sale,"))
    return path


def file_figures(path: Path) -> tuple[int, dict[str, Decimal]]:
    """Lines and amount per currency, read from the file itself (not through our parser)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        totals[row["Currency"]] += Decimal(row["Net Amount"])
    return len(rows), dict(totals)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def command(
    db_url: str,
    data: Path,
    tmp: Path,
    report: Path,
    *,
    kill_at: str | None = None,
    trace: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEMANTRA_")}
    env.update(
        TUNEMANTRA_DATABASE_URL=db_url,
        TUNEMANTRA_DATA_DIR=str(data),
        TMPDIR=str(tmp),  # any temporary folder the command leaves is seen here
    )
    if kill_at is not None:
        env[KILL_AT] = kill_at
    if trace is not None:
        env[KILL_TRACE] = str(trace)
    return subprocess.run(
        [TUNEMANTRA, "ingest", report, "--org", "label", "--json", "--chunk-bytes", CHUNK],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def committed_lines(factory: sessionmaker[Session], data: Path, org_id: int) -> pl.DataFrame:
    with factory() as s:
        parts = [
            *lake.committed_parts(s, DataDir(data), org_id),
            *lake.committed_parts(s, DataDir(data), org_id, table="rejected_lines"),
        ]
    return pl.concat(
        [pl.read_parquet(p).select("file_id", "line_no", "amount", "currency") for p in parts]
    )


@pytest.mark.parametrize("step", KILL_STEPS)
def test_an_ingestion_killed_at_any_step_is_completed_by_the_next_command(
    factory: sessionmaker[Session], db_url: str, tmp_path: Path, step: str
) -> None:
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    org_id, other = label(factory, "label"), label(factory, "other")
    # files already committed, in this organisation and another: recovery leaves them be
    before = statement(factory, org_id, tmp_path / "statement_before.csv", seed=1)
    theirs = statement(factory, other, tmp_path / "statement_theirs.csv", seed=2)
    kept = [
        ingest_path(Resources.of(factory, data), org_id=org_id, path=before, name=before.name),
        ingest_path(Resources.of(factory, data), org_id=other, path=theirs, name=theirs.name),
    ]
    assert [o.status for o in kept] == ["ingested", "ingested"]
    untouched = tree_digest(data / "lake")
    report = statement(factory, org_id, tmp_path / "statement_northbound.csv", seed=3)
    lines, totals = file_figures(report)
    january = parse_period("2026-01")
    inputs_before = lake_files(factory, data, org_id, january)

    killed = command(db_url, data, tmp, report, kill_at=step)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    with factory() as s:
        (row,) = s.scalars(
            sa.select(IngestFile).where(
                IngestFile.org_id == org_id, IngestFile.original_name == report.name
            )
        ).all()
        killed_id, killed_status = row.id, row.status
    on_disk = {lake.file_id_of(p) for p in (data / "lake").glob(f"*/org={org_id}/**/*.parquet")}
    if step in ("ingest.promoting", "ingest.promoted"):
        # the crash window of issue 16: parts in the lake, the ledger row not committed
        assert killed_status == IngestStatus.PENDING and killed_id in on_disk
    # what a royalty run would read now, before anything recovers: the killed file's parts
    # only once its row is committed
    inputs = lake_files(factory, data, org_id, january)
    if step == "ingest.committed":
        assert killed_status == IngestStatus.INGESTED
        assert {lake.file_id_of(p) for p in inputs} == {kept[0].file_id, killed_id}
    else:
        assert inputs == inputs_before

    rerun = command(db_url, data, tmp, report)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-2000:]
    outcome = json.loads(rerun.stdout.splitlines()[0])
    assert outcome["status"] == ("duplicate" if step == "ingest.committed" else "ingested")

    with factory() as s:
        rows = s.scalars(sa.select(IngestFile).where(IngestFile.org_id == org_id)).all()
        committed = lake.committed_file_ids(s, org_id)
    mine = [r for r in rows if r.original_name == report.name]
    assert [r.status for r in mine] == [IngestStatus.INGESTED]
    assert all(r.status == IngestStatus.INGESTED for r in rows)  # no pending row left
    got = committed_lines(factory, data, org_id).filter(pl.col("file_id") == mine[0].id)
    assert got.height == lines  # every line exactly once (accepted or refused)
    assert got["line_no"].n_unique() == lines
    sums = {
        cur: Decimal(str(amt))
        for cur, amt in got.group_by("currency").agg(pl.col("amount").sum()).iter_rows()
    }
    assert sums == totals
    # nothing that is not a committed file's: no orphan part, no staging, no work folder
    on_disk = {lake.file_id_of(p) for p in (data / "lake").glob(f"*/org={org_id}/**/*.parquet")}
    assert on_disk == committed
    staging = data / "staging"
    assert not staging.exists() or not list(staging.iterdir())
    assert not list(tmp.iterdir())
    reports = (data / "reports" / "ingest" / f"org={org_id}").glob("file=*")
    assert {int(p.name.removeprefix("file=")) for p in reports} == committed
    # the files committed before, of both organisations, are byte for byte as they were
    now = tree_digest(data / "lake")
    assert {k: now.get(k) for k in untouched} == untouched


def test_a_normal_ingestion_passes_every_kill_step_in_order(
    factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """A renamed or moved step cannot silently stop being exercised by the harness."""
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    org_id = label(factory, "label")
    report = statement(factory, org_id, tmp_path / "statement_northbound.csv", seed=3)
    trace = tmp_path / "trace.txt"
    done = command(db_url, data, tmp, report, trace=trace)
    assert done.returncode == 0, done.stderr[-2000:]
    reached = trace.read_text().splitlines()
    assert [s for s in dict.fromkeys(reached) if s in KILL_STEPS] == list(KILL_STEPS)
