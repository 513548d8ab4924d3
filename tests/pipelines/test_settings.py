from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.settings import Settings


def test_zero_config_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TUNEMANTRA_DATABASE_URL", "TUNEMANTRA_DATA_DIR", "TUNEMANTRA_ENV"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.env == "development"
    assert s.data_dir == Path("./var").resolve()
    assert s.sqlalchemy_url == f"sqlite:///{Path('var/tunemantra.db').resolve()}"
    assert s.api_host == "127.0.0.1"
    assert s.drop_settle_seconds == 2.0  # a drop folder is listed twice, 2 s apart


def test_environment_switches_to_postgres_and_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUNEMANTRA_DROP_SETTLE_SECONDS", "0")
    s = Settings()
    assert s.sqlalchemy_url == "postgresql+psycopg://u@h/db"
    assert s.data_dir == tmp_path
    assert s.drop_settle_seconds == 0


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEMANTRA_SECRET_KEY", "s3cr3t-value-123")
    s = Settings()
    assert "s3cr3t" not in repr(s)
    assert s.secret_key.get_secret_value() == "s3cr3t-value-123"


@pytest.mark.parametrize("secret", ["", "change-me", "dev-only-secret", "CHANGEME"])
def test_placeholder_secrets_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("TUNEMANTRA_ENV", "production")
    monkeypatch.setenv("TUNEMANTRA_SECRET_KEY", secret)
    with pytest.raises(ValidationError, match="TUNEMANTRA_SECRET_KEY is a placeholder"):
        Settings()


def test_placeholder_default_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEMANTRA_SECRET_KEY", raising=False)
    monkeypatch.setenv("TUNEMANTRA_ENV", "production")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("TUNEMANTRA_SECRET_KEY", "a-long-random-production-secret")
    assert Settings().env == "production"


def test_an_optional_secret_is_checked_when_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEMANTRA_ENV", "production")
    monkeypatch.setenv("TUNEMANTRA_SECRET_KEY", "a-long-random-production-secret")
    assert Settings().sftp_password is None  # unset: nothing to refuse
    monkeypatch.setenv("TUNEMANTRA_SFTP_PASSWORD", "change-me")
    with pytest.raises(ValidationError, match="TUNEMANTRA_SFTP_PASSWORD is a placeholder"):
        Settings()


def test_database_url_is_a_secret_and_its_placeholder_password_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", "postgresql+psycopg://app:hunter2@db/tm")
    s = Settings()
    assert "hunter2" not in repr(s)
    assert s.sqlalchemy_url.endswith("app:hunter2@db/tm")
    monkeypatch.setenv("TUNEMANTRA_ENV", "production")
    monkeypatch.setenv("TUNEMANTRA_SECRET_KEY", "a-long-random-production-secret")
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", "postgresql+psycopg://app:password@db/tm")
    with pytest.raises(ValidationError, match="placeholder password"):
        Settings()


def test_delivery_profiles_and_dbt_threads_come_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipelines.delivery.service import configured_profiles

    for var in ("TUNEMANTRA_DSP_PROFILES", "TUNEMANTRA_DBT_THREADS"):
        monkeypatch.delenv(var, raising=False)
    default = Settings()
    assert (default.dsp_profiles, default.dbt_threads) == (None, 2)
    shipped = configured_profiles(default)
    assert shipped  # the profiles in schemas/dsp_profiles

    first = sorted(shipped)[0]
    shipped_dir = Path(__file__).resolve().parents[2] / "schemas" / "dsp_profiles"
    (tmp_path / f"{first}.yaml").write_text((shipped_dir / f"{first}.yaml").read_text())
    monkeypatch.setenv("TUNEMANTRA_DSP_PROFILES", str(tmp_path))
    monkeypatch.setenv("TUNEMANTRA_DBT_THREADS", "4")
    s = Settings()
    assert (s.dsp_profiles, s.dbt_threads) == (tmp_path, 4)
    assert list(configured_profiles(s)) == [first]
    monkeypatch.setenv("TUNEMANTRA_DBT_THREADS", "0")
    with pytest.raises(ValidationError):
        Settings()
