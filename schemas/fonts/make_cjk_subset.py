"""Make the ``NotoSansCJKjp-*.otf`` slices from Noto Sans CJK (OFL), offline, once.

The whole Noto Sans CJK face is 16 MB of 65,000 glyphs, and the time fpdf2 takes to embed a
font grows with its glyph count (about 40 microseconds a glyph, in every statement that uses
it). So the characters statements need are cut, from the Japanese face (index 0 of
``NotoSansCJK-Regular.ttc``, e.g. from Debian's ``fonts-noto-cjk``), into slices, most used
first, and a statement embeds only the slices its text needs:

* ``Kana``: CJK punctuation, kana, half/full-width forms, enclosed and compatibility forms;
* ``Han1``: the common Han characters, JIS X 0208 level 1 and GB 2312 level 1 (5,000);
* ``Han2``: the other Han characters of JIS X 0208 (with the Windows extensions, cp932),
  GB 2312, Big5 level 1 and Korean hanja (KS X 1001): about 5,800 more;
* ``Hangul1``: the Hangul jamo and the 2,350 syllables of KS X 1001;
* ``Hangul2``: the other modern Hangul syllables (8,822).

A Han character outside these sets prints as ``?`` in a PDF (the XLSX, CSV and JSON keep it).
Han characters are drawn with Japanese glyph shapes (one face for all four languages).

    uv run --frozen python schemas/fonts/make_cjk_subset.py path/to/NotoSansCJK-Regular.ttc
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools.subset import Options, Subsetter
from fontTools.ttLib import TTFont

HERE = Path(__file__).parent
KANA_BLOCKS = [
    (0x3000, 0x30FF),  # CJK punctuation, hiragana, katakana
    (0x3190, 0x319F),  # kanbun
    (0x31F0, 0x31FF),  # katakana phonetic extensions
    (0x3200, 0x33FF),  # enclosed CJK letters, CJK compatibility
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half-width and full-width forms
]
JAMO_BLOCKS = [(0x1100, 0x11FF), (0x3130, 0x318F)]  # Hangul jamo, compatibility jamo


def _encoded(ch: str, codec: str) -> bytes:
    try:
        return ch.encode(codec)
    except UnicodeEncodeError:
        return b""


def _blocks(blocks: list[tuple[int, int]]) -> set[int]:
    return {c for start, end in blocks for c in range(start, end + 1)}


def slices() -> dict[str, set[int]]:
    """Slice name -> its code points (no code point in two slices)."""
    han1, han2 = set(), set()
    for c in range(0x4E00, 0xA000):
        ch = chr(c)
        jis, gb, big5 = (_encoded(ch, codec) for codec in ("cp932", "gb2312", "big5"))
        if b"\x88\x9f" <= jis <= b"\x98\x72" or b"\xb0\xa1" <= gb <= b"\xd7\xf9":
            han1.add(c)
        elif jis or gb or b"\x00" < big5 < b"\xc6\x7f" or _encoded(ch, "euc_kr"):
            han2.add(c)
    syllables = range(0xAC00, 0xD7A4)
    common = {c for c in syllables if len(_encoded(chr(c), "euc_kr")) == 2}  # KS X 1001
    return {
        "Kana": _blocks(KANA_BLOCKS),
        "Han1": han1,
        "Han2": han2,
        "Hangul1": _blocks(JAMO_BLOCKS) | common,
        "Hangul2": set(syllables) - common,
    }


def name_slice(font: TTFont, name: str) -> None:
    """The slice's own family, full and PostScript names (a PDF names each embedded font by
    them, so two slices in one statement are two fonts)."""
    table = font["name"]
    names = {
        1: f"Noto Sans CJK JP {name}",
        4: f"Noto Sans CJK JP {name}",
        6: f"NotoSansCJKjp-{name}-Regular",
        16: f"Noto Sans CJK JP {name}",
    }
    for record in list(table.names):
        if record.nameID in names:
            table.setName(
                names[record.nameID],
                record.nameID,
                record.platformID,
                record.platEncID,
                record.langID,
            )


def main(source: str) -> None:
    options = Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    for name, points in slices().items():
        font = TTFont(source, fontNumber=0)  # Noto Sans CJK JP
        subsetter = Subsetter(options)
        subsetter.populate(unicodes=points)
        subsetter.subset(font)
        name_slice(font, name)
        out = HERE / f"NotoSansCJKjp-{name}-Regular.otf"
        font.save(out)
        print(f"{out.name}: {len(points):,} characters, {out.stat().st_size:,} bytes")  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1])
