"""What Airflow task bodies call: settings from the environment, an org slug in, a small
JSON-able result out. Keeps DAG files to configuration."""

from __future__ import annotations

from typing import Any

from pipelines.resources import Resources
from schemas.store.orgs import org_id


def _org(slug: str) -> int:
    """The id of the organisation ``slug`` (``schemas.store.orgs.org_id``)."""
    with Resources.current().factory() as session:
        return org_id(session, slug)


def list_new_files(org: str) -> list[dict[str, str]]:
    from pipelines.ingest.drops import pending_files

    return pending_files(Resources.current(), _org(org))


def ingest_file(org: str, item: dict[str, str]) -> dict[str, Any]:
    from pipelines.ingest.drops import ingest_one

    outcome = ingest_one(Resources.current(), _org(org), item["drop"], item["name"])
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

    return finish_batch(Resources.current(), _org(org), list(outcomes))
