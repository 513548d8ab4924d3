"""``tunemantra bench api``: the API under concurrent load, beside a bare FastAPI endpoint.

Fills a store (a temporary SQLite file, or the empty database ``--backend-url`` names) with
the sample label plus a generated catalogue (2,000 tracks on 1,000 releases, 1,000 payees,
by default),
serves the real API with uvicorn on a free loopback port in a child process (as ``tunemantra
api --workers N`` does: N worker processes, default 1, each with the same pool and in-flight
limit), and drives it with N clients for
S seconds over a mix of routes: ``/healthz``, and list and detail reads of tracks, releases,
payees and contracts, and the statement list. Each client is a thread with one keep-alive
connection sending one request after another (closed loop). In the same run, the same load
drives a bare sync FastAPI endpoint served by the same uvicorn settings and the same number
of workers: the anchor, what this machine and server can do with no application work at all.

``--during-write`` (SQLite): another connection holds the store's write lock for the whole
measurement, as a long write would: reads must go on (WAL) and none may wait for it.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

SECRET = "bench-secret-not-a-placeholder"
TRACKS = 2_000  # default: on TRACKS / 2 releases, with TRACKS / 2 payees
TRACKS_PER_RELEASE = 2
LIST_KINDS = ("tracks", "releases", "payees", "contracts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(url: str, tracks: int = TRACKS) -> dict[str, Any]:
    """Migrate and fill the store: the sample label plus a generated catalogue of ``tracks``
    tracks on half as many releases, and half as many payees. Returns the admin key and some
    ids of each kind."""
    from demo.label import run_demo
    from schemas.identifiers import gtin_check_digit
    from schemas.store import db, service
    from schemas.store.imports import COLUMNS, import_catalog
    from schemas.store.models import Contract, Payee, Release, Track

    engine = db.make_engine(url)
    db.upgrade(engine)
    factory = db.session_factory(engine)
    summary = run_demo(factory, seed=1, secret_key=SECRET)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for r in range(max(1, tracks // TRACKS_PER_RELEASE)):
        body = f"506399{r:06d}"
        for t in range(TRACKS_PER_RELEASE):
            n = r * TRACKS_PER_RELEASE + t
            writer.writerow(
                {
                    "release_upc": body + gtin_check_digit(body),
                    "release_title": f"Bench Release {r}",
                    "release_type": "Single",
                    "label_name": "Northbound Records",
                    "release_artist": f"Bench Artist {r % 50}",
                    "release_date": "2024-01-05",
                    "isrc": f"GBBNC24{n:05d}",
                    "track_title": f"Bench Track {n}",
                    "duration": "3:20",
                    "track_number": t + 1,
                }
            )
    with db.transaction(factory, actor="bench") as session:
        import_catalog(session, summary.org_id, out.getvalue().encode(), "text/csv")
        for p in range(max(1, tracks // 2)):
            service.create(
                session,
                summary.org_id,
                "payees",
                {"name": f"Bench Payee {p}", "statement_currency": "GBP"},
            )
    ids: dict[str, list[int]] = {}
    with factory() as session:
        for kind, model in (
            ("tracks", Track),
            ("releases", Release),
            ("payees", Payee),
            ("contracts", Contract),
        ):
            ids[kind] = list(
                session.scalars(
                    sa.select(model.id).where(model.org_id == summary.org_id).limit(200)
                )
            )
        counts = {
            kind: session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.org_id == summary.org_id)
            )
            for kind, model in (("tracks", Track), ("releases", Release), ("payees", Payee))
        }
    engine.dispose()
    return {"admin_key": summary.admin_key, "ids": ids, "counts": counts}


def routes(ids: dict[str, list[int]]) -> list[tuple[str, str]]:
    """(kind, path): the mix every client cycles through."""
    mix = [("health", "/healthz"), ("list", "/v1/statements?limit=50")]
    for kind in LIST_KINDS:
        mix.append(("list", f"/v1/{kind}?limit=50"))
        for i in ids[kind][:: max(1, len(ids[kind]) // 10)][:10]:
            mix.append(("detail", f"/v1/{kind}/{i}"))
    return mix


def _serve(
    args: list[str], env: dict[str, str], workers: int = 1
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    args = [*args, str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.api", *args, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                if len(_workers(proc.pid)) >= workers:
                    return proc, port
                time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def _workers(pid: int) -> list[int]:
    """The processes serving for the server ``pid``: itself (one worker), or the worker
    processes uvicorn started for ``--workers N`` (Linux: read from /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    serving = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:  # a uvicorn worker, not multiprocessing's resource tracker
            serving.append(int(child))
    return serving or [pid]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    k = min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))
    return round(sorted_ms[k], 1)


def drive(
    port: int, mix: list[tuple[str, str]], headers: dict[str, str], clients: int, seconds: float
) -> dict[str, Any]:
    """N closed-loop clients for S seconds; latency figures overall and per kind of route."""
    results: list[list[tuple[str, int, float]]] = [[] for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        out = results[n]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = n * 7
        start_line.wait()
        while time.perf_counter() < stop_at[0]:
            kind, path = mix[i % len(mix)]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                status = 0  # no answer (refused, reset, timed out)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            out.append((kind, status, (time.perf_counter() - t0) * 1000))
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_line.wait()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - began
    every = [r for rs in results for r in rs]
    statuses = Counter(s for _, s, _ in every)
    ms = sorted(t for _, _, t in every)
    by_kind = {}
    for kind in sorted({k for k, _, _ in every}):
        kms = sorted(t for k, _, t in every if k == kind)
        by_kind[kind] = {
            "requests": len(kms),
            "p50_ms": _pct(kms, 0.50),
            "p95_ms": _pct(kms, 0.95),
            "max_ms": round(kms[-1], 1),
        }
    return {
        "requests": len(every),
        "requests_per_second": round(len(every) / elapsed, 1),
        "p50_ms": _pct(ms, 0.50),
        "p95_ms": _pct(ms, 0.95),
        "p99_ms": _pct(ms, 0.99),
        "max_ms": round(ms[-1], 1) if ms else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(v for k, v in statuses.items() if k == 0 or k >= 400),
        "server_errors": sum(v for k, v in statuses.items() if k == 0 or k >= 500),
        "over_1s": sum(1 for t in ms if t > 1000),
        "by_kind": by_kind,
    }


def run(
    clients: list[int],
    seconds: float,
    *,
    backend_url: str | None = None,
    during_write: bool = False,
    tracks: int = TRACKS,
    workers: int = 1,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tm-bench-api-"))
    try:
        url = backend_url or f"sqlite:///{work / 'bench.db'}"
        if during_write and not url.startswith("sqlite"):
            raise ValueError("--during-write holds SQLite's write lock: SQLite only")
        store = fill(url, tracks)
        env = {
            **os.environ,
            "TUNEMANTRA_DATABASE_URL": url,
            "TUNEMANTRA_DATA_DIR": str(work / "data"),
            "TUNEMANTRA_SECRET_KEY": SECRET,
        }
        headers = {"X-API-Key": store["admin_key"]}
        mix = routes(store["ids"])
        measured: list[dict[str, Any]] = []
        api, port = _serve(["--serve"], env, workers)
        api_workers = len(_workers(api.pid))
        lock = None
        try:
            drive(port, mix, headers, min(max(clients), 4), min(1.0, seconds))  # warm-up
            if during_write:
                lock = sqlite3.connect(work / "bench.db", isolation_level=None)
                lock.execute("BEGIN IMMEDIATE")
            measured = [drive(port, mix, headers, n, seconds) for n in clients]
        finally:
            if lock is not None:
                lock.execute("ROLLBACK")
                lock.close()
            _stop(api)
        bare, bare_port = _serve(["--bare"], env, workers)
        try:
            bare_workers = len(_workers(bare.pid))
            bare_mix = [("bare", "/ok")]
            drive(bare_port, bare_mix, {}, min(max(clients), 4), min(1.0, seconds))
            anchors = [drive(bare_port, bare_mix, {}, n, seconds) for n in clients]
        finally:
            _stop(bare)
        return {
            "backend": sa.make_url(url).get_backend_name(),
            "seconds": seconds,
            "during_write": during_write,
            "cpu_count": os.cpu_count(),
            "workers": workers,
            "server_processes": {"api": api_workers, "bare_fastapi": bare_workers},
            "store": store["counts"],
            "routes": len(mix),
            "runs": [
                {"clients": n, "api": m, "bare_fastapi": a}
                for n, m, a in zip(clients, measured, anchors, strict=True)
            ],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _uvicorn(factory: str, workers: str, port: str) -> None:
    """The same server settings as ``tunemantra api --workers N``."""
    import uvicorn

    uvicorn.run(
        factory,
        factory=True,
        host="127.0.0.1",
        port=int(port),
        workers=int(workers),
        log_level="warning",
        access_log=False,
    )


def describe(result: dict[str, Any]) -> str:
    def line(name: str, r: dict[str, Any]) -> str:
        return (
            f"{name}: {r['requests_per_second']:,} requests/s, p50 {r['p50_ms']} ms, "
            f"p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
            f"{r['errors']} errors {json.dumps(r['statuses'])}"
        )

    during = ", while a writer holds the store" if result["during_write"] else ""
    during += f", {result['workers']} worker(s)"
    out = []
    for run in result["runs"]:
        api = run["api"]
        kinds = "; ".join(
            f"{k} p95 {v['p95_ms']} ms (max {v['max_ms']})" for k, v in api["by_kind"].items()
        )
        out += [
            f"{result['backend']}, {run['clients']} clients, {result['seconds']} s{during}",
            line("  api         ", api),
            f"                {kinds}",
            line("  bare FastAPI", run["bare_fastapi"]),
        ]
    return "\n".join(out)


if __name__ == "__main__":  # the server child processes of `run`
    if sys.argv[1] == "--serve":
        _uvicorn("cli.main:api_from_settings", *sys.argv[2:4])
    elif sys.argv[1] == "--bare":
        _uvicorn("bench.bare_api:bare_app", *sys.argv[2:4])
