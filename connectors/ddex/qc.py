"""The QC gate before packaging: audio, artwork and metadata, every reason listed.

* Audio (libsndfile through ``soundfile``): WAV or FLAC by content (not by name), at least
  16-bit and 44.1 kHz, longer than 30 s, and not silent. Silence is judged on 16 windows
  spread evenly over the file (peak below -60 dBFS in all of them), so QC reads a bounded
  amount of every file however long it is.
* Artwork (Pillow): JPEG or PNG by content, RGB, square, at least 3000×3000; JPEGs are
  decoded at 1/8 scale and PNGs have their chunk checksums verified, so a truncated file fails.
* Metadata: valid ISRC and UPC, a genre (the ERN requires one), no ISRC twice on a release,
  no UPC on two releases and no ISRC on two different recordings across the releases checked
  together, and warnings (never blocking) for titles in all capitals or all lower case.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from connectors.ddex.model import AudioFile, ImageFile, Problem, ReleaseSnapshot
from schemas import identifiers

MIN_SAMPLE_RATE = 44_100
MIN_BITS = 16
MIN_SECONDS = 30.0
SILENCE_DBFS = -60.0
MIN_ARTWORK = 3000
SILENCE_WINDOWS = 16
WINDOW_FRAMES = 2048
_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64, "PCM_S8": 8}
_BITS |= {"PCM_U8": 8, "ULAW": 8, "ALAW": 8}
_CHUNK = 1024 * 1024


def file_md5(path: Path) -> tuple[str, int]:
    """MD5 (hex) and size of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def inspect_audio(
    path: Path | None, uri: str, *, field: str, formats: Iterable[str] = ("WAV", "FLAC")
) -> tuple[AudioFile | None, list[Problem]]:
    """Technical details of one audio file and every QC problem with it."""
    import numpy as np
    import soundfile as sf  # type: ignore[import-untyped]

    if path is None or not path.is_file():
        return None, [Problem("missing_audio", field, f"no audio file (expected {path})")]
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return None, [Problem("audio_unreadable", field, f"not a readable audio file: {exc}")]
    problems: list[Problem] = []
    container = info.format
    allowed = {f.upper() for f in formats}
    if container not in {"WAV", "FLAC"} or container not in allowed:
        problems.append(
            Problem(
                "audio_format",
                field,
                f"audio is {container}; this DSP takes {', '.join(sorted(allowed))}",
            )
        )
    bits = _BITS.get(info.subtype, 0)
    if bits < MIN_BITS:
        problems.append(
            Problem("audio_bit_depth", field, f"{info.subtype} is below {MIN_BITS}-bit")
        )
    if info.samplerate < MIN_SAMPLE_RATE:
        problems.append(
            Problem(
                "audio_sample_rate",
                field,
                f"sample rate {info.samplerate} Hz is below {MIN_SAMPLE_RATE} Hz",
            )
        )
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds <= MIN_SECONDS:
        problems.append(
            Problem("audio_too_short", field, f"{seconds:.1f} s is not longer than 30 s")
        )
    peak = 0.0
    try:
        with sf.SoundFile(str(path)) as snd:
            step = max(snd.frames // SILENCE_WINDOWS, 1)
            for start in range(0, max(snd.frames, 1), step):
                snd.seek(start)
                block = snd.read(WINDOW_FRAMES, dtype="float32", always_2d=True)
                if block.size:
                    peak = max(peak, float(np.abs(block).max()))
                if peak > 0.5:
                    break
    except (sf.LibsndfileError, RuntimeError) as exc:
        problems.append(Problem("audio_unreadable", field, f"audio cannot be decoded: {exc}"))
    if peak <= 10 ** (SILENCE_DBFS / 20):
        problems.append(
            Problem("audio_silent", field, f"audio is silent (peak below {SILENCE_DBFS:g} dBFS)")
        )
    md5, size = file_md5(path)
    audio = AudioFile(
        uri=uri,
        md5=md5,
        size=size,
        codec="FLAC" if container == "FLAC" else "PCM",
        container="FLAC" if container == "FLAC" else "WAV",
        channels=info.channels,
        sample_rate=info.samplerate,
        bits_per_sample=bits,
        duration_seconds=round(seconds, 3),
    )
    return audio, problems


def inspect_image(
    path: Path | None, uri: str, *, field: str
) -> tuple[ImageFile | None, list[Problem]]:
    """Technical details of the front cover and every QC problem with it."""
    from PIL import Image, UnidentifiedImageError

    if path is None or not path.is_file():
        return None, [Problem("missing_artwork", field, f"no front cover image (expected {path})")]
    problems: list[Problem] = []
    try:
        with Image.open(path) as img:
            fmt, (width, height), mode = img.format, img.size, img.mode
            if fmt == "JPEG":
                img.draft("RGB", (max(width // 8, 1), max(height // 8, 1)))
                img.load()
            elif fmt == "PNG":
                img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        return None, [Problem("artwork_unreadable", field, f"not a readable image: {exc}")]
    if fmt not in ("JPEG", "PNG"):
        problems.append(Problem("artwork_format", field, f"artwork is {fmt}; JPEG or PNG only"))
    if mode != "RGB":
        problems.append(Problem("artwork_colour_mode", field, f"artwork is {mode}, not RGB"))
    if width != height:
        problems.append(Problem("artwork_not_square", field, f"artwork is {width}×{height}"))
    if min(width, height) < MIN_ARTWORK:
        problems.append(
            Problem(
                "artwork_too_small",
                field,
                f"artwork is {width}×{height}; at least {MIN_ARTWORK}×{MIN_ARTWORK}",
            )
        )
    md5, size = file_md5(path)
    codec: Literal["JPEG", "PNG"] = "PNG" if fmt == "PNG" else "JPEG"
    return ImageFile(uri, md5, size, codec, width, height), problems


def _case_warning(title: str, field: str) -> Problem | None:
    letters = [c for c in title if c.isalpha()]
    if len(letters) < 2:
        return None
    if all(c.isupper() for c in letters):
        return Problem("title_case", field, f"{title!r} is all capitals", "warning")
    if all(c.islower() for c in letters):
        return Problem("title_case", field, f"{title!r} is all lower case", "warning")
    return None


def check_metadata(release: ReleaseSnapshot, *, require_deals: bool = True) -> list[Problem]:
    """Identifier, completeness and style checks of one release."""
    problems: list[Problem] = []
    if not identifiers.is_valid_gtin(release.upc):
        problems.append(Problem("invalid_upc", "upc", f"UPC {release.upc!r} is not valid"))
    if not release.genre:
        problems.append(Problem("missing_genre", "genre", "a genre is required"))
    if not release.tracks:
        problems.append(Problem("no_tracks", "tracks", "the release has no tracks"))
    if require_deals and not release.deals:
        problems.append(
            Problem("no_deals", "deals", "no active deal for this DSP (no deal = no availability)")
        )
    if w := _case_warning(release.title, "title"):
        problems.append(w)
    seen: dict[str, int] = {}
    for i, track in enumerate(release.tracks, start=1):
        where = f"tracks[{i}]"
        if not identifiers.is_valid_isrc(track.isrc):
            problems.append(
                Problem("invalid_isrc", f"{where}.isrc", f"ISRC {track.isrc!r} is not valid")
            )
        elif track.isrc in seen:
            problems.append(
                Problem(
                    "duplicate_isrc",
                    f"{where}.isrc",
                    f"ISRC {track.isrc} is also on track {seen[track.isrc]}",
                )
            )
        seen.setdefault(track.isrc, i)
        if not track.title.strip():
            problems.append(Problem("missing_title", f"{where}.title", "empty track title"))
        elif w := _case_warning(track.title, f"{where}.title"):
            problems.append(w)
    return problems


def check_catalogue(releases: Iterable[ReleaseSnapshot]) -> dict[str, list[Problem]]:
    """Problems between releases: a UPC on two releases, an ISRC on two different recordings
    (same ISRC, different title, version, artist or duration). Keyed by UPC."""
    by_upc: dict[str, list[ReleaseSnapshot]] = defaultdict(list)
    recordings: dict[str, set[tuple[str, str | None, str, int]]] = defaultdict(set)
    for r in releases:
        by_upc[r.upc].append(r)
        for t in r.tracks:
            recordings[t.isrc].add((t.title, t.version, t.artist, t.duration_seconds))
    out: dict[str, list[Problem]] = defaultdict(list)
    for upc, group in by_upc.items():
        if len(group) > 1:
            out[upc].append(Problem("upc_reused", "upc", f"UPC {upc} is on {len(group)} releases"))
        for t in group[0].tracks:
            if len(recordings[t.isrc]) > 1:
                out[upc].append(
                    Problem(
                        "isrc_reused",
                        f"tracks[{t.isrc}].isrc",
                        f"ISRC {t.isrc} is used for {len(recordings[t.isrc])} different recordings",
                    )
                )
    return dict(out)
