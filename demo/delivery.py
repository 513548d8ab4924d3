"""The sample label's DSP delivery: every release to a local folder per DSP profile, ACKs
written as each DSP would and read back; one release fails QC on purpose."""

from __future__ import annotations

import datetime as dt
import shutil

import sqlalchemy as sa

from connectors.ddex.ack import ACK_FOLDER, ack_xml
from connectors.ddex.model import (
    Party,
)
from connectors.ddex.profiles import DspProfile, load_profiles
from connectors.drops import Drop, LocalDrop
from demo.assets import release_assets, write_audio, write_cover
from pipelines.delivery.acks import poll_acks
from pipelines.delivery.service import Row, deliver, report
from pipelines.delivery.state import S
from pipelines.resources import Resources
from schemas.store import db
from schemas.store.deliveries import (
    DdexSender,
)
from schemas.store.models import Organisation, Release, Track

DEMO_SENDER = Party("PADPIDA2026NBREC0B", "Northbound Records")
DEMO_BROKEN = "Tideline"  # its cover art is 1400×1400 and its audio 22.05 kHz: QC stops it
DEMO_DELIVERY_TIME = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)


def deliver_demo_releases(res: Resources, org_id: int, *, seed: int) -> None:
    """Deliver the label's releases to a local folder per DSP profile and print the status
    per release and DSP (one release fails QC on purpose)."""
    print_delivery(deliver_demo(res, org_id, now=DEMO_DELIVERY_TIME, seed=seed))


def deliver_demo(
    res: Resources,
    org_id: int,
    *,
    now: dt.datetime,
    seed: int = 2026,
) -> list[Row]:
    """The sample label's releases to every DSP profile, each into a local folder
    ``<data dir>/dsp/<name>`` (standing in for its SFTP server or bucket), then ACKs written
    as each DSP would, and read back. One release fails QC on purpose."""
    profiles = load_profiles()
    layout = res.data
    assets = layout.assets(org_id)
    with db.transaction(res.factory, actor="demo") as session:
        # the assets and staged packages of purged organisations (earlier demo runs) go
        live = {f"org={i}" for i in session.scalars(sa.select(Organisation.id))}
        for root in (layout.assets(), layout.deliveries()):
            for folder in root.glob("org=*") if root.is_dir() else ():
                if folder.name not in live:
                    shutil.rmtree(folder, ignore_errors=True)
        session.add(DdexSender(org_id=org_id, dpid=DEMO_SENDER.dpid, name=DEMO_SENDER.name))
        for n, release in enumerate(
            session.scalars(sa.select(Release).where(Release.org_id == org_id))
        ):
            isrcs = list(
                session.scalars(sa.select(Track.isrc).where(Track.release_id == release.id))
            )
            if release.title == DEMO_BROKEN:
                folder = assets / release.upc
                write_cover(folder / "cover.jpg", seed=n, size=1400)
                for isrc in isrcs:
                    write_audio(folder / f"{isrc}.flac", rate=22_050)
            else:
                release_assets(assets, release.upc, isrcs, seed=seed + n)
    for name in profiles:
        shutil.rmtree(layout.dsp(name), ignore_errors=True)
    shutil.rmtree(layout.deliveries(org_id), ignore_errors=True)

    def local(profile: DspProfile) -> Drop:
        folder = layout.dsp(profile.name)
        folder.mkdir(parents=True, exist_ok=True)
        return LocalDrop(folder)

    rows = deliver(res, org_id, now=now, as_of=now.date(), profiles=profiles, opener=local)
    for row in rows:  # each DSP ingests what arrived
        if row.state == S.UPLOADED.value and row.message_path:
            drop = local(profiles[row.dsp])
            drop.put(
                f"{ACK_FOLDER}/ACK_{row.upc}.xml",
                ack_xml(row.message_path, "FileOK", ack_id=f"ACK-{row.dsp}-{row.upc}"),
            )
    later = now + dt.timedelta(minutes=5)
    for profile in profiles.values():
        poll_acks(res.factory, org_id, profile, opener=local, now=later)
    return report(res.factory, org_id, [r.delivery_id for r in rows])


def print_delivery(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    dsps = sorted({r.dsp for r in rows})
    table = Table(title="DSP delivery (DDEX ERN 4.3, local DSP folders under var/dsp/)")
    table.add_column("release")
    for dsp in dsps:
        table.add_column(dsp)
    table.add_column("why not delivered")
    by_release: dict[str, dict[str, Row]] = {}
    for r in rows:
        by_release.setdefault(f"{r.upc} {r.title}", {})[r.dsp] = r
    for name, cells in sorted(by_release.items()):
        reasons = sorted({x["code"] for r in cells.values() for x in r.reasons})
        table.add_row(
            name,
            *(cells[d].state if d in cells else "-" for d in dsps),
            ", ".join(reasons),
        )
    Console(width=150).print(table)
