"""What the delivery DAGs' tasks call (``dsp_delivery``, ``dsp_ack_poll``): settings from
the environment, an org slug in, a small JSON-able result out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipelines.delivery.acks import poll_every_dsp
from pipelines.delivery.package import due_releases
from pipelines.delivery.service import configured_profiles, package, report
from pipelines.delivery.upload import default_opener, target_url, upload_pending
from pipelines.resources import Resources
from schemas.store import orgs


def _org(res: Resources, slug: str) -> int:
    with res.factory() as session:
        return orgs.org_id(session, slug)


def plan_task(org: str, as_of: str) -> list[dict[str, str]]:
    """(release, DSP) pairs due on ``as_of`` (YYYY-MM-DD) for every profile."""
    res = Resources.current()
    org_id = _org(res, org)
    day = dt.date.fromisoformat(as_of)
    with res.factory() as session:
        return [
            {"upc": r.upc, "dsp": p.name}
            for p in configured_profiles(res.settings).values()
            for r in due_releases(session, org_id, p, day)
        ]


def package_task(org: str, item: dict[str, str], now: str) -> dict[str, Any]:
    res = Resources.current()
    org_id = _org(res, org)
    moment = dt.datetime.fromisoformat(now)
    (delivery_id,) = package(
        res,
        org_id,
        now=moment,
        as_of=moment.date(),
        dsps=[item["dsp"]],
        upc=item["upc"],
        profiles=configured_profiles(res.settings),
    )
    (row,) = report(res.factory, org_id, [delivery_id])
    return {"upc": row.upc, "dsp": row.dsp, "state": row.state, "delivery_id": row.delivery_id}


def upload_task(org: str, now: str) -> dict[str, Any]:
    res = Resources.current()
    org_id = _org(res, org)
    opener = default_opener(res.data)
    out = {}
    for profile in configured_profiles(res.settings).values():
        r = upload_pending(
            res.factory,
            org_id,
            profile,
            opener=opener,
            target=target_url(profile, res.data),
            now=dt.datetime.fromisoformat(now),
        )
        out[profile.name] = {
            "batches": r.batches,
            "uploaded": r.uploaded,
            "retrying": r.retrying,
            "failed": r.failed,
        }
    return out


def poll_task(org: str, now: str) -> dict[str, Any]:
    res = Resources.current()
    org_id = _org(res, org)
    outcomes = poll_every_dsp(
        res.factory,
        org_id,
        configured_profiles(res.settings).values(),
        opener=default_opener(res.data),
        now=dt.datetime.fromisoformat(now),
    )
    failed = [o for o in outcomes if o["status"] == "failed"]
    if failed:  # after every other DSP was polled: the run shows the outage, never green
        raise AckPollFailed("; ".join(f"{o['dsp']}: {o['error']}" for o in failed))
    return {
        o["dsp"]: {
            "applied": o["applied"],
            "refused": len(o["refused"]),
            "unmatched": o["unmatched"],
            "timed_out": o["timed_out"],
        }
        for o in outcomes
    }


class AckPollFailed(RuntimeError):
    """Some DSPs could not be polled (the others were); the message names each and why."""
