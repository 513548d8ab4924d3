"""A period that has not ended can be run as a preview, but approving or locking it is refused
(``period_not_ended``) unless an explicit override says why: the override is kept, with its
actor, in the store's audit log and in the audit ledger's entry. "Today" is a parameter."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli import royalty as cli_royalty
from cli.main import app
from pipelines import resources
from pipelines.royalty import audit_ledger
from pipelines.royalty.run import run_period
from pipelines.royalty.transitions import transition
from pipelines.settings import get_settings
from royalty_engine.periods import RunError
from schemas.store import db
from schemas.store.models import AuditEntry
from schemas.store.runs import RoyaltyRun, RunStatus
from tests.snapshots import DATA, Snapshots, copy_demo_label, sqlite_url

SECRET = "test-secret-key-not-a-placeholder"
MID_JANUARY = dt.date(2026, 1, 15)


@dataclass
class Label:
    factory: sessionmaker[Session]
    data: Path
    org_id: int

    def move(self, to: str, *, today: dt.date, allow_unended: str | None = None) -> Any:
        return transition(
            self.factory,
            self.data,
            org_id=self.org_id,
            period="2026-01",
            actor="finance:ana",
            to=to,
            today=today,
            allow_unended=allow_unended,
        )

    def statuses(self) -> list[str]:
        with self.factory() as s:
            return [r.status.value for r in s.scalars(sa.select(RoyaltyRun))]


@pytest.fixture
def label(snapshots: Snapshots, tmp_path: Path) -> Iterator[Label]:
    """The sample label (seed 11) with its month of reports ingested, in a SQLite store."""
    root = tmp_path / "label"
    org_id = copy_demo_label(snapshots, root, seed=11, ingested=True)
    factory = db.session_factory(db.make_engine(sqlite_url(root)))
    data = root / DATA
    run_period(factory, data, org_id=org_id, period="2026-01", actor="t")  # the preview
    yield Label(factory, data, org_id)
    factory.kw["bind"].dispose()


def test_a_period_that_has_not_ended_cannot_be_approved_or_locked(label: Label) -> None:
    # on its last day the period has not ended either: that day's sales are still to come
    for today in (MID_JANUARY, dt.date(2026, 1, 31)):
        with pytest.raises(RunError) as err:
            label.move("approved", today=today)
        assert err.value.code == "period_not_ended"
        assert "2026-01-31" in err.value.message and today.isoformat() in err.value.message
    assert label.statuses() == ["calculated"]
    # an override with no reason is no override
    with pytest.raises(RunError) as err:
        label.move("approved", today=MID_JANUARY, allow_unended="  ")
    assert err.value.code == "period_not_ended"
    assert label.move("approved", today=dt.date(2026, 2, 1)).status == "approved"
    with pytest.raises(RunError) as err:
        label.move("locked", today=dt.date(2026, 1, 20))
    assert err.value.code == "period_not_ended" and label.statuses() == ["approved"]
    assert label.move("locked", today=dt.date(2026, 2, 1)).status == "locked"
    entries = audit_ledger.read(label.data, label.org_id)
    assert [e["event"] for e in entries][-2:] == ["approved", "locked"]
    assert all("override" not in e for e in entries)


def test_an_override_is_explicit_and_audited(label: Label) -> None:
    why = "year-end close: DSP reports for January are final"
    for to in ("approved", "locked"):
        assert label.move(to, today=MID_JANUARY, allow_unended=why).status == to
    with label.factory() as s:
        run = s.scalars(sa.select(RoyaltyRun)).one()
        overrides = s.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.org_id == label.org_id, AuditEntry.action == "override")
            .order_by(AuditEntry.id)
        ).all()
    assert run.status == RunStatus.LOCKED
    assert [(o.actor, o.entity, o.entity_id) for o in overrides] == [
        ("finance:ana", "royalty_runs", run.id)
    ] * 2
    assert [o.after for o in overrides] == [
        {
            "rule": "period_not_ended",
            "to": to,
            "period": "2026-01",
            "period_end": "2026-01-31",
            "today": "2026-01-15",
            "reason": why,
        }
        for to in ("approved", "locked")
    ]
    entries = [e for e in audit_ledger.read(label.data, label.org_id) if "override" in e]
    assert [(e["event"], e["actor"]) for e in entries] == [
        ("approved", "finance:ana"),
        ("locked", "finance:ana"),
    ]
    assert entries[0]["override"] == {
        "rule": "period_not_ended",
        "period_end": "2026-01-31",
        "today": "2026-01-15",
        "reason": why,
    }
    assert audit_ledger.verify(label.data, label.org_id) == []


def test_cli_refuses_an_unended_period_unless_overridden(
    label: Label, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", sqlite_url(label.data.parent))
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(label.data))
    monkeypatch.setattr(cli_royalty, "today", lambda: MID_JANUARY)
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        runner = CliRunner()
        args = ["royalty", "approve", "--org", "demo", "--period", "2026-01", "--actor", "ops"]
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2
        assert "period_not_ended" in refused.output and "2026-01-31" in refused.output
        assert "--allow-unended" in refused.output
        ok = runner.invoke(app, [*args, "--json", "--allow-unended", "auditor asked early"])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["status"] == "approved"
        (entry,) = [e for e in audit_ledger.read(label.data, label.org_id) if "override" in e]
        assert (entry["actor"], entry["override"]["reason"]) == ("ops", "auditor asked early")
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()
