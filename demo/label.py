"""The sample label ``demo``: a plausible catalogue, payees, contracts and splits from a seed.

Everything is written through ``schemas.store.service`` (the API's own rules and audit log),
so the demo also proves the write path. Rerunning replaces the ``demo`` organisation whole.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from pipelines.layout import DataDir
from royalty_engine.splits import split_sheet
from schemas import identifiers
from schemas.identifiers import gtin_check_digit
from schemas.store import db, service
from schemas.store.keys import issue_key
from schemas.store.models import (
    Artist,
    AuditEntry,
    Base,
    Contract,
    ContractCharge,
    ContractRate,
    Contributor,
    Organisation,
    Payee,
    Release,
    Role,
    Split,
    Track,
)
from schemas.store.orgs import UnknownOrganisation
from schemas.store.orgs import org_id as org_id_of

SLUG = "demo"
# What the demo summary counts (and the store tests check for partial writes).
CATALOGUE_MODELS: tuple[type[Base], ...] = (
    Artist,
    Release,
    Track,
    Contributor,
    Payee,
    Contract,
    ContractRate,
    ContractCharge,
    Split,
)
D = Decimal

ARTISTS = [  # name, kind, country
    ("Mara Ellison", "person", "GB"),
    ("The Lantern Assembly", "group", "IE"),
    ("Kofi Mensah", "person", "GH"),
    ("Velvet Static", "group", "US"),
    ("Inês Duarte", "person", "PT"),
    ("Northern Quay", "group", "GB"),
    ("Sam Okafor", "person", "GB"),
    ("Lena Brandt", "person", "DE"),
    ("Theo Marsh", "person", "GB"),
    ("Aoife Byrne", "person", "IE"),
    ("Cian Walsh", "person", "IE"),
]

RELEASES = [  # artist, title, type, tracks, release date, genre
    ("Mara Ellison", "Harbour Lights", "Album", 11, "2023-04-14", "Singer/Songwriter"),
    ("Mara Ellison", "Paper Boats", "Single", 1, "2024-09-06", "Singer/Songwriter"),
    ("The Lantern Assembly", "Small Hours", "EP", 5, "2023-02-03", "Indie Folk"),
    ("The Lantern Assembly", "Weathervane", "Album", 10, "2024-10-18", "Indie Folk"),
    ("Kofi Mensah", "Golden Hour", "Single", 2, "2024-03-22", "Afrobeats"),
    ("Velvet Static", "Signal / Noise", "Album", 9, "2023-11-10", "Alternative"),
    ("Inês Duarte", "Maré", "EP", 4, "2024-06-14", "Fado"),
    ("Northern Quay", "Tideline", "Single", 1, "2024-01-26", "Electronic"),
    ("Northern Quay", "Low Water", "EP", 4, "2025-05-09", "Electronic"),
]

WORDS_A = [
    "Quiet",
    "Silver",
    "Northern",
    "Paper",
    "Salt",
    "Distant",
    "Amber",
    "Hollow",
    "Restless",
    "Borrowed",
    "Midnight",
    "Open",
    "Broken",
    "Velvet",
    "Slow",
    "Bright",
]
WORDS_B = [
    "Harbour",
    "Lights",
    "Water",
    "Signal",
    "Horizon",
    "Rooms",
    "Weather",
    "Streets",
    "Letters",
    "Tides",
    "Echoes",
    "Gardens",
    "Lines",
    "Fires",
    "Bridges",
    "Mornings",
]


@dataclass
class DemoSummary:
    org_id: int
    counts: dict[str, int]
    invalid_identifiers: int
    fully_split_tracks: int
    tracks_with_label_remainder: int
    admin_key: str


def _upc(seq: int) -> str:
    body = f"506345{seq:06d}"  # a GS1 UK-style company prefix + item reference
    return body + gtin_check_digit(body)


def _isrc(year: int, seq: int) -> str:
    return f"GBNBR{year % 100:02d}{seq:05d}"


def purge_org(session: Session, slug: str) -> None:
    """Remove one organisation and everything it owns (children first), recorded in the log."""
    try:
        org_id = org_id_of(session, slug)
    except UnknownOrganisation:
        return
    tables = [
        t
        for t in reversed(Base.metadata.sorted_tables)
        if "org_id" in t.c and t.name != "audit_log"
    ]
    for table in tables:
        # rows pointing at rows of their own table (a run at the run it opens from, at the
        # version it corrects) through a RESTRICT key would stop the delete: unlink them first
        own = {
            fk.parent.name
            for fk in table.foreign_keys
            if fk.column.table is table and fk.parent.nullable
        }
        if own:
            session.execute(
                sa.update(table).where(table.c.org_id == org_id).values(dict.fromkeys(own))
            )
    for table in tables:
        session.execute(sa.delete(table).where(table.c.org_id == org_id))
    session.execute(sa.delete(Organisation).where(Organisation.id == org_id))
    session.add(
        AuditEntry(
            org_id=org_id,
            actor=session.info.get("actor", "system"),
            entity="organisations",
            entity_id=org_id,
            action="purge",
            before={"slug": slug},
            after=None,
        )
    )


def _contract(
    s: Session,
    org: int,
    payee: Any,
    ref: str,
    basis: str,
    currency: str,
    start: str,
    rates: list[dict[str, Any]],
    **terms: Any,
) -> Any:
    return service.create(
        s,
        org,
        "contracts",
        {
            "payee_id": payee.id,
            "reference": ref,
            "name": f"{payee.name} – {ref}",
            "basis": basis,
            "currency": currency,
            "start_date": start,
            "rates": [{"effective_from": start, **r} for r in rates],
            **terms,
        },
    )


def build(session: Session, org_id: int, rng: random.Random) -> None:
    """Write the sample catalogue, payees, contracts and splits into one organisation."""
    artists = {
        name: service.create(
            session, org_id, "artists", {"name": name, "kind": kind, "country": country}
        )
        for name, kind, country in ARTISTS
    }
    tracks_by_release: dict[str, list[Any]] = {}
    releases: dict[str, Any] = {}
    isrc_seq = 0
    for n, (artist, title, rtype, count, date, genre) in enumerate(RELEASES, start=1):
        year = int(date[:4])
        release = service.create(
            session,
            org_id,
            "releases",
            {
                "upc": _upc(n * 17),
                "title": title,
                "release_type": rtype,
                "label_name": "Northbound Records",
                "artist_id": artists[artist].id,
                "original_release_date": date,
                "genre": genre,
                "p_line": f"{year} Northbound Records",
                "c_line": f"{year} Northbound Records",
            },
        )
        releases[title] = release
        tracks_by_release[title] = []
        titles = (
            [title]
            if count == 1
            else [title]
            + [f"{rng.choice(WORDS_A)} {rng.choice(WORDS_B)}" for _ in range(count - 1)]
        )
        for pos, track_title in enumerate(titles, start=1):
            isrc_seq += 1
            version = "Instrumental" if (rtype == "Single" and pos == 2) else None
            contributors = [
                {"artist_id": artists[artist].id, "role": "MainArtist"},
                {"artist_id": artists["Theo Marsh"].id, "role": "MixingEngineer"},
            ]
            if artist in ("Mara Ellison", "Northern Quay"):
                contributors.append({"artist_id": artists["Sam Okafor"].id, "role": "Producer"})
            if artist == "Velvet Static":
                contributors.append({"artist_id": artists["Lena Brandt"].id, "role": "Producer"})
            if artist == "The Lantern Assembly":
                contributors += [
                    {"artist_id": artists["Aoife Byrne"].id, "role": "Composer"},
                    {"artist_id": artists["Cian Walsh"].id, "role": "Lyricist"},
                ]
            tracks_by_release[title].append(
                service.create(
                    session,
                    org_id,
                    "tracks",
                    {
                        "release_id": release.id,
                        "isrc": _isrc(year, isrc_seq),
                        "title": track_title if version is None else title,
                        "version": version,
                        "artist_id": artists[artist].id,
                        "duration_seconds": rng.randint(150, 320),
                        "explicit": rng.random() < 0.15,
                        "track_number": pos,
                        "contributors": contributors,
                    },
                )
            )

    def payee(name: str, currency: str, country: str, **extra: Any) -> Any:
        return service.create(
            session,
            org_id,
            "payees",
            {
                "name": name,
                "statement_currency": currency,
                "country": country,
                "artist_id": artists[name].id if name in artists else None,
                "email": f"{name.lower().replace(' ', '.').replace('ê', 'e')}@example.org",
                **extra,
            },
        )

    mara = payee(
        "Mara Ellison",
        "GBP",
        "GB",
        vat_number="GB980780684",
        self_billing_consent=True,
        self_billing_expires="2027-12-31",
        vat_rate="0.20",
        address="14 Harbour Row, Bristol BS1 4QA, United Kingdom",
    )
    aoife = payee("Aoife Byrne", "EUR", "IE")
    cian = payee("Cian Walsh", "EUR", "IE")
    kofi = payee("Kofi Mensah", "GBP", "GH", withholding_rate="0.15")
    velvet = payee("Velvet Static", "USD", "US")
    ines = payee("Inês Duarte", "EUR", "PT", withholding_rate="0.25")
    quay = payee(
        "Northern Quay",
        "GBP",
        "GB",
        vat_number="GB823456824",
        self_billing_consent=True,
        self_billing_expires="2027-06-30",
        vat_rate="0.20",
        address="Unit 4, Mill Yard, Manchester M4 5JD, United Kingdom",
    )
    sam = payee("Sam Okafor", "GBP", "GB")
    lena = payee("Lena Brandt", "EUR", "DE", vat_number="DE136695976")

    std = {"reserve_rate": "0.10", "reserve_periods": 2, "minimum_payment": "50.00"}
    c_mara = _contract(
        session,
        org_id,
        mara,
        "NB-001",
        "net_receipts",
        "GBP",
        "2023-01-01",
        [
            {
                "usage_type": "stream",
                "rate": "0.20",
                "tiers": [{"from_units": 500_000, "rate": "0.22"}],
            },
            {"usage_type": "download", "rate": "0.18"},
            {"usage_type": "*", "rate": "0.15"},
        ],
        cross_collateral_group="MARA-ELLISON",
        statement_frequency="half_yearly",
        **std,
        charges=[
            {
                "kind": "advance",
                "amount": "15000.00",
                "currency": "GBP",
                "incurred_on": "2023-03-01",
                "description": "Signing advance",
            },
            {
                "kind": "recoupable_cost",
                "amount": "4500.00",
                "currency": "GBP",
                "incurred_on": "2024-05-10",
                "description": "Music video: Paper Boats",
            },
        ],
    )
    # Renegotiated streaming rate from 2025: a new row; the 2023 row is closed, not rewritten.
    service.add_rate(
        session,
        org_id,
        c_mara.id,
        {
            "usage_type": "stream",
            "rate": "0.22",
            "effective_from": "2025-01-01",
            "tiers": [{"from_units": 1_000_000, "rate": "0.24"}],
        },
    )
    c_mara_single = _contract(
        session,
        org_id,
        mara,
        "NB-002",
        "gross_receipts",
        "GBP",
        "2024-06-01",
        [{"rate": "0.15"}],
        cross_collateral_group="MARA-ELLISON",
        minimum_payment="50.00",
    )
    c_band = [
        _contract(
            session,
            org_id,
            p,
            ref,
            "net_receipts",
            "EUR",
            "2022-11-01",
            [{"rate": "0.18"}],
            **std,
            charges=[
                {
                    "kind": "advance",
                    "amount": "2500.00",
                    "currency": "EUR",
                    "incurred_on": "2022-11-15",
                }
            ],
        )
        for p, ref in ((aoife, "NB-003"), (cian, "NB-004"))
    ]
    c_kofi = _contract(
        session,
        org_id,
        kofi,
        "NB-005",
        "net_receipts",
        "GBP",
        "2024-01-01",
        [{"rate": "0.70"}],
        distribution_fee="0.15",
        minimum_payment="25.00",
        statement_frequency="quarterly",
    )
    c_velvet = _contract(
        session,
        org_id,
        velvet,
        "NB-006",
        "gross_receipts",
        "USD",
        "2023-06-01",
        [{"rate": "0.16"}],
        **std,
        charges=[
            {
                "kind": "advance",
                "amount": "10000.00",
                "currency": "USD",
                "incurred_on": "2023-06-15",
            }
        ],
    )
    c_velvet_jp = _contract(
        session,
        org_id,
        velvet,
        "NB-007",
        "per_unit",
        "USD",
        "2023-06-01",
        [
            {"territories": "JP", "usage_type": "download", "rate": "0.0900"},
            {"territories": "JP", "rate": "0.0004"},
        ],
        minimum_payment="50.00",
    )
    c_ines = _contract(
        session,
        org_id,
        ines,
        "NB-008",
        "net_receipts",
        "EUR",
        "2024-05-01",
        [{"rate": "0.25"}],
        statement_frequency="monthly",
        minimum_payment="20.00",
    )
    c_quay = _contract(
        session,
        org_id,
        quay,
        "NB-009",
        "net_receipts",
        "GBP",
        "2024-01-01",
        [
            {"usage_type": "stream", "rate": "0.20"},
            {"usage_type": "download", "rate": "0.25"},
            {"usage_type": "*", "rate": "0.20"},
        ],
        statement_frequency="quarterly",
        minimum_payment="50.00",
    )
    c_sam = _contract(
        session,
        org_id,
        sam,
        "NB-010",
        "net_receipts",
        "GBP",
        "2023-01-01",
        [{"rate": "0.30"}],
        minimum_payment="25.00",
    )
    c_lena = _contract(
        session,
        org_id,
        lena,
        "NB-011",
        "net_receipts",
        "EUR",
        "2023-06-01",
        [{"rate": "0.30"}],
        minimum_payment="25.00",
    )

    def split(
        target: dict[str, int],
        who: Any,
        contract: Any,
        share: str,
        start: str,
        territories: str = "WW",
    ) -> None:
        service.create(
            session,
            org_id,
            "splits",
            {
                **target,
                "payee_id": who.id,
                "contract_id": contract.id,
                "share": share,
                "territories": territories,
                "effective_from": start,
            },
        )

    def released(title: str) -> str:
        return releases[title].original_release_date.isoformat()

    for title, contract in (("Harbour Lights", c_mara), ("Paper Boats", c_mara_single)):
        for t in tracks_by_release[title]:
            produced = rng.random() < 0.6
            split({"track_id": t.id}, mara, contract, "0.90" if produced else "1", released(title))
            if produced:
                split({"track_id": t.id}, sam, c_sam, "0.10", released(title))
    for title in ("Small Hours", "Weathervane"):
        for p, contract in zip((aoife, cian), c_band, strict=True):
            split({"release_id": releases[title].id}, p, contract, "0.5", released(title))
    split({"release_id": releases["Golden Hour"].id}, kofi, c_kofi, "1", released("Golden Hour"))
    for t in tracks_by_release["Signal / Noise"]:
        split({"track_id": t.id}, velvet, c_velvet, "0.90", released("Signal / Noise"), "WW,-JP")
        split({"track_id": t.id}, velvet, c_velvet_jp, "1", released("Signal / Noise"), "JP")
        split({"track_id": t.id}, lena, c_lena, "0.10", released("Signal / Noise"), "WW,-JP")
    split({"release_id": releases["Maré"].id}, ines, c_ines, "1", released("Maré"))
    tideline = tracks_by_release["Tideline"][0]
    split({"track_id": tideline.id}, quay, c_quay, "1", released("Tideline"))
    # From July 2025 Kofi Mensah's remix feature takes 15%: the band's split is superseded.
    split({"track_id": tideline.id}, quay, c_quay, "0.85", "2025-07-01")
    split({"track_id": tideline.id}, kofi, c_kofi, "0.15", "2025-07-01")
    for t in tracks_by_release["Low Water"]:
        split({"track_id": t.id}, quay, c_quay, "0.80", released("Low Water"))


def run_demo(
    factory: sessionmaker[Session], *, seed: int, secret_key: str, data_dir: Path | None = None
) -> DemoSummary:
    rng = random.Random(seed)
    with db.transaction(factory, actor="demo") as session:
        try:
            old: int | None = org_id_of(session, SLUG)
        except UnknownOrganisation:
            old = None
        purge_org(session, SLUG)
        org = Organisation(
            slug=SLUG,
            name="Northbound Records",
            default_currency="GBP",
            legal_name="Northbound Records Ltd",
            address="2 Quayside Studios, Leeds LS1 4DL, United Kingdom",
            vat_number="GB434031494",
        )
        session.add(org)
        session.flush()
        build(session, org.id, rng)
        _, admin_key = issue_key(
            session, org_id=org.id, role=Role.ADMIN, secret_key=secret_key, label="demo admin"
        )
        summary = summarise(session, org.id, admin_key)
    # the old label's files go once the store no longer has it (a failed rebuild keeps both)
    if old is not None and data_dir is not None:
        forget_files(data_dir, old)
        # the label's local outbound folder (statements published by the last demo)
        shutil.rmtree(DataDir(data_dir).outbound(SLUG), ignore_errors=True)
    return summary


def summarise(session: Session, org_id: int, admin_key: str = "") -> DemoSummary:
    def count(model: Any) -> int:
        return (
            session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.org_id == org_id)
            )
            or 0
        )

    counts = {m.__tablename__: count(m) for m in CATALOGUE_MODELS}
    isrcs = session.scalars(sa.select(Track.isrc).where(Track.org_id == org_id)).all()
    upcs = session.scalars(sa.select(Release.upc).where(Release.org_id == org_id)).all()
    invalid = sum(not identifiers.is_valid_isrc(i) for i in isrcs) + sum(
        not identifiers.is_valid_gtin(u) for u in upcs
    )
    full = remainder = 0
    today = dt.date(2025, 12, 31)
    for track_id in session.scalars(sa.select(Track.id).where(Track.org_id == org_id)):
        candidates = service.split_candidates(session, org_id, track_id, today)
        _, rest = split_sheet(*candidates, as_of=today, territory="GB")
        full += rest == 0
        remainder += rest > 0
    return DemoSummary(org_id, counts, invalid, full, remainder, admin_key)


def print_summary(summary: DemoSummary) -> None:
    console = Console(width=150)
    table = Table(title="Sample label 'demo' (Northbound Records)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, n in summary.counts.items():
        table.add_row(name.replace("_", " "), str(n))
    table.add_row("invalid ISRC/UPC", str(summary.invalid_identifiers))
    table.add_row("tracks fully split (GB, 2025-12-31)", str(summary.fully_split_tracks))
    table.add_row("tracks with a label remainder", str(summary.tracks_with_label_remainder))
    console.print(table)
    console.print(f"Admin API key for org 'demo' (shown once): [bold]{summary.admin_key}[/bold]")
    console.print("Serve the API: make api  ->  http://127.0.0.1:8000/docs")


DEMO_RATES = (  # illustrative monthly averages for the demo period, GBP per unit
    "base,quote,period,rate,source\n"
    "EUR,GBP,2026-01,0.8412,demo: illustrative monthly average\n"
    "USD,GBP,2026-01,0.7893,demo: illustrative monthly average\n"
)


def forget_files(data_dir: Path, org_id: int) -> None:
    """Remove the local files of a purged organisation (``DataDir.org_files``: its lake, raw,
    reports, state, runs, audit ledger, statements)."""
    for folder in DataDir(data_dir).org_files(org_id):
        shutil.rmtree(folder, ignore_errors=True)


def ingest_demo_reports(
    factory: sessionmaker[Session], data_dir: Path, org_id: int, *, seed: int
) -> list[Any]:
    """Configure the demo's FX rates and local drop, write its reports, ingest them."""
    from demo.reports import catalogue, write_reports
    from pipelines.ingest.drops import ingest_sources
    from pipelines.ingest.suspense import rebuild_suspense
    from pipelines.resources import Resources
    from schemas.store.fx import import_rates
    from schemas.store.models import Drop

    res = Resources.of(factory, data_dir)
    drop = res.data.local_drop(SLUG)
    shutil.rmtree(drop, ignore_errors=True)
    with db.transaction(factory, actor="demo") as session:
        import_rates(session, org_id, DEMO_RATES.encode())
        session.add(Drop(org_id=org_id, name="local", url=str(drop.resolve())))
        write_reports(drop, catalogue(session, org_id), seed=seed)
    outcomes = list(ingest_sources(res, org_id=org_id, sources=[str(drop)]))
    with db.transaction(factory, actor="demo") as session:
        rebuild_suspense(session, res.data, org_id)
    return outcomes


def print_ingest(outcomes: list[Any]) -> None:
    table = Table(title="Reports ingested for 2026-01")
    for col in (
        "file",
        "format",
        "status",
        "lines",
        "accepted",
        "rejected",
        "matched",
        "suspense",
        "why",
    ):
        table.add_column(
            col,
            justify="right"
            if col in {"lines", "accepted", "rejected", "matched", "suspense"}
            else "left",
        )
    for o in outcomes:
        why = ""
        if o.quarantine:
            why = f"{o.quarantine['code']}: {o.quarantine['message'][:60]}"
        elif o.rejected:
            codes = sorted({e["code"] for e in o.errors if e.get("severity") == "error"})
            why = "rejected lines: " + ", ".join(codes)
        table.add_row(
            o.name,
            o.format or "-",
            o.status,
            str(o.lines),
            str(o.accepted),
            str(o.rejected),
            str(o.matched),
            str(o.suspense),
            why,
        )
    Console(width=150).print(table)
