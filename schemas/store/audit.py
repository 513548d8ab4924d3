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


class AuditedSession(Session):
    """The store's session class: its flushes write the audit log. Only sessions made by
    ``schemas.store.db.session_factory`` are audited, not every session in the process
    (Airflow's own, for one)."""


REDACTED: dict[type[Base], set[str]] = {ApiKey: {"key_hash"}}


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


def _old_snapshot(session: Session, obj: Base) -> dict[str, Any]:
    """The row as the database holds it before this flush (run from ``before_flush``).

    Attribute history alone is not enough: a column set without its old value loaded (left
    unset at insert, or expired by a commit or rollback) has no history of the old value, and
    after the flush the database holds only the new one.
    """
    state = inspect(obj)
    unknown = []  # set, but the value it replaced was never loaded
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if hist.added and not hist.deleted:
            unknown.append(attr)
    stored: dict[str, Any] = {}
    if unknown and state.identity is not None:
        table = state.mapper.local_table
        pk = state.mapper.primary_key
        where = [col == value for col, value in zip(pk, state.identity, strict=True)]
        row = session.connection().execute(
            sa.select(*(a.columns[0] for a in unknown)).select_from(table).where(*where)
        )
        values = row.one_or_none()
        if values is not None:
            stored = {a.key: v for a, v in zip(unknown, values, strict=True)}
    snapshot = _snapshot(obj, committed=True)
    snapshot.update(
        (k, _jsonable(v)) for k, v in stored.items() if k not in REDACTED.get(type(obj), set())
    )
    return snapshot


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


def _audited(obj: object) -> bool:
    return isinstance(obj, Base) and not isinstance(obj, AuditEntry)


@event.listens_for(AuditedSession, "before_flush")
def _audit_before_flush(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    session.info["audit_before"] = {
        obj: _old_snapshot(session, obj)
        for obj in [*session.dirty, *session.deleted]
        if _audited(obj)
        and (obj in session.deleted or session.is_modified(obj, include_collections=False))
    }


@event.listens_for(AuditedSession, "after_flush")
def _audit_after_flush(session: Session, flush_context: UOWTransaction) -> None:
    old: dict[Base, dict[str, Any]] = session.info.pop("audit_before", {})
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if _audited(obj):
            rows.append(_row(session, obj, "create", None, _snapshot(obj)))
    for obj in session.dirty:
        if _audited(obj):
            if not session.is_modified(obj, include_collections=False):
                continue
            before = old.get(obj) or _snapshot(obj, committed=True)
            after = _snapshot(obj)
            if before != after:
                rows.append(_row(session, obj, "update", before, after))
    for obj in session.deleted:
        if _audited(obj):
            before = old.get(obj) or _snapshot(obj, committed=True)
            rows.append(_row(session, obj, "delete", before, None))
    if rows:
        session.connection().execute(sa.insert(AuditEntry), rows)


def record_created(session: Session, objs: list[Base]) -> None:
    """The audit log's ``create`` entries for rows written around the flush (a bulk
    ``INSERT ... RETURNING``): the same one entry per row, with the same snapshot, a flush
    would have written."""
    rows = [_row(session, obj, "create", None, _snapshot(obj)) for obj in objs if _audited(obj)]
    if rows:
        session.connection().execute(sa.insert(AuditEntry), rows)
