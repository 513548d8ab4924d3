"""A small label for the delivery tests: two releases with generated assets, a DDEX sender,
DSP profiles written into a temporary folder (local, or pointing at the real test servers)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from connectors.ddex.profiles import DspProfile, load_profile
from connectors.drops import Drop, LocalDrop
from demo.assets import release_assets
from pipelines.layout import DataDir
from pipelines.resources import Resources
from pipelines.settings import Settings
from schemas.store import db, service
from schemas.store.deliveries import DdexSender
from tests.connectors.conftest import s3_server, sftp_server  # noqa: F401  (real servers)

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SENDER = ("PADPIDA2026NBREC0B", "Northbound Records")
ALBUM_UPC, SINGLE_UPC = "5063450000179", "5063450000346"


def profile_yaml(folder: Path, name: str, **overrides: Any) -> DspProfile:
    data: dict[str, Any] = {
        "name": name,
        "display_name": name.title(),
        "dpid": "PADPIDA2026HARBORM",
        "protocol": "local",
        "url": f"dsp/{name}",
        "batch_size": 10,
        "lead_time_days": 7,
        "deals": [
            {
                "commercial_model": "SubscriptionModel",
                "use_types": ["OnDemandStream", "NonInteractiveStream"],
            }
        ],
        "max_attempts": 3,
        "retry_base_seconds": 60,
        "ack_timeout_hours": 24,
    }
    data.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path)


@dataclass
class Label:
    factory: sessionmaker[Session]
    data_dir: Path
    org_id: int
    album: Any
    single: Any
    tracks: dict[str, Any]

    @property
    def res(self) -> Resources:
        """The label's store and data directory as the use cases take them."""
        return Resources(Settings(data_dir=self.data_dir), self.factory, DataDir(self.data_dir))

    @property
    def assets(self) -> Path:
        return DataDir(self.data_dir).assets(self.org_id)

    def dsp_folder(self, name: str) -> Path:
        return DataDir(self.data_dir).dsp(name)

    def opener(self, profile: DspProfile) -> Drop:
        folder = self.dsp_folder(profile.name)
        folder.mkdir(parents=True, exist_ok=True)
        return LocalDrop(folder)


def make_label(factory: sessionmaker[Session], org_id: int, data_dir: Path) -> Label:
    with db.transaction(factory, actor="test") as s:
        mara = service.create(s, org_id, "artists", {"name": "Mara Ellison"})
        theo = service.create(s, org_id, "artists", {"name": "Theo Marsh"})
        kofi = service.create(s, org_id, "artists", {"name": "Kofi Mensah"})
        releases = {}
        tracks = {}
        for upc, title, rtype, date, count in (
            (ALBUM_UPC, "Harbour Lights", "Album", "2026-02-20", 2),
            (SINGLE_UPC, "Paper Boats", "Single", "2026-03-06", 1),
        ):
            r = service.create(
                s,
                org_id,
                "releases",
                {
                    "upc": upc,
                    "title": title,
                    "release_type": rtype,
                    "label_name": "Northbound Records",
                    "artist_id": mara.id,
                    "original_release_date": date,
                    "genre": "Singer/Songwriter",
                    "p_line": "2026 Northbound Records",
                    "c_line": "2026 Northbound Records",
                    "territories": "WW,-US" if rtype == "Single" else "WW",
                },
            )
            releases[upc] = r
            for n in range(1, count + 1):
                isrc = f"GBNBR26{len(tracks) + 1:05d}"
                tracks[isrc] = service.create(
                    s,
                    org_id,
                    "tracks",
                    {
                        "release_id": r.id,
                        "isrc": isrc,
                        "title": f"{title} Part {n}" if count > 1 else title,
                        "artist_id": mara.id,
                        "duration_seconds": 200 + n,
                        "track_number": n,
                        "explicit": n == 2,
                        "contributors": [
                            {"artist_id": mara.id, "role": "MainArtist"},
                            {"artist_id": theo.id, "role": "MixingEngineer"},
                            {"artist_id": kofi.id, "role": "FeaturedArtist"},
                        ],
                    },
                )
        s.add(DdexSender(org_id=org_id, dpid=SENDER[0], name=SENDER[1]))
    label = Label(factory, data_dir, org_id, releases[ALBUM_UPC], releases[SINGLE_UPC], tracks)
    for upc, release in releases.items():
        isrcs = [t.isrc for t in tracks.values() if t.release_id == release.id]
        release_assets(label.assets, upc, isrcs, seed=len(isrcs))
    return label


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def label(factory: sessionmaker[Session], org_id: int, data_dir: Path) -> Label:
    return make_label(factory, org_id, data_dir)


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    return folder
