"""An organisation's own format specs, versioned (``tunemantra formats``, ``/v1/formats``).

Adding a spec validates it with ``schemas.format_spec`` first; an unchanged spec is a no-op, a
changed one a new version; removing retires every version (kept for history).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemas.errors import NotFound
from schemas.format_spec import FormatSpec, parse_spec
from schemas.store.models import OrgFormat


@dataclass(frozen=True)
class StoredFormat:
    name: str
    version: int
    spec: FormatSpec
    spec_yaml: str
    sha256: str
    created_at: dt.datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "created_at": self.created_at.isoformat(),
            "spec": self.spec_yaml,
        }


def _stored(row: OrgFormat) -> StoredFormat:
    return StoredFormat(
        row.name,
        row.version,
        parse_spec(row.spec_yaml, row.name),
        row.spec_yaml,
        row.sha256,
        row.created_at,
    )


def _versions(session: Session, org_id: int, name: str) -> list[OrgFormat]:
    return list(
        session.scalars(
            sa.select(OrgFormat)
            .where(OrgFormat.org_id == org_id, OrgFormat.name == name)
            .order_by(OrgFormat.version)
        )
    )


def add(session: Session, org_id: int, text: str, where: str = "spec") -> tuple[StoredFormat, bool]:
    """Store the spec ``text`` for the organisation: (the current version, whether it is new)."""
    spec = parse_spec(text, where)
    digest = hashlib.sha256(text.encode()).hexdigest()
    versions = _versions(session, org_id, spec.name)
    if versions and versions[-1].sha256 == digest and versions[-1].retired_at is None:
        return _stored(versions[-1]), False
    now = dt.datetime.now(dt.UTC)
    for row in versions:  # only the newest version is current
        row.retired_at = row.retired_at or now
    row = OrgFormat(
        org_id=org_id,
        name=spec.name,
        version=(versions[-1].version + 1) if versions else 1,
        spec_yaml=text,
        sha256=digest,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return _stored(row), True


def current(session: Session, org_id: int) -> list[StoredFormat]:
    """The organisation's formats in use (the newest, unretired version of each)."""
    rows = session.scalars(
        sa.select(OrgFormat)
        .where(OrgFormat.org_id == org_id, OrgFormat.retired_at.is_(None))
        .order_by(OrgFormat.name)
    )
    return [_stored(r) for r in rows]


def get(session: Session, org_id: int, name: str) -> StoredFormat:
    for fmt in current(session, org_id):
        if fmt.name == name:
            return fmt
    raise NotFound(f"format {name!r}")


def remove(session: Session, org_id: int, name: str) -> int:
    """Retire the format (its versions stay); the number of versions kept. NotFound if none."""
    versions = _versions(session, org_id, name)
    live = [r for r in versions if r.retired_at is None]
    if not live:
        raise NotFound(f"format {name!r}")
    now = dt.datetime.now(dt.UTC)
    for row in live:
        row.retired_at = now
    return len(versions)
