"""API keys: ``tm_<prefix>_<secret>``, shown once, stored as an HMAC-SHA256 of the whole key.

Keys are 256-bit random tokens, so a keyed fast hash is the right tool (a slow password hash
buys nothing against brute force of 2**256 and costs every request); the HMAC key is the
server's ``TUNEMANTRA_SECRET_KEY``, so a leaked database alone cannot verify guesses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemas.errors import FieldError, ValidationFailed
from schemas.store.models import ApiKey, Payee, Role


def _digest(secret_key: str, key: str) -> str:
    return hmac.new(secret_key.encode(), key.encode(), hashlib.sha256).hexdigest()


def issue_key(
    session: Session,
    *,
    org_id: int,
    role: Role,
    secret_key: str,
    payee_id: int | None = None,
    label: str = "",
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plain key (the only time it exists)."""
    if (role is Role.PAYEE) != (payee_id is not None):
        raise ValidationFailed(
            [FieldError("payee_id", "a payee key needs --payee, and only a payee key takes one")]
        )
    if payee_id is not None:
        payee = session.get(Payee, payee_id)
        if payee is None or payee.org_id != org_id:
            raise ValidationFailed([FieldError("payee_id", f"no payee {payee_id} in this org")])
    prefix = secrets.token_hex(4)
    plain = f"tm_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        org_id=org_id,
        prefix=prefix,
        key_hash=_digest(secret_key, plain),
        role=role,
        payee_id=payee_id,
        label=label,
    )
    session.add(row)
    session.flush()
    return row, plain


def _prefix(plain: str) -> str | None:
    parts = plain.strip().split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "tm" else None


def verify_key(session: Session, plain: str, *, secret_key: str) -> ApiKey | None:
    """The live key row for this plain key, or None (unknown, malformed or revoked): the ORM
    row of ``check_key``, the one rule for which keys are live."""
    row = check_key(session, plain, secret_key=secret_key)
    return session.get(ApiKey, row.id) if row is not None else None


# Built once: the statement's construction cost more than its execution, once per request.
_LIVE_KEY = sa.select(
    ApiKey.id, ApiKey.org_id, ApiKey.prefix, ApiKey.role, ApiKey.payee_id, ApiKey.key_hash
).where(ApiKey.prefix == sa.bindparam("prefix"), ApiKey.revoked_at.is_(None))


def check_key(
    session: Session, plain: str, *, secret_key: str
) -> sa.Row[int, int, str, Role, int | None, str] | None:
    """``verify_key`` for every API request: the live key's ``(id, org_id, prefix, role,
    payee_id, key_hash)`` as a plain row, with no ORM object built. Read from the store each
    time, so a key revoked a moment ago is refused at once; None as for ``verify_key``."""
    prefix = _prefix(plain)
    if prefix is None:
        return None
    row = session.execute(_LIVE_KEY, {"prefix": prefix}).first()
    if row is None or not hmac.compare_digest(row.key_hash, _digest(secret_key, plain.strip())):
        return None
    return row


def revoke_key(session: Session, row: ApiKey) -> None:
    row.revoked_at = dt.datetime.now(dt.UTC)
