"""``tunemantra ddex build``, ``deliver`` and ``bench delivery`` through the real CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from connectors.ddex.validate import validate_message
from demo.assets import write_cover
from pipelines import resources
from pipelines.settings import get_settings
from tests.conftest import make_org
from tests.ddex.conftest import ALBUM_UPC, SINGLE_UPC, Label, make_label, profile_yaml


@pytest.fixture
def cli_label(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Label]:
    store = tmp_path / "store.db"
    shutil.copy(sqlite_template, store)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    profile_yaml(profiles, "harbour")
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", f"sqlite:///{store}")
    monkeypatch.setenv("TUNEMANTRA_DSP_PROFILES", str(profiles))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    factory = resources.get_session_factory()
    try:
        yield make_label(factory, make_org(factory, "acme"), get_settings().data_dir)
    finally:
        resources.get_engine().dispose()
        get_settings.cache_clear()
        resources.engine_for.cache_clear()


def test_ddex_build_prints_valid_paths_and_lists_failures(cli_label: Label, tmp_path: Path) -> None:
    write_cover(cli_label.assets / SINGLE_UPC / "cover.jpg", seed=1, size=800)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["ddex", "build", "--org", "acme", "--all", "--dsp", "harbour", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    (path,) = result.stdout.split()
    assert Path(path) == out / ALBUM_UPC / f"{ALBUM_UPC}.xml"
    assert validate_message(Path(path).read_bytes()) == []
    assert f"FAILED {SINGLE_UPC} [harbour] front_cover: artwork_too_small" in result.stderr
    one = CliRunner().invoke(
        app,
        [
            "ddex",
            "build",
            "--org",
            "acme",
            "--release",
            ALBUM_UPC,
            "--dsp",
            "harbour",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["release"] == ALBUM_UPC
    bad = CliRunner().invoke(
        app, ["ddex", "build", "--org", "acme", "--dsp", "nope", "--all", "--out", str(out)]
    )
    assert bad.exit_code == 2 and "unknown DSP 'nope'" in bad.stderr


def test_deliver_command(cli_label: Label) -> None:
    result = CliRunner().invoke(app, ["deliver", "--org", "acme", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["upc"], r["state"]) for r in rows} == {
        (ALBUM_UPC, "uploaded"),
        (SINGLE_UPC, "uploaded"),
    }


def test_bench_delivery_packages_every_track() -> None:
    result = CliRunner().invoke(app, ["bench", "delivery", "--tracks", "25", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert (figures["tracks"], figures["releases"], figures["packaged_tracks"]) == (25, 3, 25)
    assert figures["failed_tracks"] == 0 and figures["tracks_per_minute"] > 0


def test_acks_go_on_past_an_unreachable_dsp_and_say_which_failed(
    cli_label: Label, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tunemantra ddex acks``: Aurora's SFTP host does not resolve (gaierror) and Boreal's
    port refuses; both are reported failed with their error, and Harbour (a local folder,
    after them in name order) is still polled and its acknowledgement applied. Exit code 1."""
    import socket

    from connectors.ddex.ack import ack_xml

    profiles = Path(get_settings().data_dir).parent / "profiles"
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    profile_yaml(profiles, "aurora", protocol="sftp", url="sftp://u@nonexistent.invalid/in/")
    profile_yaml(profiles, "boreal", protocol="sftp", url=f"sftp://u@127.0.0.1:{closed}/in/")
    monkeypatch.setenv("TUNEMANTRA_SFTP_KNOWN_HOSTS", str(profiles / "known_hosts"))
    (profiles / "known_hosts").write_text("")
    sent = CliRunner().invoke(app, ["deliver", "--org", "acme", "--dsp", "harbour", "--json"])
    assert sent.exit_code == 0, sent.output
    album = next(r for r in map(json.loads, sent.stdout.splitlines()) if r["upc"] == ALBUM_UPC)
    acks = cli_label.data_dir / "dsp" / "harbour" / "acknowledgements"
    acks.mkdir(parents=True, exist_ok=True)
    (acks / "ACK_album.xml").write_bytes(ack_xml(album["message_path"], "FileOK", ack_id="A"))
    result = CliRunner().invoke(app, ["ddex", "acks", "--org", "acme"])
    assert result.exit_code == 1, result.output
    out = {r["dsp"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert list(out) == ["aurora", "boreal", "harbour"]
    assert out["aurora"]["status"] == out["boreal"]["status"] == "failed"
    assert "nonexistent.invalid" in out["aurora"]["error"]
    assert f"127.0.0.1:{closed}" in out["boreal"]["error"]
    assert (out["harbour"]["status"], out["harbour"]["applied"]) == ("ok", 1)
    assert "aurora" in result.stderr and "boreal" in result.stderr
    # the Airflow task's entry point: every DSP polled, then the task fails naming the two
    from pipelines.tasks import delivery

    single = next(r for r in map(json.loads, sent.stdout.splitlines()) if r["upc"] == SINGLE_UPC)
    (acks / "ACK_single.xml").write_bytes(ack_xml(single["message_path"], "FileOK", ack_id="B"))
    with pytest.raises(delivery.AckPollFailed) as failed:
        delivery.poll_task("acme", "2026-03-02T10:30:00+00:00")
    assert "aurora: DropConnectionError" in str(failed.value) and "boreal: " in str(failed.value)
    again = CliRunner().invoke(app, ["ddex", "acks", "--org", "acme"])
    harbour = [r for r in map(json.loads, again.stdout.splitlines()) if r["dsp"] == "harbour"]
    assert harbour[0]["applied"] == 0  # the task had applied Single's ACK already
