"""Ingestion end to end from real drops: an SFTP server (asyncssh) and an S3 server (SeaweedFS)
on loopback, configured as an organisation's ``Drop`` rows, through the same entry points the
Airflow DAG calls (``pending_files`` -> ``ingest_one``) and the CLI calls (``ingest_sources``).

Every test gets a fresh SQLite store (the drop logic does not depend on the backend; the
store itself is tested on PostgreSQL elsewhere), a fresh data dir and its own server folder.
"""

from __future__ import annotations

import csv
import io
import json
import random
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from connectors.drops import Drop as DropClient
from connectors.drops import DropConnectionError, UnsafeName, open_drop
from demo.label import run_demo
from demo.reports import Product, catalogue, write_distributor, write_spotify
from pipelines.ingest.drops import ingest_one, ingest_sources, pending_files
from pipelines.resources import Resources
from schemas.store import db
from schemas.store.models import Drop, IngestFile, IngestStatus
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer

pytestmark = pytest.mark.integration

SECRET = "test-secret-key-not-a-placeholder"
SFTP_SECRET_ENV = "TM_TEST_SFTP_SECRET"
S3_SECRET_ENV = "TM_TEST_S3_SECRET"


# --- the organisation, its catalogue and report files ----------------------------------------
@dataclass
class Label:
    factory: sessionmaker[Session]
    data_dir: Path
    org_id: int
    products: list[Product]

    def ledger(self) -> list[IngestFile]:
        with self.factory() as s:
            return list(
                s.scalars(
                    sa.select(IngestFile)
                    .where(IngestFile.org_id == self.org_id)
                    .order_by(IngestFile.id)
                )
            )

    def lake(self) -> pl.DataFrame:
        root = self.data_dir / "lake" / "revenue_lines" / f"org={self.org_id}"
        files = sorted(root.glob("period=*/source=*/file=*/*.parquet"))
        if not files:
            return pl.DataFrame(schema={"file_id": pl.Int64, "line_no": pl.Int64})
        return pl.concat([pl.read_parquet(f) for f in files], how="vertical")

    def add_drop(self, name: str, url: str, secret_env: str | None = None) -> None:
        with db.transaction(self.factory, actor="test") as s:
            s.add(Drop(org_id=self.org_id, name=name, url=url, secret_env=secret_env))

    @property
    def res(self) -> Resources:
        return Resources.of(self.factory, self.data_dir)

    def pending(self) -> list[dict[str, str]]:
        return pending_files(self.res, self.org_id)


@pytest.fixture
def label(factory: sessionmaker[Session], tmp_path: Path) -> Label:
    """The sample label ``demo`` (catalogue of ~47 tracks) in a fresh store and data dir."""
    data_dir = tmp_path / "var"
    summary = run_demo(factory, seed=3, secret_key=SECRET, data_dir=data_dir)
    with factory() as s:
        products = catalogue(s, summary.org_id)
    return Label(factory, data_dir, summary.org_id, products)


@dataclass(frozen=True)
class Report:
    """One Spotify-style report: its bytes and what ingesting it must produce."""

    name: str
    data: bytes
    lines: int
    total: Decimal
    currency: str


def spotify_report(label: Label, currency: str, seed: int, *, tracks: int = 4) -> Report:
    rng = random.Random(seed)
    name = f"spotify_northbound_202601_{currency}.csv"
    path = label.data_dir.parent / f"spotify-{seed}" / name
    path.parent.mkdir(parents=True)
    products = rng.sample(label.products, tracks)
    write_spotify(path, products, rng, currency, ["DE", "FR", "NL"], unknown_isrc=False)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert {r["currency"] for r in rows} == {currency}
    total = sum((Decimal(r["revenue"]) for r in rows), Decimal(0))
    return Report(name, path.read_bytes(), len(rows), total, currency)


def distributor_report(label: Label, seed: int) -> Report:
    """A distributor statement with two bad lines (a mistyped amount, currency ``EUX``)."""
    path = label.data_dir.parent / f"statement-{seed}" / "statement_northbound_2026-01.csv"
    path.parent.mkdir(parents=True)
    write_distributor(path, random.Random(seed).sample(label.products, 12), random.Random(seed))
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return Report(path.name, path.read_bytes(), len(rows), Decimal(0), "EUR")


def assert_ingested(label: Label, report: Report, url: str, outcome: dict[str, object]) -> None:
    """The ledger row, the lake lines and the totals of one cleanly ingested report."""
    assert outcome["status"] == "ingested", outcome
    assert outcome["format"] == "spotify"
    assert outcome["lines"] == outcome["accepted"] == report.lines
    assert outcome["rejected"] == 0
    (row,) = [r for r in label.ledger() if r.id == outcome["file_id"]]
    assert row.status == IngestStatus.INGESTED
    assert row.source_url == url
    assert row.original_name == report.name
    assert row.size == len(report.data)
    assert (row.lines_read, row.lines_accepted) == (report.lines, report.lines)
    assert row.lines_rejected == row.error_count == 0
    assert row.lines_matched + row.lines_suspense == report.lines
    assert row.lines_matched == report.lines  # every ISRC is in the catalogue
    assert Decimal(row.totals[report.currency]["accepted"]) == report.total
    lines = label.lake().filter(pl.col("file_id") == row.id)
    assert lines.height == report.lines
    assert sorted(lines["line_no"].to_list()) == list(range(2, report.lines + 2))  # after header
    assert set(lines["currency"].to_list()) == {report.currency}
    assert lines["amount"].sum() == report.total
    assert lines["reporting_period"].unique().to_list() == ["2026-01"]
    assert Path(row.raw_path).read_bytes() == report.data  # the raw file, kept as delivered


# --- servers as drops --------------------------------------------------------------------------
@dataclass
class Remote:
    """A fresh folder on one of the test servers, and how to reach it."""

    kind: str
    folder: str
    url: str  # the Drop URL: no credentials in it
    writer: Callable[[], AbstractContextManager[DropClient]]  # opens the server's root

    def put(self, name: str, data: bytes) -> None:
        with self.writer() as d:
            d.put(f"{self.folder}/{name}", data)


@pytest.fixture
def sftp_remote(
    sftp_server: SftpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Remote:
    """An SFTP folder; the server is trusted through TUNEMANTRA_SFTP_KNOWN_HOSTS only."""
    known_hosts = sftp_server.write_known_hosts(tmp_path / "known_hosts")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts of the user applies
    monkeypatch.setenv("TUNEMANTRA_SFTP_KNOWN_HOSTS", str(known_hosts))
    monkeypatch.setenv(SFTP_SECRET_ENV, sftp_server.password)
    monkeypatch.delenv("TUNEMANTRA_SFTP_PASSWORD", raising=False)
    folder = f"in-{secrets.token_hex(4)}"
    (sftp_server.root / folder).mkdir()
    host = f"{sftp_server.username}@{sftp_server.host}:{sftp_server.port}"
    return Remote(
        "sftp",
        folder,
        f"sftp://{host}/{folder}",
        lambda: open_drop(sftp_server.url("/"), known_hosts=known_hosts),
    )


@pytest.fixture
def s3_remote(
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> Remote:
    """A folder (key prefix) in a fresh bucket; the endpoint comes from AWS_ENDPOINT_URL_S3."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    monkeypatch.setenv(S3_SECRET_ENV, f"{s3_server.access_key}:{s3_server.secret_key}")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    bucket = s3_server.create_bucket(f"tm-ingest-{secrets.token_hex(4)}")
    folder = f"in-{secrets.token_hex(4)}"
    return Remote(
        "s3",
        folder,
        f"s3://{bucket}/{folder}",
        lambda: open_drop(
            f"s3://{bucket}",
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
        ),
    )


# --- the DAG's path: pending_files -> ingest_one ---------------------------------------------
def test_sftp_drop_waits_for_stable_sizes_then_ingests_each_file_once(
    label: Label, sftp_remote: Remote
) -> None:
    eur, usd = spotify_report(label, "EUR", 1), spotify_report(label, "USD", 2)
    gbp = spotify_report(label, "GBP", 3, tracks=6)
    sftp_remote.put(eur.name, eur.data)
    sftp_remote.put(usd.name, usd.data)
    half = gbp.data[: len(gbp.data) // 2]
    sftp_remote.put(gbp.name, half[: half.rindex(b"\n") + 1])  # still arriving
    sftp_remote.put(f"{gbp.name}.part", gbp.data)  # an upload in progress under a temp name
    label.add_drop("sftp-in", sftp_remote.url, SFTP_SECRET_ENV)

    assert label.pending() == []  # first listing: no size is known to be stable yet
    sftp_remote.put(gbp.name, gbp.data)  # the GBP file grew since that listing

    second = label.pending()
    assert sorted(p["name"] for p in second) == sorted([eur.name, usd.name])
    assert {p["drop"] for p in second} == {"sftp-in"}
    for item in second:
        assert item["url"] == f"{sftp_remote.url}/{item['name']}"
        report = eur if item["name"] == eur.name else usd
        outcome = ingest_one(label.res, label.org_id, "sftp-in", item["name"])
        assert_ingested(label, report, item["url"], outcome)

    third = label.pending()  # GBP is stable now; EUR and USD are in the ledger
    assert [p["name"] for p in third] == [gbp.name]
    outcome = ingest_one(label.res, label.org_id, "sftp-in", gbp.name)
    assert_ingested(label, gbp, third[0]["url"], outcome)  # all of it, not the first half

    assert label.pending() == []
    assert len(label.ledger()) == 3
    assert label.lake().height == eur.lines + usd.lines + gbp.lines
    # The raw store keeps each file by content, read-only.
    raws = sorted((label.data_dir / "raw" / f"org={label.org_id}").rglob("*.csv"))
    assert len(raws) == 3
    assert all(p.stat().st_mode & 0o222 == 0 for p in raws)


def test_sftp_drop_is_refused_without_a_trusted_host_key(
    label: Label, sftp_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = spotify_report(label, "EUR", 4)
    sftp_remote.put(report.name, report.data)
    label.add_drop("sftp-in", sftp_remote.url, SFTP_SECRET_ENV)
    monkeypatch.delenv("TUNEMANTRA_SFTP_KNOWN_HOSTS")  # and HOME has no ~/.ssh/known_hosts
    assert label.pending() == []  # listed as unreachable, with the reason beside its state
    failure = label.data_dir / "state" / "drops" / f"org={label.org_id}" / "sftp-in.error.json"
    assert "known_hosts" in json.loads(failure.read_text())["error"]
    with pytest.raises(DropConnectionError, match="known_hosts"):
        ingest_one(label.res, label.org_id, "sftp-in", report.name)
    assert label.ledger() == []


def test_a_password_in_a_drop_url_is_never_recorded(
    label: Label,
    sftp_remote: Remote,
    sftp_server: SftpServer,
) -> None:
    report = spotify_report(label, "EUR", 15)
    sftp_remote.put(report.name, report.data)
    sftp_remote.put(f"{report.name}.ctrl", b"")
    label.add_drop("sftp-in", sftp_server.url(f"/{sftp_remote.folder}"))  # no secret_env
    (item,) = label.pending()  # what the DAG passes between tasks (XCom)
    assert item["url"] == f"{sftp_remote.url}/{report.name}"
    outcome = ingest_one(label.res, label.org_id, "sftp-in", report.name)
    assert_ingested(label, report, item["url"], outcome)
    assert label.pending() == []
    assert sftp_server.password not in repr(outcome)


def test_s3_drop_with_ctrl_semaphores(label: Label, s3_remote: Remote) -> None:
    eur, usd = spotify_report(label, "EUR", 5), spotify_report(label, "USD", 6)
    bad = distributor_report(label, 7)
    s3_remote.put(eur.name, eur.data)
    s3_remote.put(f"{eur.name}.ctrl", b"")
    s3_remote.put(bad.name, bad.data)
    s3_remote.put(f"{bad.name}.ctrl", b"")
    s3_remote.put(usd.name, usd.data)  # no semaphore yet: this folder uses them
    s3_remote.put(f"{usd.name}.part", usd.data)
    label.add_drop("s3-in", s3_remote.url, S3_SECRET_ENV)

    first = label.pending()  # semaphores release files on the first listing
    assert sorted(p["name"] for p in first) == sorted([eur.name, bad.name])
    outcomes = {p["name"]: ingest_one(label.res, label.org_id, "s3-in", p["name"]) for p in first}
    assert_ingested(label, eur, f"{s3_remote.url}/{eur.name}", outcomes[eur.name])
    statement = outcomes[bad.name]
    assert statement["status"] == "ingested"
    assert statement["format"] == "distributor_csv"
    assert statement["lines"] == bad.lines
    assert statement["rejected"] == 2  # the mistyped amount and currency EUX
    assert statement["accepted"] == bad.lines - 2
    row = next(r for r in label.ledger() if r.id == statement["file_id"])
    assert (row.lines_read, row.lines_accepted, row.lines_rejected) == (bad.lines, bad.lines - 2, 2)
    assert label.lake().filter(pl.col("file_id") == row.id).height == bad.lines - 2
    # Every line is accounted for: 10 in the lake, currency EUX set aside with its reason, the
    # unreadable amount a row error in the findings report.
    (rejected,) = (label.data_dir / "lake" / "rejected_lines" / f"org={label.org_id}").rglob(
        "*.parquet"
    )
    assert pl.read_parquet(rejected).select("line_no", "reasons").rows() == [
        (13, "currency:unknown_currency")
    ]
    findings = json.loads(Path(row.outputs["findings"]).read_text())
    assert [(f["line_no"], f["field"], f["code"]) for f in findings] == [
        (11, "amount", "invalid_decimal"),
        (13, "currency", "unknown_currency"),
    ]

    assert label.pending() == []  # USD still has no semaphore; EUR and the statement are known
    s3_remote.put(f"{usd.name}.ctrl", b"")
    (item,) = label.pending()
    assert item["name"] == usd.name
    outcome = ingest_one(label.res, label.org_id, "s3-in", usd.name)
    assert_ingested(label, usd, item["url"], outcome)

    assert label.pending() == []
    assert len(label.ledger()) == 3
    assert label.lake().height == eur.lines + usd.lines + bad.lines - 2


def test_same_bytes_under_another_name_add_nothing(label: Label, s3_remote: Remote) -> None:
    eur = spotify_report(label, "EUR", 8)
    s3_remote.put(eur.name, eur.data)
    s3_remote.put(f"{eur.name}.ctrl", b"")
    label.add_drop("s3-in", s3_remote.url, S3_SECRET_ENV)
    (item,) = label.pending()
    first = ingest_one(label.res, label.org_id, "s3-in", item["name"])
    assert_ingested(label, eur, item["url"], first)

    again = "spotify_resent_202601_EUR.csv"
    s3_remote.put(again, eur.data)
    s3_remote.put(f"{again}.ctrl", b"")
    (item,) = label.pending()
    assert item["name"] == again
    outcome = ingest_one(label.res, label.org_id, "s3-in", again)
    assert outcome["status"] == "duplicate"
    assert outcome["file_id"] == first["file_id"]
    (row,) = label.ledger()
    assert row.other_names == [f"{s3_remote.url}/{again}"]
    assert label.lake().height == eur.lines
    assert label.pending() == []  # the second name is remembered too


# --- the CLI's path: ingest_sources with folder and file URLs ---------------------------------
def test_ingest_sources_from_an_sftp_folder_url(
    label: Label,
    sftp_remote: Remote,
    sftp_server: SftpServer,
) -> None:
    eur, usd = spotify_report(label, "EUR", 9), spotify_report(label, "USD", 10)
    sftp_remote.put(eur.name, eur.data)
    sftp_remote.put(usd.name, usd.data)
    sftp_remote.put(f"{eur.name}.part", b"half a file")
    url = sftp_server.url(f"/{sftp_remote.folder}/")  # the password is in this URL

    outcomes = list(ingest_sources(label.res, org_id=label.org_id, sources=[url], settle=0))
    assert sorted(o.name for o in outcomes) == sorted([eur.name, usd.name])
    for o in outcomes:
        report = eur if o.name == eur.name else usd
        assert_ingested(label, report, f"{sftp_remote.url}/{o.name}", o.as_dict())
    stored = " ".join(r.source_url for r in label.ledger())
    assert sftp_server.password not in stored  # a URL's password is never recorded

    again = list(ingest_sources(label.res, org_id=label.org_id, sources=[url], settle=0))
    assert sorted(o.status for o in again) == ["duplicate", "duplicate"]
    assert len(label.ledger()) == 2
    assert label.lake().height == eur.lines + usd.lines


def test_ingest_sources_from_s3_folder_and_file_urls(
    label: Label,
    s3_remote: Remote,
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)  # boto3's own chain
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    eur, usd = spotify_report(label, "EUR", 11), spotify_report(label, "USD", 12)
    gbp = spotify_report(label, "GBP", 13)
    s3_remote.put(f"inbox/{eur.name}", eur.data)
    s3_remote.put(f"inbox/{usd.name}", usd.data)
    s3_remote.put(f"inbox/{usd.name}.part", b"partial")
    s3_remote.put(f"single/{gbp.name}", gbp.data)
    folder_url = f"{s3_remote.url}/inbox/"
    file_url = f"{s3_remote.url}/single/{gbp.name}"

    outcomes = list(
        ingest_sources(
            label.res,
            org_id=label.org_id,
            sources=[folder_url, file_url],
            settle=0,  # no file grows here; the production default waits 2 s
        )
    )
    assert [o.name for o in outcomes] == [*sorted([eur.name, usd.name]), gbp.name]
    by_name = {o.name: o.as_dict() for o in outcomes}
    assert_ingested(label, eur, f"{folder_url}{eur.name}", by_name[eur.name])
    assert_ingested(label, usd, f"{folder_url}{usd.name}", by_name[usd.name])
    assert_ingested(label, gbp, file_url, by_name[gbp.name])
    assert len(label.ledger()) == 3
    assert label.lake().height == eur.lines + usd.lines + gbp.lines


# --- names from a drop cannot leave it ---------------------------------------------------------
@pytest.fixture(params=["local", "sftp", "s3"])
def escape_drop(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """A drop whose folder has a valid report *beside* it (one level up, outside the drop)."""
    kind = str(request.param)
    if kind == "local":
        outside = tmp_path / "drops"
        (outside / "inbox").mkdir(parents=True)
        remote = Remote("local", "inbox", str(outside / "inbox"), lambda: open_drop(str(outside)))
    else:
        remote = request.getfixturevalue(f"{kind}_remote")
    return remote


def test_dotdot_names_cannot_escape_the_drop(label: Label, escape_drop: Remote) -> None:
    report = spotify_report(label, "EUR", 14)
    with escape_drop.writer() as root:  # beside the drop folder, not in it
        root.put(report.name, report.data)
        root.put(f"{report.name}.ctrl", b"")
        assert root.exists(report.name)
    escape_drop.put("ok_202601.txt", b"not a report")
    secret_env = {"sftp": SFTP_SECRET_ENV, "s3": S3_SECRET_ENV}.get(escape_drop.kind)
    label.add_drop("in", escape_drop.url, secret_env)

    for name in (f"../{report.name}", f"sub/../../{report.name}", f"/{report.name}"):
        with pytest.raises(UnsafeName):
            ingest_one(label.res, label.org_id, "in", name)
    label.pending()
    assert [p["name"] for p in label.pending()] == ["ok_202601.txt"]  # only what is inside
    assert label.ledger() == []
    assert not (label.data_dir / "raw").exists()
    assert label.lake().height == 0


def test_an_unreachable_drop_is_recorded_and_the_others_are_listed(
    label: Label, tmp_path: Path
) -> None:
    good = tmp_path / "good-drop"
    good.mkdir()
    report = spotify_report(label, "EUR", 7)
    (good / report.name).write_bytes(report.data)
    label.add_drop("down", "sftp://nobody@127.0.0.1:1/in/")  # nothing listens on port 1
    label.add_drop("local", str(good))
    assert label.pending() == []  # first listing: sizes not known to be stable yet
    listed = label.pending()
    assert [(p["drop"], p["name"]) for p in listed] == [("local", report.name)]
    failure = label.data_dir / "state" / "drops" / f"org={label.org_id}" / "down.error.json"
    recorded = json.loads(failure.read_text())
    assert recorded["drop"] == "down" and recorded["error"]


def test_a_local_folder_never_follows_a_link_out_of_itself(tmp_path: Path) -> None:
    from pipelines.ingest.drops import _local_files

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "other_org_202601.csv").write_text("secret\n")
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "ours_202601.csv").write_text("ours\n")
    (folder / "theirs_202601.csv").symlink_to(outside / "other_org_202601.csv")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "inside_link.csv").symlink_to(folder / "sub" / "ours_202601.csv")
    names = [name for _, name in _local_files(folder)]
    assert names == ["inside_link.csv", "sub/ours_202601.csv"]
