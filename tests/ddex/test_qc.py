"""The QC gate: real generated audio and images, each rule failing on its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from connectors.ddex import qc
from demo.assets import write_audio, write_cover
from tests.ddex.test_ern import snapshot


def codes(problems: list[qc.Problem]) -> set[str]:
    return {p.code for p in problems}


def test_good_flac_and_wav_pass_with_their_details(tmp_path: Path) -> None:
    flac, found = qc.inspect_audio(write_audio(tmp_path / "a.flac"), "resources/a.flac", field="t1")
    assert found == []
    assert flac is not None
    assert (flac.container, flac.codec, flac.bits_per_sample, flac.sample_rate) == (
        "FLAC",
        "FLAC",
        16,
        44100,
    )
    assert flac.duration_seconds == pytest.approx(30.5)
    assert flac.md5 == qc.file_md5(tmp_path / "a.flac")[0]
    wav, found = qc.inspect_audio(
        write_audio(tmp_path / "b.wav", subtype="PCM_24", rate=48000), "x", field="t2"
    )
    assert found == []
    assert wav is not None and (wav.container, wav.codec, wav.bits_per_sample) == ("WAV", "PCM", 24)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"subtype": "PCM_U8", "name": "a.wav"}, "audio_bit_depth"),
        ({"rate": 22050}, "audio_sample_rate"),
        ({"seconds": 30.0}, "audio_too_short"),
        ({"amplitude": 0.0}, "audio_silent"),
        ({"amplitude": 0.0005}, "audio_silent"),  # -66 dBFS
    ],
)
def test_audio_rules(tmp_path: Path, kwargs: dict[str, object], code: str) -> None:
    name = str(kwargs.pop("name", "a.flac"))
    path = write_audio(tmp_path / name, **kwargs)  # type: ignore[arg-type]
    _, found = qc.inspect_audio(path, "x", field="tracks[1].audio")
    assert codes(found) == {code}
    assert found[0].field == "tracks[1].audio"


def test_audio_missing_unreadable_or_not_allowed(tmp_path: Path) -> None:
    _, found = qc.inspect_audio(tmp_path / "none.flac", "x", field="f")
    assert codes(found) == {"missing_audio"}
    (tmp_path / "fake.flac").write_bytes(b"ID3\x03 not really audio" * 20)
    _, found = qc.inspect_audio(tmp_path / "fake.flac", "x", field="f")
    assert codes(found) == {"audio_unreadable"}
    wav = write_audio(tmp_path / "a.wav")
    _, found = qc.inspect_audio(wav, "x", field="f", formats=["FLAC"])
    assert codes(found) == {"audio_format"}


def test_good_cover_passes(tmp_path: Path) -> None:
    image, found = qc.inspect_image(
        write_cover(tmp_path / "c.jpg", seed=1), "r/c.jpg", field="front_cover"
    )
    assert found == []
    assert image is not None and (image.codec, image.width, image.height) == ("JPEG", 3000, 3000)
    png, found = qc.inspect_image(
        write_cover(tmp_path / "c.png", seed=1), "r/c.png", field="front_cover"
    )
    assert found == [] and png is not None and png.codec == "PNG"


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("small.jpg", {"size": 1400}, {"artwork_too_small"}),
        ("wide.jpg", {"size": (3200, 3000)}, {"artwork_not_square"}),
        ("cmyk.jpg", {"mode": "CMYK"}, {"artwork_colour_mode"}),
        ("alpha.png", {"mode": "RGBA"}, {"artwork_colour_mode"}),
        (
            "grey.gif",
            {"mode": "L", "size": 1000},
            {"artwork_format", "artwork_colour_mode", "artwork_too_small"},
        ),
    ],
)
def test_artwork_rules(
    tmp_path: Path, name: str, kwargs: dict[str, object], expected: set[str]
) -> None:
    path = tmp_path / name
    if name.endswith(".gif"):
        from PIL import Image

        Image.new("L", (1000, 1000)).save(path, format="GIF")
    else:
        write_cover(path, seed=2, **kwargs)  # type: ignore[arg-type]
    _, found = qc.inspect_image(path, "x", field="front_cover")
    assert codes(found) == expected


def test_truncated_artwork_is_unreadable(tmp_path: Path) -> None:
    good = write_cover(tmp_path / "c.jpg", seed=3).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    _, found = qc.inspect_image(tmp_path / "cut.jpg", "x", field="front_cover")
    assert codes(found) == {"artwork_unreadable"}
    _, found = qc.inspect_image(tmp_path / "none.jpg", "x", field="front_cover")
    assert codes(found) == {"missing_artwork"}


def test_metadata_rules() -> None:
    good = snapshot()
    assert qc.check_metadata(good) == []
    tracks = list(good.tracks)
    bad = dataclasses.replace(
        good,
        upc="5063450000178",
        genre=None,
        title="HARBOUR LIGHTS",
        deals=(),
        tracks=(
            dataclasses.replace(tracks[0], isrc="GB-XX"),
            dataclasses.replace(tracks[1], title="song two"),
            dataclasses.replace(tracks[1], isrc=tracks[1].isrc, track_number=3),
        ),
    )
    found = qc.check_metadata(bad)
    assert codes(found) == {
        "invalid_upc",
        "missing_genre",
        "no_deals",
        "invalid_isrc",
        "duplicate_isrc",
        "title_case",
    }
    assert {p.severity for p in found if p.code == "title_case"} == {"warning"}
    assert qc.check_metadata(dataclasses.replace(good, deals=()), require_deals=False) == []


def test_catalogue_rules() -> None:
    a = snapshot()
    b = dataclasses.replace(snapshot(), title="Other")  # same UPC on a second release
    c = dataclasses.replace(
        snapshot(upc="5063450000346"),
        tracks=(dataclasses.replace(a.tracks[0], title="A different song"),),
    )
    found = qc.check_catalogue([a, b, c])
    assert "upc_reused" in codes(found["5063450000179"])
    assert codes(found["5063450000346"]) == {"isrc_reused"}
    assert qc.check_catalogue([a]) == {}
