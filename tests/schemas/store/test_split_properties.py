"""Property: whatever splits are offered for a track, the accepted ones never exceed 100%.

SQLite only (a module-scoped store, one throw-away organisation per example) so it stays
fast; the rule under test is plain Python in ``schemas.store.service`` and is exercised on
PostgreSQL by the example tests in ``test_service.py``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from royalty_engine.splits import split_sheet
from schemas.errors import ValidationFailed
from schemas.store import db, service
from schemas.store.models import Organisation, Split, Track
from schemas.territories import parse_territory_set
from tests.conftest import examples
from tests.schemas.store.conftest import Catalog

START = dt.date(2024, 1, 1)
TERRITORY_SETS = ["WW", "GB", "JP", "GB,JP", "WW,-JP", "WW,-GB,-US", "US"]
# One code per region the sets above tell apart: everything else behaves like FR.
PROBES = ["GB", "JP", "US", "FR"]


@pytest.fixture(scope="module")
def sqlite_factory(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    path = tmp_path_factory.mktemp("split-properties") / "store.db"
    shutil.copy(sqlite_template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    yield db.session_factory(engine)
    engine.dispose()


offers = st.lists(
    st.fixed_dictionaries(
        {
            "party": st.integers(0, 3),
            "share": st.sampled_from(["0.1", "0.25", "0.3", "0.5", "0.6", "0.75", "1"]),
            "territories": st.sampled_from(TERRITORY_SETS),
            "start": st.integers(0, 8).map(lambda m: START + dt.timedelta(days=30 * m)),
            "months": st.none() | st.integers(1, 6),
        }
    ),
    min_size=1,
    max_size=10,
)


def totals(splits: list[Split]) -> dict[tuple[dt.date, str], Decimal]:
    """Independent oracle: the share total on every date where any total can change."""
    days = {s.effective_from for s in splits}
    days |= {s.effective_to + dt.timedelta(days=1) for s in splits if s.effective_to}
    out = {}
    for day in days:
        for code in PROBES:
            out[day, code] = sum(
                (
                    s.share
                    for s in splits
                    if s.effective_from <= day
                    and (s.effective_to is None or day <= s.effective_to)
                    and parse_territory_set(s.territories).contains(code)
                ),
                Decimal(0),
            )
    return out


def on_track(session: Session, track: Track) -> list[Split]:
    session.expire_all()
    return list(session.scalars(sa.select(Split).where(Split.track_id == track.id)))


@settings(max_examples=examples(30), deadline=None)
@given(offers=offers)
def test_accepted_splits_never_exceed_100_percent(
    sqlite_factory: sessionmaker[Session], offers: list[dict[str, object]]
) -> None:
    with sqlite_factory() as session:
        session.info["actor"] = "hypothesis"
        org = Organisation(slug="prop", name="Prop")
        session.add(org)
        session.flush()
        cat = Catalog(session, org.id)
        track = cat.track(cat.release(1), 1)
        parties = [cat.party(f"Party {i}") for i in range(4)]
        used: set[int] = set()

        for offer in offers:
            start = offer["start"]
            assert isinstance(start, dt.date)
            months = offer["months"]
            end = start + dt.timedelta(days=30 * months - 1) if isinstance(months, int) else None
            party = parties[int(offer["party"])]  # type: ignore[call-overload]
            existing = on_track(session, track)
            new = Split(
                share=Decimal(str(offer["share"])),
                territories=parse_territory_set(str(offer["territories"])).to_string(),
                effective_from=start,
                effective_to=end,
            )
            would_fit = max(totals([*existing, new]).values()) <= 1
            try:
                cat.split(
                    party,
                    str(offer["share"]),
                    track=track,
                    territories=str(offer["territories"]),
                    start=start.isoformat(),
                    end=end.isoformat() if end else None,
                )
                accepted = True
            except ValidationFailed as exc:
                accepted = False
                codes = {e.code for e in exc.errors}
                assert codes <= {"shares_exceed_100", "overlapping_range"}
            if party[0].id not in used:
                # No row of this key yet, so the share rule alone decides, and exactly.
                assert accepted == would_fit, (offer, [(s.share, s.territories) for s in existing])
            if accepted:
                used.add(party[0].id)

            now = on_track(session, track)
            assert all(total <= 1 for total in totals(now).values())
            if accepted:
                assert len(now) == len(existing) + 1  # a superseded row is closed, never removed
            else:
                assert [(s.id, s.effective_to) for s in now] == [
                    (s.id, s.effective_to) for s in existing
                ]
            for (day, code), total in totals(now).items():
                candidates = service.split_candidates(session, org.id, track.id, day)
                sheet, rest = split_sheet(*candidates, as_of=day, territory=code)
                assert sum((s.share for s in sheet), Decimal(0)) == total
                assert rest == 1 - total >= 0
        session.rollback()
