"""The tiny, real media files the emulator serves for creations that are not videos.

Built once at import from their formats' own structure (no binary assets to package): a PNG
image (signature, ``IHDR``, ``IDAT``, ``IEND``, every chunk with its CRC), an MP3 (a run of
silent MPEG-1 Layer III frames) and a WAV (a RIFF ``WAVE`` file whose sizes match its length).
"""

from __future__ import annotations

import io
import struct
import wave
import zlib
from collections.abc import Mapping
from typing import Final, Literal

__all__ = [
    "AUDIO_FORMATS",
    "CONTENT_TYPES",
    "MP3_FRAME_BYTES",
    "SAMPLE_MP3",
    "SAMPLE_PNG",
    "SAMPLE_WAV",
    "AudioFormat",
    "mp3_frames",
    "png_image",
    "wav_audio",
]

#: The formats an audio creation can be served in (``EmulatorConfig.audio_format``).
AudioFormat = Literal["mp3", "wav"]
AUDIO_FORMATS: Final = ("mp3", "wav")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_image(width: int = 64, height: int = 36) -> bytes:
    """A whole 8-bit RGB PNG of ``width`` × ``height`` pixels (a soft gradient)."""
    rows = b"".join(
        b"\x00"  # filter type None for every scanline
        + bytes(v for x in range(width) for v in (40 + 160 * x // width, 90, 40 + 160 * y // height))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


#: One MPEG-1 Layer III frame header: 128 kbit/s, 44.1 kHz, mono, no CRC, "original".
_MP3_HEADER: Final = b"\xff\xfb\x90\xc4"
#: Its length: 144 × bitrate / sample rate, rounded down (no padding).
MP3_FRAME_BYTES: Final = 144 * 128_000 // 44_100


def mp3_frames(count: int = 20) -> bytes:
    """``count`` silent MP3 frames (26 ms each): all-zero side information and main data, which
    every decoder plays as silence."""
    frame = _MP3_HEADER + bytes(MP3_FRAME_BYTES - len(_MP3_HEADER))
    return frame * count


def wav_audio(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A silent 16-bit mono PCM WAV of ``seconds`` at ``rate`` Hz."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(2 * round(seconds * rate)))
    return out.getvalue()


#: The image every image creation serves.
SAMPLE_PNG: Final = png_image()
#: The audio every audio creation (and speech, and a cloned voice's demo) serves, by format.
SAMPLE_MP3: Final = mp3_frames()
SAMPLE_WAV: Final = wav_audio()

#: The ``Content-Type`` of each file suffix the emulator serves.
CONTENT_TYPES: Final[Mapping[str, str]] = {
    "mp4": "video/mp4",
    "jpg": "image/jpeg",
    "png": "image/png",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
}
