"""Validation of ERN 4.3 messages: the official XSD (lxml) plus what the XSD cannot see.

The XSD accepts ``<ISRC></ISRC>``, a UPC with a wrong check digit, a DPID of any shape and a
``DealReleaseReference`` that names no release. :func:`extra_checks` catches those: every
ISRC, ICPN and DPID is validated with ``schemas.identifiers``, every reference must point at
something the message defines, and every definition must be unique.

Every parse here has entity resolution, DTD loading and network access off.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from connectors.ddex.model import Problem
from schemas import identifiers

XSD_DIR = Path(__file__).resolve().parents[2] / "schemas" / "ddex" / "ern-4.3"
XSD_PATH = XSD_DIR / "release-notification.xsd"

# reference element -> the kind of anchor it must point at
_ANCHORS = {
    "PartyReference": "party",
    "ResourceReference": "resource",
    "ReleaseReference": "release",
    "TechnicalResourceDetailsReference": "technical",
}
_USES = {
    "ArtistPartyReference": "party",
    "ContributorPartyReference": "party",
    "ReleaseLabelReference": "party",
    "ReleaseResourceReference": "resource",
    "LinkedReleaseResourceReference": "resource",
    "DealReleaseReference": "release",
}


def safe_parser(**kwargs: bool) -> etree.XMLParser:
    """An XML parser that never resolves entities, loads a DTD or touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        **kwargs,
    )


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The ERN 4.3 schema, compiled once per process (it imports allowed-value-sets.xsd)."""
    doc = etree.parse(str(XSD_PATH), safe_parser())
    return etree.XMLSchema(doc)


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, safe_parser(remove_blank_text=False))


def xsd_problems(root: etree._Element) -> list[Problem]:
    s = schema()
    if s.validate(root):
        return []
    return [
        Problem("xsd_invalid", f"line {e.line}", _short(e.message.replace(f"{{{_ns(root)}}}", "")))
        for e in s.error_log
    ]


def _short(message: str, limit: int = 300) -> str:
    """XSD enumeration errors list every allowed value: keep the reason readable."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _ns(root: etree._Element) -> str:
    return etree.QName(root).namespace or ""


def _path(el: etree._Element) -> str:
    parts = []
    node: etree._Element | None = el
    while node is not None:
        parts.append(etree.QName(node).localname)
        node = node.getparent()
    return "/".join(reversed(parts))


def extra_checks(root: etree._Element) -> list[Problem]:
    """Identifiers and references, which the XSD leaves to the sender."""
    problems: list[Problem] = []
    for el in root.iter("ISRC"):
        value = el.text or ""
        if not identifiers.is_valid_isrc(value) or identifiers.normalise_isrc(value) != value:
            problems.append(Problem("invalid_isrc", _path(el), f"ISRC {el.text!r} is not valid"))
    for el in root.iter("ICPN"):
        value = el.text or ""
        if not identifiers.is_valid_gtin(value) or identifiers.normalise_gtin(value) != value:
            problems.append(
                Problem("invalid_upc", _path(el), f"ICPN (UPC/EAN) {el.text!r} is not valid")
            )
    dpids = [el for tag in ("PartyId", "DPID") for el in root.iter(tag)]
    for el in dpids:
        if len(el):  # a DetailedPartyId with children: its DPID child is checked itself
            continue
        value = (el.text or "").strip()
        if not identifiers.is_valid_dpid(value):
            problems.append(Problem("invalid_dpid", _path(el), f"DPID {el.text!r} is not valid"))
        elif not identifiers.dpid_check_ok(value):
            problems.append(
                Problem(
                    "dpid_check_character",
                    _path(el),
                    f"DPID {value!r}: the Mod 37,36 check character does not hold",
                    "warning",
                )
            )
    for el in root.iter("ProprietaryId"):
        if not (el.get("Namespace") or "").strip() or not (el.text or "").strip():
            problems.append(Problem("empty_identifier", _path(el), "empty ProprietaryId"))

    defined: dict[str, set[str]] = {kind: set() for kind in _ANCHORS.values()}
    for tag, kind in _ANCHORS.items():
        for el in root.iter(tag):
            if el.getparent() is not None and etree.QName(el.getparent()).localname == "Deal":
                continue
            value = (el.text or "").strip()
            if value in defined[kind]:
                problems.append(
                    Problem("duplicate_reference", _path(el), f"{tag} {value!r} defined twice")
                )
            defined[kind].add(value)
    for tag, kind in _USES.items():
        for el in root.iter(tag):
            value = (el.text or "").strip()
            if value not in defined[kind]:
                problems.append(
                    Problem(
                        "dangling_reference",
                        _path(el),
                        f"{tag} {value!r} points at no {kind} in the message",
                    )
                )
    return problems


def validate_message(xml: bytes) -> list[Problem]:
    """Every problem of one ERN message: XSD errors, then identifier and reference checks."""
    try:
        root = parse(xml)
    except etree.XMLSyntaxError as exc:
        return [Problem("malformed_xml", f"line {exc.lineno}", str(exc))]
    return xsd_problems(root) + extra_checks(root)
