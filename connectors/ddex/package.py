"""Packaging and the batch choreography (DDEX ERN "batched" delivery over SFTP, S3 or a folder).

A batch is one folder named by its creation time (``20260115093000123``), holding one
subfolder per release named by UPC, each with the ERN message and its ``resources/``::

    20260115093000123/
        5063450000179/5063450000179.xml
        5063450000179/resources/5063450000179_01_001.flac
        5063450000179/resources/5063450000179.jpg
        ...
        BatchComplete_20260115093000123.xml      <- written last

Releases are first *staged* in a local folder (written under a hidden temporary name and
renamed, so a staged folder is always whole), then uploaded file by file through a
``connectors.drops.Drop`` (every ``put`` is itself atomic for readers: a temporary name, then a
rename). Resources go before the message, and the ``BatchComplete`` manifest only after every
file of every release has been uploaded: a DSP that waits for the manifest never sees half a
batch. A retried upload writes the same names again (same batch folder), never a new batch.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from connectors.ddex.qc import file_md5
from connectors.drops import Drop

MANIFEST_PREFIX = "BatchComplete_"
RESOURCES = "resources"


def batch_name(created: dt.datetime) -> str:
    """``YYYYMMDDhhmmssnnn`` (UTC, milliseconds), the DDEX batch folder convention."""
    utc = created.astimezone(dt.UTC)
    return utc.strftime("%Y%m%d%H%M%S") + f"{utc.microsecond // 1000:03d}"


def manifest_name(batch: str) -> str:
    return f"{MANIFEST_PREFIX}{batch}.xml"


def message_name(upc: str) -> str:
    return f"{upc}.xml"


def stage_release(
    out_root: Path, upc: str, message: bytes, resources: Sequence[tuple[Path, str]]
) -> Path:
    """Write ``out_root/<upc>/`` (message + ``resources/``) whole or not at all.

    ``resources`` are (source file, name inside ``resources/``). The folder is built under a
    hidden temporary name and renamed into place, replacing an older staging of the release.
    """
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / upc
    tmp = out_root / f".{upc}.{secrets.token_hex(4)}.tmp"
    try:
        (tmp / RESOURCES).mkdir(parents=True)
        for source, name in resources:
            if "/" in name or name.startswith("."):
                raise ValueError(f"resource name {name!r} must be a plain file name")
            shutil.copyfile(source, tmp / RESOURCES / name)
        (tmp / message_name(upc)).write_bytes(message)
        old = None
        if final.exists():
            old = out_root / f".{upc}.{secrets.token_hex(4)}.old"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def release_files(folder: Path) -> list[str]:
    """A staged release's files, relative and POSIX: resources first, the message last."""
    upc = folder.name
    resources = sorted(
        f"{RESOURCES}/{p.name}" for p in (folder / RESOURCES).iterdir() if p.is_file()
    )
    return [*resources, message_name(upc)]


@dataclass(frozen=True)
class ManifestEntry:
    upc: str
    message: str  # path inside the batch
    md5: str
    files: int


def manifest_xml(batch: str, entries: Sequence[ManifestEntry], created: dt.datetime) -> bytes:
    """The batch manifest: which release folders the batch holds and each message's MD5."""
    root = etree.Element("BatchComplete", BatchId=batch)
    etree.SubElement(root, "CreatedDateTime").text = created.isoformat(timespec="seconds")
    etree.SubElement(root, "NumberOfMessages").text = str(len(entries))
    for e in entries:
        m = etree.SubElement(root, "Message", ReleaseId=e.upc, NumberOfFiles=str(e.files))
        etree.SubElement(m, "URI").text = e.message
        etree.SubElement(m, "HashSum", Algorithm="MD5").text = e.md5
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def upload_batch(
    drop: Drop,
    batch: str,
    staged: Sequence[Path],
    *,
    created: dt.datetime,
    uploaded: Callable[[str], None] | None = None,
) -> str:
    """Upload every staged release folder into ``batch/``, then the manifest; returns the
    manifest's name. ``uploaded(upc)`` is called after each release's last file. Any error
    propagates before the manifest is written."""
    entries = []
    for folder in staged:
        upc = folder.name
        names = release_files(folder)
        for name in names:
            drop.put(f"{batch}/{upc}/{name}", folder / name)
        md5, _ = file_md5(folder / message_name(upc))
        entries.append(ManifestEntry(upc, f"{upc}/{message_name(upc)}", md5, len(names)))
        if uploaded is not None:
            uploaded(upc)
    name = manifest_name(batch)
    drop.put(f"{batch}/{name}", manifest_xml(batch, entries, created))
    return name
