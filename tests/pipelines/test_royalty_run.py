"""Period runs around the engine on the sample label, on SQLite and PostgreSQL: outputs,
store rows, approve/lock, corrections with a diff, reproduction, the audit ledger, and that a
failed run leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from pipelines import resources
from pipelines.royalty import audit_ledger
from pipelines.royalty.preview import preview, statement_detail
from pipelines.royalty.run import run_period
from pipelines.royalty.snapshot import snapshot
from pipelines.royalty.transitions import transition
from pipelines.royalty.verification import reproduce, verify_outputs
from pipelines.royalty.warnings import warnings_for_period
from pipelines.settings import get_settings
from royalty_engine.periods import PeriodError, RunError
from royalty_engine.terms import EngineError
from schemas.errors import ValidationFailed
from schemas.store import db, service
from schemas.store.models import Contract, ContractRate, FxRate, Organisation
from schemas.store.runs import ContractBalance, RoyaltyRun, RunStatus, StatementSummary
from tests.conftest import BOTH_BACKENDS
from tests.pipelines.ledger_writer import ENTRIES, append_many
from tests.snapshots import DATA, Snapshots, copy_demo_label, sqlite_url

SECRET = "test-secret-key-not-a-placeholder"


@dataclass
class Label:
    factory: sessionmaker[Session]
    data: Path
    org_id: int

    def run(self, period: str = "2026-01", **kw: object) -> dict[str, object]:
        return run_period(
            self.factory, self.data, org_id=self.org_id, period=period, actor="t", **kw
        ).as_dict()

    def move(self, to: str, period: str = "2026-01") -> dict[str, object]:
        return transition(
            self.factory, self.data, org_id=self.org_id, period=period, actor="t", to=to
        ).as_dict()

    def runs(self) -> list[RoyaltyRun]:
        with self.factory() as s:
            return list(s.scalars(sa.select(RoyaltyRun).order_by(RoyaltyRun.id)))

    def run_dirs(self) -> list[Path]:
        root = self.data / "runs"
        return (
            sorted(p for p in root.glob("org=*/period=*/*") if p.is_dir()) if root.exists() else []
        )


@pytest.fixture
def label(snapshots: Snapshots, tmp_path: Path) -> Iterator[Label]:
    """The sample label (seed 11) with its month of reports ingested, in a SQLite store."""
    root = tmp_path / "label"
    org_id = copy_demo_label(snapshots, root, seed=11, ingested=True)
    factory = db.session_factory(db.make_engine(sqlite_url(root)))
    data = root / DATA
    yield Label(factory, data, org_id)
    factory.kw["bind"].dispose()


def test_a_run_writes_reconciled_outputs_and_store_rows(label: Label) -> None:
    where = {"org_id": label.org_id, "period": "2026-01"}
    report = label.run()
    assert report["status"] == "calculated" and report["version"] == 1
    gbp = report["totals"]["GBP"]  # type: ignore[index]
    assert Decimal(gbp["revenue"]) == Decimal(gbp["payees"]) + Decimal(gbp["retained"]) + Decimal(
        gbp["suspense"]
    )
    assert report["counts"]["suspense_lines"] >= 1 and Decimal(gbp["payees"]) > 0  # type: ignore[index]
    outputs = report["outputs"]
    ledger = pl.read_parquet(outputs["ledger"])  # type: ignore[index]
    assert ledger.height == report["counts"]["contracts"]  # type: ignore[index]
    with label.factory() as s:
        summaries = s.scalars(sa.select(StatementSummary)).all()
        balances = s.scalars(sa.select(ContractBalance)).all()
    assert len(balances) == ledger.height
    assert sum(b.earnings for b in balances) == sum(ledger["earnings"].to_list())
    assert {(x.payee_id, x.currency) for x in summaries} == set(
        pl.read_parquet(outputs["statements"]).select("payee_id", "currency").rows()  # type: ignore[index]
    )
    manifest = json.loads(Path(outputs["manifest"]).read_text())  # type: ignore[index]
    assert {"snapshot/contracts.parquet", "outputs/ledger.parquet", "state.parquet"} <= set(
        manifest["files"]
    )
    assert manifest["inputs"] and all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    run_id = int(report["run_id"])  # type: ignore[call-overload]
    assert reproduce(label.factory, label.data, run_id=run_id)["identical"] is True
    assert verify_outputs(label.factory, run_id=run_id)["verified"] is True
    # the frozen statement context is part of what reproduces: a payee renamed in it shows
    payees = Path(outputs["manifest"]).parent / "context" / "payees.parquet"  # type: ignore[index]
    original = payees.read_bytes()
    frame = pl.read_parquet(payees)
    frame.with_columns(pl.lit("Someone Else").alias("name")).write_parquet(payees)
    again = reproduce(label.factory, label.data, run_id=run_id)
    assert (again["identical"], again["differ"]) == (False, ["context/payees.parquet"])
    payees.write_bytes(original)
    shown = preview(label.factory, run_id=run_id, data_dir=label.data)
    assert shown["variance"] and "Royalty run" in shown["markdown"]
    assert shown["warnings"] == [
        w.as_dict() for w in warnings_for_period(label.factory, label.data, **where)
    ]
    assert all(w["code"].startswith("W-") and w["message"] for w in shown["warnings"])


def test_statement_detail_adds_up_to_the_run(label: Label) -> None:
    report = label.run()
    run_id = int(report["run_id"])  # type: ignore[call-overload]
    ledger = pl.read_parquet(report["outputs"]["ledger"])  # type: ignore[index]
    breakdown = pl.read_parquet(report["outputs"]["breakdown"])  # type: ignore[index]
    earning = ledger.filter(pl.col("earnings") != 0)
    assert earning.height >= 3
    for payee_id in earning["payee_id"].unique().to_list():
        detail = statement_detail(label.factory, label.data, run_id=run_id, payee_id=payee_id)
        assert {"track_id", "source", "territory", "usage_type"} <= set(detail.columns)
        mine = ledger.filter(pl.col("payee_id") == payee_id)
        # cents per contract: exactly the statement figure
        sums = dict(detail.group_by("contract_id").agg(pl.col("amount").sum()).rows())
        for cid, earnings in mine.select("contract_id", "earnings").rows():
            assert sums.get(cid, Decimal("0.00")) == earnings
        # exact royalties by usage type: the run's own breakdown, to far below a cent
        run_exact = dict(
            breakdown.filter(pl.col("payee_id") == payee_id, pl.col("dimension") == "usage_type")
            .group_by("key")
            .agg(pl.col("exact").sum())
            .rows()
        )
        derived = dict(detail.group_by("usage_type").agg(pl.col("exact").sum()).rows())
        assert set(run_exact) == set(derived)
        for usage, value in run_exact.items():
            assert abs(value - derived[usage]) < Decimal("1e-8")


def test_rerun_supersedes_until_locked_then_only_corrections(
    label: Label, monkeypatch: pytest.MonkeyPatch
) -> None:
    label.run()
    label.run()  # not approved yet: a rerun is a new version, the old one superseded
    assert [(r.version, r.status) for r in label.runs()] == [
        (1, RunStatus.SUPERSEDED),
        (2, RunStatus.CALCULATED),
    ]
    with pytest.raises(RunError) as bad:
        label.move("locked")
    assert bad.value.code == "bad_transition"
    label.move("approved")
    label.move("locked")
    with pytest.raises(RunError) as locked:
        label.run()
    assert locked.value.code == "period_locked"
    # A correction after the lock: a changed rate shows in the per-payee diff, with why.
    with db.transaction(label.factory, actor="t") as s:
        for rate in s.scalars(sa.select(ContractRate)):
            rate.rate = rate.rate + Decimal("0.01")
    corrected = label.run(correction="rate NB-00x was keyed wrong")
    assert corrected["version"] == 3 and corrected["status"] == "calculated"
    diff = corrected["diff"]
    assert diff and all("rates changed" in d["why"] for d in diff)  # type: ignore[union-attr]
    assert any("earnings" in d["changes"] for d in diff)  # type: ignore[union-attr]
    figures = [v for d in diff for c in d["changes"].values() for v in c.values()]  # type: ignore[union-attr]
    assert figures and all(re.fullmatch(r"-?\d+\.\d\d", v) for v in figures)  # in cents
    runs = label.runs()
    assert runs[1].status == RunStatus.LOCKED  # the locked version stays as it was
    assert runs[2].supersedes_id == runs[1].id and runs[2].reason.startswith("rate")
    events = [e["event"] for e in audit_ledger.read(label.data, label.org_id)]
    assert events == ["calculated", "calculated", "approved", "locked", "calculated"]
    # ``royalty list`` shows every version, ``royalty status`` the current one and what next
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", sqlite_url(label.data.parent))
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(label.data))
    get_settings.cache_clear()
    try:
        with label.factory() as s:
            slug = s.scalar(sa.select(Organisation.slug).where(Organisation.id == label.org_id))
        listed = CliRunner().invoke(app, ["royalty", "list", "--org", str(slug), "--json"])
        assert listed.exit_code == 0, listed.output
        assert [
            (r["version"], r["status"], r["correction"]) for r in json.loads(listed.output)
        ] == [
            (1, "superseded", None),
            (2, "locked", None),
            (3, "calculated", "rate NB-00x was keyed wrong"),
        ]
        status = CliRunner().invoke(app, ["royalty", "status", "--org", str(slug)])
        assert status.exit_code == 0, status.output
        assert status.output.split("\t")[:3] == ["2026-01", "v3", "calculated"]
        assert f"approve --org {slug} --period 2026-01 --run {runs[2].id}" in status.output
        detail = CliRunner().invoke(
            app, ["royalty", "status", "--org", str(slug), "--period", "2026-01"]
        )
        assert detail.exit_code == 0, detail.output
        assert "changed: payee" in detail.output and "payable" in detail.output
        none = CliRunner().invoke(
            app, ["royalty", "status", "--org", str(slug), "--period", "2026-02"]
        )
        assert none.exit_code == 2 and "run_missing" in none.output
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def test_next_period_opens_from_the_approved_state(label: Label) -> None:
    first = label.run()
    label.move("approved")  # only approved or locked runs are opened from
    second = label.run("2026-02")
    with label.factory() as s:
        feb = s.scalars(sa.select(RoyaltyRun).where(RoyaltyRun.period == "2026-02")).one()
        jan_closing = {
            b.contract_id: b.closing
            for b in s.scalars(
                sa.select(ContractBalance).where(ContractBalance.run_id == first["run_id"])
            )
        }
        feb_opening = {
            b.contract_id: b.opening
            for b in s.scalars(sa.select(ContractBalance).where(ContractBalance.run_id == feb.id))
        }
    assert feb.previous_run_id == first["run_id"]
    assert feb_opening == jan_closing and any(v != 0 for v in jan_closing.values())
    assert second["counts"]["lines"] == 0  # type: ignore[index]
    with pytest.raises(RunError) as overlap:
        label.run("2026-Q1")
    assert overlap.value.code == "period_overlaps"


def test_a_failed_run_leaves_nothing(label: Label) -> None:
    with db.transaction(label.factory, actor="t") as s:
        s.execute(sa.delete(FxRate))  # contracts in EUR/USD can no longer be converted
    with pytest.raises(EngineError) as err:
        label.run()
    assert err.value.code == "fx_missing"
    assert label.runs() == [] and label.run_dirs() == []
    assert audit_ledger.read(label.data, label.org_id) == []
    with pytest.raises(PeriodError):
        label.run("2026-13")


def test_audit_verify_detects_changed_entries_and_files(label: Label) -> None:
    report = label.run()
    label.move("approved")
    assert audit_ledger.verify(label.data, label.org_id) == []
    ledger_file = Path(report["outputs"]["ledger"])  # type: ignore[index]
    ledger_file.write_bytes(ledger_file.read_bytes() + b"x")
    problems = audit_ledger.verify(label.data, label.org_id)
    assert [p["code"] for p in problems] == ["changed_file"]
    path = audit_ledger.ledger_path(label.data, label.org_id)
    entries = path.read_text().splitlines()
    first = json.loads(entries[0])
    first["totals"]["GBP"]["payees"] = "0.00"
    path.write_text("\n".join([json.dumps(first), *entries[1:]]) + "\n")
    codes = {p["code"] for p in audit_ledger.verify(label.data, label.org_id)}
    assert codes == {"tampered", "changed_file"}
    # Re-hashing the changed entry does not help: the next entry no longer follows it.
    first["hash"] = audit_ledger._digest(first)
    path.write_text("\n".join([json.dumps(first), *entries[1:]]) + "\n")
    codes = {p["code"] for p in audit_ledger.verify(label.data, label.org_id)}
    assert codes == {"chain", "changed_file"}
    with pytest.raises(audit_ledger.LedgerError):
        label.move("locked")  # nothing is appended to a broken chain


def test_audit_verify_checks_the_ledger_against_the_store(label: Label) -> None:
    """A ledger cut short (its last entry, or all of it) still hash-chains; the store says
    what it should hold. So does a run put back from locked, or re-attributed, by hand."""
    from pipelines.royalty.verification import verify_store

    def problems() -> list[tuple[int, str]]:
        with label.factory() as s:
            return [(p["run_id"], p["code"]) for p in verify_store(s, label.data, label.org_id)]

    report = label.run()
    label.move("approved")
    label.move("locked")
    run_id = int(report["run_id"])  # type: ignore[call-overload]
    assert problems() == []
    path = audit_ledger.ledger_path(label.data, label.org_id)
    whole = path.read_text()
    path.write_text("".join(whole.splitlines(keepends=True)[:-1]))  # the lock entry gone
    assert audit_ledger.verify(label.data, label.org_id) == []  # the chain alone is intact
    assert problems() == [(run_id, "missing_entry")]
    path.unlink()
    assert [code for _, code in problems()] == ["missing_entry"] * 3
    path.write_text(whole)
    assert problems() == []
    with db.transaction(label.factory, actor="t") as s:  # what a payee sees, edited by hand
        summary = s.scalars(
            sa.select(StatementSummary).where(StatementSummary.run_id == run_id)
        ).first()
        assert summary is not None
        summary.payable += Decimal("999")
    assert problems() == [(run_id, "rows_changed")]
    with db.transaction(label.factory, actor="t") as s:
        run = s.get(RoyaltyRun, run_id)
        assert run is not None
        run.status, run.locked_by = RunStatus.CALCULATED, "someone else"
        run.totals = {**run.totals, "GBP": {**run.totals["GBP"], "payable": "999.00"}}
    assert problems() == [
        (run_id, "totals_mismatch"),
        (run_id, "actor_mismatch"),
        (run_id, "status_mismatch"),
        (run_id, "rows_changed"),
    ]


def test_a_run_rolled_back_at_the_end_leaves_no_ledger_entry(
    label: Label, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written once the store has committed: a run that fails in its last step
    leaves no entry naming a run id the next run will reuse."""
    from pipelines.royalty import record as royalty_run

    real = royalty_run.RunReport

    def failing(*args: object, **kwargs: object) -> object:
        raise OSError("the database went away")

    monkeypatch.setattr(royalty_run, "RunReport", failing)
    with pytest.raises(OSError):
        label.run()
    assert audit_ledger.read(label.data, label.org_id) == []
    assert label.runs() == [] and label.run_dirs() == []
    monkeypatch.setattr(royalty_run, "RunReport", real)
    report = label.run()
    entries = audit_ledger.read(label.data, label.org_id)
    assert [(e["event"], e["run_id"]) for e in entries] == [("calculated", report["run_id"])]
    assert audit_ledger.verify(label.data, label.org_id) == []


def test_two_writers_never_number_two_ledger_entries_alike(tmp_path: Path) -> None:
    """Appends from several processes at once (runs, approvals, publishing) stay one chain."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.starmap(append_many, [(tmp_path, w) for w in range(4)])
    entries = audit_ledger.read(tmp_path, 1)
    assert len(entries) == 4 * ENTRIES
    assert audit_ledger.verify(tmp_path, 1) == []
    assert sorted((e["writer"], e["n"]) for e in entries) == [
        (w, n) for w in range(4) for n in range(ENTRIES)
    ]


@pytest.mark.slow  # the whole demo through the CLI
@pytest.mark.parametrize("backend", BOTH_BACKENDS)  # end to end on PostgreSQL too
def test_cli_run_approve_lock_and_verify(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", "var")
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        runner = CliRunner()
        demo = runner.invoke(app, ["demo"])  # runs, approves and locks 2026-H1
        assert demo.exit_code == 0, demo.output
        assert "Reconciled GBP: revenue" in demo.output
        again = runner.invoke(app, ["royalty", "run", "--org", "demo", "--period", "2026-H1"])
        assert again.exit_code == 2 and "period_locked" in again.output
        out = runner.invoke(
            app,
            [
                "royalty",
                "run",
                "--org",
                "demo",
                "--period",
                "2026-H1",
                "--json",
                "--correction",
                "re-run for the test",
            ],
        )
        assert out.exit_code == 0, out.output
        report = json.loads(out.output)
        assert report["version"] == 2 and report["status"] == "calculated"
        assert report["diff"] == []  # nothing changed since the locked version
        assert set(report["totals"]["GBP"]) >= {
            "revenue",
            "payees",
            "retained",
            "suspense",
            "payable",
            "carried_forward",
            "reserves_held",
            "reserves_released",
            "tax_withheld",
        }
        for step in ("approve", "lock"):
            res = runner.invoke(app, ["royalty", step, "--org", "demo", "--period", "2026-H1"])
            assert res.exit_code == 0, res.output
        overlap = runner.invoke(app, ["royalty", "run", "--org", "demo", "--period", "2026-01"])
        assert overlap.exit_code == 2 and "period_overlaps" in overlap.output
        bad = runner.invoke(app, ["royalty", "run", "--org", "demo", "--period", "2026-Q7"])
        assert bad.exit_code == 2 and "not a period" in bad.output
        verify = runner.invoke(app, ["audit", "verify"])
        # v1 calculated, approved, locked, its statements published; v2 the same but published
        assert verify.exit_code == 0 and "7 entries, OK" in verify.output
        same = runner.invoke(app, ["royalty", "reproduce", "--run", str(report["run_id"])])
        assert same.exit_code == 0 and json.loads(same.output)["identical"] is True
        # the demo's terms give an accountant nothing to warn about, before or after a run
        warn = ["royalty", "warnings", "--org", "demo"]
        none = runner.invoke(app, [*warn, "--period", "2026-H2"])
        assert none.exit_code == 0 and none.output.strip() == "no warnings", none.output
        ran = runner.invoke(app, [*warn, "--run", str(report["run_id"]), "--json"])
        assert ran.exit_code == 0 and json.loads(ran.output) == [], ran.output
        assert runner.invoke(app, warn).exit_code == 2  # --period or --run
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def test_a_run_spread_over_payee_buckets_writes_the_same_outputs(label: Label) -> None:
    """The DAG's partitioned path (plan -> one task per payee bucket -> combine) records
    the same outputs, byte for byte, as the run in one piece; a missing bucket is refused and
    a rerun bucket replaces its part."""
    from pipelines.royalty.plan import earn_part, plan_run

    plain = label.run("2026-H1")
    plan = plan_run(label.factory, label.data, org_id=label.org_id, period="2026-H1", buckets=3)
    assert plan.name.startswith(".plan-") and not list(label.data.glob("lake/**/.plan-*"))
    for bucket in (0, 1):
        earn_part(label.data, plan, bucket)
    with pytest.raises(RunError) as err:
        run_period(
            label.factory, label.data, org_id=label.org_id, period="2026-H1", actor="t", plan=plan
        )
    assert err.value.code == "buckets_missing" and "[2]" in err.value.message
    earn_part(label.data, plan, 2)
    earn_part(label.data, plan, 2)  # a retried task replaces its part
    with pytest.raises(RunError) as bad:
        earn_part(label.data, plan, 3)
    assert bad.value.code == "bucket_invalid"
    spread = run_period(
        label.factory, label.data, org_id=label.org_id, period="2026-H1", actor="t", plan=plan
    ).as_dict()
    assert not plan.exists()  # the plan is removed once the run is recorded
    assert spread["version"] == 2 and spread["totals"] == plain["totals"]
    assert spread["counts"] == plain["counts"]

    def outputs(report: dict[str, object]) -> dict[str, str]:
        files = json.loads(Path(report["outputs"]["manifest"]).read_text())["files"]  # type: ignore[index]
        return {k: v for k, v in files.items() if k.startswith("outputs/")}

    assert outputs(spread) == outputs(plain) and outputs(plain)


def test_reproduce_compares_with_the_files_on_disk(label: Label) -> None:
    """Recomputed bytes equal to the manifest are not enough: an output file altered on disk
    (what a payee or the warehouse reads) is named, and so is a changed manifest."""
    report = label.run()
    run_id = int(report["run_id"])  # type: ignore[call-overload]
    statements = Path(report["outputs"]["statements"])  # type: ignore[index]
    original = statements.read_bytes()
    statements.write_bytes(original + b"x")
    altered = reproduce(label.factory, label.data, run_id=run_id)
    assert (altered["identical"], altered["differ"]) == (False, ["outputs/statements.parquet"])
    statements.write_bytes(original)
    assert reproduce(label.factory, label.data, run_id=run_id)["identical"] is True
    manifest = Path(report["outputs"]["manifest"])  # type: ignore[index]
    manifest.write_text(manifest.read_text() + "\n")
    changed = reproduce(label.factory, label.data, run_id=run_id)
    assert (changed["identical"], changed["differ"]) == (False, ["manifest.json"])


def test_audit_verify_checks_the_lake_inputs_of_approved_and_locked_runs(label: Label) -> None:
    """A locked run's lake inputs are part of what it proves: a changed or deleted one is
    reported with its path (``input_changed`` / ``input_missing``)."""
    from pipelines.royalty.verification import verify_store

    def problems() -> list[tuple[str, str]]:
        with label.factory() as s:
            return [
                (p["code"], p.get("file", "")) for p in verify_store(s, label.data, label.org_id)
            ]

    report = label.run()
    label.move("approved")
    label.move("locked")
    assert problems() == []
    inputs = json.loads((Path(report["outputs"]["manifest"]).parent / "inputs.json").read_text())  # type: ignore[index]
    assert len(inputs) >= 2
    changed, deleted = (label.data / inputs[0]["path"]), (label.data / inputs[1]["path"])
    changed.write_bytes(changed.read_bytes() + b"x")
    deleted.unlink()
    assert sorted(problems()) == sorted(
        [("input_changed", inputs[0]["path"]), ("input_missing", inputs[1]["path"])]
    )


def test_a_run_folder_left_without_its_row_never_wedges_the_next_run(label: Label) -> None:
    """A folder ``v1`` that no committed run owns (an attempt killed between its rename and
    its commit, before runs committed first) is replaced by the next run of version 1."""
    orphan = label.data / "runs" / f"org={label.org_id}" / "period=2026-01" / "v1"
    (orphan / "outputs").mkdir(parents=True)
    (orphan / "outputs" / "ledger.parquet").write_bytes(b"left by a killed run")
    report = label.run()
    assert report["version"] == 1
    assert verify_outputs(label.factory, run_id=int(report["run_id"]))["verified"] is True  # type: ignore[call-overload]
    assert [p.name for p in orphan.parent.iterdir()] == ["v1"]


def test_recovery_completes_a_committed_run_and_removes_what_was_not(label: Label) -> None:
    """The state a run killed after its commit leaves (folder still under its temporary name,
    no ledger entry), and a stage of a run killed before its commit: the next command (here an
    approval) renames the first into place, appends its entry marked ``recovered`` (the chain
    only grows), and removes the second; ``audit verify`` then passes."""
    from pipelines.royalty.record import recover
    from pipelines.royalty.verification import verify_store

    report = label.run()
    final = Path(report["outputs"]["manifest"]).parent  # type: ignore[index]
    stage = final.with_name(".v1-0123abcd")
    final.rename(stage)
    dead = final.with_name(".v2-4567ef01")
    shutil.copytree(stage, dead)
    plan_stage = final.with_name("..plan-89ab.tmp")
    plan_stage.mkdir()
    path = audit_ledger.ledger_path(label.data, label.org_id)
    path.write_text("")  # the entry was never appended
    with label.factory() as s:
        assert [p["code"] for p in verify_store(s, label.data, label.org_id)] == ["missing_entry"]
    label.move("approved")
    assert sorted(p.name for p in final.parent.iterdir()) == ["v1"]
    entries = audit_ledger.read(label.data, label.org_id)
    assert [(e["event"], e.get("recovered", False)) for e in entries] == [
        ("calculated", True),
        ("approved", False),
    ]
    assert entries[0]["manifest_sha256"] == label.runs()[0].manifest_sha256
    assert audit_ledger.verify(label.data, label.org_id) == []
    with label.factory() as s:
        assert verify_store(s, label.data, label.org_id) == []
    assert verify_outputs(label.factory, run_id=int(report["run_id"]))["verified"] is True  # type: ignore[call-overload]
    # an approval committed but never ledgered: `audit repair` appends it, once
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    actions = recover(label.factory, label.data, label.org_id)
    assert [a["code"] for a in actions] == ["entry_recovered"]
    assert recover(label.factory, label.data, label.org_id) == []
    assert [e["event"] for e in audit_ledger.read(label.data, label.org_id)] == [
        "calculated",
        "approved",
    ]
    assert audit_ledger.verify(label.data, label.org_id) == []


def test_approving_or_locking_again_is_a_no_op(label: Label) -> None:
    """A command retried after a crash (or an Airflow task retried) finds its work done:
    it succeeds without a second entry."""
    label.run()
    label.move("approved")
    again = label.move("approved")
    assert again["status"] == "approved"
    label.move("locked")
    assert label.move("locked")["status"] == "locked"
    with pytest.raises(RunError) as bad:
        label.move("approved")  # a locked run is not approved again
    assert bad.value.code == "bad_transition"
    events = [e["event"] for e in audit_ledger.read(label.data, label.org_id)]
    assert events == ["calculated", "approved", "locked"]


def test_audit_repair_appends_what_a_killed_command_never_ledgered(
    db_url: str, factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tunemantra audit repair``: the entries of a run and an approval whose process died
    after its commit are appended (marked recovered) and ``audit verify`` passes again; a
    second repair has nothing to do."""
    from pipelines.scenario import load_scenario
    from tests.royalty_engine.test_worked_examples import SCENARIOS

    data = tmp_path / "var"
    org_id = int(load_scenario(factory, data, SCENARIOS / "recoupment.yaml", org="rep")["org_id"])
    run_period(factory, data, org_id=org_id, period="2026-01", actor="t")
    transition(factory, data, org_id=org_id, period="2026-01", actor="t", to="approved")
    audit_ledger.ledger_path(data, org_id).write_text("")  # neither entry was appended
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", db_url)
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(data))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        runner = CliRunner()
        broken = runner.invoke(app, ["audit", "verify", "--org", "rep"])
        assert broken.exit_code == 1 and broken.output.count("missing_entry") == 2
        repair = runner.invoke(app, ["audit", "repair", "--org", "rep"])
        assert repair.exit_code == 0, repair.output
        assert repair.output.count("entry_recovered") == 2
        assert f"org {org_id}: 2 repair(s)" in repair.output
        verify = runner.invoke(app, ["audit", "verify"])
        assert verify.exit_code == 0 and "2 entries, OK" in verify.output, verify.output
        again = runner.invoke(app, ["audit", "repair"])
        assert again.exit_code == 0 and "nothing to repair" in again.output, again.output
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()
    entries = audit_ledger.read(data, org_id)
    assert [(e["event"], e["recovered"]) for e in entries] == [
        ("calculated", True),
        ("approved", True),
    ]


def test_the_snapshot_takes_the_contract_terms_in_force_on_the_period_start(label: Label) -> None:
    def contracts(as_of: dt.date | None) -> pl.DataFrame:
        with label.factory() as s:
            return snapshot(s, label.org_id, as_of=as_of).contracts

    with label.factory() as s:
        first = s.scalars(sa.select(Contract).order_by(Contract.id)).first()
        assert first is not None
        s.expunge(first)
    # no versions: the run's contracts are the store's, byte for byte
    assert contracts(dt.date(2026, 1, 1)).equals(contracts(None))
    with db.transaction(label.factory, actor="t") as s:
        service.add_terms(
            s, label.org_id, first.id, {"effective_from": "2026-02-01", "minimum_payment": "7.5"}
        )
    mine = pl.col("contract_id") == first.id
    for day, minimum in ((dt.date(2026, 1, 1), first.minimum_payment), (dt.date(2026, 2, 1), 7.5)):
        taken = contracts(day).filter(mine)
        assert taken["minimum_payment"].item() == Decimal(str(minimum))
        assert taken["reserve_rate"].item() == first.reserve_rate  # kept from the day before
    with (
        label.factory() as s,
        pytest.raises(ValidationFailed, match="after the contract's start date"),
    ):
        service.add_terms(s, label.org_id, first.id, {"effective_from": str(first.start_date)})
