"""Delivery over the real test servers: SFTP (asyncssh) and S3 (SeaweedFS), with ACKs read
back from each server's acknowledgements/ folder."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from connectors.ddex.ack import ack_xml
from connectors.ddex.profiles import DspProfile
from connectors.ddex.validate import validate_message
from connectors.drops import Drop, S3Drop, SftpDrop
from pipelines.delivery import acks, service
from schemas.store.deliveries import DeliveryState
from tests.ddex.conftest import ALBUM_UPC, NOW, SINGLE_UPC, Label, profile_yaml
from tests.ddex.test_delivery import deliveries
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer

pytestmark = pytest.mark.integration
_ids = itertools.count()


@pytest.fixture(params=["sftp", "s3"])
def remote(
    request: pytest.FixtureRequest, tmp_path: Path, profiles_dir: Path
) -> tuple[DspProfile, Callable[[DspProfile], Drop]]:
    folder = f"dsp{next(_ids)}"
    if request.param == "sftp":
        sftp: SftpServer = request.getfixturevalue("sftp_server")
        (sftp.root / folder).mkdir()
        known = sftp.write_known_hosts(tmp_path / "known_hosts")
        profile = profile_yaml(
            profiles_dir, "aurora", protocol="sftp", url=sftp.url(f"/{folder}"), batch_size=1
        )

        def open_sftp(_: DspProfile) -> Drop:
            return SftpDrop(
                sftp.host,
                sftp.port,
                sftp.username,
                password=sftp.password,
                root=f"/{folder}",
                known_hosts=known,
                timeout=5,
            )

        return profile, open_sftp
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket = s3.create_bucket(f"tm-ddex-{next(_ids)}")
    profile = profile_yaml(
        profiles_dir, "nimbus", protocol="s3", url=f"s3://{bucket}/{folder}", batch_size=1
    )

    def open_s3(_: DspProfile) -> Drop:
        return S3Drop(
            bucket,
            folder,
            endpoint_url=s3.endpoint_url,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            timeout=5,
        )

    return profile, open_s3


def test_batches_and_acks_over_a_real_server(
    label: Label, remote: tuple[DspProfile, Callable[[DspProfile], Drop]]
) -> None:
    profile, opener = remote
    rows = service.deliver(
        label.res,
        label.org_id,
        now=NOW,
        profiles={profile.name: profile},
        opener=opener,
    )
    assert [(r.upc, r.state) for r in rows] == [(ALBUM_UPC, "uploaded"), (SINGLE_UPC, "uploaded")]
    with opener(profile) as drop:
        names = [e.name for e in drop.list()]
        # batch_size 1: two batches, each whole, each with its manifest
        manifests = [n for n in names if n.rsplit("/", 1)[-1].startswith("BatchComplete_")]
        assert len(manifests) == 2
        assert not [n for n in names if n.endswith(".part") or "/." in n]
        for row in rows:
            xml = drop.read(row.message_path or "")
            assert validate_message(xml) == []
            uris = [u.text for u in etree.fromstring(xml).iter("URI")]
            batch_folder = (row.message_path or "").rsplit("/", 1)[0]
            assert all(f"{batch_folder}/{u}" in names for u in uris)
        drop.put(
            f"acknowledgements/{ALBUM_UPC}.xml",
            ack_xml(rows[0].message_path or "", "FileOK", ack_id="1"),
        )
        drop.put(
            f"acknowledgements/{SINGLE_UPC}.xml",
            ack_xml(rows[1].message_path or "", "ProcessingError", "ISRC unknown", ack_id="2"),
        )
    result = acks.poll_acks(label.factory, label.org_id, profile, opener=opener, now=NOW)
    assert result.applied == 2
    assert [d.state for d in deliveries(label)] == [
        DeliveryState.ACKNOWLEDGED,
        DeliveryState.REJECTED,
    ]
