"""A minimal catalogue built through ``schemas.store.service``, for the store's tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from stdnum import ean

from royalty_engine.splits import split_sheet
from schemas.store import service
from schemas.store.models import (
    Artist,
    Base,
    Contract,
    ContractRate,
    Payee,
    Release,
    Split,
    Track,
)
from tests.conftest import make_org


def upc(n: int) -> str:
    """A valid 13-digit EAN/UPC, different for every ``n``."""
    body = f"506345{n:06d}"
    return body + ean.calc_check_digit(body)


def isrc(n: int) -> str:
    return f"GBABC24{n:05d}"


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@dataclass
class Catalog:
    """Builds rows for one organisation; each method takes overrides for any field."""

    session: Session
    org_id: int

    def create(self, kind: str, data: dict[str, Any]) -> Any:
        return service.create(self.session, self.org_id, kind, data)

    def artist(self, name: str = "Artist", **kw: Any) -> Artist:
        return self.create("artists", {"name": name, **kw})

    def release(self, n: int = 1, *, artist_id: int | None = None, **kw: Any) -> Release:
        if artist_id is None:
            artist_id = self.artist(f"Release artist {n}").id
        return self.create(
            "releases",
            {
                "upc": upc(n),
                "title": f"Release {n}",
                "release_type": "Single",
                "label_name": "Label",
                "artist_id": artist_id,
                "original_release_date": "2024-01-05",
                **kw,
            },
        )

    def track(self, release: Release, n: int = 1, **kw: Any) -> Track:
        return self.create(
            "tracks",
            {
                "release_id": release.id,
                "isrc": isrc(n),
                "title": f"Song {n}",
                "artist_id": release.artist_id,
                "duration_seconds": 200,
                "track_number": n,
                **kw,
            },
        )

    def payee(self, name: str = "Payee", **kw: Any) -> Payee:
        return self.create("payees", {"name": name, "statement_currency": "EUR", **kw})

    def contract(self, payee: Payee, reference: str | None = None, **kw: Any) -> Contract:
        return self.create(
            "contracts",
            {
                "payee_id": payee.id,
                "reference": reference or f"C-{payee.id}",
                "name": "Deal",
                "basis": "net_receipts",
                "currency": "EUR",
                "start_date": "2020-01-01",
                **kw,
            },
        )

    def rate(self, contract: Contract, data: dict[str, Any]) -> ContractRate:
        return service.add_rate(self.session, self.org_id, contract.id, data)

    def party(self, name: str) -> tuple[Payee, Contract]:
        """A payee with its own contract: the key of a split."""
        payee = self.payee(name)
        return payee, self.contract(payee)

    def split(
        self,
        party: tuple[Payee, Contract],
        share: str,
        *,
        track: Track | None = None,
        release: Release | None = None,
        territories: str = "WW",
        start: str = "2024-01-01",
        end: str | None = None,
    ) -> Split:
        payee, contract = party
        return self.create(
            "splits",
            {
                "track_id": track.id if track else None,
                "release_id": release.id if release else None,
                "payee_id": payee.id,
                "contract_id": contract.id,
                "share": share,
                "territories": territories,
                "effective_from": start,
                "effective_to": end,
            },
        )

    def count(self, model: type[Base], org_id: int | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(model)
        return self.session.scalar(
            stmt.where(model.org_id == (org_id or self.org_id))  # type: ignore[attr-defined]
        )

    def sheet(
        self, track: Track, as_of: str, territory: str
    ) -> tuple[list[tuple[int, Decimal]], Decimal]:
        """(payee, share) pairs that apply to a track on a date in a territory, and the rest."""
        candidates = service.split_candidates(self.session, self.org_id, track.id, d(as_of))
        splits, rest = split_sheet(*candidates, as_of=d(as_of), territory=territory)
        return [(s.payee_id, s.share) for s in splits], rest


@pytest.fixture
def other_org_id(factory: sessionmaker[Session]) -> int:
    """A second tenant (created, like ``org_id``, before the test's session writes anything)."""
    return make_org(factory, "other")


@pytest.fixture
def cat(session: Session, org_id: int) -> Catalog:
    return Catalog(session, org_id)


@pytest.fixture
def other(session: Session, other_org_id: int) -> Catalog:
    return Catalog(session, other_org_id)
