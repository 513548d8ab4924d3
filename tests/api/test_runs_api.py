"""The label's books over the API: royalty runs (list, detail, preview, diff), ingested files
(list, detail with findings) and FX rates, on the sample label's locked period. Each route is
the caller's organisation only (another organisation's ids are 404, its rows never listed) and
the label's own keys only (a payee key is 403).

``COVERED`` is read by test_tenancy.test_every_route_has_an_isolation_case."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from pipelines.royalty.preview import preview
from schemas.store.models import FxRate, IngestFile
from schemas.store.runs import RoyaltyRun
from tests.api.test_statements_api import World, _world
from tests.snapshots import Snapshots

COVERED = {
    "GET /v1/royalty-runs",
    "GET /v1/royalty-runs/{}",
    "GET /v1/royalty-runs/{}/preview",
    "GET /v1/royalty-runs/{}/diff",
    "GET /v1/ingest-files",
    "GET /v1/ingest-files/{}",
    "GET /v1/fx-rates",
}


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory, snapshots: Snapshots) -> Iterator[World]:
    yield from _world(snapshots, tmp_path_factory.mktemp("api-books"), lock=True)


def test_the_label_reads_its_runs_files_and_rates_and_no_one_else_does(books: World) -> None:
    c, keys, p = books.client, books.keys, books.period
    with p.factory() as s:
        run = s.get(RoyaltyRun, p.run_id)
        assert run is not None
        files = s.scalars(sa.select(IngestFile).where(IngestFile.org_id == p.org_id)).all()
        rates = s.scalars(sa.select(FxRate).where(FxRate.org_id == p.org_id)).all()
        file_id = max(files, key=lambda f: f.error_count).id
        errors = {f.id: f.error_count for f in files}
        refused = [
            (f.id, f.quarantine_code, len(f.errors_sample)) for f in files if f.quarantine_code
        ]
    assert files and rates
    run_url, file_url = f"/v1/royalty-runs/{p.run_id}", f"/v1/ingest-files/{file_id}"
    own = [
        run_url,
        f"{run_url}/preview",
        f"{run_url}/diff",
        file_url,
        "/v1/royalty-runs",
        "/v1/ingest-files",
        "/v1/fx-rates",
    ]
    for who in ("admin", "finance", "analyst"):
        for url in own:
            assert c.get(url, headers=keys[who]).status_code == 200, (who, url)

    # runs: every version listed, the detail with its totals, the preview as the use case has it
    listed = c.get("/v1/royalty-runs?limit=500", headers=keys["analyst"]).json()["items"]
    assert [(r["id"], r["period"], r["status"]) for r in listed] == [(p.run_id, p.period, "locked")]
    assert c.get("/v1/royalty-runs?status=calculated", headers=keys["admin"]).json() == {
        "items": [],
        "next_cursor": None,
    }
    detail = c.get(run_url, headers=keys["finance"]).json()
    assert (detail["version"], detail["locked_by"] is not None) == (run.version, True)
    assert detail["totals"] == run.totals and detail["currency"] == run.currency
    shown = c.get(f"{run_url}/preview", headers=keys["finance"]).json()
    assert shown["markdown"] == preview(p.factory, run_id=p.run_id)["markdown"]
    assert c.get(f"{run_url}/diff", headers=keys["finance"]).json() == {
        "run_id": p.run_id,
        "supersedes_id": None,
        "reason": "",
        "diff": [],
    }

    # ingested files: the ledger, and one file's findings (all of them, counted by code)
    got = c.get("/v1/ingest-files?limit=500", headers=keys["admin"]).json()["items"]
    assert {f["id"]: f["error_count"] for f in got} == errors
    assert "raw_path" not in got[0] and "owner_pid" not in got[0]
    one = c.get(f"{file_url}?limit=2", headers=keys["analyst"]).json()
    assert one["findings_total"] == errors[file_id] == sum(one["findings_by_code"].values())
    assert len(one["findings"]) == min(2, errors[file_id])
    if one["findings"]:
        assert {"line_no", "field", "code", "severity"} <= set(one["findings"][0])
    assert one["expectations"] is not None and "success" in one["expectations"]
    for refused_id, code, sample in refused:  # no findings report: the sample on its row
        got_refused = c.get(f"/v1/ingest-files/{refused_id}", headers=keys["admin"]).json()
        assert (got_refused["status"], got_refused["quarantine_code"]) == ("quarantined", code)
        assert got_refused["findings_total"] == sample

    # rates: as stored, filtered by currency (case-insensitive) and month
    all_rates = c.get("/v1/fx-rates?limit=500", headers=keys["analyst"]).json()["items"]
    assert {(r["base"], r["quote"], r["period"], Decimal(r["rate"])) for r in all_rates} == {
        (r.base, r.quote, r.period, r.rate) for r in rates
    }
    base = rates[0].base
    some = c.get(f"/v1/fx-rates?base={base.lower()}", headers=keys["admin"]).json()["items"]
    assert some and {r["base"] for r in some} == {base}

    # another organisation: its lists are empty, our ids are not found
    other = keys["other_org"]
    for url in ("/v1/royalty-runs", "/v1/ingest-files", "/v1/fx-rates"):
        assert c.get(url, headers=other).json()["items"] == [], url
    for url in own[:4]:
        r = c.get(url, headers=other)
        assert r.status_code == 404, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # a payee key: the label's books are not its to read
    for url in own:
        assert c.get(url, headers=keys["mara"]).status_code == 403, url
    assert c.get("/v1/royalty-runs/999999", headers=keys["admin"]).status_code == 404
    assert c.get("/v1/fx-rates?period=2026-13", headers=keys["admin"]).status_code == 422
