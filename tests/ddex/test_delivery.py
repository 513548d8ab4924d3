"""The delivery use case on the store (SQLite and PostgreSQL) with a real local DSP drop:
state machine, idempotent reruns, QC failures with reasons, retries, ACKs, takedowns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree

from connectors.ddex.ack import ack_xml
from connectors.ddex.profiles import DspProfile
from connectors.ddex.validate import validate_message
from connectors.drops import Drop
from demo.assets import write_audio, write_cover
from pipelines.delivery import acks, service, state
from pipelines.delivery.deals import resolve_deals
from schemas.store import db
from schemas.store.deliveries import (
    BatchState,
    Delivery,
    DeliveryBatch,
    DeliveryEvent,
    DeliveryState,
    ReleaseDeal,
)
from tests.conftest import make_org
from tests.ddex.conftest import ALBUM_UPC, NOW, SINGLE_UPC, Label, make_label, profile_yaml


@pytest.fixture
def harbour(profiles_dir: Path) -> DspProfile:
    return profile_yaml(profiles_dir, "harbour")


def run(label: Label, profile: DspProfile, now: dt.datetime = NOW, **kw: Any) -> list[service.Row]:
    return service.deliver(
        label.res,
        label.org_id,
        now=now,
        profiles={profile.name: profile},
        opener=kw.pop("opener", label.opener),
        **kw,
    )


def deliveries(label: Label) -> list[Delivery]:
    with label.factory() as s:
        return list(
            s.scalars(
                sa.select(Delivery).where(Delivery.org_id == label.org_id).order_by(Delivery.id)
            )
        )


def utc(moment: dt.datetime | None) -> dt.datetime:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones."""
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def history(label: Label, delivery_id: int) -> list[str]:
    with label.factory() as s:
        return list(
            s.scalars(
                sa.select(DeliveryEvent.to_state)
                .where(DeliveryEvent.delivery_id == delivery_id)
                .order_by(DeliveryEvent.id)
            )
        )


def test_deliver_uploads_a_valid_batch_and_reruns_add_nothing(
    label: Label, harbour: DspProfile
) -> None:
    rows = run(label, harbour)
    assert [(r.upc, r.state) for r in rows] == [(ALBUM_UPC, "uploaded"), (SINGLE_UPC, "uploaded")]
    root = label.dsp_folder("harbour")
    (batch,) = [p for p in root.iterdir() if p.is_dir()]
    assert sorted(p.name for p in batch.iterdir()) == [
        ALBUM_UPC,
        SINGLE_UPC,
        f"BatchComplete_{batch.name}.xml",
    ]
    for row in rows:
        xml = (root / (row.message_path or "")).read_bytes()
        assert validate_message(xml) == []
        msg = etree.fromstring(xml)
        for uri, md5 in zip(
            msg.iter("URI"), msg.iter("HashSumValue"), strict=True
        ):  # every file referenced is in the package, with the MD5 stated
            from connectors.ddex.qc import file_md5

            assert file_md5(root / batch.name / row.upc / uri.text)[0] == md5.text
    single = etree.fromstring((root / (rows[1].message_path or "")).read_bytes())
    assert [e.text for e in single.iter("ExcludedTerritoryCode")] == ["US"]  # release's WW,-US
    assert history(label, rows[0].delivery_id) == ["queued", "packaged", "uploading", "uploaded"]

    again = run(label, harbour, now=NOW + dt.timedelta(hours=1))
    assert [(r.delivery_id, r.state) for r in again] == [(r.delivery_id, r.state) for r in rows]
    assert len([p for p in root.iterdir() if p.is_dir()]) == 1  # no second batch
    with label.factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(DeliveryBatch)) == 1


def test_only_due_releases_go(label: Label, harbour: DspProfile) -> None:
    # the single comes out 2026-03-06; with a 7-day lead time it is due from 2026-02-27
    rows = run(label, harbour, as_of=dt.date(2026, 2, 20))
    assert [r.upc for r in rows] == [ALBUM_UPC]


def test_qc_failure_blocks_one_release_with_every_reason(label: Label, harbour: DspProfile) -> None:
    folder = label.assets / SINGLE_UPC
    write_cover(folder / "cover.jpg", seed=1, size=(2000, 1000))
    (isrc,) = [p.stem for p in folder.glob("*.flac")]
    write_audio(folder / f"{isrc}.flac", rate=22_050, seconds=12)
    rows = {r.upc: r for r in run(label, harbour)}
    assert rows[ALBUM_UPC].state == "uploaded"
    bad = rows[SINGLE_UPC]
    assert bad.state == "qc_failed"
    assert {(r["code"], r["field"]) for r in bad.reasons} == {
        ("artwork_not_square", "front_cover"),
        ("artwork_too_small", "front_cover"),
        ("audio_sample_rate", "tracks[1].audio"),
        ("audio_too_short", "tracks[1].audio"),
    }
    assert {(r["release"], r["dsp"]) for r in bad.reasons} == {(SINGLE_UPC, "harbour")}
    # fixing the assets is a new version: a new delivery, delivered
    write_cover(folder / "cover.jpg", seed=1)
    write_audio(folder / f"{isrc}.flac")
    fixed = {r.upc: r for r in run(label, harbour, now=NOW + dt.timedelta(hours=1))}
    assert fixed[SINGLE_UPC].state == "uploaded"
    assert fixed[SINGLE_UPC].delivery_id != bad.delivery_id


def test_missing_assets_and_no_deals(label: Label, profiles_dir: Path) -> None:
    nodeals = profile_yaml(profiles_dir, "nodeals", deals=[])
    (label.assets / ALBUM_UPC / "cover.jpg").unlink()
    rows = {r.upc: r for r in run(label, nodeals)}
    assert {r["code"] for r in rows[ALBUM_UPC].reasons} == {"missing_artwork", "no_deals"}
    assert {r["code"] for r in rows[SINGLE_UPC].reasons} == {"no_deals"}
    assert not label.dsp_folder("nodeals").exists() or not any(
        label.dsp_folder("nodeals").iterdir()
    )


def test_missing_sender_is_a_clear_error(label: Label, harbour: DspProfile) -> None:
    from schemas.store.deliveries import DdexSender

    with db.transaction(label.factory, actor="test") as s:
        s.execute(sa.delete(DdexSender))
    with pytest.raises(state.DeliveryError, match="ddex sender"):
        run(label, harbour)


class Down:
    """An opener whose server is unreachable."""

    calls = 0

    def __call__(self, profile: DspProfile) -> Drop:
        self.calls += 1
        raise ConnectionRefusedError("sftp.example:22 refused")


def test_upload_retries_with_backoff_then_fails(label: Label, harbour: DspProfile) -> None:
    down = Down()
    rows = run(label, harbour, opener=down)
    assert {r.state for r in rows} == {"packaged"}
    (d, _) = deliveries(label)
    assert d.attempts == 1 and d.next_attempt_at is not None
    assert utc(d.next_attempt_at) - NOW == dt.timedelta(seconds=60)
    assert "refused" in (d.last_error or "")
    # not due yet: nothing is tried
    run(label, harbour, now=NOW + dt.timedelta(seconds=30), opener=down)
    assert down.calls == 1
    run(label, harbour, now=NOW + dt.timedelta(seconds=61), opener=down)
    (d, _) = deliveries(label)
    assert d.attempts == 2
    assert utc(d.next_attempt_at) - (NOW + dt.timedelta(seconds=61)) == dt.timedelta(seconds=120)
    rows = run(label, harbour, now=NOW + dt.timedelta(hours=1), opener=down)
    assert {r.state for r in rows} == {"failed"}
    assert {r.reasons[0]["code"] for r in rows} == {"upload_failed"}
    with label.factory() as s:
        (batch,) = s.scalars(sa.select(DeliveryBatch))
        assert batch.state is BatchState.FAILED and batch.manifest is None
    assert history(label, rows[0].delivery_id) == [
        "queued",
        "packaged",
        "uploading",
        "packaged",
        "uploading",
        "packaged",
        "uploading",
        "failed",
    ]


def test_a_retry_goes_into_the_same_batch_folder(label: Label, harbour: DspProfile) -> None:
    run(label, harbour, opener=Down())
    rows = run(label, harbour, now=NOW + dt.timedelta(minutes=5))
    assert {r.state for r in rows} == {"uploaded"}
    (batch,) = [p for p in label.dsp_folder("harbour").iterdir() if p.is_dir()]
    assert batch.name == "20260302100000000"  # named when first attempted
    assert (batch / f"BatchComplete_{batch.name}.xml").is_file()


def _ack(label: Label, row: service.Row, status: str, text: str | None = None) -> None:
    label.opener(DspProfile.model_construct(name=row.dsp)).put(
        f"acknowledgements/ACK_{row.upc}.xml",
        ack_xml(row.message_path or "", status, text, ack_id="A"),
    )


def test_acknowledgements(label: Label, harbour: DspProfile) -> None:
    album, single = run(label, harbour)
    _ack(label, album, "FileOK")
    _ack(label, single, "ProcessingError", "Cover art is blurry")
    drop = label.opener(harbour)
    drop.put(
        "acknowledgements/evil.xml",
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    )
    drop.put("acknowledgements/broken.xml", b"<FtpAcknowledgementMessage>")
    drop.put("acknowledgements/stray.xml", ack_xml("B/nothing.xml", "FileOK", ack_id="S"))
    later = NOW + dt.timedelta(minutes=10)
    result = acks.poll_acks(label.factory, label.org_id, harbour, opener=label.opener, now=later)
    assert result.applied == 2 and result.unmatched == 1
    assert {(r["file"], r["code"]) for r in result.refused} == {
        ("acknowledgements/evil.xml", "ack_dtd"),
        ("acknowledgements/broken.xml", "ack_malformed"),
    }
    a, s = deliveries(label)
    assert (a.state, utc(a.acknowledged_at)) == (DeliveryState.ACKNOWLEDGED, later)
    assert s.state is DeliveryState.REJECTED
    assert s.reasons == [
        {
            "release": SINGLE_UPC,
            "dsp": "harbour",
            "field": "acknowledgement",
            "code": "dsp_rejected",
            "message": "ProcessingError: Cover art is blurry",
            "severity": "error",
        }
    ]
    again = acks.poll_acks(label.factory, label.org_id, harbour, opener=label.opener, now=later)
    assert (again.applied, again.refused, again.unmatched) == (0, [], 0)  # each file read once


def test_no_acknowledgement_in_time_fails(label: Label, harbour: DspProfile) -> None:
    run(label, harbour)
    early = acks.poll_acks(
        label.factory, label.org_id, harbour, opener=label.opener, now=NOW + dt.timedelta(hours=23)
    )
    assert early.timed_out == 0
    late = acks.poll_acks(
        label.factory, label.org_id, harbour, opener=label.opener, now=NOW + dt.timedelta(hours=25)
    )
    assert late.timed_out == 2
    assert {d.reasons[0]["code"] for d in deliveries(label)} == {"ack_timeout"}
    assert {d.state for d in deliveries(label)} == {DeliveryState.FAILED}


def test_takedown_resends_without_the_deals_then_purge(label: Label, harbour: DspProfile) -> None:
    (first, _) = run(label, harbour)
    n = service.takedown(
        label.factory,
        label.org_id,
        ALBUM_UPC,
        "harbour",
        on=dt.date(2026, 3, 3),
        profiles={"harbour": harbour},
    )
    assert n == 1
    later = NOW + dt.timedelta(days=2)
    rows = run(label, harbour, now=later, upc=ALBUM_UPC)
    (row,) = rows
    assert row.state == "uploaded" and row.delivery_id != first.delivery_id
    msg = (label.dsp_folder("harbour") / (row.message_path or "")).read_bytes()
    assert validate_message(msg) == []
    assert etree.fromstring(msg).find("DealList") is None
    with label.factory() as s:
        assert (
            s.scalar(sa.select(Delivery.kind).where(Delivery.id == row.delivery_id)) == "takedown"
        )
        deals = list(s.scalars(sa.select(ReleaseDeal).where(ReleaseDeal.org_id == label.org_id)))
        assert [(d.dsp, d.withdrawn_on) for d in deals] == [("harbour", dt.date(2026, 3, 3))]
    (purge,) = run(label, harbour, now=later + dt.timedelta(days=1), upc=ALBUM_UPC, purge=True)
    purge_xml = (label.dsp_folder("harbour") / (purge.message_path or "")).read_bytes()
    assert etree.QName(etree.fromstring(purge_xml)).localname == "PurgeReleaseMessage"
    assert validate_message(purge_xml) == []


def test_metadata_change_is_a_new_version(label: Label, harbour: DspProfile) -> None:
    (first, _) = run(label, harbour)
    with db.transaction(label.factory, actor="test") as s:
        s.get_one(type(label.album), label.album.id).title = "Harbour Lights (Deluxe)"
    (second, _) = run(label, harbour, now=NOW + dt.timedelta(days=1))
    assert second.delivery_id != first.delivery_id and second.state == "uploaded"


def test_illegal_transitions_are_refused(label: Label, harbour: DspProfile) -> None:
    run(label, harbour)
    with db.transaction(label.factory, actor="test") as s:
        d = s.scalars(sa.select(Delivery)).first()
        assert d is not None
        with pytest.raises(state.IllegalTransition):
            state.move(s, d, DeliveryState.QUEUED, NOW)


def test_another_organisation_is_untouched(
    label: Label, harbour: DspProfile, tmp_path: Path
) -> None:
    other_org = make_org(label.factory, "other-label")
    other = make_label(label.factory, other_org, tmp_path / "other")
    run(label, harbour)
    assert service.report(label.factory, other.org_id, [d.id for d in deliveries(label)]) == []
    rows = service.deliver(
        other.res,
        other.org_id,
        now=NOW,
        profiles={"harbour": harbour},
        opener=other.opener,
    )
    assert {r.state for r in rows} == {"uploaded"}  # same UPCs in another tenant: no clash


def test_build_to_folder(label: Label, harbour: DspProfile, tmp_path: Path) -> None:
    write_cover(label.assets / SINGLE_UPC / "cover.jpg", seed=4, size=500)
    built = {
        b.upc: b
        for b in service.build_to_folder(
            label.res, label.org_id, harbour, tmp_path / "out", now=NOW
        )
    }
    assert built[ALBUM_UPC].path == tmp_path / "out" / ALBUM_UPC / f"{ALBUM_UPC}.xml"
    assert validate_message(built[ALBUM_UPC].path.read_bytes()) == []
    assert len(list((tmp_path / "out" / ALBUM_UPC / "resources").iterdir())) == 3
    assert built[SINGLE_UPC].path is None
    assert {p.code for p in built[SINGLE_UPC].problems} == {"artwork_too_small"}
    assert not (tmp_path / "out" / SINGLE_UPC).exists()


def test_deal_resolution(label: Label, harbour: DspProfile) -> None:
    with db.transaction(label.factory, actor="test") as s:
        s.add(
            ReleaseDeal(
                org_id=label.org_id,
                release_id=label.album.id,
                dsp=None,
                commercial_model="PayAsYouGoModel",
                use_types=["PermanentDownload"],
                territories="GB,IE,US",
                start_date=dt.date(2026, 2, 1),
            )
        )
    gb = harbour.model_copy(update={"territories": "GB,IE,FR"})
    with label.factory() as s:
        deals, kind = resolve_deals(
            s, label.org_id, s.get_one(type(label.album), label.album.id), gb, NOW.date()
        )
    assert kind == "full"
    assert [(d.commercial_model, d.territories, d.start) for d in deals] == [
        ("PayAsYouGoModel", ("GB", "IE"), dt.date(2026, 2, 1))
    ]
