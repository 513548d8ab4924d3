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
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from schemas import catalog as c
from schemas.errors import FieldError, StoreError, ValidationFailed
from schemas.identifiers import gtin_forms
from schemas.store import service
from schemas.store.models import Artist, MatchKind, MatchRule, ReleaseType, Track, name_key
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
    before_write: Callable[[], None] = lambda: None,
) -> Any:
    if existing is not None:
        current = {k: getattr(existing, k) for k in values if k != "contributors"}
        if all(current[k] == v for k, v in values.items() if k in current):
            result.unchanged[kind] += 1
            return existing
    before_write()
    if existing is None:
        result.created[kind] += 1
        return service.create(session, org_id, kind, values)
    result.updated[kind] += 1
    return service.update(session, org_id, kind, existing.id, values)


def import_catalog(
    session: Session, org_id: int, payload: bytes, content_type: str, *, dry_run: bool = False
) -> ImportResult:
    """Apply a catalogue file in one savepoint; any error anywhere leaves the store untouched.

    The organisation's matching rows are read once (not per row), and new artists, releases
    and tracks that cannot clash with anything stored are written in bulk
    (``service.bulk_create``, one audit entry per row as ever). Everything else (updates, and
    a new row that might clash) goes through ``service.create``/``update`` as before, after
    the pending bulk rows are written, so the store's rules see what a row-by-row import
    would have written before it."""
    rows, errors = _validate(parse_rows(payload, content_type))
    if errors:
        raise ValidationFailed(errors)
    result = ImportResult(rows=len(rows), dry_run=dry_run)
    savepoint = session.begin_nested()
    bulk = _Bulk(session, org_id, rows)
    for n, r in rows:
        try:
            for name in filter(None, (r.release_artist, r.track_artist)):
                if name_key(name) not in bulk.artists:
                    bulk.add_artist(name)
                    result.created["artists"] += 1
            if r.release_upc not in bulk.releases:
                values = {
                    "upc": r.release_upc,
                    "title": r.release_title,
                    "release_type": r.release_type,
                    "label_name": r.label_name,
                    "artist_id": name_key(r.release_artist),  # resolved by ``_Bulk``
                    "original_release_date": r.release_date,
                    "territories": r.territories,
                    "genre": r.genre,
                    "p_line": r.p_line,
                    "c_line": r.c_line,
                }
                bulk.releases[r.release_upc] = bulk.upsert_release(values, result)
            release = bulk.releases[r.release_upc]
            track = bulk.stored_tracks.get(r.isrc)
            if track is not None and track.release_id != bulk.release_id(release):
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
            bulk.upsert_track(
                track,
                {
                    "release_id": release,  # resolved by ``_Bulk``
                    "isrc": r.isrc,
                    "title": r.track_title,
                    "version": r.version,
                    "artist_id": name_key(r.track_artist or r.release_artist),
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
    if not errors:
        bulk.flush()
    if errors or dry_run:
        savepoint.rollback()
        if errors:
            raise ValidationFailed(errors)
    else:
        savepoint.commit()
    return result


def _chunks(values: list[Any], size: int = 5000) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


@dataclass
class _Pending:
    """A new artist or release not written yet (its row, and id, after ``_Bulk.flush``)."""

    values: dict[str, Any]
    row: Any = None


class _Bulk:
    """The organisation's rows an import touches, read once, and the new rows that cannot
    clash with them (no stored row with the same UPC in any GTIN form, ISRC or position, no
    remembered match on the code), written in bulk by ``flush``. Any other write flushes the
    pending rows first and goes through ``service`` as a row-by-row import would."""

    def __init__(self, session: Session, org_id: int, rows: list[tuple[int, CatalogRow]]) -> None:
        self.session, self.org_id = session, org_id
        # Names match case-insensitively: "nova" in one file and "Nova" in the store are one.
        self.artists: dict[str, Any] = {
            name_key(a.name): a
            for a in session.scalars(sa.select(Artist).where(Artist.org_id == org_id))
        }
        self.new_artists: list[dict[str, Any]] = []
        upcs = sorted({r.release_upc for _, r in rows})
        forms = sorted({f for u in upcs for f in gtin_forms(u)})
        stored = [
            rel
            for part in _chunks(forms)
            for rel in session.scalars(
                sa.select(ReleaseRow).where(ReleaseRow.org_id == org_id, ReleaseRow.upc.in_(part))
            )
        ]
        self.stored_releases = {rel.upc: rel for rel in stored}
        isrcs = sorted({r.isrc for _, r in rows})
        self.stored_tracks: dict[str, Any] = {
            t.isrc: t
            for part in _chunks(isrcs)
            for t in session.scalars(
                sa.select(Track).where(Track.org_id == org_id, Track.isrc.in_(part))
            )
        }
        ids = sorted(rel.id for rel in stored)
        self.positions = {
            tuple(p)
            for part in _chunks(ids)
            for p in session.execute(
                sa.select(Track.release_id, Track.disc_number, Track.track_number).where(
                    Track.release_id.in_(part)
                )
            )
        }
        self.aliases = {
            (kind, key)
            for kind, key in session.execute(
                sa.select(MatchRule.kind, MatchRule.key).where(MatchRule.org_id == org_id)
            )
        }
        self.releases: dict[str, Any] = {}  # UPC -> stored row or _Pending
        self.pending_releases: list[_Pending] = []
        self.pending_tracks: list[dict[str, Any]] = []

    # --- ids -----------------------------------------------------------------------------
    def release_id(self, release: Any) -> int | None:
        if isinstance(release, _Pending):
            return None if release.row is None else int(release.row.id)
        return int(release.id)

    def _resolve(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with real ids (pending rows it refers to are written first)."""
        artist = values.get("artist_id")
        release = values.get("release_id")
        if (isinstance(artist, str) and isinstance(self.artists[artist], _Pending)) or (
            isinstance(release, _Pending) and release.row is None
        ):
            self.flush()
        out = dict(values)
        if isinstance(out.get("artist_id"), str):
            out["artist_id"] = self.artists[out["artist_id"]].id
        if isinstance(out.get("release_id"), _Pending):
            out["release_id"] = out["release_id"].row.id
        elif out.get("release_id") is not None and not isinstance(out["release_id"], int):
            out["release_id"] = out["release_id"].id
        return out

    def flush(self) -> None:
        """Write the pending artists, releases and tracks, in that order."""
        if self.new_artists:
            made = service.bulk_create(
                self.session,
                Artist,
                [{"org_id": self.org_id, **a} for a in self.new_artists],
            )
            self.artists.update((name_key(a.name), a) for a in made)
            self.new_artists = []
        if self.pending_releases:
            written = service.bulk_create(
                self.session,
                ReleaseRow,
                [{"org_id": self.org_id, **self._resolve(p.values)} for p in self.pending_releases],
            )
            for p, row in zip(self.pending_releases, written, strict=True):
                p.row = row
            self.pending_releases = []
        if self.pending_tracks:
            service.bulk_create(
                self.session,
                Track,
                [{"org_id": self.org_id, **self._resolve(t)} for t in self.pending_tracks],
            )
            self.pending_tracks = []

    # --- artists, releases, tracks -------------------------------------------------------
    def add_artist(self, name: str) -> None:
        valid = _valid(c.ArtistIn, {"name": name})
        if valid is None:  # the service's own error, through its own path
            self.flush()
            self.artists[name_key(name)] = service.create(
                self.session, self.org_id, "artists", {"name": name}
            )
            return
        self.artists[name_key(name)] = _Pending(valid)
        self.new_artists.append(valid)

    def upsert_release(self, values: dict[str, Any], result: ImportResult) -> Any:
        upc = values["upc"]
        existing = self.stored_releases.get(upc)
        clash = any(
            f in self.stored_releases or (MatchKind.UPC, f) in self.aliases for f in gtin_forms(upc)
        )
        valid = None if existing is not None or clash else _valid(c.ReleaseIn, values)
        if valid is not None:
            result.created["releases"] += 1
            pending = _Pending(valid)
            self.pending_releases.append(pending)
            return pending
        values = self._resolve(values)
        return _upsert(self.session, self.org_id, "releases", existing, values, result, self.flush)

    def upsert_track(self, track: Any, values: dict[str, Any], result: ImportResult) -> None:
        position = (
            self.release_id(values["release_id"]),
            values["disc_number"],
            values["track_number"],
        )
        clash = (MatchKind.ISRC, values["isrc"]) in self.aliases or position in self.positions
        valid = None if track is not None or clash else _valid(c.TrackIn, values)
        if valid is not None:
            result.created["tracks"] += 1
            self.pending_tracks.append(valid)
            return
        if track is not None:
            self.positions.discard((track.release_id, track.disc_number, track.track_number))
        values = self._resolve(values)
        got = _upsert(self.session, self.org_id, "tracks", track, values, result, self.flush)
        self.positions.add((got.release_id, got.disc_number, got.track_number))


def _valid(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any] | None:
    """The row ``service.create`` would write for ``values`` (validated, normalised), its
    references (an artist's name key, a pending release) kept as given; None if invalid."""
    refs = {k: values[k] for k in ("artist_id", "release_id") if k in values}
    try:
        valid = model.model_validate({**values, **dict.fromkeys(refs, 1)})
    except ValidationError:
        return None
    return {**valid.model_dump(exclude={"contributors"}), **refs}
