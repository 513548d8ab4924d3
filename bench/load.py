"""``tunemantra bench load``: a generated label loaded through ``scenario load``, rows/s.

The label is a scenario YAML (``docs/scenarios.md``) of N tracks on N/5 releases, with
payees, contracts (one or two rates each) and two or three splits per track. The load is
timed through ``pipelines.scenario.load_scenario`` (validation, the store's rules, the audit
log, one transaction) into a fresh store; the floor is a raw executemany of the same number
of rows into a bare table of the same store in the same run.
"""

from __future__ import annotations

import csv
import io
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from schemas.identifiers import gtin_check_digit

START = "2020-01-01"


def _isrc(n: int) -> str:
    return f"GBBNC{20 + n // 100_000:02d}{n % 100_000:05d}"


def _upc(n: int) -> str:
    body = f"{n:011d}"
    return body + gtin_check_digit(body)


def scenario(tracks: int, payees: int, contracts: int) -> dict[str, Any]:
    """A label of ``tracks`` tracks (five per release), ``payees`` payees and ``contracts``
    contracts (every payee one, the rest a second one): two or three splits per track."""
    contracts = max(contracts, payees)
    n_artists = max(1, tracks // 10)
    artists = [{"name": f"Artist {i:05d}"} for i in range(n_artists)]
    releases = []
    for r in range(max(1, tracks // 5)):
        first = r * 5
        releases.append(
            {
                "upc": _upc(r + 1),
                "title": f"Release {r:05d}",
                "artist": artists[r % n_artists]["name"],
                "original_release_date": "2021-06-01",
                "tracks": [
                    {"isrc": _isrc(t), "title": f"Track {t:06d}"}
                    for t in range(first, min(first + 5, tracks))
                ],
            }
        )
    payee_rows = [{"name": f"Payee {i:05d}"} for i in range(payees)]
    contract_rows = []
    for k in range(contracts):
        payee = payee_rows[k % payees]["name"]
        rates: list[dict[str, Any]] = [{"rate": "0.25"}]
        if k % 2:
            rates.append({"usage_type": "download", "rate": "0.18"})
        contract_rows.append(
            {
                "reference": f"K-{k:05d}",
                "payee": payee,
                "basis": "net_receipts",
                "start_date": START,
                "rates": rates,
            }
        )
    splits = []
    for t in range(tracks):
        for j, share in enumerate(("0.5", "0.3", "0.2")[: 2 + t % 2]):
            k = (t * 3 + j) % contracts
            splits.append(
                {
                    "isrc": _isrc(t),
                    "payee": contract_rows[k]["payee"],
                    "contract": contract_rows[k]["reference"],
                    "share": share,
                }
            )
    return {
        "organisation": {"currency": "EUR", "name": "Bench Label"},
        "artists": artists,
        "releases": releases,
        "payees": payee_rows,
        "contracts": contract_rows,
        "splits": splits,
    }


def write_scenario(path: Path, tracks: int, payees: int, contracts: int) -> Path:
    path.write_text(
        yaml.dump(scenario(tracks, payees, contracts), Dumper=yaml.CSafeDumper, sort_keys=False),
        encoding="utf-8",
    )
    return path


def catalog_csv(label: dict[str, Any]) -> bytes:
    """The label's releases and tracks as a catalogue import file (one row per track)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        [
            *("release_upc", "release_title", "release_type", "label_name", "release_artist"),
            *("release_date", "isrc", "track_title", "duration", "track_number"),
        ]
    )
    for r in label["releases"]:
        for n, t in enumerate(r["tracks"], start=1):
            w.writerow(
                [
                    *(r["upc"], r["title"], "Album", "Bench Label", r["artist"]),
                    *(r["original_release_date"], t["isrc"], t["title"], "3:15", n),
                ]
            )
    return out.getvalue().encode()


def _import(factory: Any, label: dict[str, Any]) -> dict[str, Any]:
    """``tunemantra import catalog`` of the label's catalogue into a new organisation."""
    from schemas.store import db
    from schemas.store.imports import import_catalog
    from schemas.store.models import Organisation

    payload = catalog_csv(label)
    cpu0, t0 = _cpu(), time.perf_counter()
    with db.transaction(factory, actor="bench") as session:
        org = Organisation(slug="bench-import", name="Bench Import", default_currency="EUR")
        session.add(org)
        session.flush()
        result = import_catalog(session, org.id, payload, "text/csv")
    seconds = time.perf_counter() - t0
    rows = sum(result.created.values())
    return {
        "created": dict(result.created),
        "rows": rows,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(_cpu() - cpu0, 2),
        "rows_per_second": round(rows / seconds) if seconds else None,
    }


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _floor(engine: sa.Engine, rows: int) -> float:
    """Seconds for a raw executemany of ``rows`` rows of five columns, one transaction."""
    meta = sa.MetaData()
    table = sa.Table(
        "bench_load_floor",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("org_id", sa.Integer),
        sa.Column("name", sa.String(200)),
        sa.Column("code", sa.String(20)),
        sa.Column("share", sa.String(20)),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    data = [
        {"org_id": 1, "name": f"Row {i}", "code": f"C{i:09d}", "share": "0.5"} for i in range(rows)
    ]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(table.insert(), data)
    seconds = time.perf_counter() - t0
    meta.drop_all(engine)
    return seconds


def run(
    tracks: int, payees: int, contracts: int, *, database_url: str | None = None
) -> dict[str, Any]:
    """Generate, load into a fresh store (a temporary SQLite unless ``database_url`` names
    a database without the ``bench-load`` organisation), time it beside the floor."""
    from pipelines.scenario import load_scenario
    from schemas.store import db

    with tempfile.TemporaryDirectory(prefix="tm-bench-load-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        path = write_scenario(work / "label.yaml", tracks, payees, contracts)
        generate = time.perf_counter() - t0
        url = database_url or f"sqlite:///{work / 'store.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        factory = db.session_factory(engine)
        cpu0, t0 = _cpu(), time.perf_counter()
        result = load_scenario(factory, work / "data", path, org="bench-load")
        seconds = time.perf_counter() - t0
        cpu = _cpu() - cpu0
        rows = sum(result["created"].values())
        imported = _import(factory, scenario(tracks, payees, contracts))
        floor = _floor(engine, rows)
        engine.dispose()
    return {
        "database": sa.make_url(url).get_backend_name(),
        "created": result["created"],
        "rows": rows,
        "generate_seconds": round(generate, 2),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "rows_per_second": round(rows / seconds) if seconds else None,
        "catalog_import": imported,
        "floor_seconds": round(floor, 3),
        "floor_rows_per_second": round(rows / floor) if floor else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def describe(r: dict[str, Any]) -> str:
    made = ", ".join(f"{n:,} {k}" for k, n in r["created"].items())
    imp = r["catalog_import"]
    imported = ", ".join(f"{n:,} {k}" for k, n in imp["created"].items())
    return (
        f"{r['database']}: scenario load of {made} = {r['rows']:,} rows in {r['seconds']} s "
        f"({r['cpu_seconds']} CPU-s) = {r['rows_per_second']:,} rows/s, peak RSS "
        f"{r['peak_rss_mib']} MiB; floor (raw executemany of {r['rows']:,} rows) "
        f"{r['floor_seconds']} s = {r['floor_rows_per_second']:,} rows/s\n"
        f"{r['database']}: import catalog of {imported} = {imp['rows']:,} rows in "
        f"{imp['seconds']} s ({imp['cpu_seconds']} CPU-s) = {imp['rows_per_second']:,} rows/s"
    )
