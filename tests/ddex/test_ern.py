"""The ERN 4.3 writer: golden output, XSD validity, structure against the official samples,
and the checks the XSD misses."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from lxml import etree

from connectors.ddex.ern import CONTRIBUTOR_ROLES, build_new_release, build_purge_release
from connectors.ddex.model import (
    AudioFile,
    Credit,
    DealInfo,
    Header,
    ImageFile,
    Party,
    ReleaseSnapshot,
    TrackInfo,
)
from connectors.ddex.validate import XSD_DIR, extra_checks, parse, validate_message, xsd_problems
from schemas.store.models import ContributorRole

GOLDEN = Path(__file__).parent / "golden"
HEADER = Header(
    "TM1-1-aurora-0123456789ab",
    Party("PADPIDA2026NBREC0B", "Northbound Records"),
    Party("PADPIDA2026AURORAN", "Aurora Music"),
    dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
)


def snapshot(**changes: object) -> ReleaseSnapshot:
    audio = AudioFile(
        "resources/5063450000179_01_001.flac",
        "9e107d9d372bb6826bd81d3542a419d6",
        493660,
        "FLAC",
        "FLAC",
        1,
        44100,
        16,
        30.5,
    )
    tracks = tuple(
        TrackInfo(
            isrc=f"GBNBR2600{n:03d}",
            title=f"Song {n}",
            version="Acoustic" if n == 2 else None,
            artist="Mara Ellison",
            duration_seconds=200 + n,
            explicit=n == 2,
            disc_number=1,
            track_number=n,
            credits=(
                Credit("Mara Ellison", "MainArtist"),
                Credit("Kofi Mensah", "FeaturedArtist"),
                Credit("Sam Okafor", "Producer"),
                Credit("Theo Marsh", "MixingEngineer"),
            ),
            audio=audio,
        )
        for n in (1, 2)
    )
    fields: dict[str, object] = {
        "upc": "5063450000179",
        "title": "Harbour Lights",
        "release_type": "Album",
        "label": "Northbound Records",
        "artist": "Mara Ellison",
        "release_date": dt.date(2026, 4, 3),
        "genre": "Singer/Songwriter",
        "p_line": "2026 Northbound Records",
        "c_line": "(C) 2026 Northbound Records",
        "tracks": tracks,
        "cover": ImageFile(
            "resources/5063450000179.jpg",
            "d41d8cd98f00b204e9800998ecf8427e",
            142005,
            "JPEG",
            3000,
            3000,
        ),
        "deals": (
            DealInfo(
                "SubscriptionModel", ("OnDemandStream", "NonInteractiveStream"), dt.date(2026, 4, 3)
            ),
            DealInfo(
                "PayAsYouGoModel",
                ("PermanentDownload",),
                dt.date(2026, 3, 20),
                excluded=("KP", "US"),
                end=dt.date(2026, 4, 2),
                preorder=True,
            ),
            DealInfo(
                "AdvertisementSupportedModel",
                ("OnDemandStream",),
                dt.date(2026, 4, 3),
                ("GB", "IE"),
            ),
        ),
    }
    fields.update(changes)
    return ReleaseSnapshot(**fields)  # type: ignore[arg-type]


def test_album_message_matches_golden_and_validates() -> None:
    xml = build_new_release(HEADER, snapshot(), track_releases=True)
    assert validate_message(xml) == []
    golden = GOLDEN / "new_release_album.xml"
    if os.environ.get("TM_REGENERATE_GOLDEN"):
        golden.write_bytes(xml)
    assert xml == golden.read_bytes()


def test_structure_follows_the_official_album_sample() -> None:
    ours = parse(build_new_release(HEADER, snapshot(), track_releases=True))
    sample = etree.parse(str(XSD_DIR / "samples" / "audio-album.xml")).getroot()

    def children(el: etree._Element) -> list[str]:
        return list(dict.fromkeys(etree.QName(c).localname for c in el))

    assert children(ours) == [c for c in children(sample) if c in children(ours)]
    assert children(ours) == [
        "MessageHeader",
        "PartyList",
        "ResourceList",
        "ReleaseList",
        "DealList",
    ]
    assert ours.get("ReleaseProfileVersionId") == sample.get("ReleaseProfileVersionId") == "Audio"
    assert ours.findtext("ReleaseList/Release/ReleaseId/ICPN") == "5063450000179"
    assert [
        e.text
        for e in ours.iterfind("ResourceList/SoundRecording/SoundRecordingEdition/ResourceId/ISRC")
    ] == [
        "GBNBR2600001",
        "GBNBR2600002",
    ]
    assert len(ours.findall("ReleaseList/TrackRelease")) == 2
    tech = ours.find(
        "ResourceList/SoundRecording/SoundRecordingEdition/TechnicalDetails/DeliveryFile"
    )
    assert tech.findtext("File/HashSum/HashSumValue") == "9e107d9d372bb6826bd81d3542a419d6"
    assert (tech.findtext("AudioCodecType"), tech.findtext("BitsPerSample")) == ("FLAC", "16")
    assert tech.find("SamplingRate").text == "44.1"
    img = ours.find("ResourceList/Image/TechnicalDetails")
    assert (
        img.findtext("ImageWidth"),
        img.findtext("ImageHeight"),
        img.findtext("ImageCodecType"),
    ) == (
        "3000",
        "3000",
        "JPEG",
    )
    deals = ours.findall("DealList/ReleaseDeal/Deal/DealTerms")
    preorder = [d for d in deals if d.findtext("IsPreOrderDeal") == "true"]
    assert [e.text for e in preorder[0].iterfind("ExcludedTerritoryCode")] == ["KP", "US"]
    assert preorder[0].findtext("ValidityPeriod/EndDate") == "2026-04-02"
    assert {d.findtext("TerritoryCode") for d in deals} >= {"Worldwide", "GB"}


@pytest.mark.parametrize("name", ["audio-album.xml", "simple-audio-single.xml"])
def test_official_samples_pass_the_same_validation(name: str) -> None:
    assert validate_message((XSD_DIR / "samples" / name).read_bytes()) == []


def test_takedown_has_no_deal_list_and_purge_is_valid() -> None:
    takedown = build_new_release(HEADER, snapshot(deals=()))
    assert validate_message(takedown) == []
    assert parse(takedown).find("DealList") is None
    purge = build_purge_release(HEADER, snapshot())
    assert validate_message(purge) == []
    root = parse(purge)
    assert etree.QName(root).localname == "PurgeReleaseMessage"
    assert root.findtext("PurgedRelease/ReleaseId/ICPN") == "5063450000179"


def _mutate(xml: bytes, path: str, value: str) -> bytes:
    root = parse(xml)
    root.find(path).text = value
    return etree.tostring(root)


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("ResourceList/SoundRecording/SoundRecordingEdition/ResourceId/ISRC", "", "invalid_isrc"),
        (
            "ResourceList/SoundRecording/SoundRecordingEdition/ResourceId/ISRC",
            "GB-NBR-26-00001",
            "invalid_isrc",
        ),
        ("ReleaseList/Release/ReleaseId/ICPN", "5063450000178", "invalid_upc"),
        ("MessageHeader/MessageRecipient/PartyId", "PADPIDA123", "invalid_dpid"),
        ("DealList/ReleaseDeal/DealReleaseReference", "R99", "dangling_reference"),
        (
            "ResourceList/SoundRecording/DisplayArtist/ArtistPartyReference",
            "P99",
            "dangling_reference",
        ),
        (
            "ReleaseList/Release/ResourceGroup/ResourceGroupContentItem/ReleaseResourceReference",
            "A9",
            "dangling_reference",
        ),
    ],
)
def test_checks_the_xsd_misses(path: str, value: str, code: str) -> None:
    xml = _mutate(build_new_release(HEADER, snapshot()), path, value)
    root = parse(xml)
    assert xsd_problems(root) == []  # the XSD is happy...
    problems = extra_checks(root)  # ...the extra checks are not
    assert code in {p.code for p in problems}
    assert all(p.field for p in problems)


def test_xsd_errors_are_reported_with_a_line() -> None:
    root = parse(build_new_release(HEADER, snapshot()))
    root.find("ResourceList/SoundRecording/Duration").text = "three minutes"
    problems = validate_message(etree.tostring(root))
    assert [p.code for p in problems] == ["xsd_invalid"]
    assert problems[0].field.startswith("line ")
    assert validate_message(b"<not-closed")[0].code == "malformed_xml"


def test_every_store_role_maps_to_a_ddex_contributor_role() -> None:
    avs = etree.parse(str(XSD_DIR / "allowed-value-sets.xsd")).getroot()
    xs = "{http://www.w3.org/2001/XMLSchema}"
    (role_type,) = [t for t in avs.iter(f"{xs}simpleType") if t.get("name") == "ContributorRole"]
    allowed = {e.get("value") for e in role_type.iter(f"{xs}enumeration")}
    assert {r.value for r in ContributorRole} == set(CONTRIBUTOR_ROLES)
    assert set(CONTRIBUTOR_ROLES.values()) <= allowed
