"""Pure inspection of media bytes and data URIs: type from magic numbers, image size from headers.

Nothing here touches files or the network; ``_media`` does the reading.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

import attrs

__all__ = ["DataURI", "MediaInfo", "base64_decoded_size", "parse_data_uri", "sniff", "sniff_base64_head"]


@attrs.frozen
class MediaInfo:
    """What the first bytes of a file say it is.

    Attributes:
        kind: ``"image"`` or ``"video"``.
        mime: The MIME type to put in a data URI.
        width: Pixel width, for images whose header was found.
        height: Pixel height, for images whose header was found.
    """

    kind: str
    mime: str
    width: int | None = None
    height: int | None = None


def sniff(head: bytes) -> MediaInfo | None:
    """Recognize PNG, JPEG, WebP, MP4, MOV and AVI from their first bytes (the more, the better
    the chance of finding a JPEG's size). Returns ``None`` for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(head)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return MediaInfo("video", "video/x-msvideo")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return MediaInfo("video", "video/quicktime" if brand == b"qt  " else "video/mp4")
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return MediaInfo("video", "video/quicktime")
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
