"""The admin CLI and the demo, on SQLite and on PostgreSQL, through TUNEMANTRA_* settings."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import LAZY, app, lazy_commands
from pipelines import resources
from pipelines.settings import get_settings
from schemas import identifiers
from schemas.store.models import (
    ApiKey,
    AuditEntry,
    IngestFile,
    Organisation,
    Release,
    Split,
    Track,
)
from schemas.store.runs import RoyaltyRun

runner = CliRunner()


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)  # the data dir relative, as the default ./var is
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", "var")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()
    resources.engine_for.cache_clear()


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_org_and_keys(env: str) -> None:
    cli("db", "upgrade")
    assert "created organisation acme" in cli("org", "create", "acme", "--name", "Acme")
    dup = runner.invoke(app, ["org", "create", "acme", "--name", "Again"])
    assert dup.exit_code == 2
    assert "already exists" in dup.output
    bad = runner.invoke(app, ["org", "create", "Not A Slug", "--name", "X"])
    assert bad.exit_code == 2
    key = cli("apikey", "create", "--org", "acme", "--role", "finance").strip()
    assert key.startswith("tm_")
    no_payee = runner.invoke(app, ["apikey", "create", "--org", "acme", "--role", "payee"])
    assert no_payee.exit_code == 2
    assert "payee" in no_payee.output
    missing = runner.invoke(app, ["apikey", "create", "--org", "nope", "--role", "admin"])
    assert missing.exit_code == 2
    engine = sa.create_engine(env)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(ApiKey.key_hash)).scalar_one()
        logged = conn.execute(
            sa.select(AuditEntry.after).where(AuditEntry.entity == "api_keys")
        ).scalar_one()
    engine.dispose()
    assert key not in stored  # only a hash is kept
    assert "key_hash" not in logged
    cli("org", "create", "beta", "--name", "Beta", "--currency", "GBP")
    orgs = cli("org", "list").splitlines()
    assert orgs[0].split("\t") == ["slug", "name", "currency", "created"]
    assert [line.split("\t")[:3] for line in orgs[1:]] == [
        ["acme", "Acme", "EUR"],
        ["beta", "Beta", "GBP"],
    ]
    keys = cli("apikey", "list", "--org", "acme").splitlines()
    assert [line.split("\t")[:2] for line in keys[1:]] == [[key.split("_")[1], "finance"]]
    assert "no keys" in cli("apikey", "list", "--org", "beta")
    bad_role = runner.invoke(app, ["apikey", "create", "--org", "acme", "--role", "boss"])
    assert bad_role.exit_code == 2
    assert "admin, finance, analyst or payee" in bad_role.output
    rates = Path("rates.csv")
    rates.write_text(
        "base,quote,period,rate,source\nUSD,EUR,2026-01,0.92,ECB\nGBP,EUR,2026-02,1.17,ECB\n"
    )
    cli("fx", "import", str(rates), "--org", "acme")
    assert "no rates" in cli("fx", "list", "--org", "beta")
    listed = cli("fx", "list", "--org", "acme", "--currency", "usd", "--json").splitlines()
    assert [json.loads(x) for x in listed] == [
        {"period": "2026-01", "base": "USD", "quote": "EUR", "rate": "0.92", "source": "ECB"}
    ]
    assert len(cli("fx", "list", "--org", "acme", "--period", "2026-02").splitlines()) == 2
    assert runner.invoke(app, ["fx", "list", "--org", "acme", "--period", "2026-2"]).exit_code


def test_help_starts_without_the_product_and_lists_every_command() -> None:
    """``tunemantra --help`` and ``--version`` import Typer alone (no store, Polars or API),
    and the one-line help of each lazily imported command is that command's own."""
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "v = CliRunner().invoke(app, ['--version'])\n"
        "heavy = {'polars', 'sqlalchemy', 'fastapi', 'pipelines', 'schemas', 'rich'}\n"
        "print(r.exit_code, v.output.strip(), sorted(heavy & set(sys.modules)))\n"
        "print(r.output)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[0] == f"0 tunemantra {version('tunemantra')} []", out
    real = lazy_commands()
    assert set(real.commands) == set(LAZY)
    for name, help_line in LAZY.items():
        assert real.commands[name].get_short_help_str(200) == help_line, name
        assert f"  {name} " in out
    assert "approve" in cli("royalty", "--help")  # a lazy group, resolved to run


@pytest.mark.slow  # the whole demo
def test_demo_builds_a_plausible_label_deterministically(env: str) -> None:
    out = cli("demo")
    assert "Northbound Records" in out
    engine = sa.create_engine(env)

    def snapshot() -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
        with engine.connect() as conn:
            tracks = conn.execute(sa.select(Track.isrc, Track.title).order_by(Track.isrc)).all()
            splits = conn.execute(
                sa.select(
                    Split.share, Split.territories, Split.effective_from, Split.effective_to
                ).order_by(Split.id)
            ).all()
        return [tuple(t) for t in tracks], [tuple(map(str, s)) for s in splits]

    first = snapshot()
    cli("demo")  # rerun: replaces the demo org, never duplicates it
    assert snapshot() == first
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Organisation)).scalar() == 1
        upcs = conn.execute(sa.select(Release.upc)).scalars().all()
        isrcs = conn.execute(sa.select(Track.isrc)).scalars().all()
        artists = conn.execute(sa.text("SELECT count(*) FROM artists")).scalar()
        payees = conn.execute(sa.text("SELECT count(*) FROM payees")).scalar()
        contracts = conn.execute(sa.text("SELECT count(*) FROM contracts")).scalar()
    engine.dispose()
    assert len(upcs) >= 8
    assert len(isrcs) >= 40
    assert all(identifiers.is_valid_gtin(u) for u in upcs)
    assert all(identifiers.is_valid_isrc(i) for i in isrcs)
    assert artists is not None and artists >= 5
    assert payees and contracts
    assert len(set(first[0])) == len(first[0])
    # The month's reports: five layouts ingested, the broken file quarantined with a reason.
    engine = sa.create_engine(env)
    with engine.connect() as conn:
        ledger = conn.execute(
            sa.select(IngestFile.format, IngestFile.status, IngestFile.quarantine_code)
        ).all()
    engine.dispose()
    assert sorted((f or "-", s.value, q or "") for f, s, q in ledger) == [
        ("-", "quarantined", "truncated_gzip"),
        ("apple", "ingested", ""),
        ("distributor_csv", "ingested", ""),
        ("dsr", "ingested", ""),
        ("spotify", "ingested", ""),
        ("spotify", "ingested", ""),
    ]


@pytest.mark.slow
def test_demo_again_after_other_runs_rebuilds_the_label(env: str) -> None:
    """`make demo` twice, with a correction of the demo's period and a later period run in
    between: the second demo rebuilds the label from nothing (runs, lake and ledger of the
    old one gone), it does not stop on the runs that point at each other."""
    cli("demo")
    cli("royalty", "run", "--org", "demo", "--period", "2026-H1", "--correction", "a fix")
    for step in ("approve", "lock"):
        cli("royalty", step, "--org", "demo", "--period", "2026-H1")
    cli("royalty", "run", "--org", "demo", "--period", "2026-H2")
    engine = sa.create_engine(env)
    with engine.connect() as conn:
        (old,) = conn.execute(sa.select(Organisation.id)).scalars().all()
    out = cli("demo")
    assert "Reconciled GBP: revenue" in out
    with engine.connect() as conn:
        (new,) = conn.execute(sa.select(Organisation.id)).scalars().all()
        runs = conn.execute(
            sa.select(RoyaltyRun.org_id, RoyaltyRun.period, RoyaltyRun.version)
        ).all()
    engine.dispose()
    assert new != old and [tuple(r) for r in runs] == [(new, "2026-H1", 1)]
    assert not list(Path("var").glob(f"**/org={old}"))  # the old label's files are gone
    verify = runner.invoke(app, ["audit", "verify", "--org", "demo"])
    assert verify.exit_code == 0 and "OK" in verify.output, verify.output


def test_import_command(env: str, tmp_path: Path) -> None:
    cli("db", "upgrade")
    cli("org", "create", "acme", "--name", "Acme")
    f = tmp_path / "cat.csv"
    f.write_text(
        "release_upc,release_title,release_type,label_name,release_artist,"
        "release_date,isrc,track_title,duration,track_number\n"
        "036000291452,A,Single,L,Art,2024-01-01,GBAAA2400001,A,180,1\n"
    )
    assert '"created": {"artists": 1, "releases": 1, "tracks": 1}' in cli(
        "import", "catalog", str(f), "--org", "acme"
    )
    f.write_text(f.read_text().replace("036000291452", "036000291453"))
    bad = runner.invoke(app, ["import", "catalog", str(f), "--org", "acme"])
    assert bad.exit_code == 2
    assert '"row": 2' in bad.output
    assert '"field": "release_upc"' in bad.output


def test_drop_add_refuses_a_password_in_the_url(env: str) -> None:
    cli("db", "upgrade")
    cli("org", "create", "acme", "--name", "Acme")
    bad = runner.invoke(
        app,
        ["drop", "add", "dsp", "--org", "acme", "--url", "sftp://label:hunter2@sftp.example/out/"],
    )
    assert bad.exit_code == 2
    assert "--secret-env" in bad.output
    ok = cli(
        "drop",
        "add",
        "dsp",
        "--org",
        "acme",
        "--url",
        "sftp://label@sftp.example/out/",
        "--secret-env",
        "DSP_PASSWORD",
    )
    assert "dsp -> sftp://label@sftp.example/out/" in ok
    assert "sftp://label@sftp.example/out/" in cli("drop", "list", "--org", "acme")


@pytest.mark.parametrize("period", ["2026/01", "../../escaped", "2026-13", "2026-1"])
def test_ingest_refuses_a_period_that_is_not_a_month(period: str, tmp_path: Path) -> None:
    # the period names the lake folder the lines go to: "2026/01" or "../x" would put them
    # where no run looks, or outside the lake
    src = tmp_path / "spotify_x_202601_EUR.csv"
    src.write_text("x\n")
    result = runner.invoke(app, ["ingest", str(src), "--org", "acme", "--period", period])
    assert result.exit_code == 2
    assert "is not a month" in result.output
    assert not (tmp_path / "var").exists()


def test_ingest_path_refuses_a_period_that_is_not_a_month(tmp_path: Path) -> None:
    from pipelines.ingest.files import ingest_path

    with pytest.raises(ValueError, match="not a month"):
        ingest_path(
            None,  # type: ignore[arg-type]  # refused before any session is opened
            org_id=1,
            path=tmp_path / "x.csv",
            name="x.csv",
            period="2026/01",
        )


@pytest.mark.slow  # a folder of real files through the CLI, end to end
def test_ingest_reads_a_folder_past_a_failing_file_and_exits_1(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tunemantra ingest DIR``: an old Mac (CR-only) report is read; a file our code fails
    on is reported FAILED with the error; the file after it is still read; exit code 1."""
    from connectors.formats import registry

    cli("db", "upgrade")
    cli("org", "create", "acme", "--name", "Acme")
    drop = tmp_path / "drop"
    drop.mkdir()
    head = "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency"
    for month, ends in (("01", "\r"), ("02", "\n"), ("03", "\r\n")):
        rows = [head, f"GB,premium,u1,GBAAA26000{month}1,,T,A,10,1.50,EUR"]
        (drop / f"spotify_x_2026{month}_EUR.csv").write_text(ends.join(rows) + ends)
    real = registry.detect

    def detect(filename: str, head: bytes, **kw: object) -> object:
        if "202602" in filename:
            raise RuntimeError("a fault nobody foresaw")
        return real(filename, head, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "detect", detect)
    result = runner.invoke(app, ["ingest", str(drop), "--org", "acme"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ingested    spotify_x_202601_EUR.csv [spotify] 1 lines")
    assert lines[1] == (
        "FAILED      spotify_x_202602_EUR.csv: RuntimeError: a fault nobody foresaw "
        "(not recorded: run again)"
    )
    assert lines[2].startswith("ingested    spotify_x_202603_EUR.csv [spotify] 1 lines")


def test_a_file_of_rejected_lines_is_quarantined_with_its_reasons(env: str, tmp_path: Path) -> None:
    """A report whose lines are all rejected (or more than the share allowed, 50% by default)
    is not ``ingested``: it is quarantined, its top reasons counted with an example line each,
    in the table and in ``--json``; every finding and the raw file are kept."""
    import json

    cli("db", "upgrade")
    cli("org", "create", "acme", "--name", "Acme")
    head = "country,product,track_uri,isrc,upc,track_name,artist_name,streams,revenue,currency"
    bad = tmp_path / "spotify_x_202601_EUR.csv"  # every amount misread (a comma for a point)
    rows = [f"GB,premium,u{i},GBAAA2600001,,T,A,10,{i}.50x,EUR" for i in range(1, 4)]
    bad.write_text("\n".join([head, *rows, "GB,premium,u4,GBAAA2600001,,T,A,10,1.50,EUX"]) + "\n")
    most = tmp_path / "spotify_x_202602_EUR.csv"  # two of three lines rejected: 67% > 50%
    rows = ["GB,premium,u1,GBAAA2600001,,T,A,10,1.50,EUR", "GB,premium,u2,X,,T,A,ten,1,EUR"]
    most.write_text("\n".join([head, *rows, "GB,premium,u3,X,,T,A,10,1.5.0,EUR"]) + "\n")

    table = runner.invoke(app, ["ingest", str(bad), "--org", "acme"])
    assert table.exit_code == 1, table.output
    first, *reasons = table.output.splitlines()
    assert first.startswith(
        "QUARANTINED spotify_x_202601_EUR.csv: rejected_lines: every line rejected (4 of 4; "
    )
    assert reasons[0].split() == [
        "3", "lines", "amount:invalid_decimal", "e.g.", "spotify_x_202601_EUR.csv", "line",
        "2:", "column", "'revenue':", "'1.50x'", "is", "not", "a", "number",
    ]  # fmt: skip
    assert "currency:unknown_currency" in reasons[1] and "line 5" in reasons[1]

    result = runner.invoke(app, ["ingest", str(most), "--org", "acme", "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.output)
    assert (out["status"], out["lines"], out["accepted"], out["rejected"]) == (
        "quarantined", 3, 1, 2
    )  # fmt: skip
    q = out["quarantine"]
    assert q["code"] == "rejected_lines" and q["rejected_share"] == 0.6667
    assert q["max_rejected_share"] == 0.5
    assert [(r["field"], r["code"], r["lines"], r["example"]["row"]) for r in q["top_reasons"]] == [
        ("quantity", "invalid_integer", 1, 3),
        ("amount", "invalid_decimal", 1, 4),
    ]
    findings = json.loads(Path(tmp_path / q["findings"]).read_text())
    assert {(f["file"], f["row"], f["field"], f["code"]) for f in findings} >= {
        ("spotify_x_202602_EUR.csv", 3, "quantity", "invalid_integer"),
        ("spotify_x_202602_EUR.csv", 4, "amount", "invalid_decimal"),
    }
    assert all(f["reason"] for f in findings)
    factory = resources.Resources.current().factory
    with factory() as s:
        rows = s.scalars(sa.select(IngestFile).order_by(IngestFile.id)).all()
        assert [(r.status.value, r.quarantine_code) for r in rows] == [
            ("quarantined", "rejected_lines"),
            ("quarantined", "rejected_lines"),
        ]
        assert (rows[1].lines_read, rows[1].lines_rejected, rows[1].error_count) == (3, 2, 2)
        assert Path(tmp_path / rows[1].raw_path).read_bytes() == most.read_bytes()
    assert not list((tmp_path / "var" / "lake").rglob("*.parquet"))  # nothing of them counts
