"""Media sniffing: type from magic numbers, image size from headers, data URI parsing.

The builders at the top make tiny but well-formed files in memory; ``test_models`` and
``test_properties`` import them too, so no binary test data is shipped.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest

from vidu_async import _sniff
from vidu_async._sniff import MediaInfo, base64_decoded_size, parse_data_uri, sniff, sniff_base64_head

ASSETS = Path(__file__).parent.parent / "vidu_async" / "emulator" / "assets"


# --- builders --------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int, height: int) -> bytes:
    """A complete, decodable 8-bit greyscale PNG (IHDR written by hand, IDAT with zlib)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\x00" + b"\x80" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _sof(marker: int, width: int, height: int) -> bytes:
    # precision 8, height, width, one component (id 1, no subsampling, quant table 0)
    return _segment(marker, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")


def make_jpeg_header(width: int, height: int, *, marker: int = 0xC0, exif: bytes = b"") -> bytes:
    """SOI, APP0 (JFIF), optional APP1, a DQT and a start-of-frame: enough for sniffing."""
    app0 = _segment(0xE0, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00")
    app1 = _segment(0xE1, b"Exif\x00\x00" + exif) if exif else b""
    dqt = _segment(0xDB, b"\x00" + bytes([1] * 64))
    return b"\xff\xd8" + app0 + app1 + dqt + _sof(marker, width, height)


def make_jpeg(width: int, height: int) -> bytes:
    """A real baseline greyscale JPEG: every 8x8 block is flat grey (DC difference 0, then EOB).

    Both Huffman tables hold a single one-bit code, so each block is the two bits ``00``.
    """
    dht_dc = _segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # class 0, id 0: symbol 0 (DC cat 0)
    dht_ac = _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")  # class 1, id 0: symbol 0x00 (EOB)
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = 2 * blocks
    data = bytearray(b"\x00" * (bits // 8))
    if bits % 8:
        data.append((1 << (8 - bits % 8)) - 1)  # pad the last byte with 1-bits
    return make_jpeg_header(width, height) + dht_dc + dht_ac + sos + bytes(data) + b"\xff\xd9"


def _riff(form: bytes, body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + form + body


def make_webp_vp8(width: int, height: int) -> bytes:
    frame = b"\x30\x01\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8
    return _riff(b"WEBP", b"VP8 " + struct.pack("<I", len(frame)) + frame)


def make_webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    frame = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 4
    return _riff(b"WEBP", b"VP8L" + struct.pack("<I", len(frame)) + frame)


def make_webp_vp8x(width: int, height: int) -> bytes:
    frame = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff(b"WEBP", b"VP8X" + struct.pack("<I", len(frame)) + frame)


def make_mp4(brand: bytes = b"isom") -> bytes:
    ftyp = b"ftyp" + brand + b"\x00\x00\x02\x00" + b"isomiso2mp41"
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + b"\x00\x00\x00\x08free"


def make_mov() -> bytes:
    return make_mp4(b"qt  ")


def make_avi() -> bytes:
    return _riff(b"AVI ", b"LIST" + struct.pack("<I", 4) + b"hdrl")


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# --- tests -----------------------------------------------------------------------------------------


class TestSniffImages:
    """Images are recognized from their first bytes, with their size where the header gives it."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            pytest.param(make_png(300, 200), MediaInfo("image", "image/png", 300, 200), id="png"),
            pytest.param(make_png(1, 65535), MediaInfo("image", "image/png", 1, 65535), id="png-tall"),
            pytest.param(make_jpeg(640, 360), MediaInfo("image", "image/jpeg", 640, 360), id="jpeg-baseline"),
            pytest.param(
                make_jpeg_header(200, 100, marker=0xC2),
                MediaInfo("image", "image/jpeg", 200, 100),
                id="jpeg-progressive-sof2",
            ),
            pytest.param(
                make_jpeg_header(1024, 768, exif=b"\x00" * 5000),
                MediaInfo("image", "image/jpeg", 1024, 768),
                id="jpeg-after-exif",
            ),
            pytest.param(make_webp_vp8(320, 240), MediaInfo("image", "image/webp", 320, 240), id="webp-vp8"),
            pytest.param(
                make_webp_vp8l(129, 16383), MediaInfo("image", "image/webp", 129, 16383), id="webp-vp8l"
            ),
            pytest.param(
                make_webp_vp8x(16777216, 1), MediaInfo("image", "image/webp", 16777216, 1), id="webp-vp8x"
            ),
        ],
    )
    def test_kind_mime_and_size(self, data: bytes, expected: MediaInfo) -> None:
        """Each format gives kind, MIME type, width and height."""
        assert sniff(data) == expected

    def test_vp8_scale_bits_are_ignored(self) -> None:
        """The top two bits of a VP8 dimension are a scale, not part of the size."""
        data = bytearray(make_webp_vp8(320, 240))
        data[27] |= 0xC0
        data[29] |= 0x40
        assert sniff(bytes(data)) == MediaInfo("image", "image/webp", 320, 240)

    def test_real_jpeg_asset(self) -> None:
        """The emulator's cover (an ffmpeg baseline JPEG, 160x90) is read correctly."""
        assert sniff((ASSETS / "cover.jpg").read_bytes()) == MediaInfo("image", "image/jpeg", 160, 90)

    def test_jpeg_fill_bytes_before_a_marker(self) -> None:
        """Fill bytes (0xFF) between segments are skipped."""
        header = make_jpeg_header(300, 400)
        sof_at = header.rindex(b"\xff\xc0")
        padded = header[:sof_at] + b"\xff\xff\xff" + header[sof_at:]
        assert sniff(padded) == MediaInfo("image", "image/jpeg", 300, 400)

    @pytest.mark.parametrize("marker", [0xC4, 0xC8, 0xCC], ids=["dht", "jpg", "dac"])
    def test_non_frame_markers_in_sof_range_are_skipped(self, marker: int) -> None:
        """DHT, JPG and DAC share the C0-CF range but carry no frame size."""
        fake = _segment(marker, b"\x00\x11\x22\x33\x44\x55\x66")
        header = make_jpeg_header(500, 250)
        sof_at = header.rindex(b"\xff\xc0")
        assert sniff(header[:sof_at] + fake + header[sof_at:]) == MediaInfo("image", "image/jpeg", 500, 250)

    @pytest.mark.parametrize(
        ("data", "mime"),
        [
            pytest.param(make_png(300, 200)[:16], "image/png", id="png-no-ihdr"),
            pytest.param(make_jpeg_header(300, 200)[:30], "image/jpeg", id="jpeg-truncated"),
            pytest.param(b"\xff\xd8\xff\xe0\x00\x01", "image/jpeg", id="jpeg-bad-length"),
            pytest.param(make_webp_vp8(300, 200)[:24], "image/webp", id="webp-truncated"),
            pytest.param(_riff(b"WEBP", b"ALPH\x00\x00\x00\x00"), "image/webp", id="webp-unknown-chunk"),
        ],
    )
    def test_truncated_header_gives_type_without_size(self, data: bytes, mime: str) -> None:
        """A recognizable but truncated header still gives the type, with no size."""
        assert sniff(data) == MediaInfo("image", mime)


class TestSniffVideos:
    """Videos are recognized by container; their size is never guessed."""

    @pytest.mark.parametrize(
        ("data", "mime"),
        [
            pytest.param(make_mp4(), "video/mp4", id="mp4-isom"),
            pytest.param(make_mp4(b"mp42"), "video/mp4", id="mp4-mp42"),
            pytest.param(make_mov(), "video/quicktime", id="mov-qt"),
            pytest.param(b"\x00\x00\x00\x08wide\x00\x00\x00\x08mdat", "video/quicktime", id="mov-no-ftyp"),
            pytest.param(make_avi(), "video/x-msvideo", id="avi"),
            pytest.param((ASSETS / "sample.mp4").read_bytes(), "video/mp4", id="real-mp4"),
        ],
    )
    def test_containers(self, data: bytes, mime: str) -> None:
        """MP4, MOV and AVI are videos with the right MIME type."""
        assert sniff(data) == MediaInfo("video", mime)


class TestSniffUnknown:
    """Anything else is not recognized."""

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"", id="empty"),
            pytest.param(b"GIF89a\x01\x00\x01\x00", id="gif"),
            pytest.param(b"%PDF-1.7\n", id="pdf"),
            pytest.param(b"\x89PNG", id="png-signature-cut"),
            pytest.param(b"hello world", id="text"),
        ],
    )
    def test_returns_none(self, data: bytes) -> None:
        """GIF, PDF, text and cut signatures give ``None``."""
        assert sniff(data) is None


class TestSniffAudio:
    """Audio inputs (lip-sync, voice cloning) and outputs (text2audio) are recognized."""

    @pytest.mark.parametrize(
        ("data", "mime"),
        [
            pytest.param(b"ID3\x03\x00\x00\x00", "audio/mpeg", id="mp3-id3"),
            pytest.param(b"\xff\xfb\x90\x64", "audio/mpeg", id="mp3-frame"),
            pytest.param(b"\xff\xf1\x50\x80", "audio/aac", id="aac-adts"),
            pytest.param(_riff(b"WAVE", b"fmt "), "audio/wav", id="wav"),
            pytest.param(b"OggS\x00\x02", "audio/ogg", id="ogg"),
            pytest.param(b"fLaC\x00\x00\x00\x22", "audio/flac", id="flac"),
            pytest.param(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4", id="m4a"),
        ],
    )
    def test_recognized(self, data: bytes, mime: str) -> None:
        info = sniff(data)
        assert info is not None
        assert (info.kind, info.mime) == ("audio", mime)

    def test_bmp_image_with_its_size(self) -> None:
        """BMP (image2dance takes it) is an image, with its size read from the header."""
        header = b"BM" + (70).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
        header += (
            (40).to_bytes(4, "little")
            + (300).to_bytes(4, "little")
            + (-200).to_bytes(4, "little", signed=True)
        )
        info = sniff(header)
        assert info is not None
        assert (info.kind, info.mime, info.width, info.height) == ("image", "image/bmp", 300, 200)


class TestDataURI:
    """The header of a data URI is parsed without copying the data."""

    @pytest.mark.parametrize(
        ("uri", "expected"),
        [
            pytest.param("data:image/png;base64,AAAA", _sniff.DataURI("image/png", True, 22), id="png"),
            pytest.param("DATA:Image/JPEG;BASE64,AAAA", _sniff.DataURI("image/jpeg", True, 23), id="upper"),
            pytest.param("data:;base64,AAAA", _sniff.DataURI("", True, 13), id="no-mime"),
            pytest.param(
                "data:image/png;name=a.png;base64,AA", _sniff.DataURI("image/png", True, 33), id="params"
            ),
            pytest.param("data:image/png,rawbytes", _sniff.DataURI("image/png", False, 15), id="not-base64"),
            pytest.param(
                "data:text/plain;charset=base64,x", _sniff.DataURI("text/plain", False, 31), id="tricky"
            ),
        ],
    )
    def test_parse(self, uri: str, expected: _sniff.DataURI) -> None:
        """MIME type (lower-cased), whether it is base64, and where the data starts."""
        assert parse_data_uri(uri) == expected

    @pytest.mark.parametrize(
        "uri",
        [
            pytest.param("https://example.com/a.png", id="url"),
            pytest.param("data:image/png;base64", id="no-comma"),
            pytest.param("image/png;base64,AAAA", id="no-scheme"),
            pytest.param(" data:image/png;base64,AAAA", id="leading-space"),
        ],
    )
    def test_not_a_data_uri(self, uri: str) -> None:
        """Anything without the ``data:...,`` header is not a data URI."""
        assert parse_data_uri(uri) is None

    @pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 100, 1001])
    def test_decoded_size_matches_base64(self, size: int) -> None:
        """The decoded size computed from length and padding equals the real decoded length."""
        text = base64.b64encode(b"x" * size).decode("ascii")
        assert base64_decoded_size(len(text), text[-2:]) == size

    def test_sniff_inside_data_uri(self) -> None:
        """The head of a data URI is decoded and sniffed."""
        uri = data_uri(make_png(200, 300))
        start = parse_data_uri(uri)
        assert start is not None
        assert sniff_base64_head(uri, start.data_start) == MediaInfo("image", "image/png", 200, 300)

    def test_sniff_inside_data_uri_reads_only_the_head(self) -> None:
        """Only the first ``limit`` characters are decoded, so a big URI costs little."""
        uri = data_uri(make_jpeg_header(800, 600) + b"\x00" * 300_000, "image/jpeg")
        assert sniff_base64_head(uri, uri.index(",") + 1, limit=1024) == MediaInfo(
            "image", "image/jpeg", 800, 600
        )

    def test_sniff_garbage_data_uri(self) -> None:
        """Data that is not base64 sniffs as nothing, without raising."""
        assert sniff_base64_head("data:image/png;base64,!!!!****", 22) is None


# --- whole files -----------------------------------------------------------------------------------


class Reader:
    """``read_at`` over bytes in memory, counting what was read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.bytes_read = 0
        self.reads = 0

    def __call__(self, offset: int, length: int) -> bytes:
        chunk = self.data[offset : offset + length]
        self.bytes_read += len(chunk)
        self.reads += 1
        return chunk


def incomplete(data: bytes) -> str | None:
    return _sniff.why_incomplete(Reader(data), len(data))


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def make_movie(brand: bytes = b"isom", media: bytes = b"\x01" * 100) -> bytes:
    """``ftyp``, ``moov`` and ``mdat``: the boxes every self-contained movie file has."""
    return make_mp4(brand) + box(b"moov", b"\x00" * 40) + box(b"mdat", media)


SAMPLE_MP4 = (ASSETS / "sample.mp4").read_bytes()
COVER_JPG = (ASSETS / "cover.jpg").read_bytes()
FTYP = make_mp4()[: struct.unpack(">I", make_mp4()[:4])[0]]


class TestWholeMedia:
    """A file is whole by its own structure: ISO BMFF boxes add up (``ftyp`` first, with a ``moov``
    and an ``mdat``), JPEG ends with FFD9, PNG with IEND, WebP and AVI match their RIFF size; anything
    else only has to be non-empty."""

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(SAMPLE_MP4, id="real-mp4"),
            pytest.param(make_movie(), id="mp4"),
            pytest.param(make_movie(b"qt  "), id="mov"),
            pytest.param(FTYP + box(b"mdat", b"\x01" * 30) + box(b"moov", b""), id="moov-last"),
            pytest.param(
                make_mp4() + box(b"moov", b"") + struct.pack(">I", 0) + b"mdat" + b"\x01" * 100,
                id="mdat-to-the-end",
            ),
            pytest.param(
                make_mp4()
                + box(b"moov", b"")
                + struct.pack(">I", 1)
                + b"mdat"
                + struct.pack(">Q", 16 + 50)
                + b"\x02" * 50,
                id="largesize",
            ),
            pytest.param(
                FTYP + box(b"moov", b"") + (box(b"moof", b"\x00" * 8) + box(b"mdat", b"\x03" * 20)) * 3,
                id="fragmented",
            ),
            pytest.param(COVER_JPG, id="real-jpeg"),
            pytest.param(make_jpeg(64, 32), id="jpeg"),
            pytest.param(make_png(3, 2), id="png"),
            pytest.param(make_webp_vp8(320, 240), id="webp"),
            pytest.param(make_avi(), id="avi"),
            pytest.param(b"GIF89a\x01\x00\x01\x00", id="other-non-empty"),
        ],
    )
    def test_whole(self, data: bytes) -> None:
        """Whole files of each kind pass."""
        assert incomplete(data) is None

    @pytest.mark.parametrize(
        "data",
        [
            SAMPLE_MP4,
            make_movie(),
            FTYP + box(b"mdat", b"\x01" * 30) + box(b"moov", b""),
            make_jpeg(64, 32),
            COVER_JPG,
            make_png(3, 2),
            make_webp_vp8(320, 240),
            make_avi(),
        ],
        ids=["real-mp4", "mp4", "moov-last", "jpeg", "real-jpeg", "png", "webp", "avi"],
    )
    def test_every_truncation_is_caught(self, data: bytes) -> None:
        """Cut anywhere after its signature (box boundaries included), each file is reported as not
        whole. (Fewer bytes than the signature are not recognized as the kind at all: the downloader's
        kind check refuses those.)"""
        for cut in range(12, len(data)):
            assert incomplete(data[:cut]) is not None, cut

    @pytest.mark.parametrize(
        ("data", "words"),
        [
            pytest.param(b"", "empty", id="empty"),
            pytest.param(SAMPLE_MP4 + b"\x00" * 3, "box", id="mp4-trailing-bytes"),
            pytest.param(SAMPLE_MP4 + b"\x00" * 16, "box", id="mp4-zero-padding"),
            pytest.param(
                make_movie() + b"\x00\x00\x00\x10\xff\xfe\x00\x01" + b"\x00" * 8, "box", id="not-a-type"
            ),
            pytest.param(box(b"moov", b"") + make_movie(), "ftyp", id="ftyp-not-first"),
            pytest.param(make_mp4() + box(b"mdat", b""), "moov", id="no-moov"),
            pytest.param(make_mp4() + box(b"moov", b""), "mdat", id="no-mdat"),
            pytest.param(make_movie() + struct.pack(">I", 4) + b"free", "box", id="box-size-below-8"),
            pytest.param(
                make_movie() + struct.pack(">I", 1) + b"free" + struct.pack(">Q", 8),
                "box",
                id="largesize-below-16",
            ),
            pytest.param(
                make_movie() + struct.pack(">I", 1) + b"free" + struct.pack(">Q", 10**9) + b"\x00" * 10,
                "box",
                id="largesize-past-the-end",
            ),
            pytest.param(make_jpeg(64, 32) + b"\x00", "FFD9", id="jpeg-trailing-byte"),
            pytest.param(make_png(3, 2) + b"\x00", "IEND", id="png-trailing-byte"),
            pytest.param(make_webp_vp8(320, 240) + b"\x00\x00", "RIFF", id="webp-trailing-bytes"),
        ],
    )
    def test_not_whole(self, data: bytes, words: str) -> None:
        """Bytes after the end, boxes missing, out of order or of impossible sizes: not whole, and why."""
        problem = incomplete(data)
        assert problem is not None
        assert words in problem

    def test_reads_only_box_headers(self) -> None:
        """A 5 MB MP4 is checked by reading its box headers: a few reads of a few bytes."""
        data = make_mp4() + box(b"moov", b"\x00" * 1000) + box(b"mdat", b"\x00" * 5_000_000)
        reader = Reader(data)
        assert _sniff.why_incomplete(reader, len(data)) is None
        assert reader.reads <= 8
        assert reader.bytes_read <= 8 * 16

    @pytest.mark.parametrize(
        "data", [make_jpeg(64, 32), make_png(3, 2), make_webp_vp8(320, 240)], ids=["jpeg", "png", "webp"]
    )
    def test_images_are_read_at_head_and_tail_only(self, data: bytes) -> None:
        """An image is checked from a few bytes at its start and its end."""
        reader = Reader(data)
        assert _sniff.why_incomplete(reader, len(data)) is None
        assert reader.bytes_read <= 64

    def test_too_many_boxes(self) -> None:
        """A file of countless empty boxes is given up on, not walked to its end."""
        count = 200_000
        data = make_movie() + box(b"free", b"") * count
        reader = Reader(data)
        problem = _sniff.why_incomplete(reader, len(data))
        assert problem is not None
        assert "boxes" in problem
        assert reader.reads < count


class TestDescribe:
    """What a file's first bytes look like, in words, for an error message."""

    @pytest.mark.parametrize(
        ("head", "words"),
        [
            pytest.param(b"<!DOCTYPE html><html>", "an HTML page", id="doctype"),
            pytest.param(b"\xef\xbb\xbf  <HTML lang=en>", "an HTML page", id="bom-and-upper"),
            pytest.param(b'{"error": "denied"}', "JSON", id="json"),
            pytest.param(b"<?xml version='1.0'?><Error>", "XML", id="xml"),
            pytest.param(b"\x1f\x8b\x08\x00", "gzip", id="gzip"),
            pytest.param(make_jpeg(8, 8), "a JPEG image", id="jpeg"),
            pytest.param(make_mp4(), "an MP4 video", id="mp4"),
            pytest.param(make_mov(), "a QuickTime video", id="mov"),
            pytest.param(make_avi(), "an AVI video", id="avi"),
            pytest.param(b"", "nothing", id="empty"),
            pytest.param(b"\x00\x01\x02\x03garbage", "00010203", id="unknown"),
        ],
    )
    def test_describe(self, head: bytes, words: str) -> None:
        """HTML, JSON, XML, gzip, known media, nothing, or the first bytes in hex."""
        assert words in _sniff.describe(head)
