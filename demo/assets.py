"""Generated audio and cover art for the sample label and the delivery benchmark.

Small but valid by the QC rules: 30.5 s of a quiet sine tone per track (mono, 16-bit,
44.1 kHz; FLAC at the fastest compression level, or WAV), and a 3000×3000 RGB JPEG per
release (a few colour bands, encoded at quality 70). Files are laid out the way
``pipelines.delivery`` finds assets::

    <assets>/<UPC>/cover.jpg
    <assets>/<UPC>/<ISRC>.flac   (or .wav)

Everything is deterministic for a seed, and a file that exists already is kept (reruns of
``make demo`` do not regenerate them).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

SAMPLE_RATE = 44_100
SECONDS = 30.5
COVER = 3000


def write_audio(
    path: Path,
    *,
    freq: float = 440.0,
    seconds: float = SECONDS,
    rate: int = SAMPLE_RATE,
    subtype: str = "PCM_16",
    amplitude: float = 0.1,
) -> Path:
    """A sine tone (``amplitude`` 0 writes digital silence) as WAV or FLAC by suffix."""
    import numpy as np
    import soundfile as sf  # type: ignore[import-untyped]

    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(rate * seconds)
    signal = (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)
    tmp = path.with_name(f".{path.name}.part")
    if path.suffix.lower() == ".flac":
        sf.write(tmp, signal, rate, subtype=subtype, format="FLAC", compression_level=0.0)
    else:
        sf.write(tmp, signal, rate, subtype=subtype, format="WAV")
    tmp.replace(path)
    return path


def write_cover(
    path: Path, *, seed: int, size: int | tuple[int, int] = COVER, mode: str = "RGB"
) -> Path:
    """Horizontal colour bands (a stand-in for cover art), JPEG or PNG by suffix."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = (size, size) if isinstance(size, int) else size
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    bands = 6
    for i in range(bands):
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((0, i * height // bands, width, (i + 1) * height // bands), fill=colour)
    if mode != "RGB":
        img = img.convert(mode)
    tmp = path.with_name(f".{path.name}.part")
    if path.suffix.lower() == ".png":
        img.save(tmp, format="PNG", compress_level=1)
    else:
        img.save(tmp, format="JPEG", quality=70)
    tmp.replace(path)
    return path


def release_assets(
    assets: Path,
    upc: str,
    isrcs: list[str],
    *,
    seed: int,
    audio: Literal["flac", "wav"] = "flac",
    overwrite: bool = False,
) -> list[Path]:
    """Cover and per-track audio for one release (existing files kept unless overwrite)."""
    folder = assets / upc
    written = []
    cover = folder / "cover.jpg"
    if overwrite or not cover.exists():
        written.append(write_cover(cover, seed=seed))
    for n, isrc in enumerate(isrcs):
        path = folder / f"{isrc}.{audio}"
        if overwrite or not path.exists():
            written.append(write_audio(path, freq=220.0 + 55.0 * ((seed + n) % 12)))
    return written
