"""Engines, sessions and migrations for the store (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from schemas.store.audit import AuditedSession

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    if url.startswith("sqlite"):
        path = sa.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn: sa.Connection) -> None:
            # SQLite has no SELECT ... FOR UPDATE: a transaction takes the write lock when it
            # starts, so a rule checked inside it (shares <= 100%, no overlap) cannot be
            # invalidated by a concurrent writer between the check and the write.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=AuditedSession, expire_on_commit=False)


@contextmanager
def transaction(
    factory: sessionmaker[Session], *, actor: str, api_key_id: int | None = None
) -> Iterator[Session]:
    """A unit of work: commits on success, rolls everything back on any error."""
    with factory() as session:
        session.info.update(actor=actor, api_key_id=api_key_id)
        with session.begin():
            yield session


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply Alembic migrations (``tunemantra db upgrade``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
