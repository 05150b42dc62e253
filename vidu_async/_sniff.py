"""Pure inspection of media bytes and data URIs: type from magic numbers, image size from headers,
and whether a file is whole by its own structure.

Nothing here touches files or the network; ``_media`` and ``_download`` do the reading (the
completeness check is handed a ``read_at(offset, length)`` function and reads only headers and ends).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable
from typing import Final, TypeAlias

import attrs

__all__ = [
    "DataURI",
    "MediaInfo",
    "ReadAt",
    "base64_decoded_size",
    "describe",
    "parse_data_uri",
    "sniff",
    "sniff_base64_head",
    "why_incomplete",
]


@attrs.frozen
class MediaInfo:
    """What the first bytes of a file say it is.

    Attributes:
        kind: ``"image"``, ``"video"`` or ``"audio"``.
        mime: The MIME type to put in a data URI.
        width: Pixel width, for images whose header was found.
        height: Pixel height, for images whose header was found.
    """

    kind: str
    mime: str
    width: int | None = None
    height: int | None = None


def sniff(head: bytes) -> MediaInfo | None:
    """Recognize images (PNG, JPEG, WebP, BMP), videos (MP4, MOV, AVI) and audio (WAV, MP3, AAC,
    M4A, Ogg, FLAC, WMA) from their first bytes (the more, the better the chance of finding a
    JPEG's size). Returns ``None`` for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(head)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return MediaInfo("video", "video/x-msvideo")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return MediaInfo("audio", "audio/wav")
    if head[:2] == b"BM" and len(head) >= 26 and head[6:10] == b"\0\0\0\0":
        width, height = struct.unpack("<ii", head[18:26])
        return MediaInfo("image", "image/bmp", abs(width), abs(height))
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return MediaInfo("audio", "audio/mp4")
        return MediaInfo("video", "video/quicktime" if brand == b"qt  " else "video/mp4")
    audio = _audio(head)
    if audio is not None:
        return audio
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return MediaInfo("video", "video/quicktime")
    return None


#: ISO BMFF brands of audio-only files (``.m4a``, ``.m4b``).
_AUDIO_BRANDS: Final = frozenset({b"M4A ", b"M4B ", b"M4P "})
#: The ASF header object's GUID (WMA).
_ASF_GUID: Final = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def _audio(head: bytes) -> MediaInfo | None:
    if head.startswith(b"ID3"):
        return MediaInfo("audio", "audio/mpeg")
    if head.startswith(b"OggS"):
        return MediaInfo("audio", "audio/ogg")
    if head.startswith(b"fLaC"):
        return MediaInfo("audio", "audio/flac")
    if head.startswith(_ASF_GUID):
        return MediaInfo("audio", "audio/x-ms-wma")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0b11
        if layer == 0 and head[1] & 0xF6 == 0xF0:  # ADTS: MPEG-2/4 AAC, layer bits 00
            return MediaInfo("audio", "audio/aac")
        if layer != 0 and (head[1] >> 3) & 0b11 != 0b01:  # an MPEG audio frame (layer I-III)
            return MediaInfo("audio", "audio/mpeg")
    return None


def _png(head: bytes) -> MediaInfo:
    if len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return MediaInfo("image", "image/png", width, height)
    return MediaInfo("image", "image/png")


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(head: bytes) -> MediaInfo:
    pos = 2
    end = len(head)
    while pos + 4 <= end:
        if head[pos] != 0xFF:
            break
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 <= end:
                height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
                return MediaInfo("image", "image/jpeg", width, height)
            break
        if length < 2:
            break
        pos += 2 + length
    return MediaInfo("image", "image/jpeg")


def _webp(head: bytes) -> MediaInfo:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return MediaInfo("image", "image/webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return MediaInfo("image", "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return MediaInfo("image", "image/webp", width, height)
    return MediaInfo("image", "image/webp")


@attrs.frozen
class DataURI:
    """The parts of a ``data:`` URI that matter for validation (the data itself is not copied).

    Attributes:
        mime: The declared MIME type (may be empty).
        is_base64: Whether the data is base64 (Vidu requires it).
        data_start: Index in the URI where the data begins.
    """

    mime: str
    is_base64: bool
    data_start: int


_DATA_URI = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),", re.IGNORECASE)


def parse_data_uri(uri: str) -> DataURI | None:
    """Parse the header of a ``data:`` URI; ``None`` when it is not one."""
    match = _DATA_URI.match(uri)
    if match is None:
        return None
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    return DataURI(match["mime"].strip().lower(), "base64" in params, match.end())


def base64_decoded_size(text_length: int, tail: str = "") -> int:
    """The decoded size of ``text_length`` characters of base64 ending with ``tail``."""
    padding = len(tail) - len(tail.rstrip("="))
    return max(0, text_length * 3 // 4 - min(padding, 2))


def sniff_base64_head(uri: str, start: int, limit: int = 256 * 1024) -> MediaInfo | None:
    """Sniff the media inside a base64 data URI by decoding at most ``limit`` characters of it."""
    chunk = uri[start : start + limit]
    chunk = chunk[: len(chunk) - len(chunk) % 4]
    try:
        head = base64.b64decode(chunk, validate=False)
    except (binascii.Error, ValueError):
        return None
    return sniff(head)


# --- whole files -----------------------------------------------------------------------------------

#: ``read_at(offset, length)``: up to ``length`` bytes of a file from ``offset`` (fewer at its end).
ReadAt: TypeAlias = Callable[[int, int], bytes]

#: A top-level box walk gives up past this many boxes (a real movie has a handful, a fragmented
#: one a few per second of video), so a hostile file of empty boxes costs little to refuse.
MAX_BOXES: Final = 100_000
_PNG_END: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: no data, then its CRC


def why_incomplete(read_at: ReadAt, size: int) -> str | None:
    """Why a file of ``size`` bytes is not whole, judged by its own structure; ``None`` when it is.

    ISO BMFF (MP4, MOV): the top-level boxes, ``ftyp`` first, each with a printable four-letter
    type, add up exactly to the size (a box of size 0 runs to the end; size 1 has a 64-bit size),
    and include a ``moov`` and an ``mdat`` (so a file cut at a box boundary is caught too, and zero
    padding after the last box is not taken for a box running to the end; M4A audio too). JPEG ends
    with its FFD9 marker, PNG with its IEND chunk, WebP, AVI and WAV match their RIFF size. Anything else only has to be non-empty.
    Only box headers and a few bytes at each end are read, never the media data.
    """
    if size <= 0:
        return "the file is empty"
    head = read_at(0, 16)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if size >= 8 + 12 and read_at(size - 12, 12) == _PNG_END else "no IEND chunk at its end"
    if head.startswith(b"\xff\xd8\xff"):
        return None if size >= 5 and read_at(size - 2, 2) == b"\xff\xd9" else "no FFD9 end marker at its end"
    if head[:4] == b"RIFF" and len(head) >= 12:
        (declared,) = struct.unpack("<I", head[4:8])
        if declared + 8 != size:
            return f"its RIFF size says {declared + 8} bytes, the file has {size}"
        return None
    if head[:4] == b"RIFF":
        return "its RIFF header is cut short"
    info = sniff(head)
    if info is not None and info.mime in ("video/mp4", "video/quicktime", "audio/mp4"):
        return _bmff_problem(read_at, size)
    return None


def _bmff_problem(read_at: ReadAt, size: int) -> str | None:
    """Why the top-level boxes of an ISO BMFF file do not make a whole movie file, or ``None``."""
    pos = 0
    seen: set[bytes] = set()
    for count in range(MAX_BOXES + 1):
        if pos == size:
            break
        if count == MAX_BOXES:
            return f"more than {MAX_BOXES} top-level boxes"
        if size - pos < 8:
            return f"{size - pos} stray bytes after the last box, at byte {pos}"
        header = read_at(pos, 16)
        box_size, kind = struct.unpack(">I", header[:4])[0], header[4:8]
        if count == 0 and kind != b"ftyp":
            return f"its first box is {_box_name(kind)}, not 'ftyp'"
        if not all(0x20 <= c <= 0x7E for c in kind):  # top-level box types are printable four-letter codes
            return f"the bytes at {pos} are not a box (type {kind.hex()})"
        if box_size == 1:
            if len(header) < 16:
                return f"the box at byte {pos} is cut short in its header"
            (box_size,) = struct.unpack(">Q", header[8:16])
            if box_size < 16:
                return f"the box at byte {pos} declares an impossible size {box_size}"
        elif box_size == 0:
            box_size = size - pos
        elif box_size < 8:
            return f"the box at byte {pos} declares an impossible size {box_size}"
        if pos + box_size > size:
            return f"the {_box_name(kind)} box at byte {pos} runs {pos + box_size - size} bytes past the end"
        seen.add(kind)
        pos += box_size
    missing = [_box_name(kind) for kind in (b"moov", b"mdat") if kind not in seen]
    if missing:
        return f"no {' or '.join(missing)} box"
    return None


def _box_name(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))


def describe(head: bytes) -> str:
    """What the first bytes of a file look like, in words, for an error message ("an HTML page")."""
    info = sniff(head)
    if info is not None:
        return _MEDIA_NAMES.get(info.mime, f"a {info.kind} ({info.mime})")
    if not head:
        return "nothing (an empty body)"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if text.startswith((b"<?xml", b"<error")):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "a JSON document"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data"
    return f"unrecognized bytes (starting {head[:8].hex()})"


_MEDIA_NAMES: Final = {
    "video/mp4": "an MP4 video",
    "video/quicktime": "a QuickTime video",
    "video/x-msvideo": "an AVI video",
    "image/jpeg": "a JPEG image",
    "image/png": "a PNG image",
    "image/webp": "a WebP image",
    "image/bmp": "a BMP image",
    "audio/wav": "a WAV audio file",
    "audio/mpeg": "an MP3 audio file",
    "audio/aac": "an AAC audio file",
    "audio/mp4": "an M4A audio file",
    "audio/ogg": "an Ogg audio file",
    "audio/flac": "a FLAC audio file",
    "audio/x-ms-wma": "a WMA audio file",
}
