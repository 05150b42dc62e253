"""Odd task answers, end to end: a success answer with one garbled field is read and returned; an
answer that stays unreadable fails the wait with ``ResponseValidationError`` after a bounded number
of reads, with one warning naming the task, instead of polling silently until the deadline."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import load_fixture, small_request

import vidu_async as vidu
from vidu_async._poll import PollPlanner
from vidu_async.exceptions import ResponseValidationError

KEY = "vda_test_unreadable"
#: Checks close together (the count of reads, not the time, is what these tests are about).
FAST_POLL = attrs.evolve(
    vidu.DEFAULT_POLL, first_check=0.01, min_interval=0.01, max_interval=0.05, intermediate_every=0.01
)
QUICK = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05)
#: Only a safety net: a test that reaches it has failed (it used to end there, after polling silently).
SAFETY_NET = 10.0

CREATED = {"task_id": "t1", "state": "created", "credits": 25, "payload": "p"}


class FakeVidu:
    """A tiny Vidu: each path answers a fixed body (JSON, or bytes as they are); requests are counted."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.hits: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        if request.path not in self.answers:
            return web.json_response({"code": 404, "reason": "NotFound", "message": "no"}, status=404)
        body = self.answers[request.path]
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        return web.Response(body=body, content_type="application/json")


@asynccontextmanager
async def client_of(fake: FakeVidu, **poll: Any) -> AsyncIterator[vidu.ViduClient]:
    """An open client talking to ``fake`` on a free local port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        policy = attrs.evolve(FAST_POLL, **poll)
        async with vidu.ViduClient(KEY, base_url=url, retry=QUICK, poll=policy) as client:
            yield client
    finally:
        await runner.cleanup()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


class TestOddField:
    """A success answer with one field of the wrong shape is still the task's finish."""

    @pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "bulk"])
    @pytest.mark.parametrize(
        ("field", "raw"),
        [("credits", ""), ("created_at", "garbage"), ("payload", {}), ("creations", [None])],
    )
    async def test_generate_returns(
        self, field: str, raw: object, bulk: bool, caplog: pytest.LogCaptureFixture
    ) -> None:
        """``generate`` returns the task (the list row and the confirming read carry the odd field)."""
        success = {**load_fixture("creations-success.json"), "id": "t1", field: raw}
        fake = FakeVidu(
            {
                "/ent/v2/reference2video": CREATED,
                "/ent/v2/tasks/t1/creations": success,
                "/ent/v2/tasks": {"tasks": [success], "next_page_token": ""},
            }
        )
        async with client_of(fake, bulk=bulk) as client:
            task = await client.generate(small_request(), timeout=SAFETY_NET)
        assert (task.id, task.state) == ("t1", vidu.TaskState.SUCCESS)
        if field == "creations":
            assert task.creations == ()
        else:
            assert task.extra[field] == raw
        assert warnings_of(caplog) == []


class TestUnreadableAnswer:
    """An answer that stays unreadable ends the wait with ``ResponseValidationError``."""

    @pytest.mark.parametrize(
        "body",
        [[], {"id": "t2", "credits": 5}, {"id": ["t2"], "state": "success"}, b"<html>busy</html>"],
        ids=["list", "no-state", "bad-id", "not-json"],
    )
    async def test_wait_fails_after_bounded_reads(
        self, body: object, caplog: pytest.LogCaptureFixture
    ) -> None:
        """``wait`` raises after ``unreadable_attempts`` reads in a row, with one warning naming the task."""
        fake = FakeVidu({"/ent/v2/tasks/t2/creations": body})
        caplog.set_level(logging.DEBUG, logger="vidu_async")
        async with client_of(fake, unreadable_attempts=3) as client:
            with pytest.raises(ResponseValidationError) as caught:
                await client.wait("t2", timeout=SAFETY_NET)
        assert fake.hits["/ent/v2/tasks/t2/creations"] == 3
        assert "t2" in str(caught.value)
        (warning,) = warnings_of(caplog)
        assert "t2" in warning

    async def test_bulk_confirmation(self, caplog: pytest.LogCaptureFixture) -> None:
        """The list says the task finished; each confirming read is unreadable: the same bound applies."""
        fake = FakeVidu(
            {
                "/ent/v2/tasks": {"tasks": [{"id": "t3", "state": "success"}], "next_page_token": ""},
                "/ent/v2/tasks/t3/creations": [],
            }
        )
        known = vidu.Task(id="t3", state=vidu.TaskState.CREATED, raw_state="created")
        async with client_of(fake, unreadable_attempts=4) as client:
            with pytest.raises(ResponseValidationError):
                await client.wait("t3", known=known, timeout=SAFETY_NET)
        assert fake.hits["/ent/v2/tasks/t3/creations"] == 4
        (warning,) = warnings_of(caplog)
        assert "t3" in warning

    async def test_batch_item_fails(self) -> None:
        """In a batch, the item whose task stays unreadable fails with ``ResponseValidationError``."""
        fake = FakeVidu({"/ent/v2/reference2video": CREATED, "/ent/v2/tasks/t1/creations": []})
        async with (
            client_of(fake, bulk=False, unreadable_attempts=2) as client,
            client.generate_many([small_request()], timeout=SAFETY_NET) as results,
        ):
            (result,) = [r async for r in results]
        assert isinstance(result.error, ResponseValidationError)


class TestPlannerCount:
    """The pure count behind the bound: reads in a row, reset by a readable answer."""

    def test_streak(self) -> None:
        """Unreadable reads are counted per task; a readable answer starts the count again."""
        policy = attrs.evolve(vidu.DEFAULT_POLL, unreadable_attempts=3)
        planner = PollPlanner(policy, random.Random(1))
        planner.add("a", lambda update: None, 0.0)
        planner.add("b", lambda update: None, 0.0)
        assert [planner.unreadable("a", 1.0), planner.unreadable("a", 2.0)] == [1, 2]
        assert planner.unreadable("b", 2.0) == 1
        planner.observe(vidu.Task(id="a", state=vidu.TaskState.QUEUEING, raw_state="queueing"), 3.0)
        assert planner.unreadable("a", 4.0) == 1
        assert planner.unreadable("gone", 4.0) == 0
