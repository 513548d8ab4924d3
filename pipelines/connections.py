"""One place that turns a drop or target URL plus the name of its secret into a connection:
inbound drops (``pipelines.ingest.drops``), statements publishing targets
(``pipelines.statements.publish``) and DSP delivery targets (``pipelines.delivery``).

Secrets come from ``Settings`` only: the secret a drop or target *names* (``secret_env``:
an SFTP password, or ``ACCESS_KEY:SECRET_KEY`` for S3; without one, boto3's usual AWS_* chain
applies), the SFTP known_hosts file (``TUNEMANTRA_SFTP_KNOWN_HOSTS``) and the S3 endpoint
(``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``). A password written in a URL is used but never
recorded (``public_url``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from connectors.drops import Drop, open_drop
from pipelines.settings import Settings


def connection_options(
    url: str, secret_name: str | None, settings: Settings, *, password: str | None = None
) -> dict[str, object]:
    """The keyword arguments ``connectors.drops.open_drop`` takes for ``url``: the secret
    ``secret_name`` names (when set), else ``password`` for SFTP; for SFTP the known_hosts
    file of the settings, for S3 their endpoint."""
    scheme = urlsplit(url).scheme
    options: dict[str, object] = {}
    if scheme == "sftp" and settings.sftp_known_hosts is not None:
        # always a path: the setting can name trusted keys but never turn verification off
        # (SftpDrop's "auto-add" is a string option, not a path)
        options["known_hosts"] = Path(settings.sftp_known_hosts)
    if scheme == "s3" and settings.s3_endpoint_url:
        options["endpoint_url"] = settings.s3_endpoint_url
    secret = settings.secret(secret_name) if secret_name else None
    if secret is not None and scheme == "s3":
        access, _, key = secret.get_secret_value().partition(":")
        return {**options, "access_key": access, "secret_key": key}
    if secret is not None:
        return {**options, "password": secret.get_secret_value()}
    if password and scheme == "sftp":
        options["password"] = password
    return options


def connect(
    url: str,
    secret_name: str | None = None,
    settings: Settings | None = None,
    *,
    password: str | None = None,
) -> Drop:
    """Open the drop or target ``url`` with the secret ``secret_name`` names
    (``connection_options``); a plain path is a local folder. Without ``settings``, they are
    read from the environment now (a long-lived process may have changed it: tests)."""
    settings = settings if settings is not None else Settings()
    local = url if urlsplit(url).scheme else str(Path(url).resolve())
    return open_drop(local, **connection_options(url, secret_name, settings, password=password))


def public_url(url: str) -> str:
    """``url`` with any password removed from it (what may be stored and shown)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}@{host}" if user else host).geturl()
