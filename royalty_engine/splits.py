"""Which splits apply to a track, and what is left to the label.

The rule, in one place: on a date and in a territory, the track-level splits apply if any
does; otherwise the splits of the track's release apply. Shares are fractions; whatever
they do not cover (1 - sum) is the label's retained share.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

from schemas.effective import in_force
from schemas.territories import parse_territory_set


class SplitLike(Protocol):
    @property
    def track_id(self) -> int | None: ...
    @property
    def release_id(self) -> int | None: ...
    @property
    def share(self) -> Decimal: ...
    @property
    def territories(self) -> str: ...
    @property
    def effective_from(self) -> dt.date: ...
    @property
    def effective_to(self) -> dt.date | None: ...


S = TypeVar("S", bound=SplitLike)


def _applies(split: SplitLike, as_of: dt.date, territory: str) -> bool:
    return in_force(split.effective_from, split.effective_to, as_of) and parse_territory_set(
        split.territories
    ).contains(territory)


def applicable_splits(
    splits: Sequence[S], *, track_id: int, release_id: int, as_of: dt.date, territory: str
) -> tuple[list[S], Decimal]:
    """(splits that apply, label's remainder) for one track on a date in a territory."""
    for level in ("track", "release"):
        applying = [
            s
            for s in splits
            if (s.track_id == track_id if level == "track" else s.release_id == release_id)
            and _applies(s, as_of, territory)
        ]
        if applying:
            return applying, Decimal(1) - sum((s.share for s in applying), Decimal(0))
    return [], Decimal(1)


class TrackLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def release_id(self) -> int: ...


def split_sheet(
    track: TrackLike, candidates: Sequence[S], *, as_of: dt.date, territory: str
) -> tuple[list[S], Decimal]:
    """The split sheet of ``track`` from ``candidates`` (its and its release's splits, e.g.
    ``service.split_candidates``): :func:`applicable_splits` on the track."""
    return applicable_splits(
        candidates, track_id=track.id, release_id=track.release_id, as_of=as_of, territory=territory
    )
