"""Process-wide resources built from settings: the engine and the session factory."""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.settings import Settings, get_settings
from schemas.store.db import make_engine, session_factory


@lru_cache
def engine_for(url: str) -> sa.Engine:
    return make_engine(url)


def get_engine(settings: Settings | None = None) -> sa.Engine:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.sqlalchemy_url)


def get_session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    return session_factory(get_engine(settings))
