"""Catalogue import (CSV or JSON, one row per track): validate everything, then all or nothing.

Row numbers: for CSV, the line as a spreadsheet shows it (the header is row 1, the first
track row 2); for JSON, the 1-based position in the ``rows`` array. Artists are matched by
name, releases by UPC, tracks by ISRC; existing rows are updated through the same service
rules as the API, so an import can never write what the API would refuse.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from schemas import catalog as c
from schemas.errors import FieldError, StoreError, ValidationFailed
from schemas.store import service
from schemas.store.models import Artist, ReleaseType, Track, name_key
from schemas.store.models import Release as ReleaseRow

MAX_ROWS = 50_000


def _duration(value: Any) -> Any:
    """Accept seconds (``215``) or ``m:ss`` / ``h:mm:ss`` as found in label spreadsheets."""
    if isinstance(value, str) and ":" in value:
        parts = value.strip().split(":")
        if not all(p.isdigit() for p in parts) or len(parts) > 3:
            raise ValueError("use seconds or m:ss")
        total = 0
        for p in parts:
            total = total * 60 + int(p)
        return total
    return value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Opt = BeforeValidator(_blank_to_none)


class CatalogRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    release_upc: c.GTIN
    release_title: c.Text
    release_type: ReleaseType
    label_name: c.Text
    release_artist: c.Text
    release_date: dt.date
    territories: c.TerritorySet = "WW"
    genre: Annotated[c.Text | None, Opt] = None
    p_line: Annotated[c.Text | None, Opt] = None
    c_line: Annotated[c.Text | None, Opt] = None
    isrc: c.ISRC
    track_title: c.Text
    version: Annotated[c.Text | None, Opt] = None
    track_artist: Annotated[c.Text | None, Opt] = None
    duration: Annotated[c.Duration, BeforeValidator(_duration)]
    explicit: bool = False
    disc_number: Annotated[int, BeforeValidator(lambda v: 1 if v in (None, "") else v)] = 1
    track_number: int

    def release_key(self) -> tuple[Any, ...]:
        return (
            self.release_title,
            self.release_type,
            self.label_name,
            self.release_artist,
            self.release_date,
            self.territories,
            self.genre,
            self.p_line,
            self.c_line,
        )


REQUIRED = [n for n, f in CatalogRow.model_fields.items() if f.is_required()]
COLUMNS = list(CatalogRow.model_fields)


@dataclass
class ImportResult:
    rows: int
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "unchanged": dict(self.unchanged),
            "dry_run": self.dry_run,
        }


def parse_rows(payload: bytes, content_type: str) -> list[tuple[int, dict[str, Any]]]:
    """(row number, raw row) pairs, or ValidationFailed for a malformed file."""
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            [
                FieldError(
                    "file", f"not UTF-8: byte {exc.start} ({payload[exc.start]:#04x})", "encoding"
                )
            ]
        ) from None
    if "json" in content_type:
        try:
            doc = json.loads(text, parse_float=Decimal)
        except RecursionError:
            raise ValidationFailed(
                [FieldError("file", "JSON nested too deeply", "json_depth")]
            ) from None
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                [
                    FieldError(
                        "file",
                        f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                        "json",
                    )
                ]
            ) from None
        rows = doc.get("rows") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValidationFailed(
                [
                    FieldError(
                        "rows", 'expected a list of row objects (or {"rows": [...]})', "json_shape"
                    )
                ]
            )
        return list(enumerate(rows, start=1))
    if "csv" not in content_type and "text/plain" not in content_type:
        raise ValidationFailed(
            [
                FieldError(
                    "content-type",
                    f"{content_type!r} is not text/csv or application/json",
                    "media_type",
                )
            ]
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationFailed([FieldError("file", "empty file", "empty")]) from None
    except csv.Error as exc:
        raise ValidationFailed([FieldError("file", f"malformed CSV: {exc}", "csv")]) from None
    errors = [
        FieldError(col, "required column missing", "missing_column", row=1)
        for col in REQUIRED
        if col not in header
    ]
    errors += [
        FieldError(
            col, f"unknown column; expected some of {', '.join(COLUMNS)}", "unknown_column", row=1
        )
        for col in header
        if col not in COLUMNS
    ]
    errors += [
        FieldError(col, "column appears twice", "duplicate_column", row=1)
        for col, n in Counter(header).items()
        if n > 1
    ]
    if errors:
        raise ValidationFailed(errors)
    out = []
    # Count records, not lines (reader.line_num): a quoted cell with a line break is still
    # one spreadsheet row, and a blank line is a (blank) row of its own.
    row = 1
    try:
        for row, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                errors.append(
                    FieldError(
                        "__row__",
                        f"{len(cells)} cells, header has {len(header)}",
                        "cell_count",
                        row=row,
                    )
                )
                continue
            out.append((row, {h: v for h, v in zip(header, cells, strict=True) if v.strip() != ""}))
    except csv.Error as exc:
        errors.append(FieldError("file", f"malformed CSV: {exc}", "csv", row=row + 1))
    if errors:
        raise ValidationFailed(errors)
    return out


def _validate(
    raw: list[tuple[int, dict[str, Any]]],
) -> tuple[list[tuple[int, CatalogRow]], list[FieldError]]:
    rows, errors = [], []
    if len(raw) > MAX_ROWS:
        return [], [FieldError("file", f"{len(raw)} rows; split the file (max {MAX_ROWS})")]
    if not raw:
        return [], [FieldError("file", "no rows", "empty")]
    for n, item in raw:
        try:
            rows.append((n, CatalogRow.model_validate(item)))
        except ValidationError as exc:
            errors += service.pydantic_errors(exc, row=n)
    first_release: dict[str, tuple[int, CatalogRow]] = {}
    seen_isrc: dict[str, int] = {}
    seen_position: dict[tuple[str, int, int], int] = {}
    for n, r in rows:
        if r.release_upc in first_release:
            m, other = first_release[r.release_upc]
            for name, a, b in zip(
                _RELEASE_FIELDS, r.release_key(), other.release_key(), strict=True
            ):
                if a != b:
                    errors.append(
                        FieldError(
                            name,
                            f"differs from row {m} for the same UPC {r.release_upc}",
                            "inconsistent_release",
                            row=n,
                        )
                    )
        else:
            first_release[r.release_upc] = (n, r)
        if r.isrc in seen_isrc:
            errors.append(
                FieldError(
                    "isrc", f"{r.isrc} already on row {seen_isrc[r.isrc]}", "duplicate", row=n
                )
            )
        seen_isrc.setdefault(r.isrc, n)
        pos = (r.release_upc, r.disc_number, r.track_number)
        if pos in seen_position:
            errors.append(
                FieldError(
                    "track_number",
                    f"disc {r.disc_number} track "
                    f"{r.track_number} already on row {seen_position[pos]}",
                    "duplicate",
                    row=n,
                )
            )
        seen_position.setdefault(pos, n)
    return rows, errors


_RELEASE_FIELDS = (
    "release_title",
    "release_type",
    "label_name",
    "release_artist",
    "release_date",
    "territories",
    "genre",
    "p_line",
    "c_line",
)


def _upsert(
    session: Session,
    org_id: int,
    kind: str,
    existing: Any,
    values: dict[str, Any],
    result: ImportResult,
) -> Any:
    if existing is None:
        result.created[kind] += 1
        return service.create(session, org_id, kind, values)
    current = {k: getattr(existing, k) for k in values if k != "contributors"}
    if all(current[k] == v for k, v in values.items() if k in current):
        result.unchanged[kind] += 1
        return existing
    result.updated[kind] += 1
    return service.update(session, org_id, kind, existing.id, values)


def import_catalog(
    session: Session, org_id: int, payload: bytes, content_type: str, *, dry_run: bool = False
) -> ImportResult:
    """Apply a catalogue file in one savepoint; any error anywhere leaves the store untouched."""
    rows, errors = _validate(parse_rows(payload, content_type))
    if errors:
        raise ValidationFailed(errors)
    result = ImportResult(rows=len(rows), dry_run=dry_run)
    savepoint = session.begin_nested()
    # Names match case-insensitively: "nova" in one file and "Nova" in the store are one artist.
    artists: dict[str, Any] = {
        name_key(a.name): a
        for a in session.scalars(sa.select(Artist).where(Artist.org_id == org_id))
    }
    releases: dict[str, Any] = {}
    for n, r in rows:
        try:
            for name in filter(None, (r.release_artist, r.track_artist)):
                if name_key(name) not in artists:
                    artists[name_key(name)] = service.create(
                        session, org_id, "artists", {"name": name}
                    )
                    result.created["artists"] += 1
            if r.release_upc not in releases:
                existing = session.scalar(
                    sa.select(ReleaseRow).where(
                        ReleaseRow.org_id == org_id, ReleaseRow.upc == r.release_upc
                    )
                )
                releases[r.release_upc] = _upsert(
                    session,
                    org_id,
                    "releases",
                    existing,
                    {
                        "upc": r.release_upc,
                        "title": r.release_title,
                        "release_type": r.release_type,
                        "label_name": r.label_name,
                        "artist_id": artists[name_key(r.release_artist)].id,
                        "original_release_date": r.release_date,
                        "territories": r.territories,
                        "genre": r.genre,
                        "p_line": r.p_line,
                        "c_line": r.c_line,
                    },
                    result,
                )
            release = releases[r.release_upc]
            track = session.scalar(
                sa.select(Track).where(Track.org_id == org_id, Track.isrc == r.isrc)
            )
            if track is not None and track.release_id != release.id:
                errors.append(
                    FieldError(
                        "isrc",
                        f"{r.isrc} is already a track of release "
                        f"{track.release_id}; one recording per ISRC",
                        "duplicate",
                        row=n,
                    )
                )
                continue
            _upsert(
                session,
                org_id,
                "tracks",
                track,
                {
                    "release_id": release.id,
                    "isrc": r.isrc,
                    "title": r.track_title,
                    "version": r.version,
                    "artist_id": artists[name_key(r.track_artist or r.release_artist)].id,
                    "duration_seconds": r.duration,
                    "explicit": r.explicit,
                    "disc_number": r.disc_number,
                    "track_number": r.track_number,
                },
                result,
            )
        except StoreError as exc:
            errors += [FieldError(e.field, e.message, e.code, row=n) for e in exc.errors] or [
                FieldError("__row__", exc.detail, "rejected", row=n)
            ]
    if errors or dry_run:
        savepoint.rollback()
        if errors:
            raise ValidationFailed(errors)
    else:
        savepoint.commit()
    return result
