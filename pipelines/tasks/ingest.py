"""What Airflow task bodies call: settings from the environment, an org slug in, a small
JSON-able result out. Keeps DAG files to configuration."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pipelines.resources import get_session_factory
from pipelines.settings import get_settings
from schemas.store.models import Organisation


def _org(slug: str) -> int:
    with get_session_factory()() as session:
        org_id = session.scalar(sa.select(Organisation.id).where(Organisation.slug == slug))
    if org_id is None:
        raise ValueError(f"no organisation {slug!r}")
    return org_id


def list_new_files(org: str) -> list[dict[str, str]]:
    from pipelines.ingest.drops import pending_files

    return pending_files(get_session_factory(), get_settings().data_dir, _org(org))


def ingest_file(org: str, item: dict[str, str]) -> dict[str, Any]:
    from pipelines.ingest.drops import ingest_one

    outcome = ingest_one(
        get_session_factory(), get_settings().data_dir, _org(org), item["drop"], item["name"]
    )
    return {
        k: outcome[k]
        for k in (
            "name",
            "status",
            "file_id",
            "format",
            "lines",
            "accepted",
            "rejected",
            "matched",
            "suspense",
            "error_count",
            "quarantine",
        )
    }


def summarise_ingest(org: str, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    from pipelines.ingest.drops import finish_batch

    return finish_batch(get_session_factory(), get_settings().data_dir, _org(org), list(outcomes))
