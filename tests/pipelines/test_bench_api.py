"""``tunemantra bench api`` for two seconds: the real API and the bare anchor both answer
every request, and the figures have the shape docs/performance.md's table is built from."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.integration
FIGURES = {
    "requests",
    "requests_per_second",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "statuses",
    "errors",
    "server_errors",
    "over_1s",
    "by_kind",
}


def test_bench_api_two_clients_two_seconds() -> None:
    args = ["bench", "api", "--clients", "2", "--seconds", "2", "--during-write"]
    result = CliRunner().invoke(app, [*args, "--tracks", "100", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["backend"] == "sqlite" and out["during_write"] is True
    assert out["workers"] == 1 and out["server_processes"] == {"api": 1, "bare_fastapi": 1}
    assert out["store"]["tracks"] >= 100 and out["store"]["payees"] >= 50
    [run] = out["runs"]
    assert run["clients"] == 2
    for name in ("api", "bare_fastapi"):
        figures = run[name]
        assert set(figures) == FIGURES, name
        assert figures["requests"] > 10, name
        assert figures["errors"] == 0, (name, figures["statuses"])
        assert set(figures["statuses"]) == {"200"}, name
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(run["api"]["by_kind"]) == {"health", "list", "detail"}
    # every read went on while a writer held the store: none waited for the busy timeout
    assert run["api"]["max_ms"] < 5000


def test_bench_api_serves_both_apps_with_the_same_workers() -> None:
    args = ["bench", "api", "--clients", "4", "--seconds", "1", "--workers", "2"]
    result = CliRunner().invoke(app, [*args, "--tracks", "100", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["workers"] == 2
    # two uvicorn worker processes behind each port, not one process told "2"
    assert out["server_processes"] == {"api": 2, "bare_fastapi": 2}
    [run] = out["runs"]
    for name in ("api", "bare_fastapi"):
        assert run[name]["requests"] > 10, name
        assert set(run[name]["statuses"]) == {"200"}, (name, run[name]["statuses"])
