"""Byte-level guards: gzip/zip unwrapping, zip traversal and bombs, encodings, huge lines."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from connectors.formats import archive, registry
from connectors.formats.base import FileRejected

STATEMENT = (
    "Statement Period,Sale Type,Store,Country,Usage,Release Title,Track Title,Artist,UPC,ISRC,"
    "Catalog Number,Units,Gross Amount,Split %,Net Amount,Currency\n"
    "2026-01,Sale,Spotify,GB,Stream,Northern Lights,Northern Lights,Aurora Vale,0602435000015,"
    "GBAYE2600001,NLR001,100,0.400000,80,0.320000,GBP\n"
)


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# gzip


def test_gzip_is_streamed_to_a_member_named_without_the_suffix(tmp_path: Path) -> None:
    src = tmp_path / "in.gz"
    # several read chunks of lines that differ, as a report's do (one line repeated 5,000
    # times would deflate over 200:1 and be refused as a bomb)
    payload = "".join(STATEMENT.replace(",100,", f",{i},") for i in range(5000)).encode()
    src.write_bytes(gzip.compress(payload))
    work = tmp_path / "work"
    work.mkdir()
    ((name, member),) = archive.unwrap(src, work, filename="../../statement_2026-01.csv.gz")
    assert name == "../../statement_2026-01.csv"  # the delivered name, for detection ...
    assert member.parent.parent == work  # ... but the file stays inside the work dir
    assert member.name == "statement_2026-01.csv"
    assert member.read_bytes() == payload


def test_truncated_gzip_is_rejected_and_leaves_nothing(tmp_path: Path) -> None:
    data = gzip.compress(STATEMENT.encode() * 200)
    src = tmp_path / "cut.csv.gz"
    src.write_bytes(data[: len(data) // 2])
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, work, filename="statement.csv.gz")
    assert excinfo.value.code == "truncated_gzip"
    assert _files(work) == []


def test_a_gz_that_is_not_gzip_is_rejected(tmp_path: Path) -> None:
    src = tmp_path / "x.gz"
    src.write_bytes(STATEMENT.encode())
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, tmp_path, filename="statement.csv.gz")
    assert excinfo.value.code == "bad_gzip"


def test_gzip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    src = tmp_path / "big.gz"
    src.write_bytes(gzip.compress(b"0" * (4 << 20)))
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, tmp_path, filename="big.csv.gz", max_total=1 << 20)
    assert excinfo.value.code == "zip_bomb"


def test_plain_files_pass_through_uncopied(tmp_path: Path) -> None:
    src = tmp_path / "s.csv"
    src.write_text(STATEMENT)
    assert archive.unwrap(src, tmp_path, filename="s.csv") == [("s.csv", src)]


# --------------------------------------------------------------------------------------------
# zip


def test_zip_members_are_unpacked(tmp_path: Path) -> None:
    src = tmp_path / "bundle.zip"
    src.write_bytes(_zip({"jan/statement_01.csv": b"a\n", "statement_02.csv": b"b\n"}))
    work = tmp_path / "work"
    work.mkdir()
    members = archive.unwrap(src, work, filename="bundle.zip")
    assert [(n, p.read_bytes()) for n, p in members] == [
        ("jan/statement_01.csv", b"a\n"),
        ("statement_02.csv", b"b\n"),
    ]
    assert all(p.is_relative_to(work) for _, p in members)


@pytest.mark.parametrize(
    "evil",
    ["../escape.csv", "ok/../../escape.csv", "/etc/escape.csv", "C:/escape.csv", "..\\escape.csv"],
)
def test_zip_path_traversal_is_rejected_before_anything_is_written(
    tmp_path: Path, evil: str
) -> None:
    src = tmp_path / "evil.zip"
    src.write_bytes(_zip({"fine.csv": STATEMENT.encode(), evil: b"pwned\n"}))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, work, filename="evil.zip")
    assert excinfo.value.code == "zip_path_traversal"
    assert _files(work) == []
    assert not (tmp_path / "escape.csv").exists()


def test_zip_bomb_by_ratio_is_caught_while_streaming(tmp_path: Path) -> None:
    # 64 MiB of zeros deflates to ~64 KiB: a 1000:1 member, far over 200:1.
    src = tmp_path / "bomb.zip"
    src.write_bytes(_zip({"statement.csv": b"\0" * (64 << 20)}))
    assert src.stat().st_size < 200_000
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, work, filename="bomb.zip")
    assert excinfo.value.code == "zip_bomb"
    assert "200:1" in excinfo.value.message
    assert _files(work) == []


def test_zip_bomb_by_total_size(tmp_path: Path) -> None:
    src = tmp_path / "big.zip"
    payload = STATEMENT.encode() * 20_000  # ~4 MiB, an honest ratio
    src.write_bytes(_zip({"a.csv": payload, "b.csv": payload}, zipfile.ZIP_STORED))
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, tmp_path, filename="big.zip", max_total=6 << 20)
    assert excinfo.value.code == "zip_bomb"


def test_zip_whose_header_understates_its_size_is_caught(tmp_path: Path) -> None:
    payload = b"x" * (3 << 20)
    data = bytearray(_zip({"a.csv": payload}))
    # rewrite the declared uncompressed size (central directory and local header) to 1 KiB
    declared = len(payload).to_bytes(4, "little")
    assert data.count(declared) == 2
    data = data.replace(declared, (1024).to_bytes(4, "little"))
    src = tmp_path / "liar.zip"
    src.write_bytes(bytes(data))
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, tmp_path, filename="liar.zip")
    assert excinfo.value.code in {"zip_bomb", "bad_zip"}


def test_nested_archives_are_not_unpacked(tmp_path: Path) -> None:
    src = tmp_path / "outer.zip"
    src.write_bytes(_zip({"inner.csv.gz": gzip.compress(STATEMENT.encode())}))
    ((name, member),) = archive.unwrap(src, tmp_path, filename="outer.zip")
    assert name == "inner.csv.gz"
    assert member.read_bytes()[:2] == archive.GZIP_MAGIC  # written as is
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, "outer.zip", tmp_path)
    assert excinfo.value.code == "nested_archive"


def test_not_a_zip(tmp_path: Path) -> None:
    src = tmp_path / "x.zip"
    src.write_bytes(b"PK but not really")
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, tmp_path, filename="x.zip")
    assert excinfo.value.code == "bad_zip"


# --------------------------------------------------------------------------------------------
# encodings


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xef\xbb\xbfCountry,Amount\n", "utf-8-sig"),
        (b"\xff\xfe" + "Country,Amount\n".encode("utf-16-le"), "utf-16-le"),
        (b"\xfe\xff" + "Country,Amount\n".encode("utf-16-be"), "utf-16-be"),
        ("Country,Amount\nSE,Låg\n".encode(), "utf-8"),
        ("Country,Amount\n".encode("utf-16-le"), "utf-16-le"),  # no BOM: the NUL bytes tell
        ("Country,Amount\n".encode("utf-16-be"), "utf-16-be"),
        ("Låg".encode()[:2], "utf-8"),  # a character cut by the end of the head
    ],
)
def test_detect_encoding(head: bytes, expected: str) -> None:
    assert archive.detect_encoding(head) == expected


def test_invalid_utf8_names_the_byte_offset() -> None:
    head = b"Country,Title\nSE,L\xe5g Tidvatten\n"  # latin-1 bytes in a UTF-8 file
    with pytest.raises(FileRejected) as excinfo:
        archive.detect_encoding(head)
    assert excinfo.value.code == "encoding"
    assert head.index(b"\xe5") == 18
    assert "byte offset 18" in excinfo.value.message
    assert excinfo.value.row == 2


def test_utf32_is_refused() -> None:
    with pytest.raises(FileRejected, match="UTF-32"):
        archive.detect_encoding(b"\xff\xfe\x00\x00a\x00\x00\x00")


def test_invalid_utf8_past_the_head_is_found_when_parsing(tmp_path: Path) -> None:
    good = STATEMENT.splitlines()[1] + "\n"
    bad = good.replace("Northern Lights,Aurora", "Norrsken \xe5,Aurora").encode("latin-1")
    body = STATEMENT.encode() + good.encode() * 2000 + bad
    src = tmp_path / "statement_2026-01.csv"
    src.write_bytes(body)
    offset = body.index(b"\xe5")
    assert offset > archive.HEAD_BYTES
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, src.name, tmp_path)
    assert excinfo.value.code == "encoding"
    assert f"byte offset {offset}" in excinfo.value.message
    assert excinfo.value.row == 2003


def test_transcoding_streams_across_chunk_boundaries(tmp_path: Path) -> None:
    text = "Låg Tidvatten,Marea Baja (Versión),Ünïcødé ✓\n" * 40_000  # > 1 MiB of UTF-16
    src = tmp_path / "u16.csv"
    src.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    assert src.stat().st_size > 2 * archive.CHUNK
    out = archive.transcode_to_utf8(src, tmp_path, "utf-16-le")
    assert out.read_bytes() == text.encode("utf-8")  # BOM dropped, nothing garbled


def test_transcoding_rejects_undecodable_input(tmp_path: Path) -> None:
    src = tmp_path / "odd.csv"
    lone_surrogate = b"\x00\xd8"
    src.write_bytes(b"\xff\xfe" + "ab".encode("utf-16-le") + lone_surrogate + b"a\x00")
    with pytest.raises(FileRejected) as excinfo:
        archive.transcode_to_utf8(src, tmp_path, "utf-16-le")
    assert excinfo.value.code == "encoding"
    assert list(tmp_path.glob("utf8-*")) == []


# --------------------------------------------------------------------------------------------
# a single enormous line


def test_line_too_long_names_the_line(tmp_path: Path) -> None:
    src = tmp_path / "huge.csv"
    src.write_bytes(b"a,b\n1,2\n" + b"x" * (3 << 20) + b"\n3,4\n")
    with pytest.raises(FileRejected) as excinfo:
        archive.check_line_length(src)
    assert excinfo.value.code == "line_too_long"
    assert excinfo.value.row == 3


def test_line_too_long_at_the_end_without_newline(tmp_path: Path) -> None:
    src = tmp_path / "tail.csv"
    src.write_bytes(b"a,b\n" * 1000 + b"y" * ((1 << 20) + 1))
    with pytest.raises(FileRejected) as excinfo:
        archive.check_line_length(src)
    assert excinfo.value.row == 1001


def test_lines_at_the_limit_are_fine(tmp_path: Path) -> None:
    src = tmp_path / "ok.csv"
    line = b"z" * archive.MAX_LINE_BYTES + b"\n"
    src.write_bytes(line * 3)
    archive.check_line_length(src)  # raises if a line were over the limit
    with pytest.raises(FileRejected):
        archive.check_line_length(src, limit=archive.MAX_LINE_BYTES - 1)


def test_parse_file_refuses_an_enormous_line(tmp_path: Path) -> None:
    src = tmp_path / "statement_2026-01.csv"
    src.write_bytes(STATEMENT.encode() + b"2026-01,Sale," + b"9" * (2 << 20) + b"\n")
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, src.name, tmp_path)
    assert excinfo.value.code == "line_too_long"
    assert excinfo.value.row == 3


def test_a_file_no_format_can_decode_is_rejected_for_its_encoding(tmp_path: Path) -> None:
    src = tmp_path / "statement_2026-01.csv"
    src.write_bytes(STATEMENT.replace("Aurora Vale", "Åsa Öberg").encode("cp1252"))
    with pytest.raises(FileRejected) as excinfo:
        registry.parse_file(src, src.name, tmp_path)
    assert excinfo.value.code == "encoding"
    assert excinfo.value.row == 2


def test_many_small_members_cannot_add_up_to_a_bomb(tmp_path: Path) -> None:
    # 60 members just under the 1 MiB the per-member ratio waits for: 60 MiB from ~70 KB
    src = tmp_path / "report.zip"
    src.write_bytes(_zip({f"part{i:02d}.csv": b"\0" * ((1 << 20) - 1) for i in range(60)}))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, work, filename="report.zip")
    assert excinfo.value.code == "zip_bomb"
    assert "in all" in excinfo.value.message
    assert _files(work) == []


def test_a_gzip_bomb_is_caught_by_its_ratio(tmp_path: Path) -> None:
    src = tmp_path / "statement.csv.gz"
    src.write_bytes(gzip.compress(b"\0" * (64 << 20)))  # ~1000:1, far under the size cap
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, work, filename="statement.csv.gz")
    assert excinfo.value.code == "zip_bomb"
    assert "200:1" in excinfo.value.message
    assert _files(work) == []


def test_two_members_with_one_name_are_refused(tmp_path: Path) -> None:
    # the second would overwrite the first on disk, and be read twice
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("statement.csv", STATEMENT)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("statement.csv", STATEMENT.replace("100,", "200,"))
    src = tmp_path / "statement.zip"
    src.write_bytes(buf.getvalue())
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(FileRejected) as excinfo:
        archive.unwrap(src, work, filename="statement.zip")
    assert excinfo.value.code == "zip_duplicate_member"
    assert _files(work) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,b\rc,d\r", b"a,b\nc,d\n"),  # old Mac
        (b"a,b\r\nc,d\re,f\ng,h", b"a,b\r\nc,d\ne,f\ng,h"),  # mixed: CRLF kept
        (b"abc\r\r\nde\r", b"abc\n\r\nde\n"),  # CRLF cut by a chunk, a CR at the end
        (b"abc\r", b"abc\n"),
        (b"a,b\r\nc,d\r\n", None),  # CRLF only: nothing to copy
        (b"a,b\nc,d\n", None),
    ],
)
def test_lone_carriage_returns_become_line_feeds_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, expected: bytes | None
) -> None:
    monkeypatch.setattr(archive, "CHUNK", 4)  # every case crosses several chunk boundaries
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    out = archive.normalise_line_ends(src, tmp_path)
    assert (out.read_bytes() if out is not None else None) == expected
