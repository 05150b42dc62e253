"""The error tree: one root, stdlib types where callers catch them, context in messages, picklable."""

from __future__ import annotations

import pickle
import re
from typing import Any

import pytest

from vidu_async import exceptions
from vidu_async._models import Task, TaskState
from vidu_async.exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CallbackVerificationError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    RequestValidationError,
    ResponseValidationError,
    ServerError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    TransportError,
    ViduError,
    WaitTimeoutError,
)

TRACE = "04e5c2fe159ff7c574acd0424e78c35f"
#: Every public error class (``Problem`` is a problem line, ``TaskLike`` the shape of a task an error carries).
ERROR_CLASSES = [
    getattr(exceptions, name) for name in exceptions.__all__ if name not in ("Problem", "TaskLike")
]


class TestTree:
    """The hierarchy drawn in the module docstring."""

    @pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
    def test_single_root(self, cls: type[Exception]) -> None:
        """Every public error is a ``ViduError``."""
        assert issubclass(cls, ViduError)

    @pytest.mark.parametrize(
        ("cls", "parent"),
        [
            (ConfigurationError, ValueError),
            (ClientClosedError, RuntimeError),
            (RequestValidationError, ValueError),
            (ConnectError, TransportError),
            (RequestTimeoutError, TransportError),
            (RequestTimeoutError, TimeoutError),
            (WaitTimeoutError, TimeoutError),
            (BadRequestError, APIError),
            (InsufficientCreditsError, APIError),
            (AuthenticationError, APIError),
            (PermissionDeniedError, APIError),
            (NotFoundError, APIError),
            (ConflictError, APIError),
            (RateLimitError, APIError),
            (QuotaExceededError, RateLimitError),
            (ServerError, APIError),
        ],
        ids=lambda c: c.__name__,
    )
    def test_parents(self, cls: type[Exception], parent: type[Exception]) -> None:
        """Each error sits under the parent the docstring draws."""
        assert issubclass(cls, parent)

    @pytest.mark.parametrize(
        ("cls", "not_parent"),
        [
            (ResponseValidationError, ValueError),
            (WaitTimeoutError, TransportError),
            (TaskFailedError, APIError),
            (InsufficientCreditsError, BadRequestError),
            (ConnectError, TimeoutError),
        ],
        ids=lambda c: c.__name__,
    )
    def test_not_parents(self, cls: type[Exception], not_parent: type[Exception]) -> None:
        """Errors are not caught by unrelated handlers."""
        assert not issubclass(cls, not_parent)

    def test_docstring_draws_every_class(self) -> None:
        """The tree in the module docstring names exactly the public error classes."""
        drawn = set(re.findall(r"[├└]── (\w+)", exceptions.__doc__ or ""))
        assert drawn | {"ViduError"} == {cls.__name__ for cls in ERROR_CLASSES}

    def test_all_is_sorted(self) -> None:
        """``__all__`` is sorted."""
        assert exceptions.__all__ == sorted(exceptions.__all__)


class TestProblem:
    """One thing wrong with a request."""

    def test_str(self) -> None:
        """``str`` is ``field: message``."""
        assert str(Problem("subjects[0].images", "needs at least one image")) == (
            "subjects[0].images: needs at least one image"
        )

    def test_default_reason(self) -> None:
        """The default reason is ``FieldInvalid``."""
        assert Problem("duration", "bad").reason == "FieldInvalid"

    def test_is_a_tuple(self) -> None:
        """A problem unpacks and compares as a tuple."""
        field, message, reason = Problem("prompt", "empty", "FieldLacking")
        assert (field, message, reason) == ("prompt", "empty", "FieldLacking")


class TestRequestValidationError:
    """Every problem at once, one line each."""

    def test_message(self) -> None:
        """The message counts the problems and lists each as ``field: message``."""
        error = RequestValidationError(
            [Problem("duration", "too long"), Problem("prompt", "empty", "FieldLacking")], subject="line 3"
        )
        assert str(error) == "invalid line 3 (2 problems):\n  duration: too long\n  prompt: empty"

    def test_singular(self) -> None:
        """One problem is "1 problem"."""
        assert str(RequestValidationError([Problem("a", "b")])) == "invalid request (1 problem):\n  a: b"

    def test_fields_without_repeats(self) -> None:
        """``fields`` lists each field once, in order."""
        error = RequestValidationError([Problem("b", "1"), Problem("a", "2"), Problem("b", "3")])
        assert error.fields == ("b", "a")
        assert error.problems == (Problem("b", "1"), Problem("a", "2"), Problem("b", "3"))


class TestMessages:
    """Messages carry what the server said and where."""

    def test_api_error(self) -> None:
        """Status, reason, message, method, path and trace id are all in the message and attributes."""
        error = BadRequestError(
            400,
            "FieldInvalid",
            "invalid field: duration",
            TRACE,
            method="POST",
            path="/ent/v2/reference2video",
            body={"code": 400},
        )
        assert str(error) == (
            f"HTTP 400 FieldInvalid: invalid field: duration (POST /ent/v2/reference2video, trace_id={TRACE})"
        )
        assert (error.status, error.reason, error.trace_id, error.method, error.path) == (
            400,
            "FieldInvalid",
            TRACE,
            "POST",
            "/ent/v2/reference2video",
        )

    @pytest.mark.parametrize(
        ("args", "kwargs", "text"),
        [
            pytest.param((500, "", ""), {}, "HTTP 500", id="bare"),
            pytest.param((404, "TaskNotFound", ""), {}, "HTTP 404 TaskNotFound", id="reason-only"),
            pytest.param((401, "", "unauthorized"), {}, "HTTP 401: unauthorized", id="message-only"),
            pytest.param(
                (429, "QuotaExceeded", "quota exceeded", TRACE), {}, f"({'trace_id=' + TRACE})", id="trace"
            ),
            pytest.param(
                (403, "Forbidden", "forbidden"), {"method": "GET", "path": "/p"}, "(GET /p)", id="where"
            ),
        ],
    )
    def test_api_error_parts(self, args: tuple[Any, ...], kwargs: dict[str, Any], text: str) -> None:
        """Missing parts are left out of the message."""
        assert str(APIError(*args, **kwargs)).endswith(text)

    def test_rate_limit_retry_after(self) -> None:
        """A rate limit keeps the wait the server asked for."""
        error = QuotaExceededError(429, "QuotaExceeded", "quota exceeded", retry_after=2.5)
        assert error.retry_after == 2.5

    def test_transport_error(self) -> None:
        """Transport errors name method and path and whether the request was sent."""
        error = RequestTimeoutError(
            "no answer in 30 s", method="POST", path="/ent/v2/reference2video", attempts=2
        )
        assert str(error) == "no answer in 30 s (POST /ent/v2/reference2video)"
        assert (error.request_sent, error.attempts) == (True, 2)

    def test_connect_error_never_sent(self) -> None:
        """A connect error is always safe to retry: nothing was sent."""
        error = ConnectError("connection refused", method="GET", path="/ent/v2/credits")
        assert error.request_sent is False
        assert str(error) == "connection refused (GET /ent/v2/credits)"

    @pytest.mark.parametrize(
        ("code", "text"), [("CreationPolicyViolation", "CreationPolicyViolation"), ("", "no err_code")]
    )
    def test_task_failed(self, code: str, text: str) -> None:
        """A failed task names its id and ``err_code``."""
        error = TaskFailedError(Task(id="916", state=TaskState.FAILED, err_code=code))
        assert str(error) == f"task 916 failed: {text}"
        assert error.err_code == code

    @pytest.mark.parametrize(
        ("task", "text"),
        [
            pytest.param(None, "task 9 did not finish in time", id="never-read"),
            pytest.param(Task(id="9", raw_state="queuing"), "(last state queuing)", id="raw"),
            pytest.param(Task(id="9", state=TaskState.PROCESSING), "(last state processing)", id="parsed"),
        ],
    )
    def test_wait_timeout(self, task: Task | None, text: str) -> None:
        """A wait timeout names the task and its last state."""
        error = WaitTimeoutError("9", task)
        assert str(error).endswith(text)
        assert error.last_task is task

    def test_response_validation(self) -> None:
        """Response errors list each path on its own line and keep the body."""
        error = ResponseValidationError(
            "unreadable task", errors=("a @ $.credits", "b @ $.id"), body={"x": 1}
        )
        assert str(error) == "unreadable task\n  a @ $.credits\n  b @ $.id"
        assert error.body == {"x": 1}

    def test_submit_outcome_unknown(self) -> None:
        """The fingerprint to search for is in the message."""
        error = SubmitOutcomeUnknownError("vidu-fp-1", "connection reset")
        assert "'vidu-fp-1'" in str(error)
        assert str(error).endswith(": connection reset")

    def test_callback_verification(self) -> None:
        """The failed check leads the message."""
        error = CallbackVerificationError("signature", "does not match")
        assert (str(error), error.check) == ("signature: does not match", "signature")


def _round_trip(error: BaseException) -> Any:
    return pickle.loads(pickle.dumps(error))


def _state(error: BaseException) -> dict[str, Any]:
    return {k: v for k, v in vars(error).items() if not k.startswith("__")}


PICKLE_CASES = [
    pytest.param(ConfigurationError("no API key"), id="configuration"),
    pytest.param(ClientClosedError("closed"), id="closed"),
    pytest.param(
        RequestValidationError([Problem("a", "b"), Problem("c", "d", "FieldLacking")], subject="line 2"),
        id="request-validation",
    ),
    pytest.param(
        ResponseValidationError("bad", errors=("x @ $.a",), body={"a": 1}), id="response-validation"
    ),
    pytest.param(
        TransportError("boom", method="GET", path="/p", request_sent=False, attempts=3), id="transport"
    ),
    pytest.param(ConnectError("refused", method="GET", path="/p", attempts=2), id="connect"),
    pytest.param(RequestTimeoutError("slow", method="POST", path="/p"), id="request-timeout"),
    pytest.param(
        NotFoundError(404, "TaskNotFound", "task not found", TRACE, method="GET", path="/t"), id="not-found"
    ),
    pytest.param(ServerError(500, "InternalServiceFailure", "internal", TRACE), id="server"),
    pytest.param(TaskFailedError(Task(id="1", state=TaskState.FAILED, err_code="X")), id="task-failed"),
    pytest.param(WaitTimeoutError("1", Task(id="1", raw_state="processing")), id="wait-timeout"),
    pytest.param(CallbackVerificationError("signature", "mismatch: a"), id="callback"),
]


class TestPickle:
    """Errors survive pickling (process pools, multiprocessing) with their message and context."""

    @pytest.mark.parametrize("error", PICKLE_CASES)
    def test_round_trip(self, error: BaseException) -> None:
        """Same type, same message, same attributes."""
        copy = _round_trip(error)
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert _state(copy) == _state(error)

    def test_api_error_body_and_attempts(self) -> None:
        """An API error keeps its body and attempt count."""
        error = BadRequestError(400, "FieldInvalid", "m", TRACE, body={"code": 400}, attempts=3)
        assert _state(_round_trip(error)) == _state(error)

    def test_rate_limit_retry_after(self) -> None:
        """A rate limit error keeps ``retry_after``."""
        assert _round_trip(RateLimitError(429, "TooManyRequests", "m", retry_after=2.0)).retry_after == 2.0

    def test_submit_outcome_message(self) -> None:
        """The explanation survives pickling."""
        error = SubmitOutcomeUnknownError("fp", "connection reset")
        assert str(_round_trip(error)) == str(error)

    def test_problems_survive(self) -> None:
        """Problems come back as ``Problem`` tuples."""
        copy = _round_trip(RequestValidationError([Problem("a", "b", "FieldLacking")]))
        assert copy.problems == (Problem("a", "b", "FieldLacking"),)
        assert isinstance(copy.problems[0], Problem)
