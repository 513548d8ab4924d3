"""Catalogue import (CSV or JSON): all rows validated first, then all written or none."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa

from schemas.errors import ValidationFailed
from schemas.store.imports import ImportResult, import_catalog
from schemas.store.models import Artist, AuditEntry, Release, Track
from tests.schemas.store.conftest import Catalog, d, isrc, upc

COLUMNS = [
    "release_upc",
    "release_title",
    "release_type",
    "label_name",
    "release_artist",
    "release_date",
    "territories",
    "isrc",
    "track_title",
    "track_artist",
    "duration",
    "track_number",
    "explicit",
]


def row(**overrides: Any) -> dict[str, Any]:
    """A valid row of release 1 (track 1); override any cell."""
    return {
        "release_upc": upc(1),
        "release_title": "First Light",
        "release_type": "Album",
        "label_name": "Nova Records",
        "release_artist": "Nova",
        "release_date": "2024-03-01",
        "territories": "WW",
        "isrc": isrc(1),
        "track_title": "Dawn",
        "track_artist": "",
        "duration": "215",
        "track_number": "1",
        "explicit": "false",
        **overrides,
    }


GOOD = [
    row(duration="3:05"),
    row(isrc=isrc(2), track_title="Noon", track_artist="Guest", track_number="2", explicit="true"),
    row(
        release_upc=upc(2),
        release_title="Dusk",
        release_type="Single",
        release_artist="Guest",
        release_date="2024-04-01",
        territories="GB,IE",
        isrc=isrc(3),
        track_title="Dusk",
        duration="1:02:03",
    ),
]


def to_csv(rows: list[dict[str, Any]], columns: list[str] = COLUMNS, bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([[r.get(c, "") for c in columns] for r in rows])
    return (("\ufeff" if bom else "") + out.getvalue()).encode()


def run(cat: Catalog, payload: bytes, content_type: str = "text/csv", **kw: Any) -> ImportResult:
    return import_catalog(cat.session, cat.org_id, payload, content_type, **kw)


def failure(cat: Catalog, payload: bytes, content_type: str = "text/csv") -> list[Any]:
    """The (row, field, code) of every error of an import that must fail and write nothing."""
    before = stored(cat)
    with pytest.raises(ValidationFailed) as err:
        run(cat, payload, content_type)
    assert stored(cat) == before
    return [(e.row, e.field, e.code) for e in err.value.errors]


def stored(cat: Catalog) -> dict[str, int]:
    audit = cat.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    return {
        "artists": cat.count(Artist),
        "releases": cat.count(Release),
        "tracks": cat.count(Track),
        "audit_log": audit,
    }


# --- a good file, twice --------------------------------------------------------------------
def test_a_good_csv_creates_the_catalogue(cat: Catalog) -> None:
    result = run(cat, to_csv(GOOD))
    assert result.as_dict() == {
        "rows": 3,
        "created": {"artists": 2, "releases": 2, "tracks": 3},
        "updated": {},
        "unchanged": {},
        "dry_run": False,
    }
    tracks = {t.isrc: t for t in cat.session.scalars(sa.select(Track))}
    artists = {a.id: a.name for a in cat.session.scalars(sa.select(Artist))}
    releases = {r.upc: r for r in cat.session.scalars(sa.select(Release))}
    assert sorted(artists.values()) == ["Guest", "Nova"]
    assert releases[upc(2)].territories == "GB,IE"
    assert releases[upc(2)].original_release_date == d("2024-04-01")
    assert artists[releases[upc(1)].artist_id] == "Nova"
    assert [
        (t.duration_seconds, artists[t.artist_id], t.explicit, t.track_number)
        for t in (tracks[isrc(1)], tracks[isrc(2)], tracks[isrc(3)])
    ] == [(185, "Nova", False, 1), (215, "Guest", True, 2), (3723, "Guest", False, 1)]
    assert tracks[isrc(1)].release_id == tracks[isrc(2)].release_id == releases[upc(1)].id


def test_rerunning_the_same_file_changes_nothing(cat: Catalog) -> None:
    run(cat, to_csv(GOOD))
    after_first = stored(cat)
    again = run(cat, to_csv(GOOD))
    assert (again.created, again.updated) == ({}, {})
    assert again.unchanged == {"releases": 2, "tracks": 3}
    assert stored(cat) == after_first  # no duplicates and not even an audit row


def test_a_changed_row_updates_through_the_service(cat: Catalog) -> None:
    run(cat, to_csv(GOOD))
    changed = [row(duration="3:05", track_title="Dawn (Remastered)"), *GOOD[1:]]
    result = run(cat, to_csv(changed))
    assert (result.created, result.updated) == ({}, {"tracks": 1})
    assert result.unchanged == {"releases": 2, "tracks": 2}
    track = cat.session.scalars(sa.select(Track).where(Track.isrc == isrc(1))).one()
    assert track.title == "Dawn (Remastered)"
    audit = cat.session.scalars(
        sa.select(AuditEntry).where(AuditEntry.entity == "tracks", AuditEntry.action == "update")
    ).one()
    assert audit.before is not None
    assert audit.after is not None
    assert (audit.before["title"], audit.after["title"]) == ("Dawn", "Dawn (Remastered)")


def test_dry_run_writes_nothing_but_counts(cat: Catalog) -> None:
    empty = stored(cat)
    result = run(cat, to_csv(GOOD), dry_run=True)
    assert result.dry_run is True
    assert result.created == {"artists": 2, "releases": 2, "tracks": 3}
    assert stored(cat) == empty
    cat.session.commit()
    assert stored(cat) == empty
    assert run(cat, to_csv(GOOD)).created == result.created  # the real run does what it said


def test_utf8_with_bom_and_blank_cells_and_lines(cat: Catalog) -> None:
    payload = to_csv(GOOD, bom=True).replace(b"\r\n", b"\r\n\r\n", 1)  # a blank line after header
    result = run(cat, payload, "text/csv; charset=utf-8")
    assert result.created == {"artists": 2, "releases": 2, "tracks": 3}


def test_non_ascii_text_survives(cat: Catalog) -> None:
    run(cat, to_csv([row(release_artist="Beyoncé", track_title="Ça va — 東京")]))
    assert cat.session.scalars(sa.select(Artist.name)).one() == "Beyoncé"
    assert cat.session.scalars(sa.select(Track.title)).one() == "Ça va — 東京"


# --- bad rows: every error, with its spreadsheet row, and nothing written -------------------
def test_every_bad_row_is_reported_with_row_and_field(cat: Catalog) -> None:
    rows = [
        row(isrc="GB-ABC-24"),  # row 2
        row(isrc=isrc(2), track_number="2"),  # row 3: fine
        row(release_upc=upc(2)[:-1] + "0", release_type="Mixtape", isrc=isrc(3)),  # row 4
        row(isrc=isrc(4), track_number="4", duration="three minutes"),  # row 5
        row(isrc=isrc(5), track_number="5", release_date="2024-02-30", territories="UK"),  # 6
    ]
    assert sorted(failure(cat, to_csv(rows))) == [
        (2, "isrc", "value_error"),
        (4, "release_type", "enum"),
        (4, "release_upc", "value_error"),
        (5, "duration", "int_parsing"),
        (6, "release_date", "date_from_datetime_parsing"),
        (6, "territories", "value_error"),
    ]


def test_row_numbers_are_spreadsheet_rows_even_with_multiline_cells(cat: Catalog) -> None:
    rows = [
        row(release_title="First\nLight"),  # one row in a spreadsheet, two lines in the file
        row(release_title="First Light", isrc=isrc(2), track_number="2", duration="x:1"),
    ]
    # A line break inside a title is refused (control character), on the right row.
    assert failure(cat, to_csv(rows)) == [
        (2, "release_title", "value_error"),
        (3, "duration", "value_error"),
    ]


@pytest.mark.parametrize("duration", ["0", "0:00", "24:00:01", "1:2:3:4", "-5"])
def test_a_duration_must_be_positive_and_at_most_a_day(cat: Catalog, duration: str) -> None:
    assert [(r, f) for r, f, _ in failure(cat, to_csv([row(duration=duration)]))] == [
        (2, "duration")
    ]


def test_inconsistent_release_fields_for_one_upc(cat: Catalog) -> None:
    rows = [
        row(),
        row(isrc=isrc(2), track_number="2", release_title="First Light (Deluxe)"),
        row(isrc=isrc(3), track_number="3", release_date="2024-03-02", label_name="Other"),
    ]
    assert failure(cat, to_csv(rows)) == [
        (3, "release_title", "inconsistent_release"),
        (4, "label_name", "inconsistent_release"),
        (4, "release_date", "inconsistent_release"),
    ]


def test_an_isrc_or_track_position_twice_in_the_file(cat: Catalog) -> None:
    rows = [
        row(),
        row(track_number="2"),  # ISRC again
        row(isrc=isrc(3)),  # disc 1 track 1 again
    ]
    assert failure(cat, to_csv(rows)) == [
        (3, "isrc", "duplicate"),
        (4, "track_number", "duplicate"),
    ]
    with pytest.raises(ValidationFailed) as err:
        run(cat, to_csv(rows))
    assert "already on row 2" in err.value.errors[0].message


def test_conflicts_with_the_database_are_reported_per_row_and_roll_back_all(
    cat: Catalog,
) -> None:
    run(cat, to_csv(GOOD))
    imported = stored(cat)
    rows = [
        row(release_upc=upc(3), release_artist="Newcomer", isrc=isrc(4)),  # fine on its own
        row(release_upc=upc(3), release_artist="Newcomer", isrc=isrc(1), track_number="2"),
        row(isrc=isrc(9), track_number="2"),  # disc 1 track 2 of release 1 is taken
    ]
    assert failure(cat, to_csv(rows)) == [
        (3, "isrc", "duplicate"),
        (4, "track_number", "duplicate"),
    ]
    with pytest.raises(ValidationFailed) as err:
        run(cat, to_csv(rows))
    assert "already a track of release" in err.value.errors[0].message
    assert stored(cat) == imported
    assert cat.session.scalar(sa.select(Artist).where(Artist.name == "Newcomer")) is None


# --- malformed files -----------------------------------------------------------------------
def test_missing_unknown_and_duplicate_columns(cat: Catalog) -> None:
    columns = [c for c in COLUMNS if c not in ("isrc", "duration")] + ["bpm", "explicit"]
    errors = failure(cat, to_csv([row()], columns))
    assert sorted(errors) == [
        (1, "bpm", "unknown_column"),
        (1, "duration", "missing_column"),
        (1, "explicit", "duplicate_column"),
        (1, "isrc", "missing_column"),
    ]


def test_a_row_with_the_wrong_number_of_cells(cat: Catalog) -> None:
    payload = to_csv(GOOD) + b"1,2,3\r\n"
    assert failure(cat, payload) == [(5, "__row__", "cell_count")]


@pytest.mark.parametrize(
    ("payload", "content_type", "code"),
    [
        ("Beyoncé".encode("latin-1"), "text/csv", "encoding"),
        (to_csv(GOOD).replace(b"Nova", "Nová".encode("cp1252")), "text/csv", "encoding"),
        (b"", "text/csv", "empty"),
        (",".join(COLUMNS).encode(), "text/csv", "empty"),
        (b'{"rows": [{"isrc": ', "application/json", "json"),
        (b'{"rows": {"isrc": "x"}}', "application/json", "json_shape"),
        (b"[1, 2]", "application/json", "json_shape"),
        (b'"just a string"', "application/json", "json_shape"),
        (b"[]", "application/json", "empty"),
        (b"<catalog/>", "application/xml", "media_type"),
    ],
)
def test_a_malformed_file_is_refused(
    cat: Catalog, payload: bytes, content_type: str, code: str
) -> None:
    assert [c for _, _, c in failure(cat, payload, content_type)] == [code]


def test_malformed_json_says_where(cat: Catalog) -> None:
    with pytest.raises(ValidationFailed) as err:
        run(cat, b'{"rows": [\n  {"isrc": }\n]}', "application/json")
    assert "line 2 column 12" in err.value.errors[0].message


def test_not_utf8_says_which_byte(cat: Catalog) -> None:
    with pytest.raises(ValidationFailed) as err:
        run(cat, b"release_upc\n\xe9", "text/csv")
    assert "byte 12 (0xe9)" in err.value.errors[0].message


# --- JSON ----------------------------------------------------------------------------------
def _json_rows() -> list[dict[str, Any]]:
    rows = [{k: v for k, v in r.items() if v != ""} for r in GOOD]
    rows[1]["duration"] = 215  # JSON numbers and booleans are fine
    rows[1]["explicit"] = True
    rows[1]["track_number"] = 2
    return rows


@pytest.mark.parametrize("wrap", [False, True], ids=["list", "object"])
def test_json_as_a_list_or_an_object_with_rows(cat: Catalog, wrap: bool) -> None:
    doc: Any = {"rows": _json_rows()} if wrap else _json_rows()
    result = run(cat, json.dumps(doc).encode(), "application/json")
    assert result.created == {"artists": 2, "releases": 2, "tracks": 3}
    noon = cat.session.scalars(sa.select(Track).where(Track.isrc == isrc(2))).one()
    assert (noon.duration_seconds, noon.explicit) == (215, True)


def test_json_rows_are_numbered_from_one(cat: Catalog) -> None:
    rows = _json_rows()
    rows[1]["isrc"] = "bad"
    rows[2]["colour"] = "blue"
    assert failure(cat, json.dumps({"rows": rows}).encode(), "application/json") == [
        (2, "isrc", "value_error"),
        (3, "colour", "extra_forbidden"),
    ]


def test_artist_names_match_case_insensitively_and_null_disc(session: Any, org_id: int) -> None:
    rows = [
        {
            "release_upc": "036000291452",
            "release_title": "A",
            "release_type": "Single",
            "label_name": "L",
            "release_artist": "Nova",
            "release_date": "2024-01-01",
            "isrc": "GBAAA2400001",
            "track_title": "A",
            "duration": 100,
            "track_number": 1,
            "disc_number": None,
            "track_artist": "NOVA",
        }
    ]
    result = import_catalog(session, org_id, json.dumps(rows).encode(), "application/json")
    assert result.created["artists"] == 1
    assert session.scalar(sa.select(Track.disc_number)) == 1
