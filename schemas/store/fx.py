"""FX rates import (CSV ``base,quote,period,rate,source``), validated whole, all or nothing.

``period`` is ``YYYY-MM``: the rate a ``period_average`` policy applies to lines of that
reporting period. Re-importing a row with a different rate updates it (audited)."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.orm import Session

from schemas.errors import FieldError, ValidationFailed
from schemas.store.models import FxRate
from schemas.territories import require_currency

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
COLUMNS = ("base", "quote", "period", "rate", "source")


def import_rates(session: Session, org_id: int, payload: bytes) -> dict[str, int]:
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            [FieldError("file", f"not UTF-8 at byte {exc.start}", "encoding")]
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationFailed(
            [FieldError(c, "required column missing", "missing_column", row=1) for c in missing]
        )
    errors: list[FieldError] = []
    rows: dict[tuple[str, str, str], tuple[Decimal, str]] = {}
    for n, raw in enumerate(reader, start=2):
        try:
            base, quote = require_currency(raw["base"]), require_currency(raw["quote"])
        except ValueError as exc:
            errors.append(FieldError("base/quote", str(exc), "unknown_currency", row=n))
            continue
        period = (raw["period"] or "").strip()
        if not PERIOD.match(period):
            errors.append(FieldError("period", f"{period!r} is not YYYY-MM", row=n))
            continue
        try:
            rate = Decimal((raw["rate"] or "").strip())
        except InvalidOperation:
            errors.append(FieldError("rate", f"{raw['rate']!r} is not a number", row=n))
            continue
        if (
            not rate.is_finite()
            or rate <= 0
            or rate >= Decimal("1e16")  # before quantize: more digits than a Decimal holds
            or rate != rate.quantize(Decimal("1e-12"))
        ):
            errors.append(
                FieldError(
                    "rate",
                    "must be positive, under 10^16, with at most 12 decimals",
                    row=n,
                )
            )
            continue
        if base == quote:
            errors.append(FieldError("quote", "base and quote are the same currency", row=n))
            continue
        key = (base, quote, period)
        if key in rows:
            errors.append(
                FieldError("period", f"{base}/{quote} {period} twice", "duplicate", row=n)
            )
        rows[key] = (rate, (raw["source"] or "").strip() or "imported")
    if errors:
        raise ValidationFailed(errors)
    existing = {
        (r.base, r.quote, r.period): r
        for r in session.scalars(sa.select(FxRate).where(FxRate.org_id == org_id))
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for key, (rate, source) in rows.items():
        old = existing.get(key)
        if old is None:
            session.add(
                FxRate(
                    org_id=org_id,
                    base=key[0],
                    quote=key[1],
                    period=key[2],
                    rate=rate,
                    source=source,
                )
            )
            counts["created"] += 1
        elif old.rate != rate or old.source != source:
            old.rate, old.source = rate, source
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    session.flush()
    return counts
