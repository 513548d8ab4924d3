"""The layers, checked on the source: imports point down only, and no module imports itself
back through others (no cycles, counting imports inside functions too); DAG files import
only the Airflow task adapters (``pipelines.tasks``).

    dags/ (config), cli/ (the command), bench/ (benchmarks)      entry points
    api/ (HTTP), demo/ (the sample label)                       adapters
    pipelines/ (use cases; pipelines.tasks: Airflow adapters)   use cases
    royalty_engine/ (pure), connectors/ (I/O)                   peers: neither imports the other
    schemas/ (contracts, store, identifiers, money)             bottom
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAY_IMPORT: dict[str, set[str]] = {
    "dags": {"pipelines"},
    "cli": {"api", "bench", "demo", "pipelines", "royalty_engine", "connectors", "schemas"},
    "bench": {"api", "demo", "pipelines", "royalty_engine", "connectors", "schemas"},
    "api": {"pipelines", "royalty_engine", "connectors", "schemas"},
    "demo": {"pipelines", "royalty_engine", "connectors", "schemas"},
    "pipelines": {"royalty_engine", "connectors", "schemas"},
    "royalty_engine": {"schemas"},
    "connectors": {"schemas"},
    "schemas": set(),
}
# Modules that only some packages may import, whatever the layers say.
ONLY_FROM: dict[str, set[str]] = {
    "api.app": {"cli"},  # the CLI serves the app; nothing else builds it
    "pipelines.tasks": {"dags"},  # Airflow adapters serve the DAG files only
}


def _modules() -> Iterator[tuple[str, Path]]:
    for package in MAY_IMPORT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


MODULES = dict(_modules())


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every project module ``module`` imports (anywhere in the file), with its line."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            # the longest project module the name starts with (``pkg.mod.func`` -> ``pkg.mod``)
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name, node.lineno


GRAPH = {m: sorted(set(_imports(m, p))) for m, p in MODULES.items()}


def test_every_package_is_checked() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {"dags"}
    assert packages - {"tests"} == set(MAY_IMPORT)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    own = module.split(".")[0]
    wrong = []
    for target, line in GRAPH[module]:
        top = target.split(".")[0]
        if top != own and top not in MAY_IMPORT[own]:
            wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target} (up)")
        for guarded, allowed in ONLY_FROM.items():
            inside = target == guarded or target.startswith(guarded + ".")
            if inside and own not in allowed and not module.startswith(guarded):
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


# What a DAG file may import from the project: its task adapters, and the light settings and
# layout modules if it must (DAG files are configuration; Airflow parses them often).
DAG_MAY_IMPORT = ("pipelines.tasks", "pipelines.settings", "pipelines.layout")


def _dag_imports_wrong(module: str) -> list[str]:
    return [
        f"{module}:{line} imports {target}"
        for target, line in GRAPH[module]
        if not any(target == ok or target.startswith(ok + ".") for ok in DAG_MAY_IMPORT)
    ]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("dags.")))
def test_dag_files_import_only_task_adapters(module: str) -> None:
    wrong = _dag_imports_wrong(module)
    assert not wrong, "\n".join(wrong)


def test_the_dag_rule_sees_a_wrong_import(tmp_path: Path) -> None:
    fake = tmp_path / "d.py"
    fake.write_text(
        "def t():\n    from pipelines.warehouse import publish\n"
        "    from pipelines.tasks.warehouse import publish_task\n"
    )
    MODULES["dags.fake_for_test"] = fake
    GRAPH["dags.fake_for_test"] = sorted(set(_imports("dags.fake_for_test", fake)))
    try:
        wrong = _dag_imports_wrong("dags.fake_for_test")
    finally:
        del MODULES["dags.fake_for_test"], GRAPH["dags.fake_for_test"]
    assert wrong == ["dags.fake_for_test:2 imports pipelines.warehouse"]


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _ in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _is_package_of(a: str, b: str) -> bool:
    return b.startswith(a + ".")


def test_no_import_cycles() -> None:
    # A package's __init__ re-exporting its own modules is not a cycle of the design.
    cycles = [
        c
        for c in _cycles()
        if not all(
            any(_is_package_of(x, y) or _is_package_of(y, x) for y in c if y != x) for x in c
        )
    ]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    # the checker itself can fail: an upward import in a made-up module is reported
    fake = tmp_path / "m.py"
    fake.write_text("from api.app import create_app\nimport pipelines.settings\n")
    MODULES["schemas.fake_for_test"] = fake
    try:
        found = dict(_imports("schemas.fake_for_test", fake))
    finally:
        del MODULES["schemas.fake_for_test"]
    assert set(found) == {"api.app", "pipelines.settings"}
