"""Formats per organisation (issue 19 item 4): the CLI round trip, versioning, org-first
detection, two organisations isolated, the spec version recorded on the ingested file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from connectors.formats.registry import default_registry, detect, org_registry, org_version
from pipelines.ingest.files import ingest_path
from pipelines.resources import Resources
from schemas.format_spec import SpecError
from schemas.store import db, org_formats
from schemas.store.models import IngestFile
from tests.conftest import make_org
from tests.pipelines.test_cli import env  # noqa: F401  (the CLI's settings fixture)

SPOTIFY = (Path(__file__).resolve().parents[2] / "schemas" / "formats" / "spotify.yaml").read_text()
HEAD = "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency\n"
runner = CliRunner()


def own_spotify(name: str = "acme_spotify", extra: str = "") -> str:
    return SPOTIFY.replace("name: spotify", f"name: {name}", 1) + extra


def test_formats_cli_round_trip(env: str, tmp_path: Path) -> None:  # noqa: F811
    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    cli("db", "upgrade")
    cli("org", "create", "acme", "--name", "Acme")
    cli("org", "create", "beta", "--name", "Beta")
    spec = tmp_path / "acme_spotify.yaml"
    spec.write_text(own_spotify())
    assert "version 1 added" in cli("formats", "add", str(spec), "--org", "acme")
    assert "version 1 unchanged" in cli("formats", "add", str(spec), "--org", "acme")
    spec.write_text(own_spotify(extra="# reviewed\n"))
    out = json.loads(cli("formats", "add", str(spec), "--org", "acme", "--json"))
    assert out == {"name": "acme_spotify", "version": 2, "new": True}
    rows = json.loads(cli("formats", "list", "--org", "acme", "--json"))
    assert rows[0] == {"name": "acme_spotify", "source": "acme", "version": 2}
    assert "spotify" in {r["name"] for r in rows}
    assert "acme_spotify" not in cli("formats", "list", "--org", "beta")
    assert "# reviewed" in cli("formats", "show", "acme_spotify", "--org", "acme")
    assert "no format" in cli("formats", "show", "acme_spotify", "--org", "beta", code=2)
    assert "(shipped)" in cli("formats", "show", "spotify")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nkind: delimited\ncolumns: [{name: a, field: nonsense}]\n")
    err = cli("formats", "add", str(bad), "--org", "acme", code=2)
    assert "invalid format spec" in err and "columns.0" in err
    assert "no format" in cli("formats", "remove", "acme_spotify", "--org", "beta", code=2)
    assert "2 version(s) kept" in cli("formats", "remove", "acme_spotify", "--org", "acme")
    assert "acme_spotify" not in cli("formats", "list", "--org", "acme")


@pytest.mark.slow  # two real ingests (findings report, Data Docs): about 10 CPU-s
def test_detection_prefers_the_org_format_and_records_its_version(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    acme, beta = make_org(factory, "acme"), make_org(factory, "beta")
    with db.transaction(factory, actor="test") as s:
        org_formats.add(s, acme, own_spotify())
        stored, new = org_formats.add(s, acme, own_spotify(extra="# v2\n"))
        assert (stored.version, new) == (2, True)
        with pytest.raises(SpecError):
            org_formats.add(s, acme, "name: x\n")
    with factory() as s:
        assert org_formats.current(s, beta) == []
        own = [(f.spec, f.version) for f in org_formats.current(s, acme)]
    name = "spotify_x_202601_EUR.csv"
    reg = org_registry(own)
    # the same fingerprint and file name as the shipped spotify: the organisation's wins
    assert detect(name, HEAD.encode(), registry=reg).name == "acme_spotify"
    assert org_version(reg["acme_spotify"]) == 2
    assert "acme_spotify" not in default_registry()  # the shared registry is untouched
    report = tmp_path / name
    report.write_text(HEAD + "GB,premium,u1,GBAAA2600001,123456789012,T,A,10,1.50,EUR\n")
    res = Resources.of(factory, tmp_path / "data")
    out = ingest_path(res, org_id=acme, path=report, name=name)
    assert (out.format, out.format_version) == ("acme_spotify", 2), out
    assert out.as_dict()["format_version"] == 2
    other = ingest_path(res, org_id=beta, path=report, name=name)
    assert (other.format, other.format_version) == ("spotify", None), other
    with factory() as s:
        row = s.get(IngestFile, out.file_id)
        assert row is not None and row.format_version == 2
