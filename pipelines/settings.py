"""Settings: one place that reads the environment (prefix ``TUNEMANTRA_``).

Embedded defaults need no configuration at all: a SQLite file and local folders under
``TUNEMANTRA_DATA_DIR`` (``./var``). Production sets ``TUNEMANTRA_ENV=production``,
``TUNEMANTRA_DATABASE_URL=postgresql+psycopg://...`` and real secrets.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.layout import DataDir

DROP_SETTLE_SECONDS = 2.0  # production default; the tests set 0 (no file grows during a test)
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "password", "dev-only-secret"}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TUNEMANTRA_", env_file=None, extra="ignore", populate_by_name=True
    )

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./var")
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL (it may hold a password); default: SQLite in data_dir.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr("dev-only-secret"),
        description="Server-side pepper for API key hashes. Must be set outside development.",
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    busy_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a write waits for the store held by another writer (SQLite) "
        "before the API answers 503 with Retry-After and the CLI says another command holds it.",
    )
    api_max_in_flight: int = Field(
        default=32,
        ge=1,
        description="Requests one API process works on at once (each holds at most one store "
        "connection); more wait their turn, and get 503 with Retry-After after api_queue_wait.",
    )
    api_queue_wait: float = Field(
        default=10.0, gt=0, description="Seconds a request waits for its turn before a 503."
    )
    dbt_threads: int = Field(
        default=2,
        ge=1,
        description="Threads of the warehouse's `dbt build` (DAG and `tunemantra warehouse "
        "build`); each writes the same DuckDB file, so more rarely helps.",
    )
    dsp_profiles: Path | None = Field(
        default=None,
        description="Folder of DSP delivery profiles (one YAML file per DSP); default: the "
        "profiles shipped in schemas/dsp_profiles.",
    )
    drop_settle_seconds: float = Field(
        default=DROP_SETTLE_SECONDS,
        ge=0,
        description="Seconds between the two listings of a drop folder given by URL to "
        "`tunemantra ingest`: a file whose size changed in between is still being uploaded "
        "and is left for the next run.",
    )
    ingest_max_rejected_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A report more of whose lines than this share are rejected is not "
        "ingested but quarantined with its findings summarised (a file with every line "
        "rejected always is): 1 quarantines only those.",
    )
    sftp_password: SecretStr | None = Field(
        default=None,
        description="The password of an SFTP URL given to `tunemantra ingest` (configured "
        "drops name their own secret: ``secret``).",
    )
    sftp_known_hosts: Path | None = Field(
        default=None,
        description="A known_hosts file SFTP host keys are verified against (default: "
        "~/.ssh/known_hosts); it can name trusted keys, never turn verification off.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="The S3 endpoint of s3:// drops and targets (boto3's own variables, "
        "AWS_ENDPOINT_URL_S3 first); None: AWS.",
    )

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        # Absolute from the start: Airflow tasks, child processes and libraries (GX) may run
        # with another working directory.
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env != "development":
            for name, value in self.secrets().items():
                if name == "database_url":
                    continue  # a URL, not a secret on its own; its password is checked below
                if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(
                        f"TUNEMANTRA_{name.upper()} is a placeholder; set a real secret "
                        f"when TUNEMANTRA_ENV={self.env}"
                    )
            if self.database_url is not None:
                password = sa_url_password(self.database_url.get_secret_value())
                if password is not None and password.lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(
                        "TUNEMANTRA_DATABASE_URL has a placeholder password; set a real one "
                        f"when TUNEMANTRA_ENV={self.env}"
                    )
        return self

    def secrets(self) -> dict[str, SecretStr]:
        return {
            name: value
            for name, value in self.__dict__.items()
            if isinstance(value, SecretStr)  # an optional secret left unset (None) is not one
        }

    def secret(self, name: str) -> SecretStr | None:
        """The secret held by the environment variable ``name``, which a drop, a statements
        target or a DSP profile names (``secret_env``): read when asked, since the names are
        data, not fields; None when it is unset or empty. An SFTP password, or
        ``ACCESS_KEY:SECRET_KEY`` for S3."""
        value = os.environ.get(name)
        return SecretStr(value) if value else None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{DataDir(self.data_dir).sqlite_file().resolve()}"


def sa_url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # an unparsable URL fails later, at connect, with its own error
        return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
