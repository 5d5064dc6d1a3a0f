"""``pyworkflow scheduler run``: fire schedules and wake sleeping runs in this process.

The local runtime keeps its timers (sleeps, retry delays, schedule slots) in storage;
an in-process timer service fires them. ``scheduler run`` keeps one going until
``--duration`` passes or SIGINT/SIGTERM arrives. On a stop it fires no more slots, lets
the runs already going finish for up to ``--grace`` seconds, then leaves the rest:
runs are durable, so the next process with a timer service takes them over.

Example (shell)::

    pyworkflow --module myapp.workflows scheduler run --poll-interval 2
    pyworkflow --module myapp.workflows scheduler run --duration 60
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from pyworkflow.cli.output import to_json
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.scheduler import LocalScheduler
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import ScheduleStatus

#: The name the local runtime gives its timer-service loop: it runs until cancelled,
#: so waiting for "everything in flight" must leave it out.
TIMER_LOOP = "pyworkflow-timers"


def describe_storage(storage: StorageBackend) -> str:
    """A short, password-free description of a storage backend for status lines.

    Example:
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> describe_storage(InMemoryStorageBackend())
        'memory'
    """
    kind = type(storage).__name__.removesuffix("StorageBackend").lower()
    kind = {"inmemory": "memory"}.get(kind, kind)
    for attr in ("db_path", "base_path"):
        where = getattr(storage, attr, None)
        if where is not None:
            return f"{kind} ({Path(str(where)).resolve()})"
    if kind in ("memory", "file", "sqlite"):
        return kind
    return repr(storage)  # the SQL backends' repr names host and database, never a password


async def settle(
    before: set[asyncio.Task[Any]],
    *,
    timeout: float | None = None,
    abandon: asyncio.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> bool:
    """Wait until the tasks started since ``before`` (runs launched in the background,
    timer firings) are done; the timer-service loop itself is stopped, not awaited.

    Returns False when ``timeout`` passed or ``abandon`` was set first; ``progress``
    is told how many tasks are still going.

    Example:
        >>> async def main():
        ...     before = asyncio.all_tasks()
        ...     task = asyncio.get_running_loop().create_task(asyncio.sleep(0.01))
        ...     return await settle(before), task.done()
        >>> asyncio.run(main())
        (True, True)
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        busy = _in_flight(before)
        if progress is not None:
            progress(len(busy))
        if not busy:
            return True
        if abandon is not None and abandon.is_set():
            return False
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            return False
        waiters: set[asyncio.Future[Any]] = set(busy)
        stop = None if abandon is None else loop.create_task(abandon.wait())
        if stop is not None:
            waiters.add(stop)
        try:
            await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stop is not None:
                stop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stop


def _in_flight(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started since ``before``, minus this one; a timer loop (re)started by a
    run that suspended meanwhile is cancelled so that no new work begins."""
    me = asyncio.current_task()
    busy: set[asyncio.Task[Any]] = set()
    for task in asyncio.all_tasks():
        if task is me or task in before:
            continue
        if task.get_name() == TIMER_LOOP:
            task.cancel()
            continue
        busy.add(task)
    return busy


async def abandon(before: set[asyncio.Task[Any]]) -> int:
    """Cancel the tasks started since ``before``; returns how many there were.

    A cancelled run keeps its durable state: the next process with a timer service
    takes it over once its lease lapses (a pending one: once its resume guard is due),
    both about 30 s by default.

    Example:
        >>> async def main():
        ...     before = asyncio.all_tasks()
        ...     asyncio.get_running_loop().create_task(asyncio.sleep(60))
        ...     return await abandon(before)
        >>> asyncio.run(main())
        1
    """
    left = _in_flight(before)
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    return len(left)


def background_runs(state: CLIState, label: str) -> Callable[[bool], Awaitable[None]]:
    """Call before starting runs from a command; the result, awaited with ``True``,
    waits for the runs this process launched in the background (local runtime), with a
    spinner on a terminal. With ``False`` it leaves them: they are durable, and the next
    ``pyworkflow scheduler run`` starts them. Another runtime's workers run them anyway.

    Example:
        >>> async def main():
        ...     finish = background_runs(CLIState(output="json"), "Running")
        ...     task = asyncio.get_running_loop().create_task(asyncio.sleep(0.01))
        ...     await finish(True)
        ...     return task.done()
        >>> asyncio.run(main())
        True
    """
    before = asyncio.all_tasks()

    async def finish(wait: bool) -> None:
        if state.runtime_name() != "local":
            return
        if not wait:
            await abandon(before)
        elif state.output != "table" or not sys.stdout.isatty():
            await settle(before)
        else:
            with Console(stderr=True).status(label) as status:
                await settle(before, progress=lambda n: status.update(f"{label} ({n} going)"))

    return finish


class _Signals:
    """SIGINT/SIGTERM while serving: the first stops, a second abandons in-flight runs."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.again = asyncio.Event()
        self.received: str | None = None

    def _on(self, name: str) -> None:
        if self.stop.is_set():
            self.again.set()
        self.received = self.received or name
        self.stop.set()

    def _threadsafe(self, loop: asyncio.AbstractEventLoop) -> Callable[[int, Any], None]:
        def handler(signum: int, _frame: Any) -> None:
            loop.call_soon_threadsafe(self._on, signal.Signals(signum).name)

        return handler

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous: dict[signal.Signals, Any] = {}
        for sig in sigs:
            try:
                loop.add_signal_handler(sig, self._on, sig.name)
            except NotImplementedError:  # Windows: no loop signal handlers
                previous[sig] = signal.signal(sig, self._threadsafe(loop))
        try:
            yield
        finally:
            for sig in sigs:
                if sig in previous:
                    signal.signal(sig, previous[sig])
                else:
                    loop.remove_signal_handler(sig)


async def _run_until_stopped(
    scheduler: LocalScheduler, duration: float | None, signals: _Signals
) -> None:
    task = asyncio.get_running_loop().create_task(scheduler.run(duration=duration))
    stopped = asyncio.get_running_loop().create_task(signals.stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    # run() clears its stop flag when it begins, so a signal that came before that
    # would be lost: keep asking until it has returned.
    while not task.done():
        scheduler.stop()
        await asyncio.wait({task}, timeout=0.1)
    stopped.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopped
    await task


async def _serve(
    state: CLIState, storage: StorageBackend, poll: float, duration: float | None, grace: float
) -> dict[str, Any]:
    say = _say(state)
    before = asyncio.all_tasks()
    signals = _Signals()
    # Handlers first: from the startup line on, a signal means a clean stop.
    with signals.installed():
        active = await storage.list_schedules(status=ScheduleStatus.ACTIVE, limit=100_000)
        where = describe_storage(storage)
        plural = "" if len(active) == 1 else "s"
        say(
            f"Scheduler started: {len(active)} active schedule{plural}, storage {where}, "
            f"runtime {state.runtime_name()}, poll every {poll:g}s. Press Ctrl+C to stop."
        )
        started = time.monotonic()
        await _run_until_stopped(LocalScheduler(storage, poll_interval=poll), duration, signals)
        going = len(_in_flight(before))
        if going:
            say(
                f"Stopping: letting {going} in-flight task(s) finish (up to {grace:g}s; "
                "Ctrl+C again to leave them to the next start)."
            )
        finished = await settle(before, timeout=grace, abandon=signals.again)
        left = 0 if finished else await abandon(before)
    if left:
        say(f"Left {left} task(s) unfinished; their runs resume on the next start.")
    return {
        "status": "stopped",
        "reason": f"signal {signals.received}" if signals.received else "duration",
        "active_schedules": len(active),
        "storage": where,
        "runtime": state.runtime_name(),
        "poll_interval": poll,
        "ran_seconds": round(time.monotonic() - started, 3),
        "abandoned_tasks": left,
    }


def _say(state: CLIState) -> Callable[[str], None]:
    """Status lines: on stdout, or on stderr when stdout carries JSON."""
    err = state.output == "json"
    return lambda text: click.echo(text, err=err)


@click.group()
def scheduler() -> None:
    """Run the local scheduler, which fires schedules and wakes sleeping runs."""


@scheduler.command("run")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds between scans for due schedules that have no timer yet (written to "
    "storage directly); slots of schedules made with pyworkflow fire on time anyway.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (exit 0). Default: run until stopped.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="On stop, seconds to let in-flight runs finish before leaving them for later.",
)
@click.pass_obj
def run(state: CLIState, poll_interval: float, duration: float | None, grace: float) -> None:
    """Fire due schedules in this process until stopped (SIGINT/SIGTERM) or --duration.

    Imports your workflows (--module), points the engine at the storage and runtime
    chosen by the root options, and starts runs of due schedules here. The same
    timer service also wakes sleeping runs, retries and interrupted runs of that
    storage: on the local runtime, keep `pyworkflow scheduler run` going and every
    durable run keeps progressing. Several processes may run it at once: each slot
    still fires once.

    On SIGINT/SIGTERM no more slots fire; runs in flight get --grace seconds to
    finish (a second Ctrl+C skips the wait). Anything left is durable and is taken
    over by the next process that runs the scheduler. Prints "Scheduler stopped".

    \b
    Examples:
      pyworkflow --module myapp.workflows scheduler run
      pyworkflow --module myapp.workflows scheduler run --duration 60 --poll-interval 1
    """
    if state.runtime_name() == "celery":
        # This process would start the runs itself; on Celery the Beat tick fires
        # schedules and timers and the workers run them.
        raise fail(
            "On the Celery runtime schedules and timers fire from Celery Beat: run "
            "`pyworkflow worker run --beat` (one per deployment). `scheduler run` is for "
            "the local runtime (--runtime local)."
        )
    state.discover()
    state.configure_engine()
    summary = state.run(lambda storage: _serve(state, storage, poll_interval, duration, grace))
    _say(state)("Scheduler stopped")
    if state.output == "json":
        click.echo(to_json(summary))
