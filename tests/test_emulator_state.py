"""The emulator's pure core: the state machine, scheduling, credits and listing, without an event loop."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from vidu_async._models import Reference2Video, Subject, TaskState
from vidu_async.emulator import EmulatorConfig, EmulatorState, FaultConfig
from vidu_async.emulator._state import (
    CANCELLED_CODE,
    ListQuery,
    StateError,
    cost_of,
    format_created_at,
    parse_list_values,
    states_named,
)

WALL_NS = 1_768_891_922_323_137_590  # 2026-01-20T06:52:02.323137590Z
WALL = datetime.fromtimestamp(WALL_NS / 1e9, UTC)


def request(**changes: object) -> Reference2Video:
    fields: dict[str, object] = {
        "model": "viduq3",
        "subjects": [Subject(name="Ming", images=["https://example.com/ming.png"])],
        "prompt": "@Ming cooks hot pot.",
    }
    fields.update(changes)
    return Reference2Video(**fields)  # type: ignore[arg-type]


def make(**changes: object) -> EmulatorState:
    base: dict[str, object] = {"concurrency": 2, "created_time": 1.0, "processing_time": 10.0}
    base.update(changes)
    return EmulatorState(EmulatorConfig(**base))  # type: ignore[arg-type]


def submit(state: EmulatorState, now: float = 0.0, org: str = "default", **changes: object) -> str:
    task = state.submit(request(**changes), now=now, wall_ns=WALL_NS + int(now * 1e9), org=org, api_key="k")
    return task.id


class TestStateMachine:
    """created → queueing → processing → success, with per-organization slots."""

    def test_single_task_walks_every_state(self) -> None:
        """A task is created, queued after created_time, processed, and succeeds after processing_time."""
        state = make()
        task_id = submit(state)
        task = state.tasks[task_id]
        assert task.state is TaskState.CREATED
        assert state.advance(0.5) == []
        moved = state.advance(1.0)
        assert [(t.state, t.at) for t in moved] == [(TaskState.QUEUEING, 1.0), (TaskState.PROCESSING, 1.0)]
        assert state.next_due() == 11.0
        [done] = state.advance(11.0)
        assert done.state is TaskState.SUCCESS
        assert task.finished_at == 11.0
        assert state.idle
        assert state.next_due() is None

    def test_concurrency_fifo_and_slots_freed_at_finish_time(self) -> None:
        """Five tasks on two slots start in submission order, each exactly when a slot frees."""
        state = make()
        ids = [submit(state, now=i * 0.1) for i in range(5)]
        transitions = state.advance(1000.0)  # looked at late: times are still the due times
        started = [t.task_id for t in transitions if t.state is TaskState.PROCESSING]
        assert started == ids
        tasks = [state.tasks[i] for i in ids]
        assert tasks[2].started_at == tasks[0].finished_at == pytest.approx(11.0)
        assert tasks[3].started_at == tasks[1].finished_at == pytest.approx(11.1)
        assert tasks[4].started_at == tasks[2].finished_at == pytest.approx(21.0)
        assert all(t.state is TaskState.SUCCESS for t in tasks)
        assert state.stats.max_processing == 2
        assert state.stats.max_in_flight == 5

    def test_never_more_than_concurrency_processing(self) -> None:
        """Stepping second by second, at most `concurrency` tasks process at once."""
        state = make(concurrency=3, processing_time=2.5)
        for i in range(10):
            submit(state, now=0.0 + i * 0.01)
        for step in range(0, 200):
            state.advance(step * 0.1)
            processing = sum(t.state is TaskState.PROCESSING for t in state.tasks.values())
            assert processing <= 3
        assert state.idle

    def test_organizations_have_their_own_slots(self) -> None:
        """Two organizations each get `concurrency` slots."""
        state = make(concurrency=1)
        submit(state, org="a")
        submit(state, org="b")
        state.advance(1.0)
        assert sum(t.state is TaskState.PROCESSING for t in state.tasks.values()) == 2
        assert state.credits("a").current_concurrency == 1

    def test_processing_time_callable_uses_seeded_rng(self) -> None:
        """A callable processing time draws from the emulator's seeded generator: reproducible."""

        def run() -> list[float]:
            state = make(processing_time=lambda rng: rng.uniform(1, 2), seed=7)
            return [state.tasks[submit(state)].processing_time for _ in range(3)]

        assert run() == run()
        assert all(1 <= x <= 2 for x in run())

    def test_task_failure_refunds(self) -> None:
        """A failing task ends failed with the configured code and its credits refunded."""
        state = make(faults=FaultConfig(task_failure=1.0, task_failure_code="CreationPolicyViolation"))
        before = state.credits("default").credit_remain
        task = state.tasks[submit(state)]
        assert state.credits("default").credit_remain == before - 25
        state.advance(100.0)
        assert task.state is TaskState.FAILED
        assert task.err_code == "CreationPolicyViolation"
        assert task.credits == 0
        assert state.credits("default").credit_remain == before


class TestCancel:
    """Cancelling before a task is scheduled."""

    @pytest.mark.parametrize("at", [0.5, 1.5])
    def test_cancel_created_or_queueing(self, at: float) -> None:
        """A created or queueing task cancels: failed, UserCancelled, refunded; the queue moves on."""
        state = make(concurrency=1)
        first = submit(state)
        second = submit(state)
        third = submit(state)
        state.advance(at)
        expected = TaskState.CREATED if at < 1 else TaskState.QUEUEING
        assert state.tasks[second].state is expected
        before = state.credits("default").credit_remain
        transition = state.cancel(second, now=at)
        assert transition.state is TaskState.FAILED
        assert state.tasks[second].err_code == CANCELLED_CODE
        assert state.credits("default").credit_remain == before + 25
        state.advance(11.0)
        assert state.tasks[first].state is TaskState.SUCCESS
        assert state.tasks[third].state is TaskState.PROCESSING
        assert state.tasks[third].started_at == 11.0

    def test_cancel_processing_refused(self) -> None:
        """A scheduled task cannot be cancelled (Vidu's documented 400)."""
        state = make()
        task_id = submit(state)
        state.advance(2.0)
        with pytest.raises(StateError) as caught:
            state.cancel(task_id, now=2.0)
        assert (caught.value.status, caught.value.reason) == (400, "BadRequest")
        assert caught.value.message == "task state is scheduled, can not cancel"

    def test_cancel_unknown_or_foreign(self) -> None:
        """An unknown task, or another organization's, is TaskNotFound."""
        state = make()
        task_id = submit(state, org="a")
        for task, org in (("123", "a"), (task_id, "b")):
            with pytest.raises(StateError) as caught:
                state.cancel(task, now=0.0, org=org)
            assert (caught.value.status, caught.value.reason) == (404, "TaskNotFound")


class TestCredits:
    """Charging, refusing and refunding credits."""

    @pytest.mark.parametrize(
        ("resolution", "duration", "off_peak", "cost"),
        [
            ("360p", 4, False, 8),
            ("540p", 5, False, 15),
            ("720p", 5, False, 25),
            ("1080p", 5, False, 40),
            ("720p", 5, True, 13),
        ],
    )
    def test_cost(self, resolution: str, duration: int, off_peak: bool, cost: int) -> None:
        """Seconds × price per resolution, halved off-peak."""
        assert cost_of(request(off_peak=off_peak), duration=duration, resolution=resolution) == cost

    @pytest.mark.parametrize("status", [400, 402])
    def test_insufficient(self, status: int) -> None:
        """Below the cost, a create is refused with the configured status."""
        state = make(credits=30, credit_insufficient_status=status)
        submit(state)
        with pytest.raises(StateError) as caught:
            submit(state)
        assert (caught.value.status, caught.value.reason) == (status, "CreditInsufficient")
        assert state.stats.tasks_created == 1

    def test_queue_cap(self) -> None:
        """With max_queue, a create beyond concurrency + max_queue unfinished tasks is QuotaExceeded."""
        state = make(concurrency=1, max_queue=1)
        submit(state)
        submit(state)
        with pytest.raises(StateError) as caught:
            submit(state)
        assert (caught.value.status, caught.value.reason) == (429, "QuotaExceeded")
        state.advance(11.0)
        submit(state, now=11.0)

    def test_credits_view(self) -> None:
        """Credits report the balance, the limit, tasks processing and tasks waiting."""
        state = make(concurrency=1)
        for _ in range(3):
            submit(state)
        state.advance(1.0)
        view = state.credits("default")
        assert (view.concurrency_limit, view.current_concurrency, view.queue_count) == (1, 1, 2)


class TestEcho:
    """What a create answers with."""

    def test_defaults_applied(self) -> None:
        """Duration, resolution, audio and seed get their model defaults; the id is 18-19 digits."""
        state = make()
        task = state.tasks[submit(state, payload="job-1")]
        echo = task.echo
        assert re.fullmatch(r"\d{18,19}", echo["task_id"])
        assert (echo["duration"], echo["resolution"], echo["audio"], echo["credits"]) == (5, "720p", True, 25)
        assert echo["seed"] > 0
        assert echo["payload"] == "job-1"
        assert echo["created_at"] == "2026-01-20T06:52:02.323137590Z"
        assert state.stats.tasks_by_payload["job-1"] == 1

    def test_unknown_model_defaults(self) -> None:
        """An unknown model is charged as 5 s at 720p."""
        state = make()
        assert state.tasks[submit(state, model="viduq9-future")].credits == 25

    def test_ids_unique(self) -> None:
        """Task and creation ids never repeat, even within one millisecond."""
        state = make()
        ids = [submit(state) for _ in range(200)]
        creation_ids = [state.tasks[i].creation_id for i in ids]
        assert len(set(ids) | set(creation_ids)) == 400

    def test_format_created_at(self) -> None:
        """Nanosecond RFC 3339 with Z."""
        assert format_created_at(WALL_NS) == "2026-01-20T06:52:02.323137590Z"


class TestList:
    """Filtering and paging the task list."""

    def test_paging_newest_first_across_pages(self) -> None:
        """250 tasks page out newest first with tokens, 100 at a time, none repeated or lost."""
        state = make()
        ids = [submit(state, now=i * 0.001) for i in range(250)]
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            page = state.list_tasks("default", ListQuery(page_size=100, page_token=token), wall=WALL)
            seen.extend(t.id for t in page.tasks)
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert pages == 3
        assert seen == ids[::-1]

    def test_page_numbers(self) -> None:
        """`page` counts pages from 0 when no token is given."""
        state = make()
        ids = [submit(state) for _ in range(25)]
        page = state.list_tasks("default", ListQuery(page_size=10, page=2), wall=WALL)
        assert [t.id for t in page.tasks] == ids[::-1][20:]
        assert page.next_page_token == ""

    @pytest.mark.parametrize("size", [0, 101])
    def test_page_size_bounds(self, size: int) -> None:
        """Page sizes outside 1..100 are PageSizeOutOfRange."""
        with pytest.raises(StateError) as caught:
            make().list_tasks("default", ListQuery(page_size=size), wall=WALL)
        assert caught.value.reason == "PageSizeOutOfRange"

    def test_bad_token(self) -> None:
        """A token the emulator never issued is a BadRequest."""
        with pytest.raises(StateError) as caught:
            make().list_tasks("default", ListQuery(page_token="!!nope"), wall=WALL)
        assert caught.value.reason == "BadRequest"

    def test_filters(self) -> None:
        """task_ids, states, model versions, resolutions, the window and the organization all filter."""
        state = make(concurrency=1)
        a = submit(state, model="viduq2", resolution="1080p", duration=5)
        b = submit(state)
        c = submit(state, org="other")
        state.advance(1.0)

        def ids(**query: object) -> list[str]:
            page = state.list_tasks("default", ListQuery(**query), wall=WALL)  # type: ignore[arg-type]
            return [t.id for t in page.tasks]

        assert ids() == [b, a]
        assert ids(task_ids=frozenset({a, c})) == [a]
        assert ids(states=frozenset({"queueing"})) == [b]
        assert ids(model_versions=frozenset({"q2"})) == [a]
        assert ids(model_versions=frozenset({"viduq3"})) == [b]
        assert ids(resolutions=frozenset({"1080p"})) == [a]
        assert ids(created_from=WALL + timedelta(seconds=1)) == []
        assert ids(created_to=WALL - timedelta(seconds=1)) == []
        later = WALL + timedelta(days=8)
        assert state.list_tasks("default", ListQuery(), wall=later).tasks == ()

    def test_query_value_helpers(self) -> None:
        """Repeated and comma-separated values merge; `queuing` reads as `queueing`."""
        assert parse_list_values(["a,b", "c", ""]) == {"a", "b", "c"}
        assert states_named(["Queuing", "success"]) == {"queueing", "success"}


class TestScale:
    """Ten thousand tasks stay cheap."""

    def test_ten_thousand_tasks(self) -> None:
        """Submitting and running 10,000 tasks through 5 slots takes well under a few seconds."""
        state = make(concurrency=5, created_time=0.0, processing_time=1.0)
        started = time.perf_counter()
        for i in range(10_000):
            submit(state, now=i * 0.0001)
        for step in range(0, 2100):
            state.advance(step * 1.0)
        assert state.idle
        assert state.stats.max_processing == 5
        assert time.perf_counter() - started < 10

    def test_config_is_frozen(self) -> None:
        """Config changes go through attrs.evolve."""
        config = EmulatorConfig()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            config.concurrency = 3  # type: ignore[misc]
        assert attrs.evolve(config, concurrency=3).concurrency == 3
