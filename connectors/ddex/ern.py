"""DDEX ERN 4.3 writer: ``NewReleaseMessage`` (a statement of truth) and ``PurgeReleaseMessage``.

The structure follows the official samples in ``schemas/ddex/ern-4.3/samples`` (``Audio``
profile): a party list (artists, contributors, the label), one ``SoundRecording`` per track
with its ISRC, P-line, technical details (file, MD5, codec, channels, sampling rate, bits) and
credits, one ``FrontCoverImage``, the main ``Release`` (UPC as ICPN) with a resource group in
track order, optionally one ``TrackRelease`` per track, and the deals. A release whose deals
were all withdrawn is sent without a ``DealList``: "no deal = no availability" (a takedown).

Element order matters in DDEX: every builder below writes children in XSD sequence order, and
``connectors.ddex.validate`` checks the result against the XSD.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from lxml import etree  # type: ignore[import-untyped]

from connectors.ddex.model import DealInfo, Header, ReleaseSnapshot, TrackInfo

NS = "http://ddex.net/xml/ern/43"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{NS} http://ddex.net/xml/ern/43/release-notification.xsd"
AVS_VERSION = "3"
WORLDWIDE = "Worldwide"

# schemas.store.models.ContributorRole -> DDEX ContributorRole (allowed-value-sets.xsd)
CONTRIBUTOR_ROLES = {
    "MainArtist": "Artist",
    "FeaturedArtist": "Artist",
    "Producer": "StudioProducer",
    "Composer": "Composer",
    "Lyricist": "Lyricist",
    "MixingEngineer": "MixingEngineer",
    "MasteringEngineer": "MasteringEngineer",
    "Remixer": "Remixer",
    "SessionMusician": "StudioMusician",
}
RELEASE_TYPES = {"Album": "Album", "EP": "EP", "Single": "Single", "Compilation": "Album"}
_YEAR = re.compile(r"^\s*(?:\(P\)|\(C\)|℗|©)?\s*(\d{4})\b")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def iso_duration(seconds: float) -> str:
    """``PT4M23S`` style (ISO 8601, as DDEX writes durations)."""
    whole = int(seconds)
    frac = seconds - whole
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s + frac:.3f}".rstrip("0").rstrip(".") if frac else str(s)
    return "PT" + (f"{h}H" if h else "") + f"{m}M{sec}S"


def _datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("message dates must be timezone-aware")
    return value.isoformat(timespec="seconds")


def _root(name: str) -> etree._Element:
    root = etree.Element(f"{{{NS}}}{name}", nsmap={"ern": NS, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", SCHEMA_LOCATION)
    return root


def _header(root: etree._Element, header: Header) -> None:
    h = _sub(root, "MessageHeader")
    _sub(h, "MessageThreadId", header.thread_id or header.message_id)
    _sub(h, "MessageId", header.message_id)
    for tag, party in (("MessageSender", header.sender), ("MessageRecipient", header.recipient)):
        p = _sub(h, tag)
        _sub(p, "PartyId", party.dpid)
        _sub(_sub(p, "PartyName"), "FullName", party.name)
    _sub(h, "MessageCreatedDateTime", _datetime(header.created))
    _sub(h, "MessageControlType", "TestMessage" if header.test else "LiveMessage")


def _line(parent: etree._Element, tag: str, text: str | None) -> None:
    if not text:
        return
    el = _sub(parent, tag)
    if m := _YEAR.match(text):
        _sub(el, "Year", m.group(1))
    _sub(el, f"{tag}Text", text)


class _Parties:
    """Party references by name, in order of first use (``P1``, ``P2``, ...)."""

    def __init__(self) -> None:
        self.refs: dict[str, str] = {}

    def ref(self, name: str) -> str:
        if name not in self.refs:
            self.refs[name] = f"P{len(self.refs) + 1}"
        return self.refs[name]

    def write(self, root: etree._Element) -> None:
        plist = _sub(root, "PartyList")
        for name, ref in self.refs.items():
            party = _sub(plist, "Party")
            _sub(party, "PartyReference", ref)
            _sub(_sub(party, "PartyName"), "FullName", name)


def _display_artist(parent: etree._Element, party: str, role: str, seq: int) -> None:
    da = _sub(parent, "DisplayArtist", SequenceNumber=str(seq))
    _sub(da, "ArtistPartyReference", party)
    _sub(da, "DisplayArtistRole", role)


def _track_title(track: TrackInfo) -> str:
    return f"{track.title} ({track.version})" if track.version else track.title


def _sound_recording(
    resources: etree._Element,
    track: TrackInfo,
    n: int,
    parties: _Parties,
    p_line: str | None,
) -> None:
    sr = _sub(resources, "SoundRecording")
    _sub(sr, "ResourceReference", f"A{n}")
    _sub(sr, "Type", "MusicalWorkSoundRecording")
    edition = _sub(sr, "SoundRecordingEdition")
    _sub(_sub(edition, "ResourceId"), "ISRC", track.isrc)
    _line(edition, "PLine", p_line)
    if track.audio is not None:
        a = track.audio
        tech = _sub(edition, "TechnicalDetails")
        _sub(tech, "TechnicalResourceDetailsReference", f"T{n}")
        f = _sub(tech, "DeliveryFile")
        _sub(f, "Type", "AudioFile")
        if a.container == "WAV":
            _sub(f, "ContainerFormat", "WAV")
        _sub(f, "AudioCodecType", a.codec)
        _sub(f, "NumberOfChannels", str(a.channels))
        _sub(f, "SamplingRate", f"{a.sample_rate / 1000:g}", UnitOfMeasure="kHz")
        _sub(f, "BitsPerSample", str(a.bits_per_sample))
        _sub(f, "Duration", iso_duration(a.duration_seconds))
        _file(f, a.uri, a.md5, a.size)
    _sub(sr, "DisplayTitleText", _track_title(track))
    title = _sub(sr, "DisplayTitle", ApplicableTerritoryCode=WORLDWIDE, IsDefault="true")
    _sub(title, "TitleText", track.title)
    if track.version:
        _sub(title, "SubTitle", track.version)
    _sub(
        sr,
        "DisplayArtistName",
        track.artist,
        ApplicableTerritoryCode=WORLDWIDE,
        IsDefault="true",
    )
    _display_artist(sr, parties.ref(track.artist), "MainArtist", 1)
    featured = [c for c in track.credits if c.role == "FeaturedArtist" and c.name != track.artist]
    for seq, credit in enumerate(featured, start=2):
        _display_artist(sr, parties.ref(credit.name), "FeaturedArtist", seq)
    seq = 0
    for credit in track.credits:
        role = CONTRIBUTOR_ROLES.get(credit.role)
        if role is None or (credit.role == "MainArtist" and credit.name == track.artist):
            continue
        seq += 1
        c = _sub(sr, "Contributor", SequenceNumber=str(seq))
        _sub(c, "ContributorPartyReference", parties.ref(credit.name))
        _sub(c, "Role", role)
    _sub(sr, "Duration", iso_duration(track.duration_seconds))
    _sub(sr, "ParentalWarningType", "Explicit" if track.explicit else "NotExplicit")


def _file(parent: etree._Element, uri: str, md5: str, size: int) -> None:
    f = _sub(parent, "File")
    _sub(f, "URI", uri)
    hs = _sub(f, "HashSum")
    _sub(hs, "Algorithm", "MD5")
    _sub(hs, "HashSumValue", md5)
    _sub(f, "FileSize", str(size))


def _image(resources: etree._Element, release: ReleaseSnapshot, ref: str, namespace: str) -> None:
    cover = release.cover
    img = _sub(resources, "Image")
    _sub(img, "ResourceReference", ref)
    _sub(img, "Type", "FrontCoverImage")
    _sub(_sub(img, "ResourceId"), "ProprietaryId", f"{release.upc}_cover", Namespace=namespace)
    _line(img, "CLine", release.c_line)
    if cover is not None:
        tech = _sub(img, "TechnicalDetails")
        _sub(tech, "TechnicalResourceDetailsReference", f"T{ref[1:]}")
        _sub(tech, "ImageCodecType", cover.codec)
        _sub(tech, "ImageHeight", str(cover.height), UnitOfMeasure="Pixel")
        _sub(tech, "ImageWidth", str(cover.width), UnitOfMeasure="Pixel")
        _file(tech, cover.uri, cover.md5, cover.size)


def _deal_terms(deal_el: etree._Element, deal: DealInfo) -> None:
    terms = _sub(deal_el, "DealTerms")
    if deal.excluded:
        for code in deal.excluded:
            _sub(terms, "ExcludedTerritoryCode", code)
    else:
        for code in deal.territories:
            _sub(terms, "TerritoryCode", code)
    period = _sub(terms, "ValidityPeriod")
    _sub(period, "StartDate", deal.start.isoformat())
    if deal.end is not None:
        _sub(period, "EndDate", deal.end.isoformat())
    _sub(terms, "CommercialModelType", deal.commercial_model)
    for use in deal.use_types:
        _sub(terms, "UseType", use)
    if deal.preorder:
        _sub(terms, "IsPreOrderDeal", "true")


def _release_deal(deals: etree._Element, refs: Iterable[str], items: Iterable[DealInfo]) -> None:
    rd = _sub(deals, "ReleaseDeal")
    for ref in refs:
        _sub(rd, "DealReleaseReference", ref)
    for deal in items:
        _deal_terms(_sub(rd, "Deal"), deal)


def build_new_release(
    header: Header, release: ReleaseSnapshot, *, track_releases: bool = False
) -> bytes:
    """A ``NewReleaseMessage`` for one release (UTF-8 bytes with an XML declaration)."""
    root = _root("NewReleaseMessage")
    root.set("ReleaseProfileVersionId", "Audio")
    root.set("LanguageAndScriptCode", "en")
    root.set("AvsVersionId", AVS_VERSION)
    _header(root, header)
    parties = _Parties()
    namespace = header.sender.dpid
    tracks = sorted(release.tracks, key=lambda t: (t.disc_number, t.track_number))
    # Party references are allocated while resources are written; the PartyList goes first.
    resources = etree.Element("ResourceList")
    for n, track in enumerate(tracks, start=1):
        _sound_recording(resources, track, n, parties, release.p_line)
    image_ref = f"A{len(tracks) + 1}"
    _image(resources, release, image_ref, namespace)
    artist_ref = parties.ref(release.artist)
    label_ref = parties.ref(release.label)
    parties.write(root)
    root.append(resources)

    rlist = _sub(root, "ReleaseList")
    rel = _sub(rlist, "Release")
    _sub(rel, "ReleaseReference", "R0")
    _sub(rel, "ReleaseType", RELEASE_TYPES.get(release.release_type, "Album"))
    _sub(_sub(rel, "ReleaseId"), "ICPN", release.upc)
    _sub(rel, "DisplayTitleText", release.title)
    title = _sub(rel, "DisplayTitle", ApplicableTerritoryCode=WORLDWIDE, IsDefault="true")
    _sub(title, "TitleText", release.title)
    _sub(
        rel,
        "DisplayArtistName",
        release.artist,
        ApplicableTerritoryCode=WORLDWIDE,
        IsDefault="true",
    )
    _display_artist(rel, artist_ref, "MainArtist", 1)
    _sub(rel, "ReleaseLabelReference", label_ref, ApplicableTerritoryCode=WORLDWIDE)
    _line(rel, "PLine", release.p_line)
    _line(rel, "CLine", release.c_line)
    _sub(rel, "Duration", iso_duration(sum(t.duration_seconds for t in tracks)))
    genre = _sub(rel, "Genre", ApplicableTerritoryCode=WORLDWIDE)
    _sub(genre, "GenreText", release.genre or "")
    _sub(rel, "ReleaseDate", release.release_date.isoformat())
    _sub(rel, "OriginalReleaseDate", release.release_date.isoformat())
    explicit = any(t.explicit for t in tracks)
    _sub(rel, "ParentalWarningType", "Explicit" if explicit else "NotExplicit")
    if release.release_type == "Compilation":
        _sub(rel, "IsMultiArtistCompilation", "true")
    group = _sub(rel, "ResourceGroup")
    _sub(group, "SequenceNumber", "1")
    for n, _track in enumerate(tracks, start=1):
        item = _sub(group, "ResourceGroupContentItem")
        _sub(item, "SequenceNumber", str(n))
        _sub(item, "ReleaseResourceReference", f"A{n}")
    _sub(group, "LinkedReleaseResourceReference", image_ref)

    track_refs: list[str] = []
    if track_releases:
        for n, track in enumerate(tracks, start=1):
            ref = f"R{n}"
            track_refs.append(ref)
            tr = _sub(rlist, "TrackRelease")
            _sub(tr, "ReleaseReference", ref)
            rid = _sub(tr, "ReleaseId")
            _sub(rid, "ProprietaryId", f"{release.upc}_{track.isrc}", Namespace=namespace)
            _sub(tr, "ReleaseResourceReference", f"A{n}")
            _sub(tr, "ReleaseLabelReference", label_ref, ApplicableTerritoryCode=WORLDWIDE)
            g = _sub(tr, "Genre", ApplicableTerritoryCode=WORLDWIDE)
            _sub(g, "GenreText", release.genre or "")

    if release.deals:
        deals = _sub(root, "DealList")
        _release_deal(deals, ["R0"], release.deals)
        if track_refs:
            _release_deal(deals, track_refs, [d for d in release.deals if not d.preorder])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_purge_release(header: Header, release: ReleaseSnapshot) -> bytes:
    """A ``PurgeReleaseMessage``: permanent removal of the release (by UPC) from the DSP."""
    root = _root("PurgeReleaseMessage")
    root.set("LanguageAndScriptCode", "en")
    root.set("AvsVersionId", AVS_VERSION)
    _header(root, header)
    purged = _sub(root, "PurgedRelease")
    _sub(_sub(purged, "ReleaseId"), "ICPN", release.upc)
    _sub(_sub(purged, "Title"), "TitleText", release.title)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
