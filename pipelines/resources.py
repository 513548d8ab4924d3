"""Process-wide resources built from settings: the engine, the session factory, the data
directory (``Resources``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.layout import DataDir
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


@dataclass(frozen=True)
class Resources:
    """What a use case needs from its process: the settings, the store's session factory and
    the data directory. Built once per process (``Resources.current()``) or for given settings
    (tests, the CLI's ``--data-dir``); passed down instead of ``(factory, data_dir, ...)``."""

    settings: Settings
    factory: sessionmaker[Session]
    data: DataDir

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int = 5) -> Resources:
        return cls(
            settings=settings,
            factory=get_session_factory(settings, pool_size=pool_size),
            data=DataDir(settings.data_dir),
        )

    @classmethod
    def of(
        cls, factory: sessionmaker[Session], data_dir: Path, settings: Settings | None = None
    ) -> Resources:
        """Resources around a session factory made already (tests, the demo, benchmarks): the
        settings are read from the environment now unless given, with ``data_dir`` as the
        data directory."""
        if settings is None:
            settings = Settings(data_dir=data_dir)
        return cls(settings=settings, factory=factory, data=DataDir(data_dir))

    @classmethod
    def current(cls) -> Resources:
        """The process's resources, from the environment's settings (rebuilt when the
        settings are, e.g. after ``get_settings.cache_clear()``)."""
        settings = get_settings()
        held = _CURRENT.get("resources")
        if held is None or held.settings is not settings:
            held = _CURRENT["resources"] = cls.from_settings(settings)
        return held


_CURRENT: dict[str, Resources] = {}
