"""Delivered file -> plain, decompressed member files, and the byte-level guards on them.

* ``unwrap``: ``.gz`` is gunzipped (streamed), ``.zip`` is unpacked (streamed, with path-traversal
  and decompression-bomb checks that do not trust the headers alone), anything else is passed
  through untouched. Archives inside archives are *not* unpacked.
* ``detect_encoding``: BOM-based (UTF-8-sig, UTF-16-LE/BE), else UTF-8, validated.
* ``transcode_to_utf8``: a UTF-16 (or declared cp1252/latin-1) file streamed in chunks into a
  UTF-8 temp file, so the fast readers only ever see UTF-8.
* ``normalise_line_ends``: a file whose lines end with CR alone (old Mac exports), or that mixes
  CR with LF/CRLF, copied with each lone CR made an LF, so every reader splits lines at LF.
* ``check_line_length``: a single enormous line (no newline for more than 1 MiB) is refused
  before any reader tries to hold it in memory.

Every failure is a ``FileRejected`` with a machine-readable code; no half-written member is
left behind.
"""

from __future__ import annotations

import codecs
import gzip
import mmap
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import cast

from isal import igzip, isal_zlib

from connectors.formats.base import FileRejected

CHUNK = 1 << 20  # bytes read/written per step when streaming
HEAD_BYTES = 64 * 1024  # what detection looks at
MAX_TOTAL_BYTES = 2 << 30  # 2 GiB decompressed, per delivered file
MAX_RATIO = 200.0  # decompressed : compressed, per zip member and per delivered file
RATIO_FLOOR_BYTES = 1 << 20  # the ratio is judged once a member has produced this much
MAX_LINE_BYTES = 1 << 20  # a line longer than this is refused

GZIP_MAGIC = b"\x1f\x8b"
# a corrupt deflate stream (isal's stubs type the class loosely)
ISAL_ERROR = cast(type[Exception], isal_zlib.error)
ARCHIVE_SUFFIXES = (".gz", ".zip", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar")

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DRIVE = re.compile(r"^[A-Za-z]:")


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of ``path``."""
    with path.open("rb") as fh:
        return fh.read(size)


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_basename(name: str, default: str = "file") -> str:
    """A file-system-safe base name for a delivered name (which may contain ``../``)."""
    base = re.split(r"[\\/]", name)[-1]
    base = _SAFE.sub("_", base).lstrip(".")
    return base or default


# --------------------------------------------------------------------------------------------
# unwrap


def unwrap(
    path: Path,
    workdir: Path,
    *,
    filename: str,
    max_total: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[tuple[str, Path]]:
    """Decompressed members of a delivered file: ``[(member name, local path), ...]``.

    ``filename`` is the name as delivered; ``.gz`` members are named after it without the
    suffix, ``.zip`` members by their path inside the archive, anything else is returned as
    ``[(filename, path)]`` without copying. Members are written below ``workdir``.
    """
    lower = filename.lower()
    with path.open("rb") as fh:
        magic = fh.read(4)
    if lower.endswith(".zip"):
        return _unzip(path, workdir, filename=filename, max_total=max_total, max_ratio=max_ratio)
    if lower.endswith(".gz") or lower.endswith(".tgz") or magic.startswith(GZIP_MAGIC):
        member = filename[: -len(".gz")] if lower.endswith(".gz") else filename
        dest = Path(tempfile.mkdtemp(prefix="gz-", dir=workdir)) / safe_basename(member)
        _gunzip(path, dest, filename=filename, max_total=max_total, max_ratio=max_ratio)
        return [(member, dest)]
    return [(filename, path)]


def _gunzip(path: Path, dest: Path, *, filename: str, max_total: int, max_ratio: float) -> None:
    """Decompress with ISA-L (python-isal: the same gzip format, about 2.5x faster than zlib
    on one core), refusing a truncated or corrupt stream and a bomb (by size or by ratio)."""
    total = 0
    limit_ratio = max_ratio * max(path.stat().st_size, 1)
    try:
        with igzip.open(path, "rb") as src, dest.open("wb") as out:
            while chunk := src.read(CHUNK):
                total += len(chunk)
                if total > max_total:
                    raise FileRejected(
                        "zip_bomb",
                        f"{filename} decompresses to more than {max_total} bytes",
                    )
                if total > RATIO_FLOOR_BYTES and total > limit_ratio:
                    raise FileRejected(
                        "zip_bomb",
                        f"{filename} expands more than {max_ratio:g}:1 "
                        f"({path.stat().st_size} compressed bytes)",
                    )
                out.write(chunk)
    except FileRejected:
        dest.unlink(missing_ok=True)
        raise
    except EOFError as exc:
        dest.unlink(missing_ok=True)
        raise FileRejected(
            "truncated_gzip",
            f"{filename} ends before the end of its gzip stream after {total} "
            f"decompressed bytes ({exc})",
        ) from exc
    except (gzip.BadGzipFile, zlib.error, ISAL_ERROR, OSError) as exc:
        dest.unlink(missing_ok=True)
        raise FileRejected("bad_gzip", f"{filename} is not a readable gzip file: {exc}") from exc


def _member_target(root: Path, name: str) -> Path:
    """Where member ``name`` lands below ``root``; raises on anything that could escape it."""
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    if (
        not normalised
        or normalised.startswith("/")
        or _DRIVE.match(normalised)
        or ".." in parts
        or "\x00" in normalised
    ):
        raise FileRejected("zip_path_traversal", f"zip member {name!r} points outside the archive")
    target = (root / normalised).resolve()
    if not target.is_relative_to(root.resolve()):
        raise FileRejected("zip_path_traversal", f"zip member {name!r} lands outside {root}")
    return target


def _unzip(
    path: Path, workdir: Path, *, filename: str, max_total: int, max_ratio: float
) -> list[tuple[str, Path]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileRejected("bad_zip", f"{filename} is not a readable zip file: {exc}") from exc
    with zf:
        root = Path(tempfile.mkdtemp(prefix="zip-", dir=workdir))
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if not infos:
            raise FileRejected("empty_file", f"{filename} contains no files")
        # Check every name before writing anything: a bad archive leaves nothing behind.
        targets = [_member_target(root, info.filename) for info in infos]
        seen: dict[Path, str] = {}
        for info, target in zip(infos, targets, strict=True):
            if target in seen:  # the second would overwrite the first, read twice
                raise FileRejected(
                    "zip_duplicate_member",
                    f"{filename} holds two members named {seen[target]!r} and "
                    f"{info.filename!r}: which one is the report?",
                )
            seen[target] = info.filename
        declared = sum(info.file_size for info in infos)
        if declared > max_total:
            raise FileRejected(
                "zip_bomb", f"{filename} declares {declared} bytes uncompressed (> {max_total})"
            )
        out: list[tuple[str, Path]] = []
        total = 0
        # many members each under the per-member floor must not add up to a bomb either
        limit_total_ratio = max_ratio * max(path.stat().st_size, 1)
        try:
            for info, target in zip(infos, targets, strict=True):
                if info.flag_bits & 0x1:
                    raise FileRejected("bad_zip", f"zip member {info.filename!r} is encrypted")
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                limit_ratio = max_ratio * max(info.compress_size, 1)
                with zf.open(info) as src, target.open("wb") as dst:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if total > max_total:
                            raise FileRejected(
                                "zip_bomb",
                                f"{filename} decompresses to more than {max_total} bytes",
                            )
                        if total > RATIO_FLOOR_BYTES and total > limit_total_ratio:
                            raise FileRejected(
                                "zip_bomb",
                                f"{filename} expands more than {max_ratio:g}:1 in all "
                                f"({path.stat().st_size} bytes as delivered)",
                            )
                        if written > RATIO_FLOOR_BYTES and written > limit_ratio:
                            raise FileRejected(
                                "zip_bomb",
                                f"zip member {info.filename!r} expands more than "
                                f"{max_ratio:g}:1 ({info.compress_size} compressed bytes)",
                            )
                        if written > info.file_size:
                            raise FileRejected(
                                "zip_bomb",
                                f"zip member {info.filename!r} is larger than its header "
                                f"declares ({info.file_size} bytes)",
                            )
                        dst.write(chunk)
                out.append((info.filename, target))
        except FileRejected:
            _remove_tree(root)
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
            _remove_tree(root)
            raise FileRejected("bad_zip", f"{filename}: {exc}") from exc
    return out


def _remove_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for f in files:
            Path(dirpath, f).unlink(missing_ok=True)
        Path(dirpath).rmdir()


# --------------------------------------------------------------------------------------------
# encodings

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16-LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

UTF8 = ("utf-8", "utf-8-sig")


def detect_encoding(head: bytes) -> str:
    """``utf-8-sig``, ``utf-16-le``, ``utf-16-be`` (by BOM) or ``utf-8`` (validated).

    UTF-16 without a BOM is recognised by its NUL bytes. Raises ``FileRejected("encoding")``
    naming the byte offset of the first invalid UTF-8 sequence.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            if name == "utf-32":
                raise FileRejected("encoding", "UTF-32 files are not supported")
            if name == "utf-8-sig":
                _validate_utf8(head, len(bom))
            return name
    guess = _utf16_without_bom(head)
    if guess:
        return guess
    _validate_utf8(head, 0)
    return "utf-8"


def _utf16_without_bom(head: bytes) -> str | None:
    sample = head[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    nul_even, nul_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if nul_odd > 0.3 and nul_even < 0.05:
        return "utf-16-le"
    if nul_even > 0.3 and nul_odd < 0.05:
        return "utf-16-be"
    return None


def _validate_utf8(head: bytes, start: int) -> None:
    try:
        head[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the head is fine.
        if exc.reason == "unexpected end of data" and exc.end == len(head) - start:
            return
        offset = start + exc.start
        line = head[:offset].count(b"\n") + 1
        raise FileRejected(
            "encoding",
            f"not valid UTF-8 at byte offset {offset} (line {line}); "
            "declare the file's encoding in its format spec",
            row=line,
        ) from exc


def utf8_error(path: Path) -> FileRejected | None:
    """The ``encoding`` rejection for the first invalid UTF-8 byte in ``path``, if any.

    Streams the file; used only after a fast reader has complained, to name the offset.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0  # bytes of the file handed to the decoder so far
    newlines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            pending = len(decoder.getstate()[0])  # a partial sequence held back last time
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                pos = offset - pending + exc.start
                line = newlines + chunk[: max(exc.start - pending, 0)].count(b"\n") + 1
                return FileRejected(
                    "encoding",
                    f"not valid UTF-8 at byte offset {pos} (line {line}); "
                    "declare the file's encoding in its format spec",
                    row=line,
                )
            offset += len(chunk)
            newlines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return FileRejected("encoding", f"file ends inside a UTF-8 sequence (byte offset {offset})")
    return None


def transcode_to_utf8(path: Path, dest_dir: Path, encoding: str) -> Path:
    """Stream ``path`` (UTF-16 with or without BOM, cp1252, latin-1, ...) into a UTF-8 file.

    A leading BOM is dropped. Invalid input raises ``FileRejected("encoding")`` naming the byte
    offset.
    """
    codec = codecs.lookup(encoding)
    decoder = codec.incrementaldecoder("strict")
    fd, name = tempfile.mkstemp(prefix="utf8-", suffix=".txt", dir=dest_dir)
    dest = Path(name)
    consumed = 0
    first = True
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            while True:
                chunk = src.read(CHUNK)
                final = not chunk
                try:
                    text = decoder.decode(chunk, final=final)
                except UnicodeDecodeError as exc:
                    raise FileRejected(
                        "encoding",
                        f"not valid {encoding} at byte offset {consumed + max(exc.start, 0)}",
                    ) from exc
                if first and text:
                    text = text.removeprefix("\ufeff")
                    first = False
                out.write(text.encode("utf-8"))
                consumed += len(chunk)
                if final:
                    break
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


# --------------------------------------------------------------------------------------------
# line ends

_LONE_CR = re.compile(rb"\r(?!\n)")


def _has_lone_cr(path: Path) -> bool:
    """Whether a CR not followed by LF occurs anywhere in ``path`` (streamed, two
    ``bytes.count`` per chunk: cheap on the usual LF or CRLF file)."""
    carry = b""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            data = carry + chunk
            # a CR at the very end may be the first half of a CRLF cut by the chunk
            carry = b"\r" if data.endswith(b"\r") else b""
            body = data[:-1] if carry else data
            if body.count(b"\r") != body.count(b"\r\n"):
                return True
    return carry == b"\r"


def normalise_line_ends(path: Path, dest_dir: Path) -> Path | None:
    """A copy of text file ``path`` whose lone CRs (old Mac line ends, alone or mixed with LF
    and CRLF) are LFs, or None when it has none (the usual case: nothing is copied).

    CRLF stays as it is: every reader already takes CRLF as one line end. The line texts, and
    so their raw hashes and the file's content fingerprint, are those of the LF file.
    """
    if not _has_lone_cr(path):
        return None
    fd, name = tempfile.mkstemp(prefix="lf-", suffix=".txt", dir=dest_dir)
    dest = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            carry = b""
            while chunk := src.read(CHUNK):
                data = carry + chunk
                carry = b"\r" if data.endswith(b"\r") else b""
                out.write(_LONE_CR.sub(b"\n", data[:-1] if carry else data))
            out.write(b"\n" if carry else b"")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


# --------------------------------------------------------------------------------------------
# line guard


def _windows(size: int, limit: int) -> Iterator[tuple[int, int]]:
    pos = 0
    while pos < size:
        yield pos, min(pos + limit, size)
        pos += limit


def check_line_length(path: Path, *, limit: int = MAX_LINE_BYTES) -> None:
    """Refuse a file holding a line longer than ``limit`` bytes (``line_too_long``).

    Looks only at the first and last newline of each ``limit``-sized window (memory-mapped):
    a gap longer than ``limit`` must span a window boundary, so this is exact and touches a
    few pages per MiB.
    """
    size = path.stat().st_size
    if size <= limit:
        return
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        last_nl = -1  # offset of the last newline seen
        for start, end in _windows(size, limit):
            first = mm.find(b"\n", start, end)
            if first == -1:
                if end - last_nl - 1 > limit:
                    _too_long(mm, last_nl + 1, limit)
                continue
            if first - last_nl - 1 > limit:
                _too_long(mm, last_nl + 1, limit)
            last_nl = mm.rfind(b"\n", start, end)
        if size - last_nl - 1 > limit:
            _too_long(mm, last_nl + 1, limit)


def _too_long(mm: mmap.mmap, line_start: int, limit: int) -> None:
    row = 1
    for start, end in _windows(line_start, CHUNK):
        row += mm[start:end].count(b"\n")
    raise FileRejected(
        "line_too_long",
        f"line {row} (from byte offset {line_start}) is longer than {limit} bytes",
        row=row,
    )
