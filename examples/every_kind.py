"""One example of every Vidu task kind, and of the three synchronous endpoints.

Each function below builds one request type (the README's kinds table points here); ``main``
generates the kinds you name (or all of them) side by side, on the same engine, and saves their
files: videos as ``.mp4`` (with a ``-cover.jpg``), images and audio by their own type.
Local files (``Path``) and ``bytes`` become data URIs; everything else is sent as given.

Run it (with ``VIDU_API_KEY`` set this calls Vidu and spends credits; without it, or with
``--emulator``, a local emulator of the service answers)::

    python examples/every_kind.py                          # every kind, files in ./kinds
    python examples/every_kind.py text2audio multiframe    # just these
    python examples/every_kind.py speech prompts           # the synchronous endpoints
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import anyio

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.exceptions import ViduError

#: How the local emulator behaves when there is no API key: each task processes for half a second.
EMULATOR: Final = EmulatorConfig(processing_time=0.5)

MEDIA: Final = Path(__file__).resolve().parent / "media"
CAT: Final = MEDIA / "cat.png"  # a local image: sent as a data URI
CLIP: Final = MEDIA / "clip.mp4"  # a local video
LINE: Final = MEDIA / "line.wav"  # a local sound


def text2video() -> vidu.Text2Video:
    return vidu.Text2Video(
        model="viduq3-turbo", prompt="A paper boat drifts down a rainy street.", duration=5
    )


def img2video() -> vidu.Img2Video:
    return vidu.Img2Video(model="viduq2-turbo", images=[CAT], prompt="The pattern ripples like water.")


def start_end2video() -> vidu.StartEnd2Video:
    return vidu.StartEnd2Video(
        model="viduq2-turbo", images=["https://example.com/dawn.png", "https://example.com/dusk.png"]
    )


def multiframe() -> vidu.MultiFrame:
    return vidu.MultiFrame(
        model="viduq2-turbo",
        start_image=CAT,
        image_settings=[
            vidu.KeyFrame(
                key_image="https://example.com/f1.jpg", prompt="She turns to the window.", duration=4
            ),
            vidu.KeyFrame(key_image="https://example.com/f2.jpg", duration=3),
        ],
    )


def template() -> vidu.Template:
    return vidu.Template(template="hugging", images=["https://example.com/two-people.jpg"])


def template_story() -> vidu.TemplateStory:
    return vidu.TemplateStory(story="love_story", images=["https://example.com/portrait-9x16.jpg"] * 3)


def extend() -> vidu.Extend:
    return vidu.Extend(
        model="viduq2-turbo", video_url="https://example.com/drive.mp4", prompt="Into the tunnel."
    )


def upscale() -> vidu.Upscale:
    return vidu.Upscale(video_url=CLIP, upscale_resolution="2K")


def lip_sync() -> vidu.LipSync:
    return vidu.LipSync(video_url="https://example.com/talking.mp4", audio_url=LINE)


def image2dance() -> vidu.Image2Dance:
    return vidu.Image2Dance(image_url=CAT, video_url="https://example.com/dance.mp4")


def reference2image() -> vidu.Reference2Image:
    return vidu.Reference2Image(
        model="viduq2", prompt="A ceramic teapot in soft window light.", aspect_ratio="4:3"
    )


def text2audio() -> vidu.Text2Audio:
    return vidu.Text2Audio(model="audio1.0", prompt="Rain on a tin roof with distant thunder", duration=6)


def timing2audio() -> vidu.Timing2Audio:
    return vidu.Timing2Audio(
        model="audio1.0",
        duration=8,
        timing_prompts=[
            vidu.TimingPrompt(from_=0.0, to=3.0, prompt="footsteps on gravel"),
            vidu.TimingPrompt(from_=2.5, to=8.0, prompt="a door creaks open"),
        ],
    )


#: Every task kind by its endpoint.
KINDS: Final[dict[str, Callable[[], vidu.Request]]] = {
    "text2video": text2video,
    "img2video": img2video,
    "start-end2video": start_end2video,
    "multiframe": multiframe,
    "template": template,
    "template-story": template_story,
    "extend": extend,
    "upscale-new": upscale,
    "lip-sync": lip_sync,
    "image2dance": image2dance,
    "reference2image": reference2image,
    "text2audio": text2audio,
    "timing2audio": timing2audio,
}


async def synchronous(client: vidu.ViduClient, name: str) -> None:
    """``speech``, ``voice`` and ``prompts``: answered at once, each with its own result type."""
    if name == "speech":
        speech = await client.text_to_speech("Your order has shipped.<#0.5#>Thank you!", voice_id="narrator")
        print(f"speech: {speech.file_url}")
    elif name == "voice":
        voice = await client.clone_voice(LINE, voice_id="example_voice_01", text="This is how I sound now.")
        print(f"voice {voice.voice_id}: preview {voice.demo_audio}")
    else:
        ideas = await client.recommend_prompts(CAT, types=["img2video", "template"], count=2)
        for idea in ideas.prompts:
            print(f"idea ({idea.type}): {idea.content} {idea.template}".rstrip())


@asynccontextmanager
async def connect(*, emulator: bool = False) -> AsyncIterator[vidu.ViduClient]:
    """A client for Vidu when ``VIDU_API_KEY`` is set, else (or when asked) for a local emulator."""
    if os.environ.get("VIDU_API_KEY") and not emulator:
        async with vidu.ViduClient() as client:
            yield client
        return
    async with Emulator(EMULATOR) as emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
        print(f"(using the local emulator at {emu.base_url}; set VIDU_API_KEY to call Vidu)")
        yield client


async def main(argv: Sequence[str] | None = None) -> int:
    """Generate the named kinds (default: all) into ``--out``; 0 when every one succeeded."""
    names = [*KINDS, "speech", "voice", "prompts"]
    parser = argparse.ArgumentParser(description="One example of every Vidu task kind.")
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=", ".join(names))
    parser.add_argument(
        "--out", type=Path, default=Path("kinds"), help="folder for the files (default: kinds)"
    )
    parser.add_argument("--emulator", action="store_true", help="use the local emulator even with a key")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.kinds) - set(names))
    if unknown:
        parser.error(f"unknown kind {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = args.kinds or names
    requests = [(name, KINDS[name]()) for name in chosen if name in KINDS]  # validated here
    failed = 0
    async with connect(emulator=args.emulator) as client:
        for name in chosen:
            if name not in KINDS:
                await synchronous(client, name)
        async with client.generate_many(requests, download_to=args.out) as results:
            async for result in results:
                if result.ok:
                    files = ", ".join(path.name for path in result.files)
                    print(f"{result.key}: {result.task.id if result.task else ''} -> {files}")
                else:
                    failed += 1
                    print(f"{result.key}: {result.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(anyio.run(main))
    except ViduError as exc:
        sys.exit(f"error: {exc}")
