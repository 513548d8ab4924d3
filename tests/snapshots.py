"""States of the store and data folder built once per test session and copied per test.

Building the sample label, ingesting its reports, running its period and approving and locking
it takes seconds, and many tests start from the same state. A snapshot is a folder with a SQLite
store (``store.db``) and a data folder (``var/``): ``snapshots.copy(name, build, dest)`` builds
``name`` once per session (per xdist worker) with ``build(folder)`` and copies the folder to
``dest`` (missing or empty). ``build`` returns plain values (ids, keys), never an engine.

The store records absolute paths under its folder (drop URLs, raw files, lake outputs, run
folders, and the audit log's before/after images), so the copy rewrites them: a copy holds what
building it at ``dest`` would have left.

Listed in the root conftest's ``pytest_plugins``: ``snapshots`` is a session fixture.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

STORE = "store.db"
DATA = "var"
T = TypeVar("T")


@dataclass
class Snapshots:
    root: Path
    _built: dict[str, tuple[Path, Any]] = field(default_factory=dict)

    def copy(self, name: str, build: Callable[[Path], T], dest: Path) -> T:
        """``dest`` as ``build(dest)`` would leave it, built once (as ``name``) and copied."""
        if name not in self._built:
            folder = self.root / name
            folder.mkdir()
            value = build(folder)
            _checkpoint(folder / STORE)
            self._built[name] = (folder, value)
        folder, value = self._built[name]
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} is not empty")
        shutil.copytree(folder, dest, symlinks=True, dirs_exist_ok=True)
        _rewrite_paths(dest / STORE, str(folder), str(dest))
        return value  # type: ignore[no-any-return]


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / STORE}"


def _checkpoint(store: Path) -> None:
    """Everything in the main database file: a copy needs no ``-wal`` beside it."""
    con = sqlite3.connect(store)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _rewrite_paths(store: Path, old: str, new: str) -> None:
    con = sqlite3.connect(store)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            for column in [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]:
                con.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0',
                    (old, new, old),
                )
        con.commit()
    finally:
        con.close()


def copy_store(snapshots: Snapshots, name: str, fill: Callable[[Any], T], db_url: str) -> T:
    """The SQLite store at ``db_url`` replaced by a migrated store that ``fill(factory)`` wrote
    (built once per session as ``name``, copied); returns what ``fill`` returned."""

    def build(root: Path) -> T:
        from schemas.store import db

        engine = db.make_engine(sqlite_url(root))
        try:
            db.upgrade(engine)
            return fill(db.session_factory(engine))
        finally:
            engine.dispose()

    store = Path(db_url.removeprefix("sqlite:///"))
    copy = store.with_name(f"{store.name}.{name}")
    value = snapshots.copy(name, build, copy)
    shutil.move(copy / STORE, store)
    shutil.rmtree(copy)
    return value


def copy_demo_label(snapshots: Snapshots, dest: Path, *, seed: int, ingested: bool) -> int:
    """The sample label ``demo`` built with ``seed`` in ``dest`` (``store.db``, ``var/``), its
    month of reports ingested if ``ingested``; returns its organisation id."""

    def build(root: Path) -> int:
        from demo.label import ingest_demo_reports, run_demo
        from schemas.store import db
        from tests.conftest import SECRET

        engine = db.make_engine(sqlite_url(root))
        try:
            db.upgrade(engine)
            factory = db.session_factory(engine)
            data = root / DATA
            org_id = run_demo(factory, seed=seed, secret_key=SECRET, data_dir=data).org_id
            if ingested:
                ingest_demo_reports(factory, data, org_id, seed=seed)
            return org_id
        finally:
            engine.dispose()

    name = f"demo-{seed}-ingested" if ingested else f"demo-{seed}"
    return snapshots.copy(name, build, dest)


@pytest.fixture(scope="session")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshots]:
    return Snapshots(tmp_path_factory.mktemp("snapshots"))
