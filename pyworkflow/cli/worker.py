"""``pyworkflow worker``: start Celery workers, see which ones are up, list the queues.

``worker run`` runs a Celery worker here on the broker (``--broker``,
``PYWORKFLOW_CELERY_BROKER``, settings ``[celery] broker``, the YAML's ``celery.broker``,
else local Redis), the root options' storage and ``--module``'s modules, exported as
``PYWORKFLOW_*`` variables first so that pool processes and Beat use them too.

JSON keys: ``worker status`` / ``worker list`` items ``{name, status, concurrency,
processed, active_tasks, queues, pid, uptime}``; ``worker queues`` items ``{name,
routing_key, exchange, purpose, tasks}``. ``worker status`` exits 1 when no worker
answers (a health check); ``worker list`` exits 0.

Example (shell)::

    pyworkflow --module myapp.workflows worker run --workflow --schedule --beat
    pyworkflow --module myapp.workflows worker run --step -c 8
    pyworkflow --output json worker status || echo "no worker is up"
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

from pyworkflow.cli.output import emit, fields_table, list_table
from pyworkflow.cli.state import CLIState
from pyworkflow.cli.worker_run import (
    BROKER_HELP,
    SCHEDULES_QUEUE,
    STEPS_QUEUE,
    WORKFLOWS_QUEUE,
    _broker_url,
    _joined,
    _safe_url,
    check_broker,
    run_command,
)

__all__ = [
    "QUEUE_PURPOSES",
    "inspect_workers",
    "list_command",
    "queue_rows",
    "queues_command",
    "run_command",
    "status_command",
    "worker",
]

#: What runs on each queue, for ``worker queues``.
QUEUE_PURPOSES: dict[str, str] = {
    "pyworkflow.default": "tasks not routed elsewhere",
    WORKFLOWS_QUEUE: "workflow activations (start, resume)",
    STEPS_QUEUE: "step attempts",
    SCHEDULES_QUEUE: "Beat's timer tick and schedules",
}


@click.group()
def worker() -> None:
    """Run and inspect Celery workers (the celery runtime)."""


# ------------------------------------------------------------------------- queues


def queue_rows() -> list[dict[str, Any]]:
    """One item per pyworkflow queue: ``{name, routing_key, exchange, purpose, tasks}``.

    Example:
        >>> [row["name"] for row in queue_rows()][1:]
        ['pyworkflow.workflows', 'pyworkflow.steps', 'pyworkflow.schedules']
        >>> queue_rows()[2]["tasks"]
        ['pyworkflow.execute_step']
    """
    from pyworkflow.celery.queues import EXCHANGE_NAME, QUEUE_BINDINGS, TASK_ROUTES

    return [
        {
            "name": name,
            "routing_key": key,
            "exchange": EXCHANGE_NAME,
            "purpose": QUEUE_PURPOSES.get(name, ""),
            "tasks": sorted(t for t, route in TASK_ROUTES.items() if route["queue"] == name),
        }
        for name, key in QUEUE_BINDINGS.items()
    ]


@worker.command("queues")
@click.pass_obj
def queues_command(state: CLIState) -> None:
    """List pyworkflow's queues, their routing keys and what runs on each.

    \b
    Example:
        pyworkflow --output json worker queues
    """
    rows = queue_rows()
    columns = [("name", "Queue"), ("routing_key", "Routing key"), ("purpose", "Purpose")]

    def table(out: Console) -> None:
        list_table(out, rows, columns)
        out.print("Exchange pyworkflow (topic). Pick with run --workflow/--step/--schedule.")

    emit(state, rows, table=table, plain=[row["name"] for row in rows])


# ------------------------------------------------------------------- status / list


def inspect_workers(app: Any, timeout: float) -> list[dict[str, Any]]:
    """Ask every worker on ``app``'s broker for its state (waits ``timeout`` for replies).

    Example (not run: needs a broker and workers)::

        inspect_workers(_celery_app_for("redis://localhost:6379/0"), 1.0)
        # [{'name': 'celery@host', 'status': 'online', 'concurrency': 4, ...}]
    """
    names = sorted(app.control.inspect(timeout=timeout).ping() or {})
    if not names:
        return []
    # Only those that answered: each call returns as soon as all of them replied, so a
    # longer bound costs nothing and lets a worker that is busy with a task answer.
    insp = app.control.inspect(destination=names, timeout=timeout + 2, limit=len(names))
    stats, active, queues = insp.stats() or {}, insp.active() or {}, insp.active_queues() or {}
    rows = []
    for name in names:
        info = stats.get(name) or {}
        rows.append(
            {
                "name": name,
                "status": "online",
                "concurrency": (info.get("pool") or {}).get("max-concurrency"),
                "processed": sum((info.get("total") or {}).values()),
                "active_tasks": len(active.get(name) or []),
                "queues": sorted(q.get("name") for q in queues.get(name) or []),
                "pid": info.get("pid"),
                "uptime": info.get("uptime"),
            }
        )
    return rows


def _report_workers(state: CLIState, broker: str | None, timeout: float, detail: bool) -> bool:
    """Print the workers; whether any answered."""
    url = _broker_url(state, broker)
    check_broker(url, timeout=max(timeout, 1.0))
    from pyworkflow.celery.app import create_celery_app

    # An app of its own: the module's app is left as the environment configured it.
    rows = inspect_workers(create_celery_app(url), timeout)
    message = f"No workers responded on {_safe_url(url)} within {timeout:g} s."
    columns = [("name", "Worker"), ("status", "Status"), ("concurrency", "Concurrency")]
    columns += [("processed", "Processed"), ("active_tasks", "Active"), ("queues", "Queues")]

    def table(out: Console) -> None:
        if not detail or not rows:
            list_table(out, _joined(rows), columns, empty=message)
        for row in _joined(rows) if detail else []:
            fields_table(out, row, title=row["name"])

    emit(state, rows, table=table, plain=[row["name"] for row in rows])
    if not rows and state.output != "table":
        click.echo(message, err=True)
    return bool(rows)


@worker.command("list")
@click.option("--broker", help=BROKER_HELP)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
@click.pass_obj
def list_command(state: CLIState, broker: str | None, timeout: float) -> None:
    """List the workers that answer on the broker (exit code 0 even if none does).

    \b
    Example:
        pyworkflow --output json worker list
    """
    _report_workers(state, broker, timeout, detail=False)


@worker.command("status")
@click.option("--broker", help=BROKER_HELP)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
@click.pass_obj
def status_command(state: CLIState, broker: str | None, timeout: float) -> None:
    """Show each worker's state; exit code 1 when none answers (a health check).

    \b
    Example:
        pyworkflow --output json worker status || echo "no worker is up"
    """
    if not _report_workers(state, broker, timeout, detail=True):
        sys.exit(1)


worker.add_command(run_command)
