"""Hybrid completion end to end: the emulator's signed callbacks reach ``client.serve_callbacks`` (or
the user's own server and ``client.notify``), each finish is confirmed with one GET, and polling is
only the safety net (DESIGN.md, "Completion by callback or poll"; vidu-api.md §7)."""

from __future__ import annotations

import json
import math
import random
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import vidu_async as vidu
from vidu_async import _signing
from vidu_async._events import Event, RequestEvent
from vidu_async._poll import PollPlanner
from vidu_async.callbacks import CallbackReceiver, NonceCache, verify_request
from vidu_async.emulator import CallbackConfig, Emulator, EmulatorConfig
from vidu_async.exceptions import CallbackVerificationError, NotFoundError

REQUEST = vidu.Reference2Video(
    model="viduq3",
    subjects=[vidu.Subject(name="Ming", images=["https://example.com/ming.png"])],
    prompt="@Ming cooks hot pot.",
    duration=5,
)
#: Callback tasks are polled only this often (seconds); short enough for the safety-net tests.
SAFETY_NET = 1.0
POLL = attrs.evolve(vidu.DEFAULT_POLL, callback_interval=SAFETY_NET)
#: Slack on top of the safety-net interval for a late finish to be seen: a bulk tick, a list, a GET.
MARGIN = 1.5
PATH = "/vidu/callback"


def free_port() -> int:
    """A port to listen on that is free now, chosen below Linux's ephemeral range (32768 and up):
    the callback URL names it before the receiver binds it, and meanwhile the client's own
    outgoing connections take their local ports from that range, so one of them could take a
    port the kernel had just handed out."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000 after 100 tries")


class Signal:
    """Fired whenever something a test waits on may have changed (a request, a callback answered,
    a watcher's update), so waits are on conditions, never on the clock."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def until(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, for at most ``timeout`` seconds."""
        with anyio.fail_after(timeout):
            while not predicate():
                await self._event.wait()


class Requests:
    """A metrics hook counting the client's status requests (GETs and lists), GETs by task."""

    def __init__(self, changed: Signal) -> None:
        self.by_endpoint: Counter[str] = Counter()
        self.gets: Counter[str] = Counter()
        self._changed = changed

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestEvent):
            self.by_endpoint[event.endpoint] += 1
            if event.endpoint == "get":
                self.gets[event.path.split("/")[-2]] += 1
            self._changed.fire()

    @property
    def status(self) -> int:
        """GETs plus list requests."""
        return self.by_endpoint["get"] + self.by_endpoint["list"]


@attrs.define
class Hybrid:
    """An emulator delivering callbacks to a client's receiver on a free local port."""

    emu: Emulator
    client: vidu.ViduClient
    receiver: CallbackReceiver | None
    requests: Requests
    url: str
    port: int
    #: Every task handed to ``client.notify``, in order.
    notified: list[vidu.Task]
    #: Fired on each status request, each answered callback and each watcher update.
    changed: Signal


@asynccontextmanager
async def hybrid(
    monkeypatch: pytest.MonkeyPatch,
    *,
    callbacks: CallbackConfig = CallbackConfig(),  # noqa: B008 (frozen)
    poll: vidu.PollPolicy = POLL,
    processing_time: float = 0.2,
    serve: bool = True,
) -> AsyncIterator[Hybrid]:
    """The emulator (concurrency 50) and a ``ViduClient(callback_url=...)`` whose ``serve_callbacks``
    (unless ``serve`` is off) receives the emulator's deliveries; ``notified`` records ``notify``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}?org=7"
    changed = Signal()
    requests = Requests(changed)
    notified: list[vidu.Task] = []
    handle = CallbackReceiver.handle

    async def answered(self: CallbackReceiver, request: web.Request) -> web.Response:
        try:
            return await handle(self, request)
        finally:
            changed.fire()

    monkeypatch.setattr(CallbackReceiver, "handle", answered)
    config = EmulatorConfig(concurrency=50, processing_time=processing_time, callbacks=callbacks)
    async with (
        Emulator(config) as emu,
        vidu.ViduClient(
            emu.api_key, base_url=emu.base_url, callback_url=url, poll=poll, hooks=[requests]
        ) as client,
    ):
        original = client.notify

        def notify(task: vidu.Task) -> None:
            notified.append(task)
            original(task)

        monkeypatch.setattr(client, "notify", notify)
        if not serve:
            yield Hybrid(emu, client, None, requests, url, port, notified, changed)
            return
        async with client.serve_callbacks("127.0.0.1", port) as receiver:
            yield Hybrid(emu, client, receiver, requests, url, port, notified, changed)


async def run_batch(h: Hybrid, count: int) -> dict[str, float]:
    """``generate_many`` of ``count`` tasks; every one must succeed. Returns when each was seen, by id."""
    seen: dict[str, float] = {}
    with anyio.fail_after(20):
        async with h.client.generate_many([REQUEST] * count) as results:
            async for result in results:
                assert result.ok, result.error
                assert result.task is not None
                seen[result.task.id] = anyio.current_time()
    assert len(seen) == count
    return seen


def signed(h: Hybrid, *, key: str | None = None, date: str | None = None) -> dict[str, str]:
    """Headers of a callback to ``h.url`` signed as Vidu signs it (with the client's key by default)."""
    headers = _signing.signed_headers(
        key=h.emu.api_key if key is None else key,
        url=h.url,
        nonce=str(uuid.uuid4()),
        date=date or _signing.http_date(),
    )
    return {**headers, "Content-Type": "application/json"}


def lie(task_id: str, state: str = "success") -> bytes:
    """A callback body claiming ``state``, with links that are not the emulator's."""
    return json.dumps(
        {
            "id": task_id,
            "state": state,
            "err_code": "",
            "credits": 1,
            "creations": [{"id": "fake", "url": "https://attacker.example/v.mp4", "cover_url": ""}],
        }
    ).encode()


async def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers, data=body) as response:
        return response.status, await response.json()


class Watcher:
    """Collects what ``client.watch`` reports for one task, in a task group of the test."""

    def __init__(self, changed: Signal) -> None:
        self.updates: list[vidu.Task] = []
        self.done = anyio.Event()
        self._changed = changed

    async def run(self, client: vidu.ViduClient, task: vidu.Task) -> None:
        async for update in client.watch(task.id, known=task):
            self.updates.append(update)
            self._changed.fire()
        self.done.set()

    @property
    def states(self) -> list[str]:
        return [u.raw_state for u in self.updates]


async def until_processing(emu: Emulator, task_id: str) -> None:
    """Wait (on the emulator's own transitions) until the task is processing."""
    with anyio.fail_after(10):
        while emu.tasks[task_id].state is not vidu.TaskState.PROCESSING:
            await emu.runtime.wait_changed()


async def lie_is_held(h: Hybrid, watcher: Watcher, task_id: str) -> None:
    """Post a correctly signed "success" for a task still processing: it is answered 200, read
    with one GET, and the watcher hears only "processing"."""
    assert await post(h.url, signed(h), lie(task_id)) == (200, {})
    await h.changed.until(lambda: "processing" in watcher.states)
    assert h.requests.gets[task_id] == 1
    assert all(not u.is_terminal for u in watcher.updates)


class TestBatchWithCallbacks:
    """A batch with callbacks on completes with one confirming GET per task."""

    async def test_hundred_tasks_one_get_each(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """100 tasks all succeed at ≤ 1.2 status requests each, every finish hinted by a verified callback
        and seen well before any poll could have seen it."""
        async with hybrid(monkeypatch, poll=vidu.DEFAULT_POLL) as h:
            seen = await run_batch(h, 100)
            lags = [at - (h.emu.tasks[task_id].finished_at or math.inf) for task_id, at in seen.items()]
            assert h.receiver is not None
            stats = h.receiver.stats
        assert h.requests.status / 100 <= 1.2, h.requests.by_endpoint
        assert all(count == 1 for count in h.requests.gets.values()), h.requests.gets
        assert len({t.id for t in h.notified if t.is_terminal}) == 100
        assert stats.total_rejected == 0
        assert stats.accepted >= 100  # each success (and the processing ones answered by now)
        # A callback and one GET each (milliseconds); the safety-net poll would take a minute.
        assert max(lags) <= MARGIN, sorted(lags)[-5:]

    async def test_duplicated_and_reordered_deliveries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every delivery sent twice, ``processing`` after the finish: still one GET per task, no list."""
        async with hybrid(monkeypatch, callbacks=CallbackConfig(duplicate=1.0, reorder=True)) as h:
            await run_batch(h, 40)
        assert h.requests.gets.keys() == {t.id for t in h.notified}
        assert all(count == 1 for count in h.requests.gets.values()), h.requests.gets
        assert h.requests.by_endpoint["list"] == 0

    async def test_watchers_see_the_confirmed_task(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``generate`` returns the task as the GET read it (the emulator's links), after one GET."""
        async with hybrid(monkeypatch, poll=vidu.DEFAULT_POLL) as h:
            with anyio.fail_after(10):
                task = await h.client.generate(REQUEST)
        assert task.state is vidu.TaskState.SUCCESS
        assert task.creations
        assert task.creations[0].url.startswith(h.emu.base_url)
        assert h.requests.gets == Counter({task.id: 1})
        assert h.requests.by_endpoint["list"] == 0


class TestForgedAndReplayed:
    """Forged, replayed and stale callbacks are refused, counted, and never reach a watcher."""

    async def test_emulator_forgeries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every delivery forged: all refused as ``signature``, none handed over; the safety net finishes the batch."""
        async with hybrid(monkeypatch, callbacks=CallbackConfig(forge=1.0, retries=0)) as h:
            await run_batch(h, 20)
            receiver = h.receiver
            assert receiver is not None
            # Deliveries run on their own; wait until every forged one has been answered.
            await h.changed.until(lambda: receiver.stats.total_rejected >= 40)
        assert h.emu.stats.callbacks_forged == 40
        assert receiver.stats.rejected == Counter({"signature": 40})
        assert receiver.stats.accepted == 0
        assert h.notified == []
        assert h.requests.by_endpoint["list"] >= 1  # found by the safety net

    async def test_posted_forgeries_and_replays(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A wrong key, a replayed nonce and a stale Date claiming success are answered 401 and hint nothing."""
        async with hybrid(monkeypatch, callbacks=CallbackConfig(enabled=False), processing_time=1.0) as h:
            receiver = h.receiver
            assert receiver is not None
            task = await h.client.submit(REQUEST)
            watcher = Watcher(h.changed)
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run, h.client, task)
                await until_processing(h.emu, task.id)
                gets_before = h.requests.gets[task.id]

                # A genuine, signed "processing" is accepted (and ignored: not a finish)...
                genuine = signed(h)
                assert await post(h.url, genuine, lie(task.id, "processing")) == (200, {})
                # ... and its headers replayed with a finish are refused.
                status, body = await post(h.url, genuine, lie(task.id))
                assert (status, body["check"]) == (401, "nonce-replay")
                status, body = await post(h.url, signed(h, key="not-the-key"), lie(task.id))
                assert (status, body["check"]) == (401, "signature")
                stale = _signing.http_date(datetime.now(UTC) - timedelta(minutes=10))
                status, body = await post(h.url, signed(h, date=stale), lie(task.id))
                assert (status, body["check"]) == (401, "date")

                # The receiver answers after on_update returns, so nothing more can be on its way.
                assert receiver.stats.rejected == Counter({"nonce-replay": 1, "signature": 1, "date": 1})
                assert receiver.stats.accepted == 1
                assert [t.raw_state for t in h.notified] == ["processing"]
                assert not h.client._poller.planner.has_hints
                assert h.requests.gets[task.id] == gets_before
                assert "success" not in watcher.states

                with anyio.fail_after(10):
                    await watcher.done.wait()  # polling, as callbacks are off in the emulator
        assert watcher.updates[-1].state is vidu.TaskState.SUCCESS
        assert watcher.updates[-1].creations[0].url.startswith(h.emu.base_url)


class TestSafetyNet:
    """Lost callbacks are made up for by the safety-net poll, within its interval."""

    async def test_twenty_percent_dropped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With 20% of deliveries dropped, every task completes; each late one by finish + interval + margin."""
        jitter = POLL.jitter / 2
        async with hybrid(monkeypatch, callbacks=CallbackConfig(drop=0.2, seed=3)) as h:
            seen = await run_batch(h, 100)
            finished = {task_id: h.emu.tasks[task_id].finished_at for task_id in seen}
        hinted = {t.id for t in h.notified if t.is_terminal}
        late = set(seen) - hinted
        assert h.emu.stats.callbacks_dropped > 0
        assert 0 < len(late) < 50, late  # about a fifth of the finishes lost their callback
        for task_id in late:
            at = finished[task_id]
            assert at is not None
            lag = seen[task_id] - at
            assert 0 <= lag <= SAFETY_NET * (1 + jitter) + MARGIN, (task_id, lag)

    async def test_only_the_safety_net(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no callback ever arriving, tasks are polled at the safety-net interval, not the usual one."""
        async with hybrid(monkeypatch, callbacks=CallbackConfig(enabled=False), processing_time=0.05) as h:
            started = anyio.current_time()
            seen = await run_batch(h, 5)
        # Finished in ~0.1 s, but not looked at before the safety-net interval (less its jitter).
        assert min(seen.values()) - started >= SAFETY_NET * (1 - POLL.jitter / 2)
        assert h.requests.by_endpoint["list"] <= 3


class TestCallbackIsAHint:
    """A callback body is only a hint: watchers hear of a finish only once a GET confirms it."""

    async def test_lying_success_is_not_shown(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A correctly signed "success" for a processing task costs one GET and shows the watcher only
        "processing"; the genuine callback later finishes it with the emulator's own links."""
        poll = attrs.evolve(vidu.DEFAULT_POLL, callback_interval=60.0)  # no poll can interfere
        async with hybrid(monkeypatch, poll=poll, processing_time=1.0) as h:
            task = await h.client.submit(REQUEST)
            watcher = Watcher(h.changed)
            async with anyio.create_task_group() as tg:
                tg.start_soon(watcher.run, h.client, task)
                await until_processing(h.emu, task.id)

                await lie_is_held(h, watcher, task.id)

                with anyio.fail_after(10):
                    await watcher.done.wait()
        final = watcher.updates[-1]
        assert final.state is vidu.TaskState.SUCCESS
        assert final.creations[0].url.startswith(h.emu.base_url)
        assert h.requests.gets[task.id] == 2  # the lie's GET and the genuine finish's
        assert h.requests.by_endpoint["list"] == 0

    async def test_lying_failure_is_not_shown(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A signed "failed" for a processing task does not fail ``wait``; the task succeeds."""
        async with hybrid(monkeypatch, poll=vidu.DEFAULT_POLL, processing_time=0.5) as h:
            task = await h.client.submit(REQUEST)
            await until_processing(h.emu, task.id)
            status, _ = await post(h.url, signed(h), lie(task.id, "failed"))
            assert status == 200
            with anyio.fail_after(10):
                done = await h.client.wait(task.id, known=task)
        assert done.state is vidu.TaskState.SUCCESS


class TestNotifyFromYourOwnServer:
    """``client.notify`` behind the user's own server works as ``serve_callbacks`` does."""

    @staticmethod
    def own_app(h: Hybrid) -> web.Application:
        """A server of the user's own: ``verify_request`` with a nonce cache, then ``client.notify``."""
        nonces = NonceCache()

        async def callback(request: web.Request) -> web.Response:
            try:
                task = verify_request(
                    method=request.method,
                    url=h.url,
                    headers=request.headers,
                    body=await request.read(),
                    api_key=h.emu.api_key,
                    nonces=nonces,
                )
            except CallbackVerificationError as exc:
                return web.json_response({"check": exc.check}, status=401)
            finally:
                h.changed.fire()
            h.client.notify(task)
            return web.json_response({})

        app = web.Application()
        app.router.add_post(PATH, callback)
        return app

    async def test_own_server(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """One GET per task of a batch; a signed lie costs one GET, shows nothing, and the genuine finish follows."""
        async with hybrid(monkeypatch, poll=vidu.DEFAULT_POLL, processing_time=1.0, serve=False) as h:
            runner = web.AppRunner(self.own_app(h), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", h.port).start()
                await run_batch(h, 30)
                assert h.requests.status / 30 <= 1.2, h.requests.by_endpoint
                assert len({t.id for t in h.notified if t.is_terminal}) == 30

                task = await h.client.submit(REQUEST)
                watcher = Watcher(h.changed)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watcher.run, h.client, task)
                    await until_processing(h.emu, task.id)
                    await lie_is_held(h, watcher, task.id)
                    status, body = await post(h.url, signed(h, key="not-the-key"), lie(task.id))
                    assert (status, body) == (401, {"check": "signature"})
                    with anyio.fail_after(10):
                        await watcher.done.wait()
            finally:
                await runner.cleanup()
        assert watcher.updates[-1].state is vidu.TaskState.SUCCESS
        assert watcher.updates[-1].creations[0].url.startswith(h.emu.base_url)
        assert h.requests.gets[task.id] == 2  # the lie's GET and the genuine finish's


# --- the pieces the fixes touched, without the network ---------------------------------------------


def planner() -> PollPlanner:
    return PollPlanner(attrs.evolve(vidu.DEFAULT_POLL, jitter=0.0), random.Random(0))


def created(task_id: str) -> vidu.Task:
    return vidu.Task(id=task_id, state=vidu.TaskState.CREATED, raw_state="created")


class TestPlannerHints:
    """The poll planner reads hinted tasks at once and never spends a list request on them."""

    def test_hint_is_taken_once_and_leaves_the_schedule(self) -> None:
        """A hinted task is taken once, its scheduled check is dropped, and a repeat hint is ignored."""
        p = planner()
        p.add("t1", lambda _: None, 0.0, known=created("t1"))
        assert p.hint("t1")
        assert not p.hint("t1")  # already hinted: the GET on its way covers it
        assert not p.hint("nobody")
        assert [e.task_id for e in p.take_hinted()] == ["t1"]
        assert p.take_hinted() == []
        assert not p.has_hints
        assert p.take_due(math.inf, fill_to=100) == []  # its old slot is stale until rescheduled

    def test_refuted_hint_may_come_again(self) -> None:
        """Once the GET shows the task unfinished, the next hint is taken again."""
        p = planner()
        p.add("t1", lambda _: None, 0.0, known=created("t1"))
        p.hint("t1")
        p.take_hinted()
        p.observe(vidu.Task(id="t1", state=vidu.TaskState.PROCESSING, raw_state="processing"), 1.0)
        assert p.hint("t1")

    @pytest.mark.parametrize("drop", ["remove", "error"])
    def test_dropped_task_loses_its_hint(self, drop: str) -> None:
        """A task no longer watched (left, or not found) is not taken."""
        p = planner()
        p.add("t1", lambda _: None, 0.0, known=created("t1"))
        p.hint("t1")
        if drop == "remove":
            p.remove("t1")
        else:
            p.error("t1", NotFoundError(404, "TaskNotFound", "task not found"))
        assert not p.has_hints
        assert p.take_hinted() == []

    def test_no_page_is_filled_for_tasks_read_one_by_one(self) -> None:
        """Due tasks that are read with a GET (a hint whose read failed) do not pull in a list page."""
        p = planner()
        p.add("t0", lambda _: None, 0.0, known=created("t0"))
        for i in range(1, 5):  # checked from 10.25 on: not due with t0, but would fill its page
            p.add(f"t{i}", lambda _: None, 10.0, known=created(f"t{i}"))
        p.hint("t0")
        (entry,) = p.take_hinted()
        p.failed("t0", 0.0)  # rescheduled soon (0.4), still hinted
        assert entry.hinted
        assert [e.task_id for e in p.take_due(entry.next_check, fill_to=100)] == ["t0"]


class TestReceiverWithoutDedupe:
    """``CallbackReceiver(dedupe_size=0)`` hands every verified update over (``serve_callbacks`` uses it)."""

    async def test_repeats_are_handed_over(self) -> None:
        """The same (task, state) twice reaches on_update twice; nothing counts as a duplicate."""
        url = "http://hooks.example.com/vidu/callback"
        got: list[vidu.Task] = []
        receiver = CallbackReceiver(api_key="k", callback_url=url, on_update=got.append, dedupe_size=0)
        app = web.Application()
        receiver.setup(app)
        async with TestClient(TestServer(app)) as client:
            for _ in range(2):
                headers = _signing.signed_headers(
                    key="k", url=url, nonce=str(uuid.uuid4()), date=_signing.http_date()
                )
                headers["Content-Type"] = "application/json"
                async with client.post("/vidu/callback", data=lie("t1"), headers=headers) as response:
                    assert response.status == 200
        assert [t.id for t in got] == ["t1", "t1"]
        assert (receiver.stats.accepted, receiver.stats.duplicates) == (2, 0)

    def test_negative_size_is_refused(self) -> None:
        """A negative dedupe_size is a programming error."""
        with pytest.raises(ValueError, match="dedupe_size"):
            CallbackReceiver(api_key="k", callback_url="http://h/x", on_update=print, dedupe_size=-1)
