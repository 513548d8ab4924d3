"""One commit point per ingestion, and recovery, on SQLite and PostgreSQL: an ingestion paused
at a named step (in a thread of this process: its owner is alive) is never recovered and its
parts are no one's input until its row commits; what a dead one left is removed; bytes left
pending by a dead ingestion are read again; the SQLite write lock is free while a file is read.
The same with real SIGKILLed processes: ``test_kill_harness.py``."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from demo.label import build
from demo.reports import catalogue, write_distributor
from pipelines import lake
from pipelines.ingest import files as ingest
from pipelines.ingest.files import IngestOutcome, ingest_path, recover
from pipelines.layout import DataDir
from pipelines.resources import Resources
from pipelines.royalty.snapshot import lake_files
from royalty_engine.periods import parse_period
from schemas.store import db
from schemas.store.models import IngestFile, IngestStatus, Organisation
from tests.conftest import BOTH_BACKENDS, make_org

JANUARY = parse_period("2026-01")


@pytest.fixture
def label(factory: sessionmaker[Session]) -> int:
    org_id = make_org(factory, "label")
    with db.transaction(factory, actor="test") as s:
        s.get(Organisation, org_id).default_currency = "EUR"  # type: ignore[union-attr]
        build(s, org_id, random.Random(7))
    return org_id


def statement(factory: sessionmaker[Session], org_id: int, path: Path, seed: int) -> Path:
    with factory() as s:
        products = catalogue(s, org_id)[:30]
    write_distributor(path, products, random.Random(seed))  # one line refused (currency EUX)
    return path


@contextmanager
def paused_at(
    step: str, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> Iterator[tuple[threading.Event, dict[str, object]]]:
    """Run ``ingest_path(**kwargs)`` in a thread held at ``step`` until the yielded event is
    set; the outcome (or exception) is in the yielded dict once the block ends."""
    reached, resume = threading.Event(), threading.Event()
    real = ingest.killpoint

    def hold(name: str) -> None:
        real(name)
        if name == step and threading.current_thread().name == "paused":
            reached.set()
            assert resume.wait(120)

    monkeypatch.setattr(ingest, "killpoint", hold)
    monkeypatch.setattr(lake, "killpoint", hold)
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["outcome"] = ingest_path(**kwargs)
        except BaseException as exc:  # looked at by the test
            result["outcome"] = exc

    thread = threading.Thread(target=target, name="paused")
    thread.start()
    try:
        assert reached.wait(120), "the ingestion never reached " + step
        yield resume, result
    finally:
        resume.set()
        thread.join(120)


def parts_of(data: Path, file_id: int) -> list[Path]:
    return [
        p for p in (data / "lake").glob("*/org=*/**/*.parquet") if lake.file_id_of(p) == file_id
    ]


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("backend", BOTH_BACKENDS)  # end to end on PostgreSQL too
def test_a_live_ingestion_is_never_recovered_and_counts_only_once_committed(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    report = statement(factory, label, tmp_path / "statement_a.csv", seed=1)
    args = {"res": Resources.of(factory, data), "org_id": label, "path": report}
    with paused_at("ingest.promoted", monkeypatch, name=report.name, **args) as (resume, result):
        with factory() as s:
            (row,) = s.scalars(sa.select(IngestFile)).all()
            assert row.status == IngestStatus.PENDING
            assert parts_of(data, row.id)  # in the lake ...
            assert lake.committed_parts(s, DataDir(data), label) == []  # ... but no one's input
            assert lake.committed_parts(s, DataDir(data), label, table="rejected_lines") == []
        assert lake_files(factory, data, label, JANUARY) == []
        # its owner (this process) is alive
        assert recover(Resources.of(factory, data), label) == []
        assert parts_of(data, row.id)
        resume.set()
    outcome = result["outcome"]
    assert isinstance(outcome, IngestOutcome) and outcome.status == "ingested", outcome
    assert lake_files(factory, data, label, JANUARY) == sorted(
        p for p in parts_of(data, row.id) if "revenue_lines" in p.parts
    )


def test_recovery_removes_what_a_dead_ingestion_left_and_nothing_else(
    factory: sessionmaker[Session], label: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    kept = statement(factory, label, tmp_path / "statement_kept.csv", seed=2)
    before = ingest_path(Resources.of(factory, data), org_id=label, path=kept, name=kept.name)
    assert before.status == "ingested" and before.file_id is not None
    keep = sorted(parts_of(data, before.file_id))
    other = make_org(factory, "other")
    with db.transaction(factory, actor="test") as s:
        build(s, other, random.Random(7))
    theirs = statement(factory, other, tmp_path / "statement_theirs.csv", seed=3)
    assert ingest_path(
        Resources.of(factory, data), org_id=other, path=theirs, name=theirs.name
    ).accepted
    # an orphan of no ledger row (the crash window on PostgreSQL)
    orphan = DataDir(data).partition("revenue_lines", label, "2026-01", "distributor_csv", 9999)
    orphan.mkdir(parents=True)
    (orphan / "part-00000.parquet").write_bytes(keep[0].read_bytes())

    report = statement(factory, label, tmp_path / "statement_a.csv", seed=1)
    args = {"res": Resources.of(factory, data), "org_id": label, "path": report}
    with paused_at("ingest.promoting", monkeypatch, name=report.name, **args) as (resume, result):
        with db.transaction(factory, actor="test") as s:
            row = s.scalar(sa.select(IngestFile).where(IngestFile.status == IngestStatus.PENDING))
            assert row is not None
            pending = row.id
            row.owner_pid = dead_pid()  # as if the process reading it had been killed
        assert parts_of(data, pending)  # one partition already promoted, one still staged
        assert (data / "staging" / f"org={label}-file={pending}").exists()
        assert lake_files(factory, data, label, JANUARY) == sorted(
            p for p in keep if "revenue_lines" in p.parts
        )
        removed = recover(Resources.of(factory, data), label)
        assert f"ingest_files/{pending}" in removed
        assert not parts_of(data, pending) and not orphan.exists()
        assert not list((data / "staging").iterdir())
        assert not DataDir(data).ingest_report(label, pending).exists()
        with factory() as s:
            assert s.get(IngestFile, pending) is None
        resume.set()
    # the paused thread finds its row gone at its commit: it takes its parts back out
    assert isinstance(result["outcome"], RuntimeError), result["outcome"]
    assert not parts_of(data, pending) and sorted(parts_of(data, before.file_id)) == keep
    assert list((data / "lake" / "revenue_lines").glob(f"org={other}/**/*.parquet"))
    assert recover(Resources.of(factory, data)) == []  # nothing else to do, in any organisation
    again = ingest_path(Resources.of(factory, data), org_id=label, path=report, name=report.name)
    assert again.status == "ingested" and again.accepted == 28


def test_bytes_left_pending_by_a_dead_ingestion_are_read_again(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    report = statement(factory, label, tmp_path / "statement_a.csv", seed=1)
    with db.transaction(factory, actor="test") as s:
        s.add(
            IngestFile(
                org_id=label,
                sha256=lake.sha256_file(report),
                original_name=report.name,
                size=report.stat().st_size,
                status=IngestStatus.PENDING,
                raw_path="",
                owner_host=ingest.socket.gethostname(),
                owner_pid=dead_pid(),
            )
        )
    out = ingest_path(
        Resources.of(factory, data), org_id=label, path=report, name=report.name, wait=5
    )
    assert (out.status, out.accepted) == ("ingested", 28)
    with factory() as s:
        assert [r.status for r in s.scalars(sa.select(IngestFile))] == [IngestStatus.INGESTED]


def test_another_hosts_pending_ingestion_is_kept_until_its_lease_ends(
    factory: sessionmaker[Session], label: int, tmp_path: Path
) -> None:
    """A process on another host cannot be checked from here: its pending file is taken for
    alive for the lease (several hours), then for dead."""
    data = tmp_path / "data"
    with db.transaction(factory, actor="test") as s:
        row = IngestFile(
            org_id=label,
            sha256="a" * 64,
            original_name="x.csv",
            size=1,
            status=IngestStatus.PENDING,
            raw_path="",
            owner_host="another-host",
            owner_pid=1,
            received_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        )
        s.add(row)
        s.flush()
        file_id = row.id
    assert recover(Resources.of(factory, data), label) == []
    assert recover(Resources.of(factory, data), label, lease=dt.timedelta(minutes=30)) == [
        f"ingest_files/{file_id}"
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_sqlite_write_lock_is_free_while_a_file_is_read(
    factory: sessionmaker[Session],
    label: int,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another writer (the API, a second command) gets the write lock at once while an
    ingestion is between its pending row and its commit."""
    data = tmp_path / "data"
    report = statement(factory, label, tmp_path / "statement_a.csv", seed=1)
    args = {"res": Resources.of(factory, data), "org_id": label, "path": report}
    with paused_at("ingest.staged", monkeypatch, name=report.name, **args) as (resume, result):
        other = sqlite3.connect(sa.make_url(db_url).database or "", timeout=0.5)
        try:
            other.isolation_level = None
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if the lock were held
            other.execute("UPDATE organisations SET name = 'Label 2' WHERE id = ?", (label,))
            other.execute("COMMIT")
        finally:
            other.close()
        resume.set()
    assert isinstance(result["outcome"], IngestOutcome)
    assert result["outcome"].status == "ingested"
