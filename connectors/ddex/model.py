"""What a delivery is made of, as plain data: a release snapshot (metadata, assets, deals)
and the machine-readable problems found on the way (QC, validation, transport, ACKs).

The builder, QC and packaging work on these dataclasses only; ``pipelines.delivery`` fills
them from the store. A snapshot's :meth:`ReleaseSnapshot.fingerprint` identifies a *release
version*: the same metadata, asset bytes and deals give the same fingerprint, so a rerun can
recognise a version that was already delivered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One reason, machine-readable: ``code`` (stable), ``field`` (where), ``message`` (why)."""

    code: str
    field: str
    message: str
    severity: Severity = "error"

    def as_dict(self, **context: str) -> dict[str, str]:
        return {**context, **asdict(self)}


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


@dataclass(frozen=True)
class AudioFile:
    """A delivered audio file: where it sits in the package and what it is."""

    uri: str  # relative to the release folder, e.g. "resources/GBNBR2300001.flac"
    md5: str
    size: int
    codec: Literal["FLAC", "PCM"]
    container: Literal["FLAC", "WAV"]
    channels: int
    sample_rate: int
    bits_per_sample: int
    duration_seconds: float


@dataclass(frozen=True)
class ImageFile:
    uri: str
    md5: str
    size: int
    codec: Literal["JPEG", "PNG"]
    width: int
    height: int


@dataclass(frozen=True)
class Credit:
    name: str
    role: str  # schemas.store.models.ContributorRole value


@dataclass(frozen=True)
class TrackInfo:
    isrc: str
    title: str
    version: str | None
    artist: str
    duration_seconds: int
    explicit: bool
    disc_number: int
    track_number: int
    credits: tuple[Credit, ...] = ()
    audio: AudioFile | None = None


@dataclass(frozen=True)
class DealInfo:
    """One deal: where (``territories`` as ISO codes or ``("Worldwide",)``, or worldwide
    minus ``excluded``), how (commercial model, use types) and when."""

    commercial_model: str
    use_types: tuple[str, ...]
    start: dt.date
    territories: tuple[str, ...] = ("Worldwide",)
    excluded: tuple[str, ...] = ()
    end: dt.date | None = None
    preorder: bool = False


@dataclass(frozen=True)
class ReleaseSnapshot:
    upc: str
    title: str
    release_type: str  # Album, EP, Single, Compilation
    label: str
    artist: str
    release_date: dt.date
    genre: str | None
    p_line: str | None
    c_line: str | None
    tracks: tuple[TrackInfo, ...]
    cover: ImageFile | None = None
    deals: tuple[DealInfo, ...] = ()

    def fingerprint(self) -> str:
        """SHA-256 of everything a DSP receives except the message header."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Party:
    """A messaging party (sender or recipient) of the message header."""

    dpid: str
    name: str


@dataclass(frozen=True)
class Header:
    message_id: str
    sender: Party
    recipient: Party
    created: dt.datetime
    thread_id: str | None = None
    test: bool = False


@dataclass
class Built:
    """A built message and what the checks said about it."""

    xml: bytes
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not errors(self.problems)


def jsonable(problems: list[Problem], **context: str) -> list[dict[str, Any]]:
    return [p.as_dict(**context) for p in problems]
