"""Process-wide resources built from settings: the engine and the session factory."""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.settings import Settings, get_settings
from schemas.store.db import BUSY_TIMEOUT, make_engine, session_factory


@lru_cache
def engine_for(url: str, busy_timeout: float = BUSY_TIMEOUT, pool_size: int = 5) -> sa.Engine:
    return make_engine(url, busy_timeout=busy_timeout, pool_size=pool_size)


def get_engine(settings: Settings | None = None, *, pool_size: int = 5) -> sa.Engine:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.sqlalchemy_url, settings.busy_timeout, pool_size)


def get_session_factory(
    settings: Settings | None = None, *, pool_size: int = 5
) -> sessionmaker[Session]:
    return session_factory(get_engine(settings, pool_size=pool_size))
