"""The validated write path of the store (``schemas.store.service``), on both backends."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from demo.label import CATALOGUE_MODELS
from schemas.errors import Conflict, NotFound, ValidationFailed
from schemas.store import service
from schemas.store.keys import check_key, issue_key, revoke_key, verify_key
from schemas.store.models import (
    ApiKey,
    Artist,
    AuditEntry,
    Base,
    Contract,
    ContractCharge,
    ContractRate,
    Contributor,
    MatchKind,
    MatchRule,
    Release,
    Role,
    Split,
    SuspenseItem,
    SuspenseStatus,
    Track,
)
from tests.schemas.store.conftest import Catalog, d, isrc, upc

ALL_TABLES: list[type[Base]] = list(CATALOGUE_MODELS)


def errors_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[tuple[str, str]]:
    return [(e.field, e.code) for e in exc.value.errors]


def counts(cat: Catalog) -> dict[str, int]:
    out = {m.__tablename__: cat.count(m) for m in ALL_TABLES}
    out["audit_log"] = cat.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    return out


def audit_rows(session: Session, entity: str) -> list[AuditEntry]:
    stmt = sa.select(AuditEntry).where(AuditEntry.entity == entity).order_by(AuditEntry.id)
    return list(session.scalars(stmt))


# --- creating a catalogue ------------------------------------------------------------------
def test_create_every_kind_of_row(cat: Catalog) -> None:
    artist = cat.artist("Nova", kind="group", country="gb", isni="0000000121032683")
    feat = cat.artist("Guest")
    release = cat.release(1, artist_id=artist.id, territories="ww,-us", genre="Pop")
    track = cat.track(
        release,
        1,
        isrc="gb-abc-24-00001",
        contributors=[
            {"artist_id": artist.id, "role": "MainArtist"},
            {"artist_id": feat.id, "role": "FeaturedArtist", "sequence": 2},
        ],
    )
    payee = cat.payee("Nova Ltd", artist_id=artist.id, withholding_rate="0.2", country="GB")
    contract = cat.contract(
        payee,
        "NOVA-1",
        rates=[{"usage_type": "stream", "rate": "0.18", "effective_from": "2024-01-01"}],
        charges=[
            {"kind": "advance", "amount": "5000.50", "currency": "eur", "incurred_on": "2024-01-02"}
        ],
    )
    split = cat.split((payee, contract), "0.5", track=track)

    assert (artist.country, artist.kind.value) == ("GB", "group")
    assert (release.upc, release.territories) == (upc(1), "WW,-US")
    assert track.isrc == "GBABC2400001"  # normalised
    contributors = cat.session.scalars(
        sa.select(Contributor).where(Contributor.track_id == track.id).order_by(Contributor.id)
    ).all()
    assert [(x.artist_id, x.role.value, x.sequence) for x in contributors] == [
        (artist.id, "MainArtist", 1),
        (feat.id, "FeaturedArtist", 2),
    ]
    assert payee.withholding_rate == Decimal("0.2")
    rate = cat.session.scalars(sa.select(ContractRate)).one()
    assert (rate.contract_id, rate.usage_type, rate.rate) == (
        contract.id,
        "stream",
        Decimal("0.18"),
    )
    charge = cat.session.scalars(sa.select(ContractCharge)).one()
    assert (charge.amount, charge.currency) == (Decimal("5000.50"), "EUR")
    assert (split.track_id, split.release_id, split.share) == (track.id, None, Decimal("0.5"))
    assert all(getattr(row, "org_id", None) == cat.org_id for row in (artist, release, track))


# --- field-level validation ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "overrides", "field"),
    [
        ("releases", {"upc": "5063450000170"}, "upc"),  # check digit should be 9
        ("releases", {"upc": "000000000000"}, "upc"),
        ("tracks", {"isrc": "GBABC2400001X"}, "isrc"),
        ("tracks", {"isrc": "GB1"}, "isrc"),
        ("artists", {"isni": "0000000121032684"}, "isni"),
        ("releases", {"territories": "UK"}, "territories"),
        ("releases", {"territories": "GB,XX"}, "territories"),
        ("releases", {"territories": "JP,-US"}, "territories"),
        ("artists", {"country": "ZZ"}, "country"),
        ("payees", {"statement_currency": "EURO"}, "statement_currency"),
        ("payees", {"statement_currency": "XTS"}, "statement_currency"),
        ("payees", {"statement_currency": "ABC"}, "statement_currency"),
        ("payees", {"vat_number": "GB123"}, "vat_number"),
        ("payees", {"email": "not-an-email"}, "email"),
        ("contracts", {"currency": "XAU"}, "currency"),
        ("tracks", {"duration_seconds": 0}, "duration_seconds"),
        ("releases", {"release_type": "Mixtape"}, "release_type"),
        ("artists", {"nickname": "x"}, "nickname"),
    ],
)
def test_an_invalid_field_is_named_and_nothing_is_written(
    cat: Catalog, kind: str, overrides: dict[str, Any], field: str
) -> None:
    release = cat.release(7)
    payee = cat.payee("Existing")
    base: dict[str, dict[str, Any]] = {
        "artists": {"name": "New artist"},
        "releases": {
            "upc": upc(8),
            "title": "T",
            "release_type": "EP",
            "label_name": "L",
            "artist_id": release.artist_id,
            "original_release_date": "2024-02-02",
        },
        "tracks": {
            "release_id": release.id,
            "isrc": isrc(9),
            "title": "T",
            "artist_id": release.artist_id,
            "duration_seconds": 100,
            "track_number": 1,
        },
        "payees": {"name": "New payee", "statement_currency": "EUR"},
        "contracts": {
            "payee_id": payee.id,
            "reference": "R-1",
            "name": "Deal",
            "basis": "gross_receipts",
            "currency": "EUR",
            "start_date": "2024-01-01",
        },
    }
    before = counts(cat)
    with pytest.raises(ValidationFailed) as err:
        cat.create(kind, {**base[kind], **overrides})
    assert [e.field for e in err.value.errors] == [field]
    assert "nothing was written" in str(err.value)
    assert counts(cat) == before


def test_a_bad_upc_check_digit_says_which_digit_is_expected(cat: Catalog) -> None:
    with pytest.raises(ValidationFailed) as err:
        cat.release(1, upc="5063450000170")
    assert "check digit should be 9" in err.value.errors[0].message


def test_a_valid_vat_number_is_stored_compact(cat: Catalog) -> None:
    payee = cat.payee("Vat payer", vat_number="GB 980 7806 84")
    assert payee.vat_number == "GB980780684"


# --- uniqueness within an organisation -----------------------------------------------------
def test_duplicate_upc_in_one_org_but_not_across_orgs(cat: Catalog, other: Catalog) -> None:
    cat.release(1)
    with pytest.raises(ValidationFailed) as err:
        cat.release(1, artist_id=cat.artist("Someone else").id)
    assert errors_of(err) == [("upc", "duplicate")]
    assert cat.count(Release) == 1

    theirs = other.release(1)  # the same UPC, another tenant
    assert theirs.upc == upc(1)
    assert other.count(Release) == 1


def test_duplicate_isrc_in_one_org_but_not_across_orgs(cat: Catalog, other: Catalog) -> None:
    release = cat.release(1)
    cat.track(release, 1)
    with pytest.raises(ValidationFailed) as err:
        cat.track(release, 2, isrc=isrc(1))
    assert errors_of(err) == [("isrc", "duplicate")]
    assert other.track(other.release(1), 1).isrc == isrc(1)
    assert (cat.count(Track), other.count(Track)) == (1, 1)


def test_the_same_gtin_written_with_more_leading_zeros_is_a_duplicate(cat: Catalog) -> None:
    """UPC-A 036000291452 and EAN-13 0036000291452 are one product: matching compares them
    as 14 digits, so two releases holding them would leave a report's lines to whichever
    release the lookup meets first."""
    cat.release(1, upc="036000291452")
    with pytest.raises(ValidationFailed) as err:
        cat.release(2, upc="0036000291452")
    assert errors_of(err) == [("upc", "duplicate")]
    assert "(written 036000291452)" in err.value.errors[0].message
    assert cat.count(Release) == 1


def remember(
    cat: Catalog, kind: MatchKind, key: str, release: Release, track: Track | None = None
) -> None:
    """A remembered match (as resolving suspense makes one): ``key`` -> track or release."""
    cat.session.add(
        MatchRule(
            org_id=cat.org_id,
            kind=kind,
            key=key,
            track_id=track.id if track is not None else None,
            release_id=release.id,
        )
    )
    cat.session.flush()


def test_a_new_identifier_that_is_already_a_remembered_match_is_refused(cat: Catalog) -> None:
    """A manual match (an alias rule) sends ISRC or UPC X to a track or release. A track or
    release created later with X as its own code would silently take X's lines from the
    match the user made: the catalogue says which one it is first."""
    release = cat.release(1)
    track = cat.track(release, 1)
    remember(cat, MatchKind.ISRC, isrc(7), release, track)
    remember(cat, MatchKind.UPC, "0" + upc(8), release)
    with pytest.raises(ValidationFailed) as err:
        cat.track(release, 2, isrc=isrc(7))
    assert errors_of(err) == [("isrc", "alias_taken")]
    assert f"track {track.id}" in err.value.errors[0].message
    with pytest.raises(ValidationFailed) as err:
        cat.release(8)
    assert errors_of(err) == [("upc", "alias_taken")]
    assert f"release {release.id}" in err.value.errors[0].message
    # a match made to a release only (no track) is as much in the way of a new track
    remember(cat, MatchKind.ISRC, isrc(9), release)
    with pytest.raises(ValidationFailed) as err:
        cat.track(cat.release(2), 4, isrc=isrc(9))
    assert errors_of(err) == [("isrc", "alias_taken")]
    assert f"release {release.id}" in err.value.errors[0].message
    # an update to the aliased code is refused the same way; other codes are fine
    other = cat.track(release, 3)
    with pytest.raises(ValidationFailed) as err:
        service.update(cat.session, cat.org_id, "tracks", other.id, {"isrc": isrc(7)})
    assert errors_of(err) == [("isrc", "alias_taken")]
    assert (cat.count(Track), cat.count(Release)) == (2, 2)


def test_a_code_a_remembered_match_sends_to_the_same_row_is_accepted(cat: Catalog) -> None:
    """The catalogue's ISRC was mistyped, so the DSP's lines were matched by hand to the
    track; correcting the track to that ISRC is where the rule already sends them."""
    release = cat.release(1)
    track = cat.track(release, 1, isrc=isrc(99))
    remember(cat, MatchKind.ISRC, isrc(1), release, track)
    remember(cat, MatchKind.UPC, "0" + upc(5), release)
    assert service.update(cat.session, cat.org_id, "tracks", track.id, {"isrc": isrc(1)}).isrc == (
        isrc(1)
    )
    assert service.update(
        cat.session, cat.org_id, "releases", release.id, {"upc": upc(5)}
    ).upc == upc(5)


def test_releases_stored_before_gtin_forms_were_compared_can_still_be_edited(
    cat: Catalog,
) -> None:
    """Two releases stored as 036000291452 and 0036000291452 before the check existed: a
    title edit does not touch the UPC, so it is not refused for it."""
    first = cat.release(1, upc="036000291452")
    second = cat.release(2)
    cat.session.execute(
        sa.update(Release).where(Release.id == second.id).values(upc="0036000291452")
    )
    cat.session.expire_all()
    edited = service.update(cat.session, cat.org_id, "releases", first.id, {"title": "New"})
    assert edited.title == "New"
    with pytest.raises(ValidationFailed) as err:  # changing it to a third form still is
        service.update(cat.session, cat.org_id, "releases", first.id, {"upc": "00036000291452"})
    assert errors_of(err) == [("upc", "duplicate")]


def test_suspense_under_a_upc_the_catalogue_now_holds_is_not_matched_by_hand(
    cat: Catalog,
) -> None:
    """The UPC of an unmatched line (as 14 digits) is now a release's own, written as 13:
    a manual match would never apply, so it is refused and rematch is named."""
    from schemas.store import suspense

    mine = cat.release(1)
    elsewhere = cat.release(2)
    item = SuspenseItem(
        org_id=cat.org_id,
        kind=MatchKind.UPC,
        key="0" + upc(1),
        reason="unknown_upc",
        lines=3,
        quantity=3,
        status=SuspenseStatus.OPEN,
    )
    cat.session.add(item)
    cat.session.flush()
    with pytest.raises(Conflict, match=f"release {mine.id} .*rematch"):
        suspense.resolve(cat.session, cat.org_id, item.id, release_id=elsewhere.id)
    assert cat.count(MatchRule) == 0 and item.status is SuspenseStatus.OPEN


def test_duplicate_track_position_and_artist_name(cat: Catalog) -> None:
    release = cat.release(1)
    cat.track(release, 1)
    with pytest.raises(ValidationFailed) as err:
        cat.track(release, 2, track_number=1)
    assert errors_of(err) == [("track_number", "duplicate")]
    cat.track(release, 3, track_number=1, disc_number=2)  # another disc is fine
    with pytest.raises(ValidationFailed) as err:
        cat.artist("Release artist 1")
    assert errors_of(err) == [("name", "duplicate")]


def test_the_same_artist_and_role_twice_on_a_track_is_refused(cat: Catalog) -> None:
    release = cat.release(1)
    twice = [{"artist_id": release.artist_id, "role": "Producer"}] * 2
    with pytest.raises(ValidationFailed) as err:
        cat.track(release, 1, contributors=twice)
    assert errors_of(err) == [("contributors.1", "duplicate")]
    assert cat.count(Track) == cat.count(Contributor) == 0


# --- tenancy -------------------------------------------------------------------------------
def test_references_to_another_orgs_rows_are_not_found(cat: Catalog, other: Catalog) -> None:
    their_release = other.release(1)
    their_track = other.track(their_release, 1)
    their_payee, their_contract = other.party("Their payee")
    mine = cat.release(2)
    my_payee, my_contract = cat.party("My payee")
    before = counts(cat)

    attempts: list[tuple[str, dict[str, Any], str]] = [
        (
            "tracks",
            {
                "release_id": their_release.id,
                "isrc": isrc(5),
                "title": "T",
                "artist_id": mine.artist_id,
                "duration_seconds": 100,
                "track_number": 1,
            },
            "release_id",
        ),
        (
            "tracks",
            {
                "release_id": mine.id,
                "isrc": isrc(5),
                "title": "T",
                "artist_id": mine.artist_id,
                "duration_seconds": 100,
                "track_number": 1,
                "contributors": [{"artist_id": their_release.artist_id, "role": "Producer"}],
            },
            "contributors.0.artist_id",
        ),
        (
            "releases",
            {
                "upc": upc(5),
                "title": "T",
                "release_type": "EP",
                "label_name": "L",
                "artist_id": their_release.artist_id,
                "original_release_date": "2024-01-01",
            },
            "artist_id",
        ),
        ("payees", {"name": "X", "statement_currency": "EUR", "artist_id": 99999}, "artist_id"),
        (
            "contracts",
            {
                "payee_id": their_payee.id,
                "reference": "R",
                "name": "N",
                "basis": "ppd",
                "currency": "EUR",
                "start_date": "2024-01-01",
            },
            "payee_id",
        ),
        (
            "splits",
            {
                "track_id": their_track.id,
                "payee_id": my_payee.id,
                "contract_id": my_contract.id,
                "share": "0.5",
                "effective_from": "2024-01-01",
            },
            "track_id",
        ),
        (
            "splits",
            {
                "release_id": mine.id,
                "payee_id": my_payee.id,
                "contract_id": their_contract.id,
                "share": "0.5",
                "effective_from": "2024-01-01",
            },
            "contract_id",
        ),
    ]
    for kind, data, field in attempts:
        with pytest.raises(ValidationFailed) as err:
            cat.create(kind, data)
        assert errors_of(err) == [(field, "not_found")], kind
    assert counts(cat) == before


def test_another_orgs_row_cannot_be_read_updated_or_deleted(cat: Catalog, other: Catalog) -> None:
    theirs = other.artist("Theirs")
    their_track = other.track(other.release(1), 1)
    with pytest.raises(NotFound):
        service.update(cat.session, cat.org_id, "artists", theirs.id, {"name": "Mine now"})
    with pytest.raises(NotFound):
        service.delete(cat.session, cat.org_id, "artists", theirs.id)
    with pytest.raises(NotFound):
        service.split_candidates(cat.session, cat.org_id, their_track.id, d("2024-01-01"))
    assert cat.session.get(Artist, theirs.id).name == "Theirs"


# --- shares never exceed 100% --------------------------------------------------------------
@pytest.fixture
def track(cat: Catalog) -> Track:
    return cat.track(cat.release(1), 1)


def test_shares_over_100_percent_are_refused(cat: Catalog, track: Track) -> None:
    a, b, c = cat.party("A"), cat.party("B"), cat.party("C")
    cat.split(a, "0.6", track=track)
    cat.split(b, "0.4", track=track)  # exactly 100% is fine
    with pytest.raises(ValidationFailed) as err:
        cat.split(c, "0.0000000001", track=track)
    assert errors_of(err) == [("share", "shares_exceed_100")]
    assert "would total 100.00000001% on 2024-01-01" in err.value.errors[0].message
    assert cat.count(Split) == 2


def test_disjoint_territories_may_each_reach_100_percent(cat: Catalog, track: Track) -> None:
    cat.split(cat.party("Rest of world"), "1", track=track, territories="WW,-JP")
    cat.split(cat.party("Japan"), "1", track=track, territories="JP")
    with pytest.raises(ValidationFailed) as err:
        cat.split(cat.party("Asia"), "0.1", track=track, territories="KR,JP")
    assert errors_of(err) == [("share", "shares_exceed_100")]
    assert " in JP " in err.value.errors[0].message
    assert cat.sheet(track, "2024-05-01", "JP")[1] == 0
    assert cat.sheet(track, "2024-05-01", "US")[1] == 0


def test_disjoint_date_ranges_may_each_reach_100_percent(cat: Catalog, track: Track) -> None:
    cat.split(cat.party("H1"), "1", track=track, start="2024-01-01", end="2024-06-30")
    cat.split(cat.party("H2"), "1", track=track, start="2024-07-01")
    with pytest.raises(ValidationFailed) as err:  # one day of overlap is enough
        cat.split(cat.party("Late"), "0.5", track=track, start="2024-06-30", end="2024-06-30")
    assert errors_of(err) == [("share", "shares_exceed_100")]
    assert "2024-06-30" in err.value.errors[0].message


def test_a_future_split_is_counted_after_the_new_ones_start(cat: Catalog, track: Track) -> None:
    cat.split(cat.party("Now"), "0.5", track=track, start="2024-01-01")
    cat.split(cat.party("Later"), "0.4", track=track, start="2026-01-01")
    # 0.2 fits in 2024 and 2025 (0.7) but not from 2026 on (1.1)
    with pytest.raises(ValidationFailed) as err:
        cat.split(cat.party("Between"), "0.2", track=track, start="2024-06-01")
    assert "2026-01-01" in err.value.errors[0].message
    cat.split(cat.party("Until 2026"), "0.2", track=track, start="2024-06-01", end="2025-12-31")


def test_track_and_release_level_splits_are_checked_separately(cat: Catalog) -> None:
    release = cat.release(1)
    track = cat.track(release, 1)
    cat.split(cat.party("Release-wide"), "1", release=release)
    cat.split(cat.party("Track only"), "1", track=track)  # does not add to the release's 100%
    with pytest.raises(ValidationFailed) as err:
        cat.split(cat.party("Second"), "0.5", release=release)
    assert errors_of(err) == [("share", "shares_exceed_100")]
    assert f"release {release.id}" in err.value.errors[0].message


def test_a_split_needs_exactly_one_target(cat: Catalog) -> None:
    release = cat.release(1)
    track = cat.track(release, 1)
    party = cat.party("P")
    for target in ({}, {"track": track, "release": release}):
        with pytest.raises(ValidationFailed) as err:
            cat.split(party, "0.5", **target)
        assert "exactly one of track_id or release_id" in err.value.errors[0].message
    assert cat.count(Split) == 0


@pytest.mark.parametrize("share", ["0", "1.5", "-0.1", "0.12345678901"])
def test_a_share_is_a_fraction_above_zero(cat: Catalog, track: Track, share: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        cat.split(cat.party("P"), share, track=track)
    assert [e.field for e in err.value.errors] == ["share"]


# --- effective dating of splits ------------------------------------------------------------
def test_overlapping_ranges_for_the_same_key_are_refused(cat: Catalog, track: Track) -> None:
    party = cat.party("P")
    cat.split(party, "0.3", track=track, start="2024-01-01", end="2024-12-31")
    for start, end, territories in [
        ("2024-06-01", None, "WW"),  # the old row is closed: no automatic supersede
        ("2023-01-01", "2024-01-01", "WW"),
        ("2023-01-01", None, "GB"),  # a subset of the territories still overlaps
    ]:
        with pytest.raises(ValidationFailed) as err:
            cat.split(party, "0.3", track=track, start=start, end=end, territories=territories)
        assert errors_of(err) == [("effective_from", "overlapping_range")]
    cat.split(party, "0.3", track=track, start="2025-01-01")  # after it: fine
    assert cat.count(Split) == 2


def test_the_same_key_in_disjoint_territories_may_overlap_in_time(
    cat: Catalog, track: Track
) -> None:
    party = cat.party("P")
    cat.split(party, "0.3", track=track, territories="GB")
    cat.split(party, "0.5", track=track, territories="JP")
    assert cat.sheet(track, "2024-02-01", "JP") == ([(party[0].id, Decimal("0.5"))], Decimal("0.5"))


def test_a_new_term_closes_the_open_ended_one_and_history_reads_back(
    cat: Catalog, track: Track
) -> None:
    party = cat.party("Artist")
    label_partner = cat.party("Partner")
    old = cat.split(party, "0.5", track=track, start="2024-01-01")
    cat.split(label_partner, "0.2", track=track, start="2024-01-01")
    new = cat.split(party, "0.6", track=track, start="2024-07-01")

    assert old.effective_to == d("2024-06-30")
    assert cat.session.get(Split, old.id) is old
    assert (new.effective_from, new.effective_to) == (d("2024-07-01"), None)
    assert cat.count(Split) == 3
    pid, partner = party[0].id, label_partner[0].id
    assert cat.sheet(track, "2023-12-31", "GB") == ([], Decimal(1))
    assert cat.sheet(track, "2024-06-30", "GB") == (
        [(pid, Decimal("0.5")), (partner, Decimal("0.2"))],
        Decimal("0.3"),
    )
    assert cat.sheet(track, "2024-07-01", "GB") == (
        [(partner, Decimal("0.2")), (pid, Decimal("0.6"))],
        Decimal("0.2"),
    )
    closed = [r for r in audit_rows(cat.session, "splits") if r.action == "update"]
    assert [(r.entity_id, r.before["effective_to"], r.after["effective_to"]) for r in closed] == [
        (old.id, None, "2024-06-30")
    ]


def test_a_refused_new_term_leaves_the_open_ended_one_open(cat: Catalog, track: Track) -> None:
    party = cat.party("Artist")
    cat.split(cat.party("Partner"), "0.5", track=track)
    old = cat.split(party, "0.5", track=track)
    with pytest.raises(ValidationFailed) as err:
        cat.split(party, "0.6", track=track, start="2024-07-01")  # 110% from July
    assert errors_of(err) == [("share", "shares_exceed_100")]
    assert old.effective_to is None
    # and nothing left over that a later, unrelated write would apply
    cat.split(cat.party("Elsewhere"), "1", release=cat.release(2))
    cat.session.expire_all()
    assert cat.session.get(Split, old.id).effective_to is None


def test_a_new_term_for_other_territories_does_not_close_the_old_one(
    cat: Catalog, track: Track
) -> None:
    party = cat.party("Artist")
    old = cat.split(party, "0.5", track=track)
    with pytest.raises(ValidationFailed) as err:
        cat.split(party, "0.5", track=track, territories="GB", start="2024-07-01")
    assert errors_of(err) == [("effective_from", "overlapping_range")]
    assert old.effective_to is None


def test_track_level_splits_replace_release_level_ones(cat: Catalog) -> None:
    release = cat.release(1)
    track, sibling = cat.track(release, 1), cat.track(release, 2)
    label_deal, remix = cat.party("Band"), cat.party("Remixer")
    cat.split(label_deal, "0.5", release=release, start="2024-01-01")
    cat.split(remix, "0.3", track=track, territories="GB", start="2024-03-01")

    band, remixer = label_deal[0].id, remix[0].id
    assert cat.sheet(track, "2024-02-01", "GB") == ([(band, Decimal("0.5"))], Decimal("0.5"))
    assert cat.sheet(track, "2024-03-01", "GB") == ([(remixer, Decimal("0.3"))], Decimal("0.7"))
    assert cat.sheet(track, "2024-03-01", "US") == ([(band, Decimal("0.5"))], Decimal("0.5"))
    assert cat.sheet(sibling, "2024-03-01", "GB") == ([(band, Decimal("0.5"))], Decimal("0.5"))


def test_split_sheet_respects_exclusions(cat: Catalog, track: Track) -> None:
    party = cat.party("P")
    cat.split(party, "0.25", track=track, territories="WW,-US")
    assert cat.sheet(track, "2024-01-01", "US") == ([], Decimal(1))
    assert cat.sheet(track, "2024-01-01", "CA") == (
        [(party[0].id, Decimal("0.25"))],
        Decimal("0.75"),
    )


def test_a_split_whose_contract_is_another_payees_is_refused(cat: Catalog, track: Track) -> None:
    alice, _ = cat.party("Alice")
    _, bobs_contract = cat.party("Bob")
    with pytest.raises(ValidationFailed) as err:
        cat.split((alice, bobs_contract), "0.5", track=track)
    assert errors_of(err) == [("contract_id", "contract_payee_mismatch")]
    assert cat.count(Split) == 0


# --- contracts and rates -------------------------------------------------------------------
def rates_of(session: Session, contract: Contract) -> list[tuple[str, str, Any, Any, Decimal]]:
    rows = session.scalars(
        sa.select(ContractRate)
        .where(ContractRate.contract_id == contract.id)
        .order_by(ContractRate.id)
    )
    return [(r.usage_type, r.territories, r.effective_from, r.effective_to, r.rate) for r in rows]


def test_add_rate_supersedes_an_open_ended_rate_of_the_same_key(cat: Catalog) -> None:
    contract = cat.contract(
        cat.payee(),
        rates=[{"usage_type": "stream", "rate": "0.2", "effective_from": "2024-01-01"}],
    )
    cat.rate(contract, {"usage_type": "download", "rate": "0.3", "effective_from": "2024-03-01"})
    cat.rate(contract, {"usage_type": "stream", "rate": "0.25", "effective_from": "2024-07-01"})
    assert rates_of(cat.session, contract) == [
        ("stream", "WW", d("2024-01-01"), d("2024-06-30"), Decimal("0.2")),
        ("download", "WW", d("2024-03-01"), None, Decimal("0.3")),
        ("stream", "WW", d("2024-07-01"), None, Decimal("0.25")),
    ]


@pytest.mark.parametrize(
    "rate",
    [
        {"rate": "0.3", "effective_from": "2024-06-01"},  # the old one has an end date
        {"rate": "0.3", "effective_from": "2023-06-01", "effective_to": "2024-01-01"},
        {"rate": "0.3", "territories": "GB", "effective_from": "2024-06-01"},
    ],
)
def test_add_rate_refuses_an_overlap(cat: Catalog, rate: dict[str, Any]) -> None:
    contract = cat.contract(
        cat.payee(),
        rates=[{"rate": "0.2", "effective_from": "2024-01-01", "effective_to": "2024-12-31"}],
    )
    with pytest.raises(ValidationFailed) as err:
        service.add_rate(cat.session, cat.org_id, contract.id, rate)
    assert errors_of(err) == [("effective_from", "overlapping_range")]
    assert len(rates_of(cat.session, contract)) == 1


def test_rates_in_disjoint_territories_or_channels_coexist(cat: Catalog) -> None:
    contract = cat.contract(
        cat.payee(),
        rates=[
            {"rate": "0.2", "territories": "WW,-US", "effective_from": "2024-01-01"},
            {"rate": "0.15", "territories": "US", "effective_from": "2024-01-01"},
            {"rate": "0.1", "channel": "youtube", "effective_from": "2024-01-01"},
        ],
    )
    assert [r[-1] for r in rates_of(cat.session, contract)] == [
        Decimal("0.2"),
        Decimal("0.15"),
        Decimal("0.1"),
    ]


def test_a_rate_above_one_must_be_per_unit(cat: Catalog) -> None:
    payee = cat.payee()
    percent = cat.contract(payee, "PCT", basis="net_receipts")
    with pytest.raises(ValidationFailed) as err:
        cat.rate(percent, {"rate": "18", "effective_from": "2024-01-01"})
    assert errors_of(err) == [("rate", "rate_not_fraction")]
    with pytest.raises(ValidationFailed) as err:
        cat.rate(
            percent,
            {
                "rate": "0.1",
                "tiers": [{"from_units": 1000, "rate": "1.2"}],
                "effective_from": "2024-01-01",
            },
        )
    assert errors_of(err) == [("tiers.0.rate", "rate_not_fraction")]
    with pytest.raises(ValidationFailed) as err:
        cat.contract(
            payee, "PCT-2", basis="ppd", rates=[{"rate": "2", "effective_from": "2024-01-01"}]
        )
    assert errors_of(err) == [("rates.0.rate", "rate_not_fraction")]

    per_unit = cat.contract(payee, "PU", basis="per_unit")
    cat.rate(per_unit, {"rate": "0.0004", "effective_from": "2024-01-01"})
    cat.rate(per_unit, {"usage_type": "download", "rate": "1.25", "effective_from": "2024-01-01"})
    assert [r[-1] for r in rates_of(cat.session, per_unit)] == [Decimal("0.0004"), Decimal("1.25")]
    assert rates_of(cat.session, percent) == []


def test_a_rate_too_large_for_the_column_is_a_field_error(cat: Catalog) -> None:
    contract = cat.contract(cat.payee(), basis="per_unit")
    # a per-unit rate in a weak currency (12,000 VND a download) fits NUMERIC(28, 12)
    cat.rate(contract, {"rate": "12000.000000000001", "effective_from": "2024-01-01"})
    with pytest.raises(ValidationFailed) as err:
        cat.rate(contract, {"rate": "10000000000000000", "effective_from": "2024-01-01"})
    assert [e.field for e in err.value.errors] == ["rate"]
    with pytest.raises(ValidationFailed) as err:
        cat.rate(contract, {"rate": "0.0000000000001", "effective_from": "2024-01-01"})
    assert [e.field for e in err.value.errors] == ["rate"]


def test_rates_and_charges_of_another_orgs_contract_are_not_found(
    cat: Catalog, other: Catalog
) -> None:
    theirs = other.contract(other.payee())
    with pytest.raises(NotFound):
        cat.rate(theirs, {"rate": "0.1", "effective_from": "2024-01-01"})
    with pytest.raises(NotFound):
        service.add_charge(
            cat.session,
            cat.org_id,
            theirs.id,
            {"kind": "advance", "amount": "1", "currency": "EUR", "incurred_on": "2024-01-01"},
        )
    assert other.count(ContractRate) == other.count(ContractCharge) == 0


def test_a_reserve_needs_a_liquidation_period(cat: Catalog) -> None:
    payee = cat.payee()
    with pytest.raises(ValidationFailed) as err:
        cat.contract(payee, "RES-0", reserve_rate="0.1", reserve_periods=0)
    assert "reserve_periods must be at least 1" in err.value.errors[0].message
    assert cat.count(Contract) == 0
    assert cat.contract(payee, "RES-4", reserve_rate="0.1", reserve_periods=4).reserve_periods == 4


def test_a_failed_nested_rate_leaves_no_contract_behind(cat: Catalog) -> None:
    payee = cat.payee()
    before = counts(cat)
    with pytest.raises(ValidationFailed) as err:
        cat.contract(
            payee,
            rates=[
                {"rate": "0.2", "effective_from": "2024-01-01", "effective_to": "2024-12-31"},
                {"rate": "0.3", "effective_from": "2024-06-01"},
            ],
            charges=[
                {"kind": "advance", "amount": "10", "currency": "EUR", "incurred_on": "2024-01-01"}
            ],
        )
    assert errors_of(err) == [("rates.1.effective_from", "overlapping_range")]
    assert counts(cat) == before
    cat.session.commit()
    assert counts(cat) == before


# --- payees --------------------------------------------------------------------------------
def test_self_billing_consent_needs_an_expiry_date(cat: Catalog) -> None:
    with pytest.raises(ValidationFailed) as err:
        cat.payee("Consenting", self_billing_consent=True)
    assert "self_billing_expires is required" in err.value.errors[0].message
    payee = cat.payee("Consenting", self_billing_consent=True, self_billing_expires="2026-12-31")
    assert payee.self_billing_expires == d("2026-12-31")


def test_consent_may_be_patched_alone_when_the_payee_has_an_expiry(cat: Catalog) -> None:
    dated = cat.payee("Dated", self_billing_expires="2026-12-31")
    undated = cat.payee("Undated")
    service.update(cat.session, cat.org_id, "payees", dated.id, {"self_billing_consent": True})
    assert dated.self_billing_consent is True
    with pytest.raises(ValidationFailed) as err:
        service.update(
            cat.session, cat.org_id, "payees", undated.id, {"self_billing_consent": True}
        )
    assert "self_billing_expires is required" in err.value.errors[0].message
    assert undated.self_billing_consent is False
    with pytest.raises(ValidationFailed):  # removing the expiry of a consenting payee
        service.update(cat.session, cat.org_id, "payees", dated.id, {"self_billing_expires": None})
    assert dated.self_billing_expires == d("2026-12-31")


# --- updates -------------------------------------------------------------------------------
def test_update_validates_the_merged_record(cat: Catalog, other: Catalog) -> None:
    release = cat.release(1)
    first, second = cat.track(release, 1), cat.track(release, 2)
    with pytest.raises(ValidationFailed) as err:
        service.update(cat.session, cat.org_id, "tracks", second.id, {"isrc": first.isrc})
    assert errors_of(err) == [("isrc", "duplicate")]
    with pytest.raises(ValidationFailed) as err:
        service.update(
            cat.session, cat.org_id, "tracks", second.id, {"release_id": other.release(1).id}
        )
    assert errors_of(err) == [("release_id", "not_found")]
    with pytest.raises(ValidationFailed) as err:
        service.update(cat.session, cat.org_id, "tracks", second.id, {"title": None})
    assert [e.field for e in err.value.errors] == ["title"]
    cat.session.expire_all()
    assert (second.isrc, second.release_id, second.title) == (isrc(2), release.id, "Song 2")

    updated = service.update(cat.session, cat.org_id, "tracks", second.id, {"isrc": isrc(3)})
    assert updated.isrc == isrc(3)
    # keeping its own values is not a duplicate of itself
    service.update(cat.session, cat.org_id, "tracks", second.id, {"isrc": isrc(3)})


def test_update_checks_cross_field_rules_on_the_merged_record(cat: Catalog) -> None:
    contract = cat.contract(cat.payee(), reserve_rate="0.1", reserve_periods=2)
    with pytest.raises(ValidationFailed):
        service.update(cat.session, cat.org_id, "contracts", contract.id, {"reserve_periods": 0})
    with pytest.raises(ValidationFailed):
        service.update(
            cat.session, cat.org_id, "contracts", contract.id, {"end_date": "2019-01-01"}
        )
    cat.session.expire_all()
    assert (contract.reserve_periods, contract.end_date) == (2, None)
    with pytest.raises(ValidationFailed) as err:  # the key of a contract cannot change
        service.update(cat.session, cat.org_id, "contracts", contract.id, {"basis": "per_unit"})
    assert [e.field for e in err.value.errors] == ["basis"]


def test_a_tracks_contributors_are_replaced_by_an_update(cat: Catalog) -> None:
    release = cat.release(1)
    mixer = [{"artist_id": release.artist_id, "role": "MixingEngineer"}]
    track = cat.track(release, 1, contributors=mixer)
    producer = cat.artist("Producer")
    service.update(
        cat.session,
        cat.org_id,
        "tracks",
        track.id,
        {"contributors": [{"artist_id": producer.id, "role": "Producer"}]},
    )
    rows = cat.session.scalars(sa.select(Contributor).where(Contributor.track_id == track.id))
    assert [(x.artist_id, x.role.value) for x in rows] == [(producer.id, "Producer")]


def test_a_split_only_accepts_a_new_end_date(cat: Catalog, track: Track) -> None:
    party = cat.party("P")
    split = cat.split(party, "0.5", track=track)
    for patch, field in [
        ({"effective_to": None, "share": "0.9"}, "share"),
        ({"effective_to": None, "territories": "GB"}, "territories"),
        ({"effective_to": None, "effective_from": "2020-01-01"}, "effective_from"),
        ({"effective_to": "2023-12-31"}, "__root__"),  # before its start
    ]:
        with pytest.raises(ValidationFailed) as err:
            service.update(cat.session, cat.org_id, "splits", split.id, patch)
        assert [e.field for e in err.value.errors] == [field], patch
    cat.session.expire_all()
    assert (split.share, split.effective_to) == (Decimal("0.5"), None)

    service.update(cat.session, cat.org_id, "splits", split.id, {"effective_to": "2024-12-31"})
    assert split.effective_to == d("2024-12-31")
    cat.split(party, "0.4", track=track, start="2025-01-01")
    with pytest.raises(ValidationFailed) as err:  # re-opening it would overlap the new term
        service.update(cat.session, cat.org_id, "splits", split.id, {"effective_to": None})
    assert errors_of(err) == [("effective_from", "overlapping_range")]
    cat.session.expire_all()
    assert split.effective_to == d("2024-12-31")


def test_extending_a_split_may_not_push_shares_over_100(cat: Catalog, track: Track) -> None:
    short = cat.split(cat.party("A"), "0.6", track=track, start="2024-01-01", end="2024-06-30")
    cat.split(cat.party("B"), "0.6", track=track, start="2024-07-01")
    with pytest.raises(ValidationFailed) as err:
        service.update(cat.session, cat.org_id, "splits", short.id, {"effective_to": "2024-07-01"})
    assert errors_of(err) == [("share", "shares_exceed_100")]
    cat.session.expire_all()
    assert short.effective_to == d("2024-06-30")


# --- deletes -------------------------------------------------------------------------------
def test_deleting_a_referenced_row_is_a_conflict_and_deletes_nothing(cat: Catalog) -> None:
    release = cat.release(1)
    payee, _ = cat.party("Contracted")
    before = counts(cat)
    with pytest.raises(Conflict):
        service.delete(cat.session, cat.org_id, "artists", release.artist_id)
    with pytest.raises(Conflict):
        service.delete(cat.session, cat.org_id, "payees", payee.id)
    assert counts(cat) == before
    cat.session.commit()  # the session is still usable and nothing was pending
    assert counts(cat) == before
    assert cat.session.get(Artist, release.artist_id) is not None


def test_deleting_an_unreferenced_row_removes_it(cat: Catalog) -> None:
    artist = cat.artist("Loner")
    service.delete(cat.session, cat.org_id, "artists", artist.id)
    assert cat.count(Artist) == 0
    assert cat.session.get(Artist, artist.id) is None


# --- audit log -----------------------------------------------------------------------------
def test_every_write_is_audited_with_actor_and_before_after(cat: Catalog) -> None:
    cat.session.info.update(actor="key:tm_ab12cd34", api_key_id=42)
    artist = cat.artist("Audited", country="GB")
    service.update(cat.session, cat.org_id, "artists", artist.id, {"country": "IE"})
    service.update(cat.session, cat.org_id, "artists", artist.id, {"country": "IE"})  # no change
    service.delete(cat.session, cat.org_id, "artists", artist.id)

    rows = audit_rows(cat.session, "artists")
    assert [r.action for r in rows] == ["create", "update", "delete"]
    assert {(r.actor, r.api_key_id, r.org_id, r.entity_id) for r in rows} == {
        ("key:tm_ab12cd34", 42, cat.org_id, artist.id)
    }
    create, update, delete = rows
    assert create.before is None
    assert create.after is not None
    assert (create.after["name"], create.after["country"]) == ("Audited", "GB")
    assert update.before is not None
    assert update.after is not None
    assert (update.before["country"], update.after["country"]) == ("GB", "IE")
    assert {k for k in update.after if update.after[k] != update.before[k]} == {"country"}
    assert delete.before is not None
    assert (delete.before["country"], delete.after) == ("IE", None)


def test_audit_keeps_decimals_exact_and_names_the_session_actor(cat: Catalog) -> None:
    payee = cat.payee("Taxed", withholding_rate="0.1234567891")
    (row,) = audit_rows(cat.session, "payees")
    assert row.actor == "test"  # from the session fixture's info["actor"]
    assert row.after is not None
    assert row.after["withholding_rate"] == "0.1234567891"
    assert row.entity_id == payee.id


def test_api_key_hashes_never_reach_the_audit_log(cat: Catalog) -> None:
    key, plain = issue_key(
        cat.session, org_id=cat.org_id, role=Role.FINANCE, secret_key="s" * 32, label="ops"
    )
    revoke_key(cat.session, key)
    cat.session.flush()
    rows = audit_rows(cat.session, "api_keys")
    assert [r.action for r in rows] == ["create", "update"]
    assert rows[0].after is not None
    assert rows[0].after["label"] == "ops"
    for r in rows:
        for snapshot in (r.before, r.after):
            assert snapshot is None or "key_hash" not in snapshot
    everything = json.dumps(
        [[r.before, r.after] for r in cat.session.scalars(sa.select(AuditEntry))]
    )
    assert key.key_hash not in everything
    assert plain not in everything
    assert cat.session.get(ApiKey, key.id).key_hash == key.key_hash


def test_check_key_answers_as_verify_key_and_refuses_a_revoked_key_at_once(
    cat: Catalog,
) -> None:
    secret = "s" * 32
    key, plain = issue_key(cat.session, org_id=cat.org_id, role=Role.FINANCE, secret_key=secret)
    cat.session.flush()
    row = check_key(cat.session, plain, secret_key=secret)
    assert row is not None
    assert (row.id, row.org_id, row.prefix, row.role, row.payee_id) == (
        key.id,
        cat.org_id,
        key.prefix,
        Role.FINANCE,
        None,
    )
    assert verify_key(cat.session, plain, secret_key=secret) is key
    for wrong in (plain + "x", plain.replace("tm_", "tk_", 1), f"tm_{key.prefix}", ""):
        assert check_key(cat.session, wrong, secret_key=secret) is None, wrong
    assert check_key(cat.session, plain, secret_key="t" * 32) is None
    revoke_key(cat.session, key)
    cat.session.flush()
    assert check_key(cat.session, plain, secret_key=secret) is None
    assert verify_key(cat.session, plain, secret_key=secret) is None


def test_a_change_to_a_value_never_loaded_is_audited_with_its_old_value(cat: Catalog) -> None:
    # A column left unset at insert, or an expired object, has no in-memory old value.
    key, _ = issue_key(cat.session, org_id=cat.org_id, role=Role.ADMIN, secret_key="s" * 32)
    revoke_key(cat.session, key)
    artist = cat.artist("Before", country="GB")
    cat.session.commit()
    cat.session.expire(artist)
    artist.name = "After"
    cat.session.flush()

    (revoked,) = [r for r in audit_rows(cat.session, "api_keys") if r.action == "update"]
    assert revoked.before is not None
    assert revoked.after is not None
    assert (revoked.before["revoked_at"], revoked.after["revoked_at"] is not None) == (None, True)
    assert "key_hash" not in revoked.before
    (renamed,) = [r for r in audit_rows(cat.session, "artists") if r.action == "update"]
    assert renamed.before is not None
    assert renamed.after is not None
    assert (renamed.before["name"], renamed.after["name"]) == ("Before", "After")
    assert renamed.before["country"] == renamed.after["country"] == "GB"


def test_failed_writes_leave_no_rows_and_no_audit(cat: Catalog, track: Track) -> None:
    party = cat.party("P")
    cat.split(party, "0.9", track=track)
    release = cat.session.get(Release, track.release_id)
    assert release is not None
    before = counts(cat)
    duplicate_upc = {
        "upc": release.upc,
        "title": "Again",
        "release_type": "Album",
        "label_name": "L",
        "artist_id": release.artist_id,
        "original_release_date": "2024-01-01",
    }
    failures = [
        lambda: cat.split(party, "0.05", track=track, start="2023-01-01"),  # overlapping range
        lambda: cat.split(cat.party("Q"), "0.2", track=track),  # over 100% (Q itself stays)
        lambda: cat.track(release, 2, isrc=track.isrc),  # duplicate ISRC
        lambda: cat.create("releases", duplicate_upc),
        lambda: cat.contract(party[0], "X", rates=[{"rate": "2", "effective_from": "2024-01-01"}]),
        lambda: cat.contract(
            party[0],
            "Y",
            rates=[
                {"rate": "0.1", "effective_from": "2024-01-01"},
                {"rate": "0.2", "effective_from": "2024-01-01"},
            ],
        ),
    ]
    for attempt in failures:
        with pytest.raises(ValidationFailed):
            attempt()
    after = counts(cat)
    # Only the payee and contract of party "Q", which the helper wrote before its split failed
    # (each with its audit row), are new.
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {
        "payees": 1,
        "contracts": 1,
        "audit_log": 2,
    }


def test_nothing_cascades_silently(cat: Catalog) -> None:
    """A release with tracks, or a track with splits, cannot be deleted; a track's own
    contributors and a contract's own rates and charges go with it, each in the audit log."""
    release = cat.release(1)
    track = cat.track(
        release, 1, contributors=[{"artist_id": release.artist_id, "role": "MainArtist"}]
    )
    party = cat.party("P")
    split = cat.split(party, "0.5", track=track)
    with pytest.raises(Conflict):
        service.delete(cat.session, cat.org_id, "releases", release.id)
    with pytest.raises(Conflict):
        service.delete(cat.session, cat.org_id, "tracks", track.id)
    assert cat.count(Track) == 1
    service.delete(cat.session, cat.org_id, "splits", split.id)
    service.delete(cat.session, cat.org_id, "tracks", track.id)
    assert cat.count(Contributor) == 0
    _, contract = party
    cat.rate(contract, {"rate": "0.2", "effective_from": "2024-01-01", "usage_type": "sync"})
    service.add_charge(
        cat.session,
        cat.org_id,
        contract.id,
        {"kind": "advance", "amount": "10.00", "currency": "EUR", "incurred_on": "2024-01-01"},
    )
    service.delete(cat.session, cat.org_id, "contracts", contract.id)
    assert cat.count(ContractRate) == cat.count(ContractCharge) == 0
    deleted = {
        (e.entity, e.action)
        for e in cat.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "delete"))
    }
    assert {
        ("contributors", "delete"),
        ("contract_rates", "delete"),
        ("contract_charges", "delete"),
        ("tracks", "delete"),
        ("splits", "delete"),
    } <= deleted


def test_empty_split_patch_changes_nothing_and_null_reopens(cat: Catalog) -> None:
    release = cat.release(1)
    track = cat.track(release, 1)
    split = cat.split(cat.party("P"), "0.5", track=track, end="2024-12-31")
    service.update(cat.session, cat.org_id, "splits", split.id, {})
    assert split.effective_to == d("2024-12-31")
    service.update(cat.session, cat.org_id, "splits", split.id, {"effective_to": None})
    assert split.effective_to is None


def test_artist_names_are_unique_case_insensitively(cat: Catalog) -> None:
    cat.artist("Nova")
    with pytest.raises(ValidationFailed) as err:
        cat.artist("NOVA")
    assert err.value.errors[0].code == "duplicate"
