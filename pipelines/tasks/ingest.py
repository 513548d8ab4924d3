"""What Airflow task bodies call: settings from the environment, an org slug in, a small
JSON-able result out. Keeps DAG files to configuration.

The task logs say what happened to each file (parsed, accepted, rejected with the top
reasons, matched, in suspense), without Great Expectations' own chatter (``_quiet_gx_logs``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.resources import Resources
from schemas.store.orgs import org_id

log = logging.getLogger(__name__)

EVERY_ORG = "*"  # the ``org`` of the hourly schedule: every organisation that has drops
OUTCOME_KEYS = (
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


def _org(slug: str) -> int:
    """The id of the organisation ``slug`` (``schemas.store.orgs.org_id``)."""
    with Resources.current().factory() as session:
        return org_id(session, slug)


def orgs_to_poll(org: str) -> list[str]:
    """``org`` itself, or for ``*`` the slug of every organisation with an enabled drop."""
    if org != EVERY_ORG:
        return [org]
    import sqlalchemy as sa

    from schemas.store.models import Drop, Organisation

    with Resources.current().factory() as session:
        stmt = (
            sa.select(Organisation.slug)
            .join(Drop, Drop.org_id == Organisation.id)
            .where(Drop.enabled.is_(True))
            .distinct()
            .order_by(Organisation.slug)
        )
        return list(session.scalars(stmt))


@contextmanager
def _quiet_gx_logs() -> Iterator[None]:
    """Great Expectations logs its own set-up (data sources, assets and suites registered,
    data context created) at INFO for every file: in a task log that buries what happened to
    the file. Its loggers only say warnings and errors while our calls run."""
    loggers = [logging.getLogger("great_expectations")] + [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("great_expectations.")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def describe(outcome: dict[str, Any]) -> str:
    """One file's outcome in a sentence for the task log."""
    name, status = outcome.get("name"), outcome.get("status")
    if status == "quarantined":
        q = outcome.get("quarantine") or {}
        return f"{name}: quarantined ({q.get('code')}): {q.get('message', '')}".rstrip(": ")
    if status == "failed":
        errors = outcome.get("errors") or [{}]
        return f"{name}: failed, will be tried again: {errors[0].get('message', '')}"
    if status == "duplicate":
        return f"{name}: duplicate of file {outcome.get('file_id')}, nothing added"
    text = (
        f"{name}: {status} as {outcome.get('format')}: {outcome.get('lines', 0)} lines parsed, "
        f"{outcome.get('accepted', 0)} accepted, {outcome.get('rejected', 0)} rejected; "
        f"{outcome.get('matched', 0)} matched, {outcome.get('suspense', 0)} in suspense"
    )
    reasons = Counter(str(e.get("code")) for e in outcome.get("errors") or [] if e.get("code"))
    if reasons:
        text += "; top reject reasons: " + ", ".join(
            f"{code} ×{n}" for code, n in reasons.most_common(3)
        )
    return text


def list_new_files(org: str) -> list[dict[str, str]]:
    """Ready files not seen yet in the drops of ``org`` (``*``: of every organisation with
    drops), each with the slug of its organisation."""
    from pipelines.ingest.drops import pending_files

    out = []
    for slug in orgs_to_poll(org):
        files = pending_files(Resources.current(), _org(slug))
        log.info("%s: %d new file(s) ready in its drops", slug, len(files))
        out += [{**f, "org": slug} for f in files]
    return out


def ingest_file(org: str, item: dict[str, str]) -> dict[str, Any]:
    from pipelines.ingest.drops import ingest_one

    slug = item.get("org") or org
    with _quiet_gx_logs():
        outcome = ingest_one(Resources.current(), _org(slug), item["drop"], item["name"])
    log.info("%s", describe(outcome))
    return {"org": slug} | {k: outcome[k] for k in OUTCOME_KEYS}


def summarise_ingest(org: str, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per organisation polled: re-match suspense, count the outcomes. One organisation's
    summary is returned as it is; for ``*`` the counts are added up, with ``by_org``."""
    from pipelines.ingest.drops import finish_batch

    by_org: dict[str, dict[str, Any]] = {}
    # (and any organisation a file came from, should its drops have been disabled since)
    polled = set(orgs_to_poll(org)) | {str(o["org"]) for o in outcomes if o.get("org")}
    for slug in sorted(polled):
        mine = [o for o in outcomes if (o.get("org") or org) == slug]
        with _quiet_gx_logs():
            by_org[slug] = finish_batch(Resources.current(), _org(slug), mine)
        s = by_org[slug]
        log.info(
            "%s: %s file(s): %s ingested, %s duplicate, %s quarantined; %s lines; rematch: %s",
            slug,
            s["files"],
            s["ingested"],
            s["duplicate"],
            s["quarantined"],
            s["lines"],
            s["rematch"],
        )
    if org != EVERY_ORG:
        return by_org[org]
    counts = ("files", "ingested", "duplicate", "quarantined", "lines")
    total = {k: sum(int(s[k]) for s in by_org.values()) for k in counts}
    return total | {"by_org": by_org}


def lake_changed(summary: dict[str, Any]) -> bool:
    """Did the batch change the lake (a file ingested, or suspense lines re-matched)? Only
    then is the revenue-lines Asset announced (its consumers would re-run for nothing)."""
    parts = list(summary.get("by_org", {}).values()) or [summary]
    return any(
        int(s.get("ingested", 0)) > 0 or int((s.get("rematch") or {}).get("files_rewritten", 0))
        for s in parts
    )
