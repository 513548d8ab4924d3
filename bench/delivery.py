"""Benchmark: QC + ERN build + XSD validation + packaging to a local folder (``tunemantra
bench delivery``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from connectors.ddex import ern, qc
from connectors.ddex.model import (
    Credit,
    Header,
    Party,
    Problem,
    ReleaseSnapshot,
    TrackInfo,
    errors,
)
from connectors.ddex.package import stage_release
from connectors.ddex.validate import validate_message
from pipelines.delivery.deals import deal_info
from schemas.identifiers import gtin_check_digit


def bench(
    tracks: int, workdir: Path, *, per_release: int = 10, pool: int = 32, seed: int = 7
) -> dict[str, Any]:
    """QC + ERN build + XSD validation + packaging to a local folder for ``tracks`` tracks.

    Inputs are generated first (not timed): ``pool`` distinct FLAC files and 8 covers, shared
    round-robin by the tracks (every track's file is still opened, checked, hashed and copied
    on its own). Timed: per release, audio and artwork QC, metadata and cross-release checks,
    building the NewReleaseMessage, validating it against the XSD plus the extra checks, and
    staging the release folder (message + resources).
    """
    import time

    from connectors.ddex.validate import schema
    from demo.assets import write_audio, write_cover
    from schemas.territories import WORLDWIDE

    src = workdir / "inputs"
    audio_pool = [
        write_audio(src / f"a{i}.flac", freq=200.0 + 13.0 * i) for i in range(min(pool, tracks))
    ]
    covers = [write_cover(src / f"c{i}.jpg", seed=seed + i) for i in range(8)]
    out = workdir / "out"
    sender = Party("PADPIDA2026BENCH0R", "Bench Records")
    recipient = Party("PADPIDA2026AURORAN", "Aurora Music")
    schema()  # compiled once per process, as in a long-running worker
    deal = deal_info("SubscriptionModel", ["OnDemandStream"], WORLDWIDE, dt.date(2026, 1, 1))
    started = time.perf_counter()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    done = failed = 0
    snapshots: list[tuple[ReleaseSnapshot, list[tuple[Path, str]], list[Problem]]] = []
    n_releases = (tracks + per_release - 1) // per_release
    for r in range(n_releases):
        body = f"50634599{r:04d}"
        upc = body + gtin_check_digit(body)
        problems: list[Problem] = []
        resources: list[tuple[Path, str]] = []
        infos = []
        for t in range(min(per_release, tracks - r * per_release)):
            isrc = f"GBBEN26{r * per_release + t:05d}"
            path = audio_pool[(r * per_release + t) % len(audio_pool)]
            name = f"{upc}_01_{t + 1:03d}.flac"
            audio, found = qc.inspect_audio(path, f"resources/{name}", field=f"tracks[{t + 1}]")
            problems += found
            resources.append((path, name))
            infos.append(
                TrackInfo(
                    isrc,
                    f"Track {t + 1}",
                    None,
                    "Bench Artist",
                    31,
                    False,
                    1,
                    t + 1,
                    (Credit("Bench Artist", "MainArtist"),),
                    audio,
                )
            )
        cover_path = covers[r % len(covers)]
        cover, found = qc.inspect_image(cover_path, f"resources/{upc}.jpg", field="front_cover")
        problems += found
        resources.append((cover_path, f"{upc}.jpg"))
        snap = ReleaseSnapshot(
            upc,
            f"Bench Release {r}",
            "Album",
            "Bench Records",
            "Bench Artist",
            dt.date(2026, 1, 1),
            "Pop",
            "2026 Bench",
            "2026 Bench",
            tuple(infos),
            cover,
            (deal,),
        )
        snapshots.append((snap, resources, problems + qc.check_metadata(snap)))
    cross = qc.check_catalogue(s for s, _, _ in snapshots)
    for snap, resources, problems in snapshots:
        problems = problems + cross.get(snap.upc, [])
        if not errors(problems):
            header = Header(f"BENCH-{snap.upc}", sender, recipient, now)
            xml = ern.build_new_release(header, snap, track_releases=True)
            problems += validate_message(xml)
        if errors(problems):
            failed += len(snap.tracks)
            continue
        stage_release(out, snap.upc, xml, resources)
        done += len(snap.tracks)
    seconds = time.perf_counter() - started
    return {
        "tracks": tracks,
        "releases": n_releases,
        "packaged_tracks": done,
        "failed_tracks": failed,
        "seconds": round(seconds, 3),
        "tracks_per_minute": round(tracks / seconds * 60) if seconds else None,
        "distinct_audio_files": len(audio_pool),
    }
