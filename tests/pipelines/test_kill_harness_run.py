"""The kill harness for royalty runs, approvals and locks, on SQLite and PostgreSQL.

A real ``tunemantra`` process is killed with SIGKILL at every named step
(``royalty.run.KILL_STEPS``, injected through ``TUNEMANTRA_KILL_AT``, never by timing), then
the same command is run again. After each rerun: the command succeeded; the period has
exactly one current run, whose revenue is the scenario file's (summed here from the YAML,
independently of the engine) and which read each of its lines once; the run folder is in place,
every file as its manifest says, and nothing temporary is left beside it; the audit ledger and
the store agree (``tunemantra audit verify``), an entry the killed process never appended
being there once, marked ``recovered``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session, sessionmaker

from pipelines.killpoints import KILL_AT, KILL_TRACE
from pipelines.royalty import audit_ledger
from pipelines.royalty.run import KILL_STEPS
from pipelines.royalty.verification import verify_outputs, verify_store
from pipelines.scenario import load_scenario
from schemas.store.runs import RoyaltyRun, RunStatus
from tests.conftest import BOTH_BACKENDS
from tests.royalty_engine.test_worked_examples import SCENARIOS

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("tunemantra")
SCENARIO = SCENARIOS / "recoupment.yaml"
ORG = "killed"


def expected(period: str) -> tuple[Decimal, int]:
    """The period's revenue and line count, straight from the scenario file."""
    spec = yaml.safe_load(SCENARIO.read_text())
    (rev,) = [r for r in spec["revenue"] if r["period"] == period]
    return sum((Decimal(line["amount"]) for line in rev["lines"]), Decimal(0)), len(rev["lines"])


class Harness:
    def __init__(
        self, factory: sessionmaker[Session], db_url: str, data: Path, trace: Path
    ) -> None:
        self.factory, self.data, self.trace = factory, data, trace
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TUNEMANTRA_")},
            "TUNEMANTRA_DATABASE_URL": db_url,
            "TUNEMANTRA_DATA_DIR": str(data),
            KILL_TRACE: str(trace),
        }
        self.org_id = int(load_scenario(factory, data, SCENARIO, org=ORG)["org_id"])

    def cli(self, *args: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **({KILL_AT: kill} if kill else {})}
        return subprocess.run(
            [str(CLI), *args], env=env, capture_output=True, text=True, timeout=600, check=False
        )

    def royalty(self, command: str, period: str, kill: str | None = None) -> Any:
        return self.cli("royalty", command, "--org", ORG, "--period", period, kill=kill)

    def killed_then_rerun(self, command: str, period: str, step: str) -> None:
        killed = self.royalty(command, period, kill=step)
        assert killed.returncode == -9, (step, killed.stdout, killed.stderr)
        again = self.royalty(command, period)
        assert again.returncode == 0, (step, again.stdout, again.stderr)
        self.check(period, step)

    def check(self, period: str, step: str) -> None:
        revenue, lines = expected(period)
        with self.factory() as s:
            current = s.scalars(
                sa.select(RoyaltyRun).where(
                    RoyaltyRun.org_id == self.org_id,
                    RoyaltyRun.period == period,
                    RoyaltyRun.status != RunStatus.SUPERSEDED,
                )
            ).all()
            assert len(current) == 1, step
            run = current[0]
            assert Decimal(run.totals["GBP"]["revenue"]) == revenue, step
            assert run.counts["lines"] == lines, step
            assert verify_store(s, self.data, self.org_id) == [], step
        assert verify_outputs(self.factory, run_id=run.id)["verified"] is True
        folder = Path(run.output_dir)
        assert folder.name == f"v{run.version}" and folder.is_dir(), step
        left = sorted(p.name for p in folder.parent.iterdir() if not p.name.startswith("v"))
        assert left == [], (step, left)  # nothing temporary left beside the runs
        assert audit_ledger.verify(self.data, self.org_id) == [], step
        entries = audit_ledger.read(self.data, self.org_id)
        keys = [(e["event"], e["run_id"]) for e in entries if "run_id" in e]
        assert len(keys) == len(set(keys)), step  # each event recorded once

    def recovered(self) -> set[str]:
        return {e["event"] for e in audit_ledger.read(self.data, self.org_id) if e.get("recovered")}


@pytest.mark.parametrize("backend", BOTH_BACKENDS)  # end to end on PostgreSQL too
def test_a_killed_run_approval_or_lock_is_finished_by_the_next_command(
    backend: str, db_url: str, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    h = Harness(factory, db_url, tmp_path / "var", tmp_path / "trace")
    run_steps = [s for s in KILL_STEPS if s.startswith("run.")]
    move_steps = [s for s in KILL_STEPS if s.startswith("transition.")]
    assert run_steps and move_steps and len(run_steps) + len(move_steps) == len(KILL_STEPS)

    # a run that is not killed passes every step of a run, in order
    first = h.royalty("run", "2026-01")
    assert first.returncode == 0, first.stderr
    assert h.trace.read_text().split() == run_steps
    h.check("2026-01", "none")

    for step in run_steps:
        h.killed_then_rerun("run", "2026-01", step)
    # the runs killed after their commit were finished: their entries came from recovery
    assert h.recovered() == {"calculated"}

    # approvals and locks: killed after the commit, and after the entry
    h.trace.unlink()
    h.killed_then_rerun("approve", "2026-01", move_steps[0])
    h.killed_then_rerun("lock", "2026-01", move_steps[1])
    assert set(move_steps) <= set(h.trace.read_text().split())
    assert h.royalty("run", "2026-02").returncode == 0
    h.trace.unlink()
    h.killed_then_rerun("approve", "2026-02", move_steps[1])
    # killed at its last step, an approval passed every step of one, in order; so did the
    # rerun, which found the run approved
    assert h.trace.read_text().split() == move_steps * 2
    h.killed_then_rerun("lock", "2026-02", move_steps[0])
    assert h.recovered() == {"calculated", "approved", "locked"}
    with factory() as s:
        statuses = dict(
            s.execute(
                sa.select(RoyaltyRun.period, RoyaltyRun.status).where(
                    RoyaltyRun.status != RunStatus.SUPERSEDED
                )
            ).all()
        )
    assert statuses == {"2026-01": RunStatus.LOCKED, "2026-02": RunStatus.LOCKED}

    verify = h.cli("audit", "verify", "--org", ORG)
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout + verify.stderr
    same = h.cli("royalty", "reproduce", "--run", str(max(_run_ids(factory))))
    assert same.returncode == 0 and json.loads(same.stdout)["identical"] is True


def _run_ids(factory: sessionmaker[Session]) -> list[int]:
    with factory() as s:
        return list(s.scalars(sa.select(RoyaltyRun.id)))
