"""Ingest from paths and drop URLs (local folders, ``file://``, ``sftp://``, ``s3://``).

A URL ending in ``/`` (or a local directory) is a folder: every ready file in it is ingested;
otherwise it names one file. Credentials come from the URL or the environment (AWS_* for S3,
``TUNEMANTRA_SFTP_PASSWORD`` for SFTP), never from the command line history.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from pipelines.ingest import IngestOutcome, ingest_path


def _local_files(path: Path) -> Iterator[tuple[Path, str]]:
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".ctrl"):
                yield p, str(p.relative_to(path))
    elif path.is_file():
        yield path, path.name
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")


def ingest_sources(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    sources: list[str],
    format: str | None = None,
    period: str | None = None,
) -> Iterator[IngestOutcome]:
    for source in sources:
        scheme = urlsplit(source).scheme
        if scheme in ("", "file"):
            local = Path(urlsplit(source).path if scheme == "file" else source)
            for path, name in _local_files(local):
                yield ingest_path(
                    factory,
                    data_dir,
                    org_id=org_id,
                    path=path,
                    name=name,
                    source_url=path.resolve().as_uri(),
                    format=format,
                    period=period,
                )
            continue
        yield from _ingest_remote(
            factory, data_dir, org_id=org_id, url=source, format=format, period=period
        )


def _ingest_remote(
    factory: sessionmaker[Session],
    data_dir: Path,
    *,
    org_id: int,
    url: str,
    format: str | None,
    period: str | None,
    settle: float = 2.0,
) -> Iterator[IngestOutcome]:
    from connectors.drops import open_drop, ready_entries

    folder = url.endswith("/")
    base, _, leaf = url.rstrip("/").rpartition("/") if not folder else (url, "", "")
    credentials = {}
    if urlsplit(url).scheme == "sftp" and os.environ.get("TUNEMANTRA_SFTP_PASSWORD"):
        credentials["password"] = os.environ["TUNEMANTRA_SFTP_PASSWORD"]
    with (
        open_drop(base if not folder else url, **credentials) as drop,
        tempfile.TemporaryDirectory(prefix="tm-fetch-") as tmp,
    ):
        if folder:
            # Two listings `settle` seconds apart: a file still growing is not taken (a partial
            # upload ingested now and in full later would count its lines twice).
            _, sizes = ready_entries(drop, None)
            time.sleep(settle)
            names = [e.name for e in ready_entries(drop, sizes)[0]]
        else:
            names = [leaf]
        for name in names:
            local = drop.download(name, Path(tmp) / Path(name).name)
            try:
                yield ingest_path(
                    factory,
                    data_dir,
                    org_id=org_id,
                    path=local,
                    name=name,
                    source_url=f"{url.rstrip('/')}/{name}" if folder else url,
                    format=format,
                    period=period,
                )
            finally:
                local.unlink(missing_ok=True)
