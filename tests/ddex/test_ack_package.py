"""ACK parsing (hostile input included) and the packaging choreography on a real local drop."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from connectors.ddex.ack import AckError, ack_xml, parse_ack
from connectors.ddex.package import release_files, stage_release, upload_batch
from connectors.drops import LocalDrop

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def test_ack_ok_and_error() -> None:
    (ok,) = parse_ack(ack_xml("B1/5063450000179/5063450000179.xml", "FileOK", ack_id="A1"))
    assert (ok.message_path, ok.status, ok.ack_message_id) == (
        "B1/5063450000179/5063450000179.xml",
        "ingested",
        "A1",
    )
    (bad,) = parse_ack(ack_xml("B1/x/x.xml", "ProcessingError", "Artwork blurry", ack_id="A2"))
    assert (bad.status, bad.raw_status, bad.text) == ("error", "ProcessingError", "Artwork blurry")


def test_ack_with_several_groups_and_a_namespace() -> None:
    data = b"""<?xml version="1.0"?>
    <echo:FtpAcknowledgementMessage xmlns:echo="http://ddex.net/xml/ern-c/15">
      <MessageHeader><MessageId>A9</MessageId></MessageHeader>
      <Acknowledgement><AcknowledgedFile>/B/1/1.xml</AcknowledgedFile><FileStatus>FileOK</FileStatus></Acknowledgement>
      <Acknowledgement><AcknowledgedFile>B/2/2.xml</AcknowledgedFile><FileStatus>ResourceCorrupt</FileStatus>
        <ErrorText>MD5 mismatch</ErrorText></Acknowledgement>
    </echo:FtpAcknowledgementMessage>"""
    items = parse_ack(data)
    assert [(i.message_path, i.status, i.text) for i in items] == [
        ("B/1/1.xml", "ingested", None),
        ("B/2/2.xml", "error", "MD5 mismatch"),
    ]


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<FtpAcknowledgementMessage><AcknowledgedFile>&x;</AcknowledgedFile><FileStatus>FileOK</FileStatus>
</FtpAcknowledgementMessage>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>
<FtpAcknowledgementMessage><AcknowledgedFile>&c;</AcknowledgedFile><FileStatus>FileOK</FileStatus>
</FtpAcknowledgementMessage>"""
UTF16_DTD = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a SYSTEM "http://evil/x.dtd"><a/>'.encode(
        "utf-16"
    )
)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (XXE, "ack_dtd"),
        (LAUGHS, "ack_dtd"),
        (UTF16_DTD, "ack_dtd"),
        (b"<FtpAcknowledgementMessage><FileStatus>", "ack_malformed"),
        (
            b"<FtpAcknowledgementMessage><FileStatus>FileOK</FileStatus></FtpAcknowledgementMessage>",
            "ack_incomplete",
        ),
        (b"", "ack_malformed"),
    ],
)
def test_hostile_or_broken_acks_are_refused_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(AckError) as caught:
        parse_ack(data)
    assert caught.value.code == code
    assert "passwd" not in caught.value.message or code == "ack_dtd"


def test_stage_release_is_whole_or_absent(tmp_path: Path) -> None:
    src = tmp_path / "a.flac"
    src.write_bytes(b"audio")
    out = tmp_path / "out"
    folder = stage_release(out, "5063450000179", b"<x/>", [(src, "a.flac")])
    assert release_files(folder) == ["resources/a.flac", "5063450000179.xml"]
    with pytest.raises(FileNotFoundError):
        stage_release(
            out, "5063450000346", b"<x/>", [(src, "a.flac"), (tmp_path / "gone", "b.flac")]
        )
    assert sorted(p.name for p in out.iterdir()) == ["5063450000179"]  # nothing half-written
    # restaging replaces the old folder whole
    stage_release(out, "5063450000179", b"<y/>", [])
    assert release_files(out / "5063450000179") == ["5063450000179.xml"]
    assert (out / "5063450000179" / "5063450000179.xml").read_bytes() == b"<y/>"


class FlakyDrop(LocalDrop):
    """A real local drop that records every put and fails the n-th one."""

    def __init__(self, root: Path, fail_at: int | None = None) -> None:
        super().__init__(root)
        self.puts: list[str] = []
        self.fail_at = fail_at

    def put(self, name: str, data: bytes | Path) -> None:
        if self.fail_at is not None and len(self.puts) + 1 == self.fail_at:
            raise ConnectionError("link dropped")
        super().put(name, data)
        self.puts.append(name)


def _staged(tmp_path: Path) -> list[Path]:
    src = tmp_path / "a.flac"
    src.write_bytes(b"audio")
    out = tmp_path / "staged"
    return [
        stage_release(out, upc, f"<m upc='{upc}'/>".encode(), [(src, f"{upc}_01.flac")])
        for upc in ("5063450000179", "5063450000346")
    ]


def test_manifest_is_written_last(tmp_path: Path) -> None:
    (tmp_path / "dsp").mkdir()
    drop = FlakyDrop(tmp_path / "dsp")
    manifest = upload_batch(drop, "20260302100000000", _staged(tmp_path), created=NOW)
    assert drop.puts[-1] == f"20260302100000000/{manifest}"
    assert drop.puts[:2] == [
        "20260302100000000/5063450000179/resources/5063450000179_01.flac",
        "20260302100000000/5063450000179/5063450000179.xml",
    ]
    root = etree.fromstring((tmp_path / "dsp" / "20260302100000000" / manifest).read_bytes())
    assert root.findtext("NumberOfMessages") == "2"
    assert [m.findtext("URI") for m in root.iterfind("Message")] == [
        "5063450000179/5063450000179.xml",
        "5063450000346/5063450000346.xml",
    ]


@pytest.mark.parametrize("fail_at", [1, 3, 4, 5])
def test_a_failed_upload_never_writes_the_manifest(tmp_path: Path, fail_at: int) -> None:
    (tmp_path / "dsp").mkdir()
    drop = FlakyDrop(tmp_path / "dsp", fail_at=fail_at)
    with pytest.raises(ConnectionError):
        upload_batch(drop, "B1", _staged(tmp_path), created=NOW)
    names = [e.name for e in drop.list()]
    assert len(names) == fail_at - 1
    assert not any("BatchComplete" in n for n in names)
