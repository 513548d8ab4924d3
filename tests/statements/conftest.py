"""A locked period of the sample label to render, publish and serve statements from.

Built once per test session on its own SQLite store and copied for each test module
(``tests/snapshots.py``): the demo label, its reports ingested,
2026-H1 run, approved and locked. One track's title is hostile (a formula, HTML and a very
long tail) so every format is tested against DSP metadata that tries to break it. Kofi Mensah
(GBP, 15% withholding) has a self-billing agreement, so his statement comes with an invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from demo.label import ingest_demo_reports, run_demo
from pipelines.royalty.run import run_period
from pipelines.royalty.transitions import transition
from schemas.store import db
from schemas.store.models import Payee, Track
from schemas.store.runs import StatementSummary
from tests.snapshots import DATA, Snapshots, sqlite_url

SECRET = "test-secret-key-not-a-placeholder"
HOSTILE_TITLE = (
    '=HYPERLINK("http://evil.example/x","click") <script>alert("x")</script> & "quotes" '
    + "very long title " * 20
).strip()
PERIOD = "2026-H1"
HOSTILE_ISRC = "GBNBR2300006"  # Mara Ellison's top track ("Quiet Water" in the demo)


@dataclass
class LockedPeriod:
    factory: sessionmaker[Session]
    data: Path
    org_id: int
    run_id: int
    period: str
    admin_key: str

    def payee_id(self, name: str) -> int:
        with self.factory() as s:
            return int(s.scalar(sa.select(Payee.id).where(Payee.name == name)))

    def statement_ids(self) -> dict[int, int]:
        """payee id -> statement id (the sample label's payees have one currency each)."""
        with self.factory() as s:
            return {
                r.payee_id: r.id
                for r in s.scalars(
                    sa.select(StatementSummary).where(StatementSummary.run_id == self.run_id)
                )
            }


def build_locked_period(root: Path, *, lock: bool = True) -> LockedPeriod:
    """The sample label's period in ``root`` (``store.db``, ``var/``), built from nothing."""
    engine = db.make_engine(sqlite_url(root))
    db.upgrade(engine)
    factory = db.session_factory(engine)
    data = root / DATA
    summary = run_demo(factory, seed=11, secret_key=SECRET, data_dir=data)
    org_id = summary.org_id
    with db.transaction(factory, actor="test") as s:
        track = s.scalars(
            sa.select(Track).where(Track.org_id == org_id, Track.isrc == HOSTILE_ISRC)
        ).one()
        track.title = HOSTILE_TITLE
        # Kofi (GBP, 15% withholding, something payable) agrees to self-billing: an invoice.
        kofi = s.scalars(
            sa.select(Payee).where(Payee.org_id == org_id, Payee.name == "Kofi Mensah")
        ).one()
        kofi.self_billing_consent = True
        kofi.self_billing_expires = dt.date(2027, 12, 31)
        kofi.vat_number = "GB100000034"
        kofi.vat_rate = Decimal("0.20")
        kofi.address = "3 Canal Street, Manchester M1 3HE, United Kingdom"
    ingest_demo_reports(factory, data, org_id, seed=11)
    report = run_period(factory, data, org_id=org_id, period="2026-H1", actor="finance")
    period = LockedPeriod(factory, data, org_id, int(report.run_id), PERIOD, summary.admin_key)
    return _lock(period) if lock else period


def _lock(period: LockedPeriod) -> LockedPeriod:
    for to in ("approved", "locked"):
        transition(
            period.factory,
            period.data,
            org_id=period.org_id,
            period=period.period,
            actor="finance",
            to=to,
        )
    return period


def copy_locked_period(snapshots: Snapshots, dest: Path, *, lock: bool = True) -> LockedPeriod:
    """What ``build_locked_period(dest, lock=lock)`` builds, copied from the session's build
    (the period calculated, and the same approved and locked)."""

    def calculated(root: Path) -> tuple[int, int, str]:
        p = build_locked_period(root, lock=False)
        p.factory.kw["bind"].dispose()
        return p.org_id, p.run_id, p.admin_key

    def locked(root: Path) -> tuple[int, int, str]:
        p = _open(root, snapshots.copy("calculated", calculated, root))
        _lock(p).factory.kw["bind"].dispose()
        return p.org_id, p.run_id, p.admin_key

    return _open(
        dest,
        snapshots.copy("locked" if lock else "calculated", locked if lock else calculated, dest),
    )


def _open(root: Path, ids: tuple[int, int, str]) -> LockedPeriod:
    org_id, run_id, admin_key = ids
    factory = db.session_factory(db.make_engine(sqlite_url(root)))
    return LockedPeriod(factory, root / DATA, org_id, run_id, PERIOD, admin_key)


@pytest.fixture(scope="module")
def locked(
    tmp_path_factory: pytest.TempPathFactory, snapshots: Snapshots
) -> Iterator[LockedPeriod]:
    period = copy_locked_period(snapshots, tmp_path_factory.mktemp("locked") / "period")
    yield period
    period.factory.kw["bind"].dispose()


def portal_page(statement: Any) -> str:
    """The portal's page for ``statement`` (its template, rendered without a server)."""
    from api.portal import FORMAT_LABELS, templates
    from schemas.statement_figures import FIGURE_LABELS, FIGURES

    return templates.get_template("portal/statement.html").render(
        s=statement,
        formats=["pdf"],
        figures=FIGURES,
        figure_labels=FIGURE_LABELS,
        format_labels=FORMAT_LABELS,
        title="Statement",
        signed_in=True,
    )
