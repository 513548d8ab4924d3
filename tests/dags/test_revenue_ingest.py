"""The revenue_ingest DAG: its configuration, and real ``dag.test()`` runs against a local drop.

The runs use a throwaway Airflow (see conftest.py), a fresh TuneMantra store (SQLite) and data
dir, the sample label ``demo`` and its catalogue, and report files written into the label's
local drop. They check what the DAG leaves behind: the mapped task instances and their XComs,
the ingestion ledger, the Parquet partitions in the lake, and that a rerun adds nothing.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from demo.label import DEMO_RATES
from demo.reports import Product, catalogue, write_distributor, write_spotify
from pipelines import resources
from pipelines.settings import get_settings
from schemas.store import db
from schemas.store.fx import import_rates
from schemas.store.models import Drop, IngestFile, IngestStatus, Organisation
from tests.dags.conftest import demo_store

DAG_ID = "revenue_ingest"


def test_dag_is_configured_for_finance_ops(dagbag: Any) -> None:
    dag = dagbag.get_dag(DAG_ID)
    assert dag is not None
    assert {"tunemantra", "ingestion"} <= set(dag.tags)
    assert dag.doc_md and "org" in dag.doc_md and "quarantined" in dag.doc_md
    assert dag.params["org"] == "*"  # the hourly schedule polls every organisation with drops
    assert dag.params.get_param("org").schema["type"] == "string"
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
    ingest = dag.get_task("ingest_file")
    assert ingest.upstream_task_ids == {"list_new_files"}
    summarise = dag.get_task("summarise")
    assert summarise.upstream_task_ids == {"ingest_file"}
    assert summarise.trigger_rule == "all_done"  # a failed file never hides the batch summary
    assert summarise.outlets == []
    announce = dag.get_task("announce")  # the Asset, only when the lake changed
    assert announce.upstream_task_ids == {"summarise"}
    assert [o.name for o in announce.outlets] == ["tunemantra-lake://revenue_lines"]


# --- a label with a local drop, in a fresh store ------------------------------------------------
@dataclass
class Label:
    factory: sessionmaker[Session]
    data_dir: Path
    org_id: int
    drop: Path
    products: list[Product]

    def ledger(self) -> list[IngestFile]:
        with self.factory() as s:
            stmt = sa.select(IngestFile).where(IngestFile.org_id == self.org_id)
            return list(s.scalars(stmt.order_by(IngestFile.id)))

    def partitions(self, table: str = "revenue_lines") -> list[Path]:
        root = self.data_dir / "lake" / table / f"org={self.org_id}"
        return sorted(root.glob("period=*/source=*/file=*/*.parquet"))

    def lake(self) -> pl.DataFrame:
        files = self.partitions()
        return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()

    def spotify(self, currency: str, seed: int, *, name: str | None = None) -> tuple[str, bytes]:
        rng = random.Random(seed)
        path = self.drop.parent / "work" / (name or f"spotify_northbound_202601_{currency}.csv")
        path.parent.mkdir(exist_ok=True)
        products = rng.sample(self.products, 5)
        write_spotify(path, products, rng, currency, ["DE", "FR", "NL"], unknown_isrc=True)
        return path.name, path.read_bytes()

    def deliver(self, name: str, data: bytes, *, ctrl: bool = False) -> None:
        """Write a file into the drop as an uploader would: a temporary name, then a rename."""
        part = self.drop / f"{name}.part"
        part.write_bytes(data)
        part.rename(self.drop / name)
        if ctrl:
            (self.drop / f"{name}.ctrl").write_bytes(b"")


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


@pytest.fixture
def label(
    airflow_home: Path,
    sqlite_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Label]:
    """TuneMantra's settings point at a fresh SQLite store and data dir (as the DAG's task
    processes would see them); the sample label ``demo`` has its catalogue, FX rates and one
    local drop."""
    factory, data_dir, org_id = demo_store(sqlite_template, tmp_path, monkeypatch, seed=5)
    drop = tmp_path / "drops" / "demo"
    drop.mkdir(parents=True)
    with db.transaction(factory, actor="test") as s:
        import_rates(s, org_id, DEMO_RATES.encode())
        s.add(Drop(org_id=org_id, name="local", url=str(drop)))
        products = catalogue(s, org_id)
    try:
        yield Label(factory, data_dir, org_id, drop, products)
    finally:
        resources.get_engine().dispose()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


# --- running the DAG -------------------------------------------------------------------------
@dataclass
class Run:
    state: str
    tis: dict[tuple[str, int], tuple[str | None, str | None]]  # -> (state, rendered map index)
    xcoms: dict[tuple[str, int], Any]
    assets: list[dict[str, Any]]  # the extras of the Asset events the run emitted

    @property
    def listed(self) -> list[dict[str, str]]:
        return list(self.xcoms[("list_new_files", -1)])

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.xcoms[("summarise", -1)])

    def ingested(self) -> dict[str, dict[str, Any]]:
        """The mapped ingest_file instances by file name: their XCom (each one succeeded)."""
        out = {}
        for (task_id, index), (state, rendered) in self.tis.items():
            if task_id == "ingest_file" and index >= 0:
                assert state == "success", (index, rendered, state)
                outcome = self.xcoms[("ingest_file", index)]
                assert rendered == outcome["name"]  # the UI shows each file's name
                out[outcome["name"]] = outcome
        return out


def run_dag(dagbag: Any, org: str = "demo") -> Run:
    from airflow.models.asset import AssetEvent
    from airflow.models.xcom import XComModel
    from airflow.settings import Session as AirflowSession

    dag = dagbag.get_dag(DAG_ID)
    dag_run = dag.test(run_conf={"org": org})
    with AirflowSession() as session:
        tis = {
            (ti.task_id, ti.map_index): (ti.state and str(ti.state), ti.rendered_map_index)
            for ti in dag_run.get_task_instances(session=session)
        }
        rows = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=DAG_ID, key="return_value")
        )
        xcoms = {(x.task_id, x.map_index): XComModel.deserialize_value(x) for x in rows}
        events = session.scalars(
            sa.select(AssetEvent).where(
                AssetEvent.source_dag_id == DAG_ID, AssetEvent.source_run_id == dag_run.run_id
            )
        )
        assets = [dict(e.extra or {}) for e in events]
    return Run(str(dag_run.state), tis, xcoms, assets)


def assert_nothing_new(run: Run) -> None:
    assert run.state == "success"
    assert run.listed == []
    assert run.tis[("ingest_file", -1)][0] == "skipped"  # mapped over nothing
    assert run.tis[("summarise", -1)][0] == "success"
    assert run.summary["files"] == run.summary["lines"] == 0
    # nothing ingested: no Asset event (the warehouse is not rebuilt for nothing)
    assert run.tis[("announce", -1)][0] == "skipped" and run.assets == []


def assert_in_lake(label: Label, outcome: dict[str, Any], source: str) -> IngestFile:
    """The ledger row of one ingested file agrees with its XCom and its Parquet partition."""
    (row,) = [r for r in label.ledger() if r.id == outcome["file_id"]]
    assert row.status == IngestStatus.INGESTED
    assert row.format == source == outcome["format"]
    assert row.source_url == f"{label.drop}/{outcome['name']}"
    assert (row.lines_read, row.lines_accepted, row.lines_rejected) == (
        outcome["lines"],
        outcome["accepted"],
        outcome["rejected"],
    )
    assert (row.lines_matched, row.lines_suspense) == (outcome["matched"], outcome["suspense"])
    partition = (
        label.data_dir
        / "lake"
        / "revenue_lines"
        / f"org={label.org_id}"
        / "period=2026-01"
        / f"source={source}"
        / f"file={row.id}"
    )
    lines = pl.read_parquet(sorted(partition.glob("*.parquet")))
    assert lines.height == row.lines_accepted
    assert lines["line_no"].n_unique() == lines.height
    for currency, totals in row.totals.items():
        amount = lines.filter(pl.col("currency") == currency)["amount"].sum()
        assert amount == Decimal(totals["accepted"]), currency
    assert set(lines["converted_currency"].to_list()) == {"GBP"}  # the org's currency
    assert lines["converted_amount"].null_count() == 0
    assert Path(row.outputs["data_docs"]).is_file()  # Great Expectations report for ops
    return row


# --- dag.test() runs -------------------------------------------------------------------------
@pytest.mark.slow
def test_without_semaphores_a_file_waits_until_its_size_has_settled(
    dagbag: Any, label: Label
) -> None:
    eur_name, eur = label.spotify("EUR", 1)
    gbp_name, gbp = label.spotify("GBP", 2)
    label.deliver(eur_name, eur)
    growing = label.drop / gbp_name  # an upload still writing in place
    growing.write_bytes(gbp[: gbp.index(b"\n", len(gbp) // 2) + 1])

    first = run_dag(dagbag)  # one listing: no size is known to be stable yet
    assert_nothing_new(first)
    assert label.ledger() == []
    assert label.partitions() == []

    growing.write_bytes(gbp)  # it grew since the first run
    second = run_dag(dagbag)
    assert second.state == "success"
    assert [f["name"] for f in second.listed] == [eur_name]
    (outcome,) = second.ingested().values()
    assert outcome["status"] == "ingested"
    assert outcome["lines"] == len(csv_rows(eur))
    assert_in_lake(label, outcome, "spotify")
    assert second.summary["files"] == second.summary["ingested"] == 1

    third = run_dag(dagbag)  # the GBP file is settled now: all of it is ingested, once
    assert [f["name"] for f in third.listed] == [gbp_name]
    (outcome,) = third.ingested().values()
    assert outcome["lines"] == len(csv_rows(gbp))
    row = assert_in_lake(label, outcome, "spotify")
    assert row.size == len(gbp)

    assert_nothing_new(run_dag(dagbag))
    assert len(label.ledger()) == 2
    assert label.lake().height == len(csv_rows(eur)) + len(csv_rows(gbp))


@pytest.mark.slow
def test_ctrl_semaphores_release_files_on_the_first_run(
    dagbag: Any,
    label: Label,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pipelines.tasks.ingest")  # Airflow's level: INFO
    eur_name, eur = label.spotify("EUR", 3)
    usd_name, usd = label.spotify("USD", 4)
    statement = label.drop.parent / "work" / "statement_northbound_2026-01.csv"
    write_distributor(statement, random.Random(5).sample(label.products, 14), random.Random(5))
    broken = gzip.compress(statement.read_bytes())[:200]  # a truncated upload
    label.deliver(eur_name, eur, ctrl=True)
    label.deliver(statement.name, statement.read_bytes(), ctrl=True)
    label.deliver("statement_northbound_2025-12.csv.gz", broken, ctrl=True)
    label.deliver(usd_name, usd)  # no semaphore: in a folder that uses them, not ready
    (label.drop / "spotify_northbound_202601_CAD.csv.part").write_bytes(usd)  # uploading

    first = run_dag(dagbag)
    assert first.state == "success"
    # A quarantined file is an outcome, not an error: the run's logs (task logs on stdout,
    # Airflow's own through logging) have no error in them.
    assert "[error" not in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("end task task_id=summarise" in r.getMessage() for r in caplog.records)
    # each file's task log says what happened to it, in words
    said = [r.getMessage() for r in caplog.records if r.name == "pipelines.tasks.ingest"]
    parsed = len(csv_rows(eur))
    assert f"{eur_name}: ingested as spotify: {parsed} lines parsed, {parsed} accepted, " in (
        "\n".join(said)
    )
    assert any(
        m.startswith("statement_northbound_2026-01.csv: ingested as distributor_csv: 14 lines")
        and "2 rejected" in m
        and "top reject reasons: " in m
        for m in said
    ), said
    assert any("quarantined (truncated_gzip)" in m for m in said), said
    assert not [r for r in caplog.records if r.name.startswith("great_expectations")]
    names = sorted(f["name"] for f in first.listed)
    assert names == sorted([eur_name, statement.name, "statement_northbound_2025-12.csv.gz"])
    outcomes = first.ingested()
    assert sorted(outcomes) == names

    spotify = outcomes[eur_name]
    assert spotify["status"] == "ingested"
    assert spotify["lines"] == spotify["accepted"] == len(csv_rows(eur))
    assert spotify["suspense"] == 1  # the ISRC the catalogue does not have
    assert spotify["matched"] == spotify["lines"] - 1
    assert_in_lake(label, spotify, "spotify")

    distributor = outcomes[statement.name]
    assert distributor["status"] == "ingested"
    assert distributor["lines"] == 14
    assert distributor["rejected"] == 2  # a mistyped amount, currency EUX
    assert_in_lake(label, distributor, "distributor_csv")
    (rejected,) = label.partitions("rejected_lines")
    assert pl.read_parquet(rejected)["currency"].to_list() == ["EUX"]

    bad = outcomes["statement_northbound_2025-12.csv.gz"]
    assert bad["status"] == "quarantined"
    assert bad["quarantine"]["code"] == "truncated_gzip"
    row = next(r for r in label.ledger() if r.id == bad["file_id"])
    assert row.status == IngestStatus.QUARANTINED
    assert row.quarantine_code == "truncated_gzip"
    assert row.lines_accepted == 0
    assert not list((label.data_dir / "lake").rglob(f"file={row.id}"))
    reason = label.data_dir / "quarantine" / f"org={label.org_id}" / f"{row.sha256}.json"
    assert json.loads(reason.read_text())["code"] == "truncated_gzip"

    summary = first.summary
    assert (summary["files"], summary["ingested"], summary["quarantined"]) == (3, 2, 1)
    assert first.tis[("announce", -1)][0] == "success"
    assert first.assets == [{"files": 3, "ingested": 2, "lines": summary["lines"]}]
    assert summary["duplicate"] == 0
    assert summary["lines"] == spotify["lines"] + distributor["lines"]
    assert summary["rematch"]["suspense_items"] == 1

    ledger = [(r.id, r.sha256, r.status) for r in label.ledger()]
    lake = label.lake()
    stamps = {p: p.stat().st_mtime_ns for p in label.partitions()}

    assert_nothing_new(run_dag(dagbag))  # a rerun: nothing listed, nothing written
    assert [(r.id, r.sha256, r.status) for r in label.ledger()] == ledger
    assert label.lake().equals(lake)
    assert {p: p.stat().st_mtime_ns for p in label.partitions()} == stamps

    label.deliver("spotify_resent_202601_EUR.csv", eur, ctrl=True)  # same bytes, new name
    third = run_dag(dagbag)
    (again,) = third.ingested().values()
    assert again["status"] == "duplicate"
    assert again["file_id"] == spotify["file_id"]
    assert third.summary["duplicate"] == 1
    assert third.summary["lines"] == 0
    assert [(r.id, r.sha256, r.status) for r in label.ledger()] == ledger
    assert label.lake().height == lake.height
    assert third.tis[("announce", -1)][0] == "skipped" and third.assets == []  # a duplicate
    assert_nothing_new(run_dag(dagbag))  # and the second name is remembered

    # The schedule's default, ``*``: every organisation that has a drop is polled.
    other = label.drop.parent / "other"
    other.mkdir()
    with db.transaction(label.factory, actor="test") as s:
        second = Organisation(slug="second", name="Second Label", default_currency="GBP")
        s.add(second)
        s.flush()
        s.add(Drop(org_id=second.id, name="inbox", url=str(other)))
    (other / "notes.txt").write_bytes(b"not a sales report\n")
    (other / "notes.txt.ctrl").write_bytes(b"")
    everyone = run_dag(dagbag, org="*")
    assert everyone.state == "success"
    assert [(f["org"], f["name"]) for f in everyone.listed] == [("second", "notes.txt")]
    (outcome,) = everyone.ingested().values()
    assert (outcome["org"], outcome["status"]) == ("second", "quarantined")
    assert set(everyone.summary["by_org"]) == {"demo", "second"}
    assert everyone.summary["quarantined"] == 1 and everyone.summary["ingested"] == 0
    assert everyone.tis[("announce", -1)][0] == "skipped" and everyone.assets == []
