"""What ``vidu-async run`` shows while it works: a live panel on a terminal, a line per event otherwise.

The counting (:class:`Tally`) is pure; the two displays only render it. rich is optional (the
``cli`` extra): without it, or when stdout is not a terminal, the plain display is used.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Protocol, TextIO

import attrs

from . import Event, StateChangeEvent, TaskState

__all__ = ["Display", "PlainDisplay", "RichDisplay", "Tally", "make_display", "printable"]

# What must never reach a terminal as it is: C0 and C1 controls (escape sequences, carriage
# returns, line breaks), DEL, the Unicode line and paragraph separators, the bidirectional
# overrides (which reorder what is shown), and lone surrogates (which cannot even be encoded).
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_UNSAFE_BUT_NEWLINE: Final = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` safe to print: every control character (and the like) as a ``\\uXXXX`` escape, so a
    key, a prompt or a server's message can never move the cursor, recolour the terminal or forge
    a line of output. With ``newlines=True`` the line breaks are kept (the SDK's own multi-line
    messages), everything else is escaped the same way. Inside a JSON string the escapes are JSON's
    own, so JSON text stays valid JSON."""
    return (_UNSAFE_BUT_NEWLINE if newlines else _UNSAFE).sub(_escape, text)


@attrs.define
class Tally:
    """Counts of a run, fed by results and state-change events.

    Attributes:
        total: Inputs in the job file (``None`` until counted).
        started: When the run started (``time.monotonic``).
    """

    total: int | None = None
    started: float = attrs.field(factory=time.monotonic)
    succeeded: int = 0
    failed: int = 0
    credits: int = 0
    resumed: int = 0
    failures: Counter[str] = attrs.field(factory=Counter)
    active: dict[str, TaskState] = attrs.field(factory=dict)
    #: Credits charged by this run's creates so far (in-flight tasks included), when known.
    charged: Callable[[], int] | None = None
    resumed_credits: int = 0
    #: Credits of the items that succeeded (part of :attr:`credits_now`).
    succeeded_credits: int = 0

    @property
    def credits_now(self) -> int:
        """Credits charged so far: earlier runs' results plus this run's creates (or its results)."""
        if self.charged is None:
            return self.credits
        return self.resumed_credits + self.charged()

    @property
    def done(self) -> int:
        """Inputs with a result."""
        return self.succeeded + self.failed

    def by_state(self) -> Counter[TaskState]:
        """Active tasks by their last seen state."""
        return Counter(self.active.values())

    @property
    def pending(self) -> int:
        """Inputs not yet submitted (or not yet known to be)."""
        if self.total is None:
            return 0
        return max(0, self.total - self.done - len(self.active))

    def rate(self, now: float | None = None) -> float:
        """Results per second so far (resumed results excluded: they took no time)."""
        elapsed = (now or time.monotonic()) - self.started
        fresh = self.done - self.resumed
        return fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate, when it can be told."""
        rate = self.rate(now)
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)

    def on_event(self, event: Event) -> None:
        """A client hook: follow the state of every submitted task."""
        if isinstance(event, StateChangeEvent) and not event.new.is_terminal:
            self.active[event.task_id] = event.new

    def on_result(
        self, *, ok: bool, task_id: str | None, credits: int | None, reason: str, resumed: bool
    ) -> None:
        """Count one result."""
        if task_id is not None:
            self.active.pop(task_id, None)
        if ok:
            self.succeeded += 1
            self.succeeded_credits += credits or 0
        else:
            self.failed += 1
            self.failures[reason or "error"] += 1
        self.credits += credits or 0
        self.resumed += resumed
        if resumed:
            self.resumed_credits += credits or 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Display(Protocol):
    """How a run reports itself."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def result(self, line: str, *, ok: bool) -> None: ...
    def problem(self, line: str) -> None: ...
    def note(self, line: str) -> None: ...
    def summary(self, rows: list[tuple[str, str]]) -> None: ...


class PlainDisplay:
    """One line per event, for logs and pipes."""

    def __init__(self, tally: Tally, out: TextIO, err: TextIO) -> None:
        self._tally = tally
        self._out = out
        self._err = err

    def start(self) -> None:
        total = self._tally.total
        print(f"run: {total if total is not None else '?'} inputs", file=self._out, flush=True)

    def _print(self, text: str) -> None:
        print(printable(text), file=self._out, flush=True)

    def stop(self) -> None:
        return None

    def _prefix(self) -> str:
        total = self._tally.total
        return f"[{self._tally.done}/{total if total is not None else '?'}]"

    def result(self, line: str, *, ok: bool) -> None:
        self._print(f"{self._prefix()} {'ok  ' if ok else 'FAIL'} {line}")

    def problem(self, line: str) -> None:
        self._print(f"{self._prefix()} FAIL {line}")

    def note(self, line: str) -> None:
        self._print(f"note: {line}")

    def summary(self, rows: list[tuple[str, str]]) -> None:
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            self._print(f"{name.ljust(width)}  {value}")


class RichDisplay:
    """A live panel (counts by state, credits, throughput, ETA) over a scrolling list of failures."""

    def __init__(self, tally: Tally, out: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self._tally = tally
        self._console = Console(file=out)
        self._live = Live(self, console=self._console, refresh_per_second=4, transient=False)

    def __rich__(self) -> Any:
        from rich.table import Table

        tally = self._tally
        states = tally.by_state()
        table = Table(title="vidu-async run", show_header=True, header_style="bold", expand=False)
        for name in ("pending", "submitted", "queueing", "processing", "succeeded", "failed"):
            table.add_column(name, justify="right")
        table.add_row(
            str(tally.pending),
            str(states[TaskState.CREATED] + states[TaskState.UNKNOWN]),
            str(states[TaskState.QUEUEING]),
            str(states[TaskState.PROCESSING]),
            f"[green]{tally.succeeded}[/]",
            f"[red]{tally.failed}[/]" if tally.failed else "0",
        )
        total = tally.total if tally.total is not None else "?"
        table.caption = (
            f"{tally.done}/{total} done · {tally.credits_now} credits · "
            f"{tally.rate() * 60:.1f}/min · ETA {_duration(tally.eta())}"
        )
        return table

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def _print(self, label: str, style: str, line: str) -> None:
        from rich.text import Text

        # A Text, not a string: what a key or a server wrote is never read as rich markup.
        self._console.print(Text.assemble((label, style), " ", printable(line)), highlight=False)

    def result(self, line: str, *, ok: bool) -> None:
        if not ok:
            self._print("FAIL", "red", line)

    def problem(self, line: str) -> None:
        self._print("FAIL", "red", line)

    def note(self, line: str) -> None:
        self._print("note", "yellow", line)

    def summary(self, rows: list[tuple[str, str]]) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(title="summary", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for name, value in rows:
            table.add_row(Text(printable(name)), Text(printable(value)))
        self._console.print(table)


def make_display(tally: Tally, out: TextIO, err: TextIO, *, plain: bool = False) -> Display:
    """The rich display on a terminal (when rich is installed), else the plain one."""
    if not plain and out is sys.stdout and out.isatty():
        try:
            return RichDisplay(tally, out)
        except ImportError:
            pass
    return PlainDisplay(tally, out, err)
