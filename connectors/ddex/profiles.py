"""DSP profiles: one declarative YAML file per DSP in ``schemas/dsp_profiles/``.

A profile says who the DSP is (name, DPID), where deliveries go (``protocol`` and ``url``: a
local folder, ``sftp://user@host/path`` or ``s3://bucket/prefix``; credentials never in the
file: ``secret_env`` names the environment variable holding the password or secret key),
how it wants them (releases per batch, track releases or not, accepted audio formats,
required assets), how early (``lead_time_days`` before the release date) and its default
territories and deal terms. Adding a DSP is a new file, not a code change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas import identifiers
from schemas.territories import parse_territory_set

PROFILES_DIR = Path(__file__).resolve().parents[2] / "schemas" / "dsp_profiles"


class DealTemplate(BaseModel):
    """Default deal terms; start = the release date, territories = the release's ∩ these."""

    model_config = ConfigDict(extra="forbid")
    commercial_model: Literal[
        "SubscriptionModel", "AdvertisementSupportedModel", "PayAsYouGoModel", "FreeOfChargeModel"
    ]
    use_types: list[str] = Field(min_length=1)
    territories: str = "WW"
    preorder_days: int = Field(0, ge=0, description="a pre-order deal this many days before")

    @field_validator("territories")
    @classmethod
    def _territories(cls, value: str) -> str:
        return parse_territory_set(value).to_string()


class DspProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,40}$")
    display_name: str
    dpid: str
    protocol: Literal["local", "sftp", "s3"]
    url: str = Field(description="local paths are relative to the data dir")
    secret_env: str | None = None
    batch_size: int = Field(50, ge=1, le=10_000)
    lead_time_days: int = Field(14, ge=0)
    track_releases: bool = False
    audio_formats: list[Literal["WAV", "FLAC"]] = ["WAV", "FLAC"]
    required_assets: list[Literal["audio", "front_cover"]] = ["audio", "front_cover"]
    territories: str = "WW"
    deals: list[DealTemplate] = []
    ack_timeout_hours: int = Field(72, ge=1)
    max_attempts: int = Field(5, ge=1)
    retry_base_seconds: int = Field(60, ge=1)

    @field_validator("dpid")
    @classmethod
    def _dpid(cls, value: str) -> str:
        identifiers.require("dpid", value)
        return value

    @field_validator("territories")
    @classmethod
    def _territories(cls, value: str) -> str:
        return parse_territory_set(value).to_string()


def load_profile(path: Path) -> DspProfile:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    profile = DspProfile.model_validate(data)
    if profile.name != path.stem:
        raise ValueError(f"{path.name}: profile name {profile.name!r} must match the file name")
    return profile


def load_profiles(folder: Path | None = None) -> dict[str, DspProfile]:
    """Every ``*.yaml`` profile in ``folder`` (default: ``schemas/dsp_profiles``), by name."""
    folder = folder or PROFILES_DIR
    return {p.stem: load_profile(p) for p in sorted(folder.glob("*.yaml"))}
