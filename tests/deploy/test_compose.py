"""The production stack on paper (issue 20): docker-compose.yml validated against the Compose
specification's JSON schema (vendored by check-jsonschema, no network) and the structure the
deployment needs; the Dockerfile's targets and pyproject's dependency split prove the API image
installs no Airflow. Nothing here needs Docker."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_ROLES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT = {"init", "s3-bucket"}
# The images that must start as root: SeaweedFS writes its root-owned /data volume.
ROOT_BY_IMAGE = {"seaweedfs"}
# What only the Airflow image may hold.
PIPELINE_ONLY = {"apache-airflow", "apache-airflow-core", "dbt-core", "great-expectations"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose, schema)


def test_the_stack_holds_every_role(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "valkey", "seaweedfs", "api"} | AIRFLOW_ROLES | ONE_SHOT <= set(services)
    commands = {name: " ".join(map(str, s.get("command", []))) for name, s in services.items()}
    assert "tunemantra db upgrade" in commands["init"]
    assert "airflow db migrate" in commands["init"]
    assert "create_bucket" in commands["s3-bucket"]  # idempotent
    for name in AIRFLOW_ROLES | {"init"}:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/app/dags", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert services[name]["build"]["target"] == "airflow", name
    assert services["api"]["build"]["target"] == "api"
    # the store and Airflow's metadata: two databases, created by the init script
    script = (ROOT / "deploy/postgres/10-create-databases.sh").read_text()
    assert "CREATE DATABASE tunemantra" in script
    assert "CREATE DATABASE airflow" in script
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]


def test_workers_scale_and_every_service_is_watched(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["airflow-worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    for name, service in services.items():
        assert "container_name" not in service, name
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert service["restart"] in {"always", "unless-stopped"}, name
        assert service["healthcheck"]["test"], name
        for port in service.get("ports", []):  # published on loopback unless .env says so
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    needs_init = {n for n, s in services.items() if "init" in s.get("depends_on", {})}
    assert {"api"} | AIRFLOW_ROLES <= needs_init


def test_no_service_runs_as_root(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ROOT_BY_IMAGE:
            continue
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in {"0", "root"}, name
    dockerfile = (ROOT / "Dockerfile").read_text()
    for target in ("api", "airflow"):
        assert re.search(r"^USER tunemantra$", _stage(dockerfile, target), re.M), target


def test_every_variable_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if m := re.match(r"([A-Z0-9_]+)=", line):
            documented[m[1]] = lines[i - 1].startswith("#")  # a comment right above it
    assert used, "no ${VAR} found"
    assert used <= set(documented), used - set(documented)
    assert all(documented.values()), [v for v, ok in documented.items() if not ok]


def test_the_api_image_installs_no_airflow() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    api_sync = _uv_sync(_stage(dockerfile, "api"))
    assert "--no-default-groups" in api_sync
    assert not {"--group", "--all-groups", "--extra", "--all-extras"} & set(api_sync)
    airflow_sync = _uv_sync(_stage(dockerfile, "airflow"))
    assert airflow_sync[airflow_sync.index("--group") + 1] == "pipelines"
    airflow_stage = _stage(dockerfile, "airflow")
    for folder in ("dags", "dbt"):
        assert f"COPY --chown=tunemantra:tunemantra {folder} ./{folder}" in airflow_stage
    assert "AIRFLOW__CORE__DAGS_FOLDER=/app/dags" in airflow_stage

    # the core's whole closure in uv.lock (what --no-default-groups installs) holds none of it
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    project = packages["tunemantra"]
    closure: set[str] = set()
    todo = list(project["dependencies"])
    while todo:
        dep = todo.pop()
        if dep["name"] in closure:
            continue
        closure.add(dep["name"])
        package = packages[dep["name"]]
        todo += package.get("dependencies", [])
        for extra in dep.get("extra", []):
            todo += package.get("optional-dependencies", {}).get(extra, [])
    assert not closure & PIPELINE_ONLY, closure & PIPELINE_ONLY
    pipelines = {d["name"] for d in project["dev-dependencies"]["pipelines"]}
    assert {"apache-airflow", "apache-airflow-providers-celery", "dbt-core"} <= pipelines
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "pipelines" in pyproject["tool"]["uv"]["default-groups"]  # uv sync: everything


def _stage(dockerfile: str, target: str) -> str:
    """The lines of one build stage (FROM ... AS target up to the next FROM)."""
    m = re.search(rf"^FROM \S+ AS {target}$(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
    assert m, f"no stage {target}"
    return m[1]


def _uv_sync(stage: str) -> list[str]:
    (line,) = [ln for ln in stage.splitlines() if "uv sync" in ln]
    words = shlex.split(line.split("uv sync", 1)[1].split("&&")[0].rstrip("\\ "))
    return words
