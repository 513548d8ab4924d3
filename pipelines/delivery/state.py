"""The delivery state machine: a delivery moves only along ``TRANSITIONS``, and every move is
recorded as a ``DeliveryEvent``; the errors a delivery request can end in."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from schemas.store.deliveries import (
    TRANSITIONS,
    Delivery,
    DeliveryEvent,
    DeliveryState,
)

S = DeliveryState


class IllegalTransition(RuntimeError):
    """A delivery asked to move to a state its state machine does not allow from here."""


class DeliveryError(ValueError):
    """A delivery request that cannot start (unknown DSP or release, no DDEX sender)."""


def move(session: Session, d: Delivery, to: DeliveryState, now: dt.datetime, **detail: Any) -> None:
    """Change a delivery's state along TRANSITIONS, recording the event."""
    if to not in TRANSITIONS[d.state]:
        raise IllegalTransition(f"delivery {d.id}: {d.state.value} -> {to.value} is not allowed")
    session.add(
        DeliveryEvent(
            org_id=d.org_id,
            delivery_id=d.id,
            at=now,
            from_state=d.state.value,
            to_state=to.value,
            detail=detail,
        )
    )
    d.state = to
    d.updated_at = now
