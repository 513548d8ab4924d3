"""Ingest from paths and drop URLs (local folders, ``file://``, ``sftp://``, ``s3://``).

A URL ending in ``/`` (or a local directory) is a folder: every ready file in it is ingested;
otherwise it names one file. Credentials come from the URL or the settings (AWS_* for S3,
``TUNEMANTRA_SFTP_PASSWORD`` for SFTP; a configured drop's own secret, ``Drop.secret_env``),
never from the command line history; a password given in a URL is never recorded (the ledger
keeps the URL without it). ``pipelines.connections`` opens every drop.

SFTP host keys are always verified: against ``~/.ssh/known_hosts``, or against the file that
``TUNEMANTRA_SFTP_KNOWN_HOSTS`` names (e.g. a mounted secret in a container).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from pipelines.connections import connect, public_url
from pipelines.ingest.files import IngestOutcome, ingest_path, recover
from pipelines.resources import Resources
from pipelines.settings import DROP_SETTLE_SECONDS

log = logging.getLogger(__name__)


def _local_files(path: Path) -> Iterator[tuple[Path, str]]:
    if path.is_dir():
        root = path.resolve()
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".ctrl"):
                if not p.resolve().is_relative_to(root):
                    # as a drop does: a link out of the folder could pull in any file on the
                    # machine (another organisation's raw reports)
                    log.warning("skipping %s: it points outside %s", p, path)
                    continue
                yield p, str(p.relative_to(path))
    elif path.is_file():
        yield path, path.name
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")


def ingest_sources(
    res: Resources,
    *,
    org_id: int,
    sources: list[str],
    format: str | None = None,
    period: str | None = None,
    chunk_bytes: int | None = None,
    settle: float = DROP_SETTLE_SECONDS,
) -> Iterator[IngestOutcome]:
    """Ingest every file of ``sources``, after recovering what a crashed ingestion of the
    organisation left (``pipelines.ingest.files.recover``). A drop folder URL is listed twice,
    ``settle`` seconds apart (``Settings.drop_settle_seconds``): files still growing wait."""
    recover(res, org_id)
    for source in sources:
        scheme = urlsplit(source).scheme
        if scheme in ("", "file"):
            local = Path(urlsplit(source).path if scheme == "file" else source)
            for path, name in _local_files(local):
                yield _guarded(
                    name,
                    partial(
                        ingest_path,
                        res,
                        org_id=org_id,
                        path=path,
                        name=name,
                        source_url=path.resolve().as_uri(),
                        format=format,
                        period=period,
                        chunk_bytes=chunk_bytes,
                    ),
                )
            continue
        yield from _ingest_remote(
            res, org_id=org_id, url=source, format=format, period=period, settle=settle
        )


def _ingest_remote(
    res: Resources,
    *,
    org_id: int,
    url: str,
    format: str | None,
    period: str | None,
    settle: float,
) -> Iterator[IngestOutcome]:
    from connectors.drops import ready_entries

    folder = url.endswith("/")
    base, _, leaf = url.rstrip("/").rpartition("/") if not folder else (url, "", "")
    password = res.settings.sftp_password
    public = public_url(url)
    with (
        connect(
            base if not folder else url,
            None,
            res.settings,
            password=password.get_secret_value() if password else None,
        ) as drop,
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
            local = Path(tmp) / Path(name).name

            def one(name: str = name, local: Path = local) -> IngestOutcome:
                drop.download(name, local)
                return ingest_path(
                    res,
                    org_id=org_id,
                    path=local,
                    name=name,
                    source_url=f"{public.rstrip('/')}/{name}" if folder else public,
                    format=format,
                    period=period,
                )

            try:
                yield _guarded(name, one)
            finally:
                local.unlink(missing_ok=True)


FAILED = "ingest_failed"  # the code of a file that failed on the machine or an unforeseen fault


def _guarded(name: str, ingest: Callable[[], IngestOutcome]) -> IngestOutcome:
    """One file of a batch: its outcome, or ``failed`` with the error when ingesting it raised
    (the machine's faults, or one no check foresaw). Nothing of it is recorded, so the next
    run tries it again; the batch goes on with the next file either way."""
    try:
        return ingest()
    except Exception as exc:
        log.exception("ingesting %s failed", name)
        error = {
            "code": FAILED,
            "message": f"{type(exc).__name__}: {exc}"[:2000],
            "row": None,
            "field": None,
            "file": name,
        }
        return IngestOutcome(name=name, status="failed", error_count=1, errors=[error])


# --- entry points for the Airflow DAG (small, JSON-able arguments and results) ---------------
def pending_files(res: Resources, org_id: int) -> list[dict[str, str]]:
    """Ready files in the organisation's enabled drops that the ledger has not seen.

    Readiness across runs (size unchanged since the previous listing) is remembered in
    ``DataDir.drop_state`` (``<drop>.json``). A drop that cannot be listed
    (server down, bad credentials) is skipped with its error in ``<drop>.error.json`` beside
    it (and the log); the other drops are listed as usual.
    """
    import json

    import sqlalchemy as sa

    from connectors.drops import ready_entries
    from pipelines import lake
    from schemas.store.models import Drop, IngestFile

    recover(res, org_id)  # a crashed ingestion's file is listed again
    with res.factory() as session:
        drops = list(
            session.scalars(sa.select(Drop).where(Drop.org_id == org_id, Drop.enabled.is_(True)))
        )
        known: set[str] = set()
        for url, others in session.execute(
            sa.select(IngestFile.source_url, IngestFile.other_names).where(
                IngestFile.org_id == org_id
            )
        ):
            known.add(url)
            known.update(others)
    out = []
    for drop in drops:
        folder = res.data.drop_state(org_id)
        state, failure = folder / f"{drop.name}.json", folder / f"{drop.name}.error.json"
        previous = json.loads(state.read_text()) if state.exists() else None
        try:
            with connect(drop.url, drop.secret_env, res.settings) as d:
                ready, sizes = ready_entries(d, previous)
        except Exception as exc:  # one unreachable drop must not hide the others' files
            log.warning("drop %s of organisation %s cannot be listed: %s", drop.name, org_id, exc)
            lake.write_json(
                {"drop": drop.name, "url": public_url(drop.url), "error": repr(exc)},
                failure,
            )
            continue
        failure.unlink(missing_ok=True)
        lake.write_json(sizes, state)
        public = public_url(drop.url)
        for entry in ready:
            url = f"{public.rstrip('/')}/{entry.name}"
            if url not in known:
                out.append({"drop": drop.name, "name": entry.name, "url": url})
    return out


def ingest_one(res: Resources, org_id: int, drop_name: str, name: str) -> dict[str, object]:
    """Fetch one file from a configured drop and ingest it; returns the outcome as a dict."""
    import sqlalchemy as sa

    from schemas.store.models import Drop

    with res.factory() as session:
        drop = session.scalar(sa.select(Drop).where(Drop.org_id == org_id, Drop.name == drop_name))
        if drop is None:
            raise ValueError(f"no drop {drop_name!r} for organisation {org_id}")
        url, secret_env, fmt = drop.url, drop.secret_env, drop.format
    with (
        connect(url, secret_env, res.settings) as d,
        tempfile.TemporaryDirectory(prefix="tm-fetch-") as tmp,
    ):
        local = d.download(name, Path(tmp) / Path(name).name)
        outcome = ingest_path(
            res,
            org_id=org_id,
            path=local,
            name=name,
            source_url=f"{public_url(url).rstrip('/')}/{name}",
            format=fmt,
        )
    return outcome.as_dict()


def finish_batch(
    res: Resources, org_id: int, outcomes: list[dict[str, object]]
) -> dict[str, object]:
    """After a batch: re-match suspense against the current catalogue, summarise."""
    from pipelines.ingest.suspense import rematch

    summary: dict[str, object] = {"files": len(outcomes)}
    for status in ("ingested", "duplicate", "quarantined"):
        summary[status] = sum(1 for o in outcomes if o.get("status") == status)
    summary["lines"] = sum(int(o.get("lines", 0)) for o in outcomes)  # type: ignore[call-overload]
    summary["rematch"] = rematch(res, org_id)
    return summary
