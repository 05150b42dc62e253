"""Stream requests in and results out: the async pipeline case.

Three stages joined by anyio memory object streams, all in one task group:

    producer --(requests)--> client.generate_many --(results)--> publisher

* the **producer** sends ``(key, Reference2Video)`` pairs into an unbuffered stream whose receiving
  end *is* the batch's input (any async iterable will do: a queue consumer, a websocket...);
* ``generate_many`` takes an item only when one of its in-flight slots is free (the account's
  concurrency plus a small queue, or ``--max-in-flight``), so the producer's ``send`` waits while the
  service is busy: **backpressure**, with nothing piling up in memory;
* each result goes into a second small stream read by the **publisher** (here it prints; a real one
  writes to a database or a message bus). A slow publisher stalls the batch in turn, because a slot
  is only freed once its result has been taken.

**Clean shutdown:** the producer closes its stream when it has no more requests; that ends the
batch's input, the batch ends once its last task finishes, the results stream is closed and the
publisher's loop ends, and the task group exits. Nothing is cancelled and no task is abandoned.

Run it (with ``VIDU_API_KEY`` set this calls Vidu and spends credits for every request; without it,
or with ``--emulator``, a local emulator of the service answers)::

    python examples/pipeline.py
    python examples/pipeline.py --count 20 --max-in-flight 4
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig

#: How the local emulator behaves when there is no API key: an account running 2 tasks at once
#: (the client keeps 4 in flight), each for half a second, so 8 requests show the backpressure.
EMULATOR: Final = EmulatorConfig(processing_time=0.5, concurrency=2)

#: A local reference image: the client reads, checks and encodes it at submit time.
CAT: Final = Path(__file__).resolve().parent / "media" / "cat.png"
SCENES: Final = (
    "naps on a sunny windowsill",
    "chases a red laser dot across the floor",
    "knocks a cup off the table, slowly",
    "stretches and yawns on a velvet cushion",
)

#: One pipeline item: the caller's key and its request.
Item = tuple[str, vidu.Reference2Video]


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


def request_for(number: int) -> vidu.Reference2Video:
    """The ``number``-th request: one subject from a local image, a different scene each time."""
    return vidu.Reference2Video(
        model="viduq3",
        subjects=[vidu.Subject(name="Cat", images=[CAT])],
        prompt=f"@Cat {SCENES[number % len(SCENES)]}.",
        duration=5,
    )


async def produce(requests: MemoryObjectSendStream[Item], count: int) -> None:
    """Send ``count`` requests, then close the stream: that is what ends the batch."""
    async with requests:
        for number in range(count):
            key = f"cat-{number:03}"
            started = anyio.current_time()
            await requests.send((key, request_for(number)))  # waits while the batch has no free slot
            waited = anyio.current_time() - started
            note = f" (waited {waited:.1f} s for a free slot)" if waited >= 0.1 else ""
            print(f"sent       {key}{note}")


async def publish(
    results: MemoryObjectReceiveStream[vidu.BatchResult], published: list[vidu.BatchResult]
) -> None:
    """Take results as they come and publish each one (here: print it)."""
    async with results:
        async for result in results:
            if result.ok and result.task is not None:
                # Download links are signed and expire after 24 h: publish them (or the files) soon.
                links = " ".join(creation.url.partition("?")[0] for creation in result.task.creations)
                print(f"published  {result.key}: task {result.task.id} {result.task.state.value} {links}")
            else:
                print(f"published  {result.key}: FAILED {result.error}")
            published.append(result)


async def run_pipeline(
    client: vidu.ViduClient, count: int, *, max_in_flight: int | None = None
) -> list[vidu.BatchResult]:
    """Run producer, batch and publisher together; returns what the publisher published."""
    requests_in, requests_out = anyio.create_memory_object_stream[Item]()  # unbuffered: a hand-off
    results_in, results_out = anyio.create_memory_object_stream[vidu.BatchResult](1)
    published: list[vidu.BatchResult] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce, requests_in, count)
        tg.start_soon(publish, results_out, published)
        async with (
            requests_out,
            results_in,  # closed when the batch is done: the publisher's loop then ends
            client.generate_many(requests_out, max_in_flight=max_in_flight) as batch,
        ):
            async for result in batch:
                await results_in.send(result)  # waits while the publisher is behind
    return published


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the pipeline; the exit status is 0 when every request was published as a success."""
    parser = argparse.ArgumentParser(description="Stream requests through Vidu and publish the results.")
    parser.add_argument("--count", type=int, default=8, help="requests to produce (default: 8)")
    parser.add_argument(
        "--max-in-flight", type=int, default=None, help="tasks at once (default: from the account)"
    )
    parser.add_argument("--emulator", action="store_true", help="use the local emulator even with a key")
    args = parser.parse_args(argv)

    async with connect(emulator=args.emulator) as client:
        published = await run_pipeline(client, args.count, max_in_flight=args.max_in_flight)
    succeeded = sum(result.ok for result in published)
    print(f"\npublished {len(published)} of {args.count} requests, {succeeded} succeeded")
    return 0 if succeeded == args.count else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
