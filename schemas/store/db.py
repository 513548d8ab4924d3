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
BUSY_TIMEOUT = 10.0  # seconds
READ_ONLY = "tunemantra_read_only"  # execution option of read-only sessions


def make_engine(url: str, *, busy_timeout: float = BUSY_TIMEOUT, **kwargs: Any) -> sa.Engine:
    """The store's engine. ``busy_timeout``: seconds a write waits for the store before it
    gives up with ``database is locked`` (SQLite)."""
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
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                # A read never takes the write lock: under WAL it reads its snapshot while a
                # writer works, and never waits for one.
                conn.exec_driver_sql("BEGIN DEFERRED")
                return
            # SQLite has no SELECT ... FOR UPDATE: a transaction takes the write lock when it
            # starts, so a rule checked inside it (shares <= 100%, no overlap) cannot be
            # invalidated by a concurrent writer between the check and the write.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=AuditedSession, expire_on_commit=False)


def read_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions like ``factory``'s that only read: on SQLite their transactions begin
    ``DEFERRED`` (no write lock, so a long write never blocks them and they never block a
    write); a write in one may fail with ``database is locked`` rather than wait."""
    engine: sa.Engine | None = factory.kw.get("bind")
    if engine is None:  # nothing to read from (a factory bound per session, if ever)
        return factory
    return sessionmaker(
        engine.execution_options(**{READ_ONLY: True}),
        class_=factory.class_,
        expire_on_commit=False,
    )


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
