"""Two writers at once cannot together break the 100% rule (row lock / BEGIN IMMEDIATE)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from schemas.errors import StoreError
from schemas.store import db, service
from schemas.store.models import Split
from tests.schemas.store.conftest import Catalog


def test_concurrent_splits_cannot_exceed_100_percent(
    factory: sessionmaker[Session], cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = cat.release(1)
    track = cat.track(release, 1)
    parties = [cat.party("A"), cat.party("B")]
    cat.session.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    # Make the race certain: each writer, having read the existing splits, waits for the
    # other to have read them too. With the lock the second writer cannot read until the
    # first commits, so the wait times out and the writers go one after the other.
    check = service.share_total_errors
    checkpoint = threading.Barrier(2, timeout=2)

    def racing_check(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            checkpoint.wait()
        return check(*args, **kwargs)

    monkeypatch.setattr(service, "share_total_errors", racing_check)

    def write(party: Any) -> None:
        payee, contract = party
        barrier.wait()
        try:
            with db.transaction(factory, actor="race") as s:
                service.create(
                    s,
                    cat.org_id,
                    "splits",
                    {
                        "track_id": track.id,
                        "payee_id": payee.id,
                        "contract_id": contract.id,
                        "share": "0.7",
                        "effective_from": "2024-01-01",
                    },
                )
            outcomes.append("ok")
        except StoreError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=write, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ValidationFailed", "ok"]
    with factory() as s:
        shares = s.scalars(sa.select(Split.share).where(Split.track_id == track.id)).all()
    assert [str(x) for x in shares] == ["0.7000000000"]
