"""Audit log of every write, hooked into the ORM flush so no write path can forget it.

The actor comes from ``session.info``: ``actor`` (e.g. ``key:tm_ab12cd34`` or ``cli``) and
``api_key_id``. Secrets (API key hashes) are never copied into the log.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, UOWTransaction

from schemas.store.models import ApiKey, AuditEntry, Base, Organisation

REDACTED = {ApiKey: {"key_hash"}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _snapshot(obj: Base, *, committed: bool = False) -> dict[str, Any]:
    state = inspect(obj)
    hidden = REDACTED.get(type(obj), set())
    out: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        if attr.key in hidden:
            continue
        if committed:
            hist = state.attrs[attr.key].history
            value = hist.deleted[0] if hist.deleted else getattr(obj, attr.key)
        else:
            value = getattr(obj, attr.key)
        out[attr.key] = _jsonable(value)
    return out


def _row(session: Session, obj: Base, action: str, before: Any, after: Any) -> dict[str, Any]:
    return {
        "org_id": obj.id if isinstance(obj, Organisation) else getattr(obj, "org_id", None),
        "actor": session.info.get("actor", "system"),
        "api_key_id": session.info.get("api_key_id"),
        "at": dt.datetime.now(dt.UTC),
        "entity": type(obj).__tablename__,
        "entity_id": getattr(obj, "id", None),
        "action": action,
        "before": before,
        "after": after,
    }


@event.listens_for(Session, "after_flush")
def _audit_after_flush(session: Session, flush_context: UOWTransaction) -> None:
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if isinstance(obj, Base) and not isinstance(obj, AuditEntry):
            rows.append(_row(session, obj, "create", None, _snapshot(obj)))
    for obj in session.dirty:
        if isinstance(obj, Base) and not isinstance(obj, AuditEntry):
            if not session.is_modified(obj, include_collections=False):
                continue
            before, after = _snapshot(obj, committed=True), _snapshot(obj)
            if before != after:
                rows.append(_row(session, obj, "update", before, after))
    for obj in session.deleted:
        if isinstance(obj, Base) and not isinstance(obj, AuditEntry):
            rows.append(_row(session, obj, "delete", _snapshot(obj, committed=True), None))
    if rows:
        session.connection().execute(sa.insert(AuditEntry), rows)
