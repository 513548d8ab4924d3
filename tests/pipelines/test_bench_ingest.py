"""``tunemantra bench ingest`` on small files: both ingested, and the floor measured the same
lines (the floor is what the speed target is judged against, so it must read every line)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from bench.ingest import ingest_floor, run


@pytest.fixture(scope="module")
def result() -> dict:
    return run(3_000)


@pytest.mark.slow  # the ingestion benchmark end to end
def test_both_files_are_ingested_with_their_floor(result: dict) -> None:
    files = {r["format"]: r for r in result["results"]}
    assert set(files) == {"dsr", "distributor_csv"}
    assert files["distributor_csv"]["lines"] == 3_000
    # a DSR's lines are its usage records; the rest of its 3,000 are summaries and blocks
    assert 0 < files["dsr"]["lines"] < 3_000
    for r in files.values():
        assert r["status"] == "ingested"
        assert r["seconds"] > 0 and r["cpu_seconds"] > 0
        assert r["floor_seconds"] > 0 and r["floor_cpu_seconds"] > 0
        # the floor is a part of what ingestion does, so ingestion never beats it
        assert r["ratio"] > 1 and r["floor_lines_per_second"] > r["lines_per_second"]
        # CPU-seconds spread over every core take no longer than the wall time they took
        assert r["floor_bound_lines_per_second"] >= 0.9 * r["floor_lines_per_second"]


def test_the_floor_reads_hashes_and_splits_every_line(tmp_path: Path) -> None:
    text = "ISRC,Units,Net\n" + "".join(f"GBAAA26{i:05d},{i},0.{i:04d}\n" for i in range(500))
    plain = tmp_path / "report.csv"
    plain.write_text(text)
    packed = tmp_path / "report.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        floor = ingest_floor(path)
        assert floor["lines"] == 501  # the header is a line the parser reads too
        assert floor["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert floor["seconds"] > 0 and floor["cpu_seconds"] >= 0


def test_the_floor_keeps_the_widest_record_of_a_ragged_file(tmp_path: Path) -> None:
    """A DSR's records differ in width: the floor parses every field of the widest, not
    only as many as the first line has."""
    path = tmp_path / "dsr.tsv"
    path.write_text("HEAD\ta\n" + "".join(f"RU01\t{i}\tx\ty\tz\n" for i in range(100)))
    floor = ingest_floor(path)
    assert floor["lines"] == 101
    assert floor["columns"] == 5 + 1  # five fields and the line's hash
    assert floor["fields"] == 2 + 100 * 5
