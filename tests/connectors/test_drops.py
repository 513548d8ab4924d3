"""Drop locations: one contract run against a local folder, a real SFTP server and a real S3
server (SeaweedFS), plus unit tests of names, URLs and the readiness rule."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from connectors.drops import (
    Drop,
    DropAuthError,
    DropConnectionError,
    DropEntry,
    LocalDrop,
    S3Drop,
    SftpDrop,
    UnsafeName,
    check_name,
    is_temporary_name,
    open_drop,
    parse_drop_url,
    ready_entries,
)
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer

_ids = itertools.count()
UNSAFE = ["../x", "/etc/passwd", "a/../../b", "a\\b", "a//b", "a/./b", "", "a\x00b", "a\nb", "x/"]
TEMPORARY = ["c.csv.part", ".d.csv", "e.csv.tmp", "f.csv.FILEPART", ".staging/g.csv"]
DSR_PARTS = [
    "batch/DSR_PADPIDA2014_SPOTIFY_Subscription_2024-Q1_CA_1of2_20240415T120000.tsv.gz",
    "batch/DSR_PADPIDA2014_SPOTIFY_Subscription_2024-Q1_CA_2of2_20240415T120000.tsv.gz",
]
DSR_SEMAPHORE = "batch/DSR_PADPIDA2014_SPOTIFY_Subscription_2024-Q1_CA_20240415T120000.ctrl"


def names(entries: list[DropEntry]) -> list[str]:
    return [e.name for e in entries]


# --- one fresh, empty drop per test, for each backend -----------------------------------------
@dataclass
class Backend:
    """How to open (again) the drop under test, and its URL for open_drop."""

    kind: str
    open: Callable[[], Drop]
    url: str
    url_kwargs: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket("tm-drops")


@pytest.fixture(
    params=[
        "local",
        pytest.param("sftp", marks=pytest.mark.integration),
        pytest.param("s3", marks=pytest.mark.integration),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    kind = str(request.param)
    folder = f"t{next(_ids)}"
    if kind == "local":
        root = tmp_path / "drop"
        root.mkdir()
        return Backend(kind, lambda: LocalDrop(root), root.as_uri())
    if kind == "sftp":
        sftp: SftpServer = request.getfixturevalue("sftp_server")
        (sftp.root / folder).mkdir()
        known_hosts = sftp.write_known_hosts(tmp_path / "known_hosts")
        return Backend(
            kind,
            lambda: SftpDrop(
                sftp.host,
                sftp.port,
                sftp.username,
                password=sftp.password,
                root=f"/{folder}",
                known_hosts=known_hosts,
                timeout=5,
            ),
            sftp.url(f"/{folder}"),
            {"known_hosts": known_hosts},
        )
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    credentials = {"access_key": s3.access_key, "secret_key": s3.secret_key}
    return Backend(
        kind,
        lambda: S3Drop(
            bucket,
            folder,
            endpoint_url=s3.endpoint_url,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            timeout=5,
        ),
        f"s3://{bucket}/{folder}",
        {"endpoint_url": s3.endpoint_url, **credentials},
    )


@pytest.fixture
def drop(backend: Backend) -> Iterator[Drop]:
    with backend.open() as d:
        yield d


# --- the contract ------------------------------------------------------------------------------
def test_put_list_read_download_round_trip(drop: Drop, tmp_path: Path) -> None:
    big = secrets.token_bytes(3 * 1024 * 1024 + 17)  # several transfer chunks
    source = tmp_path / "big.bin"
    source.write_bytes(big)
    drop.put("a.csv", b"isrc,amount\nGBAYE0000001,1.23\n")
    drop.put("dsp/2024/q1/big.bin", source)
    drop.put("dsp/b.tsv", b"x\ty\n")

    assert isinstance(drop, Drop)
    assert names(drop.list()) == ["a.csv", "dsp/2024/q1/big.bin", "dsp/b.tsv"]
    assert drop.read("a.csv") == b"isrc,amount\nGBAYE0000001,1.23\n"
    assert drop.exists("dsp/b.tsv")
    assert not drop.exists("dsp/missing.tsv")
    assert not drop.exists("dsp")  # folders are not files

    out = tmp_path / "out"
    out.mkdir()
    got = drop.download("dsp/2024/q1/big.bin", out / "local.bin")
    assert got == out / "local.bin"
    assert got.read_bytes() == big
    kept = drop.download("dsp/b.tsv", out)  # a folder: the base name is kept
    assert kept == out / "b.tsv"
    assert kept.read_bytes() == b"x\ty\n"
    assert sorted(p.name for p in out.iterdir()) == ["b.tsv", "local.bin"]  # no temp files


def test_entries_report_size_and_utc_mtime(drop: Drop) -> None:
    before = datetime.now(UTC)
    drop.put("sizes/seven.txt", b"1234567")
    drop.put("sizes/empty.txt", b"")
    entries = {e.name: e for e in drop.list()}
    assert {n: e.size for n, e in entries.items()} == {"sizes/empty.txt": 0, "sizes/seven.txt": 7}
    for entry in entries.values():
        assert entry.mtime is not None
        assert entry.mtime.utcoffset() == timedelta(0)
        # SFTP and S3 report whole seconds
        assert before - timedelta(seconds=2) <= entry.mtime <= datetime.now(UTC)


def test_put_replaces_an_existing_file(drop: Drop) -> None:
    drop.put("r.csv", b"old contents")
    drop.put("r.csv", b"new")
    assert drop.read("r.csv") == b"new"
    assert [(e.name, e.size) for e in drop.list()] == [("r.csv", 3)]


def _open_fifo_for_writing(fifo: Path, timeout: float = 10.0) -> int:
    """Wait (bounded) until the uploader opens the FIFO; returns a blocking write fd."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            if time.monotonic() > deadline:
                raise TimeoutError("the upload never opened its source") from None
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        return fd


def test_put_is_atomic_for_readers(backend: Backend, drop: Drop, tmp_path: Path) -> None:
    """While an upload is half done, nothing is visible under the final name; a temporary
    name (never ready) may be, and it is gone afterwards."""
    fifo = tmp_path / "source.fifo"
    os.mkfifo(fifo)
    first, rest = b"a" * 300_000, b"b" * 200_000
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            drop.put("in/report.csv", fifo)
        except BaseException as exc:
            errors.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    seen_temp: list[str] = []
    fd = _open_fifo_for_writing(fifo)
    try:
        os.write(fd, first)
        with backend.open() as reader:
            deadline = time.monotonic() + 10
            while backend.kind != "s3" and not seen_temp and time.monotonic() < deadline:
                seen_temp = [e.name for e in reader.list() if e.size > 0]
                time.sleep(0.01)
            assert not reader.exists("in/report.csv")
            if backend.kind == "s3":  # an S3 object appears whole or not at all
                assert reader.list() == []
            else:
                assert len(seen_temp) == 1
                assert seen_temp[0] != "in/report.csv"
                assert seen_temp[0].startswith("in/")
                assert is_temporary_name(seen_temp[0])
                ready, sizes = ready_entries(reader, {seen_temp[0]: 1})
                assert ready == []
                assert sizes == {}
    finally:
        os.write(fd, rest)
        os.close(fd)
        uploader.join(timeout=30)
    assert not uploader.is_alive()
    assert errors == []
    assert drop.read("in/report.csv") == first + rest
    assert names(drop.list()) == ["in/report.csv"]  # the temporary name is gone


def test_failed_put_leaves_nothing_behind(drop: Drop) -> None:
    drop.put("keep.csv", b"kept")
    with pytest.raises(OSError):
        drop.put("broken.csv", Path("/proc/self/mem"))  # opens, then fails on read
    with pytest.raises(FileNotFoundError):
        drop.put("missing.csv", Path("/nonexistent/source.csv"))
    assert names(drop.list()) == ["keep.csv"]


def test_missing_files(drop: Drop, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileNotFoundError):
        drop.read("nope.csv")
    with pytest.raises(FileNotFoundError):
        drop.download("nope.csv", out / "nope.csv")
    assert list(out.iterdir()) == []  # no temporary file left behind
    assert not drop.exists("nope.csv")


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_rejected_before_any_io(drop: Drop, name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for call in (
        lambda: drop.put(name, b"x"),
        lambda: drop.read(name),
        lambda: drop.exists(name),
        lambda: drop.download(name, out / "x"),
    ):
        with pytest.raises(UnsafeName) as caught:
            call()
        assert caught.value.name == name
        assert isinstance(caught.value, ValueError)
    assert drop.list() == []
    assert list(out.iterdir()) == []


def test_ctrl_semaphores_gate_readiness(drop: Drop) -> None:
    for part in DSR_PARTS:
        drop.put(part, b"HEAD\t...\n")
    drop.put("batch/late.csv", b"1,2\n")
    drop.put("batch/late.csv.ctrl", b"")

    ready, sizes = ready_entries(drop, None)
    assert names(ready) == ["batch/late.csv"]  # its companion semaphore is there
    assert set(sizes) == {*DSR_PARTS, "batch/late.csv"}  # .ctrl files are never data

    ready, sizes = ready_entries(drop, sizes)
    assert names(ready) == ["batch/late.csv"]  # a stable size is not enough under semaphores

    drop.put(DSR_SEMAPHORE, b"")  # DDEX DSR: one semaphore, no xofy, .ctrl for .tsv
    ready, _ = ready_entries(drop, sizes)
    assert names(ready) == [*DSR_PARTS, "batch/late.csv"]


def test_size_stability_without_semaphores(drop: Drop) -> None:
    drop.put("a.csv", b"x" * 10)
    for name in TEMPORARY:
        drop.put(name, b"partial")

    ready, sizes = ready_entries(drop, None)
    assert ready == []  # one listing proves nothing
    assert sizes == {"a.csv": 10}

    drop.put("a.csv", b"x" * 20)  # still growing
    drop.put("b.csv", b"y")  # new since the last listing
    ready, sizes = ready_entries(drop, sizes)
    assert ready == []
    assert sizes == {"a.csv": 20, "b.csv": 1}

    ready, sizes = ready_entries(drop, sizes)
    assert [(e.name, e.size) for e in ready] == [("a.csv", 20), ("b.csv", 1)]
    assert sizes == {"a.csv": 20, "b.csv": 1}


def test_open_drop_from_url(backend: Backend, drop: Drop) -> None:
    drop.put("via/url.csv", b"1")
    with open_drop(backend.url, **backend.url_kwargs) as opened:
        assert type(opened) is type(drop)
        assert names(opened.list()) == ["via/url.csv"]
        assert opened.read("via/url.csv") == b"1"


# --- local folders -----------------------------------------------------------------------------
@pytest.fixture
def local(tmp_path: Path) -> LocalDrop:
    root = tmp_path / "drop"
    root.mkdir()
    return LocalDrop(root)


def test_local_symlinks_leaving_the_root_are_skipped(
    local: LocalDrop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (local.root / "real.csv").write_text("1")
    (local.root / "secret-link.txt").symlink_to(outside / "secret.txt")
    (local.root / "outside-dir").symlink_to(outside, target_is_directory=True)
    (local.root / "inside-link.csv").symlink_to(local.root / "real.csv")

    with caplog.at_level(logging.WARNING, logger="connectors.drops"):
        listed = names(local.list())
    assert listed == ["inside-link.csv", "real.csv"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "secret-link.txt" in warned
    assert "outside-dir" in warned

    with pytest.raises(UnsafeName, match="outside the drop root"):
        local.read("secret-link.txt")
    with pytest.raises(UnsafeName):
        local.put("outside-dir/planted.csv", b"x")
    assert not local.exists("secret-link.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert local.read("inside-link.csv") == b"1"


def test_local_drop_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="drop folder does not exist"):
        LocalDrop(tmp_path / "missing")


def test_local_listing_skips_names_it_could_not_address(
    local: LocalDrop, caplog: pytest.LogCaptureFixture
) -> None:
    (local.root / "ok.csv").write_text("1")
    (local.root / "back\\slash.csv").write_text("1")
    (local.root / "new\nline.csv").write_text("1")
    with caplog.at_level(logging.WARNING, logger="connectors.drops"):
        assert names(local.list()) == ["ok.csv"]
    assert len(caplog.records) == 2


# --- readiness rule details (local folder, files written behind the drop's back) -------------
def _write(root: Path, name: str, data: bytes = b"data") -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_batch_folder_semaphore_releases_everything_below_it(local: LocalDrop) -> None:
    _write(local.root, "batch7/a.csv")
    _write(local.root, "batch7/deeper/b.csv")
    _write(local.root, "batch8/c.csv")
    _write(local.root, "batch7.ctrl", b"")
    ready, sizes = ready_entries(local, None)
    assert names(ready) == ["batch7/a.csv", "batch7/deeper/b.csv"]
    ready, _ = ready_entries(local, sizes)
    assert "batch8/c.csv" not in names(ready)  # the root uses semaphores; batch8 has none yet


def test_dsr_semaphore_variants(local: LocalDrop) -> None:
    _write(local.root, "a/DSR_X_Y_Svc_2024-Q1_FR_1of1_20240401T000000.tsv")
    _write(local.root, "a/ACK_X_Y_Svc_2024-Q1_FR_20240401T000000.ctrl", b"")
    _write(local.root, "b/DSR_X_Y_Svc_2024-Q1_DE_20240401T000000.tsv")
    _write(local.root, "b/file_available/_DSR_X_Y_Svc_2024-Q1_DE_20240401T000000.ctrl", b"")
    _write(local.root, "c/report.csv")
    _write(local.root, "c/report.ctrl", b"")  # "extension ctrl instead of csv"
    _write(local.root, "c/other.csv")
    ready, _ = ready_entries(local, None)
    assert names(ready) == [
        "a/DSR_X_Y_Svc_2024-Q1_FR_1of1_20240401T000000.tsv",
        "b/DSR_X_Y_Svc_2024-Q1_DE_20240401T000000.tsv",
        "c/report.csv",
    ]


def test_semaphore_does_not_release_a_file_seen_growing(local: LocalDrop) -> None:
    _write(local.root, "r.csv", b"12")
    _write(local.root, "r.csv.ctrl", b"")
    ready, sizes = ready_entries(local, {"r.csv": 1})
    assert ready == []
    ready, _ = ready_entries(local, sizes)
    assert names(ready) == ["r.csv"]


def test_semaphores_gate_only_their_folder_and_below(local: LocalDrop) -> None:
    _write(local.root, "dsr/DSR_A.tsv")
    _write(local.root, "dsr/other.ctrl", b"")
    _write(local.root, "csv/plain.csv")
    _, sizes = ready_entries(local, None)
    ready, _ = ready_entries(local, sizes)
    assert names(ready) == ["csv/plain.csv"]


# --- names and URLs ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..' segment"),
        ("/etc/passwd", "absolute"),
        ("a/../../b", "'..' segment"),
        ("a\\b", "backslash"),
        ("a//b", "empty path segment"),
        ("trailing/", "empty path segment"),
        ("./a", "'.' segment"),
        ("", "empty name"),
        ("a\x00b", "NUL"),
        ("a\x1bb", "control character"),
        ("a\x85b", "control character"),
        ("C:x", "absolute"),
    ],
)
def test_check_name_rejects_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(UnsafeName) as caught:
        check_name(name)
    assert reason in caught.value.reason
    assert caught.value.name == name
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("name", ["a.csv", "dsp/2024/Q1 report (v2).csv", ".hidden", "a..b/c"])
def test_check_name_accepts_ordinary_names(name: str) -> None:
    assert check_name(name) == name


def test_parse_local_urls(tmp_path: Path) -> None:
    assert parse_drop_url(tmp_path.as_uri()).options == {"root": tmp_path}
    assert parse_drop_url("file:///srv/drop%20a").options == {"root": Path("/srv/drop a")}
    assert parse_drop_url("relative/folder").kind == "local"
    assert parse_drop_url("/abs/folder", password=None).options == {"root": Path("/abs/folder")}
    with pytest.raises(ValueError, match="local folder"):
        parse_drop_url("file://elsewhere/srv")
    with pytest.raises(TypeError, match="password"):
        parse_drop_url("/abs/folder", password="x")
    with open_drop(str(tmp_path)) as opened:
        assert isinstance(opened, LocalDrop)
        assert opened.root == tmp_path.resolve()


def test_parse_sftp_urls() -> None:
    spec = parse_drop_url("sftp://dsp:p%40ss%3Aword@files.example.com:2222/in%20box/")
    assert spec.kind == "sftp"
    assert spec.options == {
        "host": "files.example.com",
        "port": 2222,
        "username": "dsp",
        "password": "p@ss:word",
        "root": "/in box/",
    }
    plain = parse_drop_url("sftp://dsp@files.example.com", password="from-env", timeout=3)
    assert plain.options == {
        "host": "files.example.com",
        "port": 22,
        "username": "dsp",
        "password": "from-env",
        "root": "/",
        "timeout": 3,
    }
    assert parse_drop_url("sftp://u:url@h/", password="kw").options["password"] == "kw"
    with pytest.raises(ValueError, match="user name"):
        parse_drop_url("sftp://files.example.com/in")
    with pytest.raises(TypeError, match="secret_key"):
        parse_drop_url("sftp://u@h/", secret_key="x")


def test_parse_s3_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    # the connector reads no environment: the endpoint is an argument (pipelines.connections
    # passes the settings' one)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert parse_drop_url("s3://label-drops/reports/2024/").options == {
        "bucket": "label-drops",
        "prefix": "reports/2024",
    }
    spec = parse_drop_url(
        "s3://b1x", access_key="a", secret_key="s", page_size=2, endpoint_url="http://h:9"
    )
    assert spec.options == {
        "bucket": "b1x",
        "prefix": "",
        "endpoint_url": "http://h:9",
        "access_key": "a",
        "secret_key": "s",
        "page_size": 2,
    }
    kw = parse_drop_url("s3://b1x", endpoint_url="http://127.0.0.1:10")
    assert kw.options["endpoint_url"] == "http://127.0.0.1:10"
    with pytest.raises(TypeError, match="password"):
        parse_drop_url("s3://b1x", password="x")


@pytest.mark.parametrize("url", ["ftp://h/x", "s3://", "sftp:///x", "s3://b/x?versionId=1"])
def test_parse_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_drop_url(url)


# --- connection failures end quickly, with a clear error ---------------------------------------
def test_sftp_connect_times_out_on_a_silent_port() -> None:
    with socket.socket() as silent:  # accepts TCP, never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(DropConnectionError, match="SFTP connection"):
            SftpDrop("127.0.0.1", silent.getsockname()[1], "u", password="p", timeout=0.5)
        assert time.monotonic() - started < 5


def test_s3_unreachable_endpoint() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connection refused
        started = time.monotonic()
        with pytest.raises(DropConnectionError, match="unreachable"):
            S3Drop("b1x", endpoint_url=f"http://127.0.0.1:{port}", access_key="a", secret_key="s")
        assert time.monotonic() - started < 10


# --- SFTP specifics ----------------------------------------------------------------------------
@pytest.mark.integration
def test_sftp_wrong_password_is_refused(sftp_server: SftpServer, tmp_path: Path) -> None:
    known_hosts = sftp_server.write_known_hosts(tmp_path / "known_hosts")
    started = time.monotonic()
    with pytest.raises(DropAuthError, match="login refused"):
        SftpDrop(
            sftp_server.host,
            sftp_server.port,
            sftp_server.username,
            password="wrong",
            known_hosts=known_hosts,
            timeout=5,
        )
    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_sftp_host_keys_are_verified(
    sftp_server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = (sftp_server.host, sftp_server.port, sftp_server.username)
    password = sftp_server.password
    monkeypatch.setenv("HOME", str(tmp_path))  # the default: ~/.ssh/known_hosts (absent here)
    with pytest.raises(DropConnectionError, match="not found in known_hosts"):
        SftpDrop(*args, password=password, timeout=5)

    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh")
    wrong = tmp_path / "wrong_known_hosts"
    alg, key = impostor.decode().split()[:2]
    wrong.write_text(f"[{sftp_server.host}]:{sftp_server.port} {alg} {key}\n")
    with pytest.raises(DropConnectionError, match="does not match"):
        SftpDrop(*args, password=password, known_hosts=wrong, timeout=5)

    with SftpDrop(*args, password=password, known_hosts="auto-add", timeout=5) as trusting:
        assert trusting.root == "/"


@pytest.mark.integration
def test_sftp_symlinks_leaving_the_root_are_skipped(
    sftp_server: SftpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = sftp_server.root / f"links{next(_ids)}"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    (folder / "ok.csv").write_text("1")
    (folder / "escape.txt").symlink_to(outside)
    (folder / "escape-dir").symlink_to(tmp_path, target_is_directory=True)
    with (
        SftpDrop(
            sftp_server.host,
            sftp_server.port,
            sftp_server.username,
            password=sftp_server.password,
            root=f"/{folder.name}",
            known_hosts="auto-add",
        ) as drop,
        caplog.at_level(logging.WARNING, logger="connectors.drops"),
    ):
        assert names(drop.list()) == ["ok.csv"]
        warned = " ".join(r.getMessage() for r in caplog.records)
        assert "escape.txt" in warned
        assert "escape-dir" in warned
        # an OpenSSH server names the outside target (UnsafeName); asyncssh's chroot hides it
        with pytest.raises((UnsafeName, FileNotFoundError)):
            drop.read("escape.txt")
        assert not drop.exists("escape.txt")


@pytest.mark.integration
def test_sftp_missing_root(sftp_server: SftpServer) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SftpDrop(
            sftp_server.host,
            sftp_server.port,
            sftp_server.username,
            password=sftp_server.password,
            root="/no-such-folder",
            known_hosts="auto-add",
        )


# --- S3 specifics ------------------------------------------------------------------------------
def _s3(server: S3Server, bucket: str, prefix: str = "", **kwargs: Any) -> S3Drop:
    return S3Drop(
        bucket,
        prefix,
        endpoint_url=server.endpoint_url,
        access_key=server.access_key,
        secret_key=server.secret_key,
        **kwargs,
    )


@pytest.mark.integration
def test_s3_listing_is_paginated(s3_server: S3Server, s3_bucket: str) -> None:
    prefix = f"pages{next(_ids)}"
    calls: list[dict[str, Any]] = []
    with _s3(s3_server, s3_bucket, prefix, page_size=2) as drop:
        for i in range(5):
            drop.put(f"f{i}.csv", b"x" * i)
        drop.client.meta.events.register(
            "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
        )
        entries = drop.list()
    assert [(e.name, e.size) for e in entries] == [(f"f{i}.csv", i) for i in range(5)]
    assert len(calls) == 3  # 2 + 2 + 1
    assert all(c["MaxKeys"] == 2 for c in calls)


@pytest.mark.integration
def test_s3_prefix_isolates_and_bucket_root_works(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket(f"tm-root-{next(_ids)}")
    with _s3(s3_server, bucket) as whole, _s3(s3_server, bucket, "/in/") as inbox:
        whole.put("top.csv", b"1")
        inbox.put("a/b.csv", b"2")
        assert names(whole.list()) == ["in/a/b.csv", "top.csv"]
        assert names(inbox.list()) == ["a/b.csv"]
        assert not inbox.exists("top.csv")
        assert whole.read("in/a/b.csv") == b"2"


@pytest.mark.integration
def test_s3_unsafe_keys_are_skipped(
    s3_server: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"unsafe{next(_ids)}"
    raw = s3_server.client()
    try:
        raw.put_object(Bucket=s3_bucket, Key=f"{prefix}/tab\tname.csv", Body=b"1")
        raw.put_object(Bucket=s3_bucket, Key=f"{prefix}/ok.csv", Body=b"1")
    finally:
        raw.close()
    with _s3(s3_server, s3_bucket, prefix) as drop, caplog.at_level(logging.WARNING):
        assert names(drop.list()) == ["ok.csv"]
    assert any("control character" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
def test_s3_wrong_credentials_and_missing_bucket(s3_server: S3Server, s3_bucket: str) -> None:
    started = time.monotonic()
    with pytest.raises(DropAuthError, match="check the access key"):
        S3Drop(
            s3_bucket,
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key="not-the-secret",
            timeout=5,
        )
    with pytest.raises(DropAuthError):
        S3Drop(
            s3_bucket,
            endpoint_url=s3_server.endpoint_url,
            access_key="UNKNOWNKEY",
            secret_key="not-the-secret",
            timeout=5,
        )
    assert time.monotonic() - started < 5
    with pytest.raises(FileNotFoundError):
        _s3(s3_server, "tm-no-such-bucket")


@pytest.mark.integration
def test_s3_endpoint_and_secret_from_the_settings(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.connections import connect

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("TM_TEST_S3_KEYS", f"{s3_server.access_key}:{s3_server.secret_key}")
    prefix = f"env{next(_ids)}"
    with connect(f"s3://{s3_bucket}/{prefix}", "TM_TEST_S3_KEYS") as drop:
        assert isinstance(drop, S3Drop)
        drop.put("x.csv", b"1")
        assert names(drop.list()) == ["x.csv"]
