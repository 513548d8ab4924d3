"""Acknowledgements from DSPs: XML files in the delivery drop's ``acknowledgements/`` folder.

The layout follows the DDEX ECHO ``FtpAcknowledgementMessage`` (namespace ignored, elements
matched by local name)::

    <FtpAcknowledgementMessage>
      <MessageHeader><MessageId>ACK-1</MessageId>...</MessageHeader>
      <AcknowledgedFile>20260115093000123/5063450000179/5063450000179.xml</AcknowledgedFile>
      <FileStatus>FileOK</FileStatus>            (or ProcessingError, ResourceCorrupt, ...)
      <ErrorText>Artwork is not square</ErrorText>   (optional)
    </FtpAcknowledgementMessage>

One file may also hold several ``<Acknowledgement>`` groups of those three elements. Status
``FileOK`` (also ``Ingested``, ``Success``) means *ingested*; any other is a processing error
whose text is kept. Files are parsed with entity resolution, DTD loading and network access
off, and a file with any DOCTYPE is refused outright (``ack_dtd``): an ACK never needs one,
and refusing it rules out XML entity expansion and external entities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree  # type: ignore[import-untyped]

from connectors.ddex.validate import safe_parser

ACK_FOLDER = "acknowledgements"
OK_STATUSES = frozenset({"fileok", "ingested", "success", "ok"})
MAX_ACK_BYTES = 5 * 1024 * 1024


class AckError(ValueError):
    """An ACK file that cannot be used; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AckItem:
    message_path: str  # the acknowledged message, relative to the drop root
    status: Literal["ingested", "error"]
    raw_status: str
    text: str | None
    ack_message_id: str | None


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _child_text(el: etree._Element, name: str) -> str | None:
    for child in el.iter():
        if _local(child) == name:
            return (child.text or "").strip() or None
    return None


def parse_ack(data: bytes) -> list[AckItem]:
    """The acknowledgements in one file; AckError(code, reason) if it cannot be trusted."""
    if len(data) > MAX_ACK_BYTES:
        raise AckError("ack_too_large", f"ACK file is {len(data)} bytes (limit {MAX_ACK_BYTES})")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise AckError("ack_dtd", "ACK file declares a DTD or entities; refused")
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise AckError("ack_malformed", f"ACK file is not well-formed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise AckError("ack_dtd", "ACK file declares a DTD; refused")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise AckError("ack_dtd", "ACK file uses entity references; refused")
    message_id = None
    for el in root.iter():
        if _local(el) == "MessageHeader":
            message_id = _child_text(el, "MessageId")
            break
    groups = [el for el in root.iter() if _local(el) == "Acknowledgement"] or [root]
    items = []
    for group in groups:
        path = _child_text(group, "AcknowledgedFile")
        status = _child_text(group, "FileStatus")
        if not path or not status:
            raise AckError(
                "ack_incomplete", "an acknowledgement lacks AcknowledgedFile or FileStatus"
            )
        ok = status.casefold() in OK_STATUSES
        items.append(
            AckItem(
                message_path=path.lstrip("/"),
                status="ingested" if ok else "error",
                raw_status=status,
                text=_child_text(group, "ErrorText"),
                ack_message_id=message_id,
            )
        )
    return items


def ack_xml(message_path: str, status: str, text: str | None = None, *, ack_id: str) -> bytes:
    """An acknowledgement as a DSP would write it (the demo and the tests play the DSP)."""
    root = etree.Element("FtpAcknowledgementMessage")
    header = etree.SubElement(root, "MessageHeader")
    etree.SubElement(header, "MessageId").text = ack_id
    etree.SubElement(root, "AcknowledgedFile").text = message_path
    etree.SubElement(root, "FileStatus").text = status
    if text:
        etree.SubElement(root, "ErrorText").text = text
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
