"""Organisations by slug: the one lookup every entry point uses."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemas.errors import NotFound
from schemas.store.models import Organisation


class UnknownOrganisation(NotFound):
    def __init__(self, slug: str) -> None:
        super().__init__(f"organisation {slug!r}")
        self.slug = slug


def org_id(session: Session, slug: str) -> int:
    """The id of the organisation ``slug``; ``UnknownOrganisation`` if there is none."""
    found = session.scalar(sa.select(Organisation.id).where(Organisation.slug == slug))
    if found is None:
        raise UnknownOrganisation(slug)
    return found
