"""Every error vidu-async raises, under one root.

::

    ViduError
    ├── ConfigurationError (ValueError)       the client cannot be built: no API key, bad base URL
    │   └── MissingAPIKeyError                no key given and none in VIDU_API_KEY
    ├── ClientClosedError (RuntimeError)      the client was used after ``aclose()``
    ├── ClientNotOpenError (RuntimeError)     waiting needs the client's scope: ``async with ViduClient()``
    ├── RequestValidationError (ValueError)   a request Vidu would refuse, caught before sending
    ├── ResponseValidationError               a response body that cannot be read as the documented shape
    ├── TransportError                        no usable HTTP answer came back
    │   ├── ConnectError                      the request never reached the server (safe to retry)
    │   └── RequestTimeoutError (TimeoutError)
    ├── APIError                              Vidu answered with an error body
    │   ├── BadRequestError                   400: a field, a policy, a task state
    │   ├── InsufficientCreditsError          CreditInsufficient (400 in the table, 402 observed)
    │   ├── AuthenticationError               401
    │   ├── PermissionDeniedError             403
    │   ├── NotFoundError                     404
    │   ├── ConflictError                     409
    │   ├── RateLimitError                    429 TooManyRequests / SystemThrottling
    │   │   └── QuotaExceededError            429 QuotaExceeded: the organization's slots are full
    │   └── ServerError                       5xx
    ├── TaskFailedError                       a task ended in state ``failed``
    ├── WaitTimeoutError (TimeoutError)       a task was not finished by the caller's deadline
    ├── SubmitOutcomeUnknownError             a create may or may not have been billed
    ├── BudgetExceededError                   a batch item not submitted: ``max_credits`` would be passed
    ├── DownloadError                         a video could not be saved whole
    ├── CallbackVerificationError             a callback failed its signature checks
    └── JournalError                          a batch journal cannot be used (corrupt, locked, other input)

Every :class:`APIError` carries Vidu's ``reason`` and ``trace_id``. No error, message or
repr ever carries the API key: messages are built from the method, the path, and what
the server said.

This module imports nothing from the rest of the package, so it can be imported anywhere: the
errors that carry a task type it with :class:`TaskLike`, which :class:`~vidu_async.Task` satisfies.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CallbackVerificationError",
    "ClientClosedError",
    "ClientNotOpenError",
    "ConfigurationError",
    "ConflictError",
    "ConnectError",
    "DownloadError",
    "InsufficientCreditsError",
    "JournalError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "Problem",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestValidationError",
    "ResponseValidationError",
    "ServerError",
    "SubmitOutcomeUnknownError",
    "TaskFailedError",
    "TaskLike",
    "TransportError",
    "ViduError",
    "WaitTimeoutError",
]


class ViduError(Exception):
    """The root of every error raised by vidu-async."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild without calling __init__ (subclasses take other arguments), then restore every
        # attribute: errors cross process boundaries (pools, pickled batch results) intact.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[ViduError], args: tuple[Any, ...]) -> ViduError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


class ConfigurationError(ViduError, ValueError):
    """The client cannot be configured as asked (no API key, a malformed base URL...)."""


class MissingAPIKeyError(ConfigurationError):
    """No API key was given, and ``VIDU_API_KEY`` is unset or blank."""


class ClientClosedError(ViduError, RuntimeError):
    """The client was used after it was closed."""


class ClientNotOpenError(ViduError, RuntimeError):
    """Waiting for tasks needs the client's background scheduler, which runs inside
    ``async with ViduClient() as client:``; the client was used outside it."""


class Problem(NamedTuple):
    """One thing wrong with a request.

    Attributes:
        field: Where the problem is, in Vidu's JSON names (``subjects[1].images[0]``).
        message: What is wrong, in plain words.
        reason: The Vidu reason the service would answer with (``FieldInvalid``,
            ``FieldLacking``, ``FieldUnwanted``, ``FieldItemCountOutOfRange``...).
    """

    field: str
    message: str
    reason: str = "FieldInvalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RequestValidationError(ViduError, ValueError):
    """A request that breaks a documented rule; nothing was sent.

    Every problem found is reported at once, one ``field: problem`` line each.

    Attributes:
        problems: Every problem found, in field order.
    """

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], *, subject: str = "request") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.subject = subject
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid {subject} ({count} {noun}):\n{lines}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields named by the problems, in order, without repeats."""
        return tuple(dict.fromkeys(p.field for p in self.problems))


class ResponseValidationError(ViduError):
    """A response body that does not have a shape the SDK can read.

    Attributes:
        errors: One line per problem, with the JSON path (``expected int @ $.credits``).
        body: The decoded body, for debugging (never contains the key: it is the server's answer).
    """

    def __init__(self, message: str, *, errors: tuple[str, ...] = (), body: object = None) -> None:
        self.errors = errors
        self.body = body
        detail = "".join(f"\n  {e}" for e in errors)
        super().__init__(f"{message}{detail}")


class TransportError(ViduError):
    """No usable HTTP answer came back.

    Attributes:
        method: The HTTP method.
        path: The request path (no host, no query, no key).
        request_sent: False when the request certainly never reached the server, so any call,
            create included, can be retried without risk of a duplicate task.
        attempts: How many attempts were made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        request_sent: bool = True,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.path = path
        self.request_sent = request_sent
        self.attempts = attempts
        where = f" ({method} {path})" if method else ""
        super().__init__(f"{message}{where}")


class ConnectError(TransportError):
    """The server could not be reached (DNS, refused, TLS, connect timeout); nothing was sent."""

    def __init__(self, message: str, *, method: str = "", path: str = "", attempts: int = 1) -> None:
        super().__init__(message, method=method, path=path, request_sent=False, attempts=attempts)


class RequestTimeoutError(TransportError, TimeoutError):
    """The server did not answer in time; the request may or may not have been processed."""


class APIError(ViduError):
    """Vidu answered with an error body.

    Attributes:
        status: The HTTP status.
        reason: Vidu's symbolic reason (``FieldInvalid``, ``TaskNotFound``...), or ``""``.
        message: Vidu's message, as sent.
        trace_id: Vidu's trace id, to quote to support, or ``""``.
        method: The HTTP method.
        path: The request path.
        body: The decoded error body.
        attempts: How many attempts were made.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        trace_id: str = "",
        *,
        method: str = "",
        path: str = "",
        body: object = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.trace_id = trace_id
        self.method = method
        self.path = path
        self.body = body
        self.attempts = attempts
        text = f"HTTP {status}"
        if reason:
            text += f" {reason}"
        if message:
            text += f": {message}"
        context = [f"{method} {path}"] if method else []
        if trace_id:
            context.append(f"trace_id={trace_id}")
        if context:
            text += f" ({', '.join(context)})"
        super().__init__(text)


class BadRequestError(APIError):
    """400: a field was refused, a policy was hit, or the task is in the wrong state."""


class InsufficientCreditsError(APIError):
    """The account has too few credits (``CreditInsufficient``, answered as 400 or 402)."""


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or suspended."""


class PermissionDeniedError(APIError):
    """403: the key may not do this."""


class NotFoundError(APIError):
    """404: no such task, creation or resource."""


class ConflictError(APIError):
    """409: a resource conflict."""


class RateLimitError(APIError):
    """429: too many requests (``TooManyRequests``, ``SystemThrottling``).

    Attributes:
        retry_after: Seconds the server asked us to wait, when it said so.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        trace_id: str = "",
        *,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
        body: object = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(
            status, reason, message, trace_id, method=method, path=path, body=body, attempts=attempts
        )
        self.retry_after = retry_after


class QuotaExceededError(RateLimitError):
    """429 ``QuotaExceeded``: the organization's concurrency slots are full."""


class ServerError(APIError):
    """5xx: the service failed; whether the request took effect is unknown."""


class _StateLike(Protocol):
    @property
    def value(self) -> str: ...


class TaskLike(Protocol):
    """What an error reads of the task it carries; :class:`~vidu_async.Task` is one.

    Attributes:
        id: The task id.
        state: The task's state (``value`` is its name as Vidu spells it).
        raw_state: The state string exactly as sent.
        err_code: Why the task failed, or "".
        err_msg: Vidu's message about the failure, or "".
        is_terminal: Whether the task is finished.
    """

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> _StateLike: ...
    @property
    def raw_state(self) -> str: ...
    @property
    def err_code(self) -> str: ...
    @property
    def err_msg(self) -> str: ...
    @property
    def is_terminal(self) -> bool: ...


class TaskFailedError(ViduError):
    """A task ended in state ``failed``.

    Attributes:
        task: The failed task as last read.
        err_code: Vidu's ``err_code`` for the failure (``CreationPolicyViolation``...), or ``""``.
    """

    def __init__(self, task: TaskLike) -> None:
        self.task = task
        self.err_code: str = task.err_code
        code = task.err_code or "no err_code"
        super().__init__(f"task {task.id} failed: {code}")


class WaitTimeoutError(ViduError, TimeoutError):
    """A task was not finished by the caller's deadline. The task itself may still finish.

    Attributes:
        task_id: The task waited for.
        last_task: The task as last read, or ``None`` when it was never read.
    """

    def __init__(self, task_id: str, last_task: TaskLike | None = None) -> None:
        self.task_id = task_id
        self.last_task = last_task
        state = f" (last state {last_task.raw_state or last_task.state.value})" if last_task else ""
        super().__init__(f"task {task_id} did not finish in time{state}")


class SubmitOutcomeUnknownError(ViduError):
    """A create request went out, no answer came back, and the task list could not tell
    whether a task was made. Resubmitting might bill twice, so the SDK stops and says so.

    Attributes:
        fingerprint: The fingerprint stamped in the request's ``payload``: search for it with
            ``list_tasks`` (or in the console) to find the task if it exists.
    """

    def __init__(self, fingerprint: str, message: str = "") -> None:
        self.fingerprint = fingerprint
        detail = f": {message}" if message else ""
        super().__init__(
            f"the create request's outcome is unknown (payload fingerprint {fingerprint!r}){detail}"
        )


class BudgetExceededError(ViduError):
    """A batch item was not submitted because the batch's ``max_credits`` budget was spent, or its
    task would have taken the batch past it.

    Attributes:
        budget: The batch's budget.
        spent: The credits charged when the item was reached.
        price: The dearest task the batch had been charged for (0 when none was known).
    """

    def __init__(self, budget: int, spent: int, price: int = 0) -> None:
        self.budget = budget
        self.spent = spent
        self.price = price
        text = f"not submitted: the batch has charged {spent} credits of its {budget} budget"
        if price and spent < budget:
            text += f", and a task may cost {price}"
        super().__init__(text)


class DownloadError(ViduError):
    """A video could not be saved whole: an interrupted or stalled body (its partial file is kept
    beside the destination as ``<name>.part`` and resumed next time), or an answer that can never
    become the file (larger than ``DownloadPolicy.max_bytes``, encoded, not the media its name
    claims, a link that stays refused, an unwritable folder: nothing is kept)."""


class CallbackVerificationError(ViduError):
    """A callback request failed verification.

    Attributes:
        check: Which check failed (``missing-header``, ``algorithm``, ``access-key``,
            ``date``, ``nonce-replay``, ``signature``...).
    """

    def __init__(self, check: str, message: str) -> None:
        self.check = check
        super().__init__(f"{check}: {message}")


class JournalError(ViduError):
    """A batch journal cannot be used: unreadable or corrupt, locked by another run, written by a
    newer version of the SDK, or written for a different input. Nothing in it was changed.

    Attributes:
        path: The journal's location, when it has one.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        where = f" ({path})" if path else ""
        super().__init__(f"{message}{where}")
