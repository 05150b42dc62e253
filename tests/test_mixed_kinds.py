"""Every task kind on the one engine: a batch of 14 kinds x 20 items under the engine's fault mix.

429s and 5xx before anything is done, creates committed and then dropped, tasks that fail: every
input is accounted for once, no input makes more than one server task, and every file saved is
whole and of its kind's media (magic bytes and structure checked). The kinds without ``payload``
(lip-sync, text2audio, timing2audio) cannot be looked up after a create whose outcome is unknown
(a 5xx, a dropped answer): those items, and only those, end ``SubmitOutcomeUnknownError``, their
create sent once and never again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

import vidu_async as vidu
from vidu_async._kinds import KINDS, kind_of
from vidu_async._sniff import sniff, why_incomplete
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import SubmitOutcomeUnknownError, TaskFailedError

pytestmark = pytest.mark.anyio

PER_KIND = 20


def item(endpoint: str, i: int) -> vidu.Request:
    """A valid request of ``endpoint``, distinct for each ``i`` (so the server's tasks can be told apart)."""
    img = f"https://example.com/{endpoint}/{i}.png"
    vid = f"https://example.com/{endpoint}/{i}.mp4"
    text = f"{endpoint} number {i}"
    builders: dict[str, Any] = {
        "reference2video": lambda: vidu.Reference2Video(
            model="viduq3", subjects=[vidu.Subject(name="Ming", images=[img])], prompt=f"@Ming {text}"
        ),
        "text2video": lambda: vidu.Text2Video(model="viduq3-turbo", prompt=text, duration=4),
        "img2video": lambda: vidu.Img2Video(model="viduq2-turbo", images=[img], prompt=text),
        "start-end2video": lambda: vidu.StartEnd2Video(model="viduq2-turbo", images=[img, img], prompt=text),
        "multiframe": lambda: vidu.MultiFrame(
            model="viduq2-turbo",
            start_image=img,
            image_settings=[vidu.KeyFrame(key_image=img, prompt=text), vidu.KeyFrame(key_image=img)],
        ),
        "template": lambda: vidu.Template(template="hugging", images=[img], prompt=text),
        "template-story": lambda: vidu.TemplateStory(story="love_story", images=[img, img, img]),
        "extend": lambda: vidu.Extend(model="viduq2-turbo", video_url=vid, prompt=text),
        "upscale-new": lambda: vidu.Upscale(video_url=vid, upscale_resolution="2K"),
        "lip-sync": lambda: vidu.LipSync(video_url=vid, text=text, voice_id="narrator"),
        "image2dance": lambda: vidu.Image2Dance(image_url=img, video_url=vid),
        "reference2image": lambda: vidu.Reference2Image(model="viduq2", prompt=text),
        "text2audio": lambda: vidu.Text2Audio(model="audio1.0", prompt=text, duration=4),
        "timing2audio": lambda: vidu.Timing2Audio(
            model="audio1.0", timing_prompts=[vidu.TimingPrompt(from_=0, to=3, prompt=text)]
        ),
    }
    request: vidu.Request = builders[endpoint]()
    return request


def whole_media(path: Path, output: str) -> bool:
    """Whether ``path`` is a whole file of ``output``'s media, by its bytes."""
    data = path.read_bytes()
    info = sniff(data[:4096])
    if info is None or info.kind != output:
        return False
    return why_incomplete(lambda at, n: data[at : at + n], len(data)) is None


def unsent(request: Any) -> Any:
    """A request as the emulator parsed it, without what the SDK adds (fingerprint, callback)."""
    changes = {name: None for name in ("payload", "callback_url") if hasattr(request, name)}
    return attrs.evolve(request, **changes)


async def test_every_kind_in_one_batch_under_the_fault_mix(tmp_path: Path) -> None:
    faults = FaultConfig(
        rate_limit=0.03,
        server_error=0.03,
        commit_then_drop=0.02,
        task_failure=0.02,
        task_failure_code="CreationPolicyViolation",
        retry_after=0.05,
        seed=11,
    )
    requests = [(f"{endpoint}-{i}", item(endpoint, i)) for endpoint in KINDS for i in range(PER_KIND)]
    assert len(requests) == 14 * PER_KIND
    retry = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)
    poll = attrs.evolve(
        vidu.DEFAULT_POLL, first_check=0.02, min_interval=0.02, max_interval=0.1, requests_per_second=200
    )
    config = EmulatorConfig(created_time=0.01, processing_time=0.05, concurrency=40, faults=faults)
    out = tmp_path / "files"
    async with (
        Emulator(config) as emu,
        vidu.ViduClient(emu.api_key, base_url=emu.base_url, retry=retry, poll=poll) as client,
    ):
        with anyio.fail_after(120):
            async with client.generate_many(requests, max_in_flight=48, download_to=out) as batch:
                results = [result async for result in batch]

    # Every input accounted for once.
    assert sorted(r.key for r in results) == sorted(key for key, _ in requests)
    by_key = dict(requests)

    # No input made more than one server task; each result's task is the one its input made.
    made: Counter[str] = Counter()
    for record in emu.tasks.values():
        matches = [key for key, request in requests if unsent(record.request) == unsent(request)]
        assert len(matches) == 1, (record.id, matches)
        made[matches[0]] += 1
    assert max(made.values()) == 1, [key for key, n in made.items() if n > 1]
    for r in results:
        if r.task is not None:
            assert made[r.key] == 1
            assert unsent(emu.tasks[r.task.id].request) == unsent(by_key[r.key])

    # The fault mix really hit, and each failure is one it explains.
    assert emu.stats.faults["commit_then_drop"] > 0
    unknown = [r for r in results if isinstance(r.error, SubmitOutcomeUnknownError)]
    for r in results:
        if r.ok:
            continue
        if isinstance(r.error, TaskFailedError):
            assert r.error.err_code == "CreationPolicyViolation"
        else:
            assert isinstance(r.error, SubmitOutcomeUnknownError), (r.key, r.error)
    for r in unknown:
        assert not kind_of(r.request).payload, r.key  # a kind with payload is reconciled instead
        # A 500 or a dropped answer may come before or after the task is made: either way the
        # create was sent once and never again.
        assert made[r.key] <= 1
    for endpoint in KINDS:  # each kind got through the faults
        assert any(r.ok and kind_of(r.request).endpoint == endpoint for r in results), endpoint

    # Every file saved is whole and of its kind's media.
    for r in results:
        if not r.ok:
            continue
        output = kind_of(r.request).output
        assert r.files, r.key
        for path in r.files:
            assert whole_media(path, output), (r.key, path)
            if output == "image":
                assert path.suffix == ".png"
            elif output == "video":
                assert path.suffix == ".mp4"


@pytest.mark.parametrize("endpoint", sorted(KINDS))
async def test_generate_and_download_each_kind(endpoint: str, tmp_path: Path) -> None:
    """``generate`` then ``download`` (which tells the media from what is served) for each kind."""
    config = EmulatorConfig(created_time=0.01, processing_time=0.05)
    async with (
        Emulator(config) as emu,
        vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client,
    ):
        with anyio.fail_after(20):
            task = await client.generate(item(endpoint, 0))
            files = await client.download(task, tmp_path, cover=True)
        (record,) = emu.tasks.values()
    output = KINDS[endpoint].output
    assert type(record.request) is KINDS[endpoint].request_type
    main, *covers = files
    assert whole_media(main, output)
    assert main.suffix == {"video": ".mp4", "image": ".png", "audio": main.suffix}[output]
    assert [whole_media(c, "image") for c in covers] == [True] * (output == "video")


def tasks_journaled(path: Path) -> int:
    """Items whose task id the SQLite journal holds, read as another process would."""
    with contextlib.closing(sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM items WHERE task_id IS NOT NULL").fetchone()
    return int(count)


async def test_every_kind_journaled_and_resumed(tmp_path: Path) -> None:
    """A journaled batch of every kind left after one result, then run again: the second run
    re-attaches every task the first made (none is created twice) and saves each kind's file."""
    journal = tmp_path / "journal.sqlite"
    requests = [(endpoint, item(endpoint, 1)) for endpoint in KINDS]
    config = EmulatorConfig(created_time=0.01, processing_time=0.3, concurrency=20)
    async with Emulator(config) as emu:
        async with vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
            with anyio.fail_after(20):
                async with client.generate_many(requests, journal=journal, max_in_flight=20) as batch:
                    async for first in batch:
                        assert first.ok
                        # Left once every create's answer is journaled: a kind without payload
                        # whose answer was lost with the run cannot be looked up, and a re-run
                        # rightly reports it undecidable instead of re-attaching it (seen on a
                        # loaded machine, where the run left before the last answers came).
                        while await anyio.to_thread.run_sync(tasks_journaled, journal) < len(KINDS):  # noqa: ASYNC110 - the journal's writer thread
                            await anyio.sleep(0.01)
                        break
        made = emu.stats.tasks_created
        assert made == len(KINDS)  # every item was in flight when the first run left
        async with vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
            with anyio.fail_after(20):
                async with client.generate_many(
                    requests, journal=journal, download_to=tmp_path / "f"
                ) as batch:
                    results = [result async for result in batch]
        assert emu.stats.tasks_created == made
    assert sorted(r.key for r in results) == sorted(KINDS)
    assert all(r.ok and r.resumed for r in results), [(r.key, r.ok, r.resumed, r.error) for r in results]
    for r in results:
        (path,) = r.files
        assert whole_media(path, KINDS[r.key].output), r.key
