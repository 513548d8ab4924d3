"""One place turns a drop or target URL plus the name of its secret into a connection; the
secrets and endpoints come from the settings, never from the environment read elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.drops import LocalDrop
from pipelines.connections import connect, connection_options, public_url
from pipelines.settings import Settings


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "TUNEMANTRA_SFTP_PASSWORD",
        "TUNEMANTRA_SFTP_KNOWN_HOSTS",
    ):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_a_named_secret_is_a_password_for_sftp_and_keys_for_s3(
    clean: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean.setenv("TM_DROP_SECRET", "AKIA:shh")
    clean.setenv("TUNEMANTRA_SFTP_KNOWN_HOSTS", str(tmp_path / "kh"))
    clean.setenv("AWS_ENDPOINT_URL", "http://any:1")
    clean.setenv("AWS_ENDPOINT_URL_S3", "http://s3:9")
    settings = Settings()
    assert connection_options("sftp://u@h/in", "TM_DROP_SECRET", settings) == {
        "known_hosts": tmp_path / "kh",
        "password": "AKIA:shh",
    }
    assert connection_options("s3://b/in", "TM_DROP_SECRET", settings) == {
        "endpoint_url": "http://s3:9",  # the S3-specific variable first, as boto3 does
        "access_key": "AKIA",
        "secret_key": "shh",
    }
    # a name that holds nothing: the URL's own credentials (or boto3's chain) apply
    assert connection_options("s3://b/in", "TM_UNSET_SECRET", settings) == {
        "endpoint_url": "http://s3:9"
    }


def test_the_ingest_password_is_for_sftp_urls_only(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("TUNEMANTRA_SFTP_PASSWORD", "pw")
    settings = Settings()
    assert settings.sftp_password is not None
    password = settings.sftp_password.get_secret_value()
    assert connection_options("sftp://u@h/", None, settings, password=password) == {
        "password": "pw"
    }
    assert connection_options("s3://b/", None, settings, password=password) == {}
    assert settings.secret("") is None


def test_a_plain_path_opens_a_local_folder(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with connect(str(tmp_path / "in")) as drop:
        assert isinstance(drop, LocalDrop)


def test_public_url_drops_only_the_password() -> None:
    assert public_url("sftp://u:secret@h:22/in/") == "sftp://u@h:22/in/"
    assert public_url("sftp://:secret@h/in") == "sftp://h/in"
    assert public_url("s3://bucket/prefix") == "s3://bucket/prefix"
