"""``pyworkflow worker run``: start a Celery worker here, on pyworkflow's queues.

This module holds the ``run`` command (registered on the ``worker`` group by
:mod:`pyworkflow.cli.worker`) and what it builds on, some of which the other worker
commands share: the queue names, finding and checking the broker, the Celery argv, the
``PYWORKFLOW_*`` variables that hand the storage, broker and modules to the worker's
processes, and the start-up banner.

Example:
    >>> select_queues(True, False, True)
    ['pyworkflow.workflows', 'pyworkflow.schedules']
    >>> build_argv(select_queues(False, True, False), "debug", {"concurrency": 8})
    ['worker', '--loglevel=DEBUG', '--queues=pyworkflow.steps', '--concurrency=8']
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import click

from pyworkflow.cli.output import emit, fields_table
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.config import CONFIG_FILE_NAME, read_yaml_config
from pyworkflow.core.registry import list_steps, list_workflows
from pyworkflow.observability import configure_logging
from pyworkflow.storage.config import storage_to_config

# The names of pyworkflow.celery.queues, spelled out: importing pyworkflow.celery costs
# every CLI command 0.1 s, so only the worker commands do it.
WORKFLOWS_QUEUE, STEPS_QUEUE = "pyworkflow.workflows", "pyworkflow.steps"
SCHEDULES_QUEUE = "pyworkflow.schedules"
BEAT_SCHEDULER = "pyworkflow.celery.scheduler:PyWorkflowScheduler"
POOLS = ("prefork", "solo", "threads", "eventlet", "gevent")
SECONDS = click.FloatRange(min=0, min_open=True)
#: Seconds to wait for the broker before calling it unreachable.
BROKER_TIMEOUT = 3.0
BROKER_HELP = "Broker URL. Default: PYWORKFLOW_CELERY_BROKER, settings/YAML, local Redis."


def _joined(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with list values as comma-separated text, for tables."""
    return [{k: ", ".join(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]


def select_queues(workflow: bool, step: bool, schedule: bool) -> list[str]:
    """The queues a worker consumes: those of the flags given, or all four when none is.

    Example:
        >>> select_queues(False, True, False)
        ['pyworkflow.steps']
        >>> len(select_queues(False, False, False))
        4
    """
    from pyworkflow.celery.queues import QUEUE_BINDINGS

    flags = ((workflow, WORKFLOWS_QUEUE), (step, STEPS_QUEUE), (schedule, SCHEDULES_QUEUE))
    return [queue for flag, queue in flags if flag] or list(QUEUE_BINDINGS)


# ------------------------------------------------------------------------- broker


def _celery_setting(state: CLIState, key: str) -> str | None:
    """``[celery] <key>`` of the settings file, else ``celery.<key>`` of the YAML file."""

    section = state.settings.get("celery")
    path = Path.cwd() / CONFIG_FILE_NAME
    if not (isinstance(section, dict) and section.get(key)) and path.is_file():
        section = read_yaml_config(path).get("celery")
    if isinstance(section, dict) and section.get(key):
        return str(section[key])
    return None


def _broker_url(state: CLIState, explicit: str | None = None) -> str:
    """The broker: ``explicit``, ``PYWORKFLOW_CELERY_BROKER``, settings, YAML, local Redis."""
    from pyworkflow.celery.app import resolve_broker_url

    env = os.environ.get("PYWORKFLOW_CELERY_BROKER", "").strip()
    return resolve_broker_url(explicit or env or _celery_setting(state, "broker"))


def _result_backend(state: CLIState) -> str:
    from pyworkflow.celery.app import resolve_result_backend

    env = os.environ.get("PYWORKFLOW_CELERY_RESULT_BACKEND", "").strip()
    return resolve_result_backend(env or _celery_setting(state, "result_backend"))


def _safe_url(url: str) -> str:
    """``url`` with its password masked, for printing."""
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def check_broker(url: str, timeout: float = BROKER_TIMEOUT) -> None:
    """Connect to the broker once, or raise a one-line error saying how to fix it.

    Example:
        >>> check_broker("memory://")
    """
    from kombu.connection import Connection

    conn = Connection(url, connect_timeout=timeout)  # type: ignore[no-untyped-call]
    try:
        conn.ensure_connection(  # type: ignore[no-untyped-call]
            max_retries=1, interval_start=0, interval_step=0, timeout=timeout
        )
    except Exception as error:
        reason = str(error).strip().rstrip(".") or type(error).__name__
        raise fail(
            f"Cannot reach the Celery broker at {_safe_url(url)} ({reason}). Start it "
            "(e.g. `redis-server`) or point pyworkflow at yours with --broker URL or "
            "PYWORKFLOW_CELERY_BROKER."
        ) from error
    finally:
        conn.release()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------- run


def _storage_env(config: dict[str, Any]) -> dict[str, str]:
    """The ``PYWORKFLOW_*`` variables that make a worker process build storage ``config``."""
    kind = str(config.get("type"))
    if kind in ("sqlite", "file"):
        path = os.path.abspath(str(config["base_path"]))
        return {"PYWORKFLOW_STORAGE_TYPE": kind, "PYWORKFLOW_STORAGE_PATH": path}
    if kind == "postgres" and config.get("dsn"):
        return {"PYWORKFLOW_STORAGE_TYPE": kind, "PYWORKFLOW_POSTGRES_DSN": str(config["dsn"])}
    if kind == "postgres":
        keys = ("host", "port", "user", "password", "database")
        env = {f"PYWORKFLOW_POSTGRES_{k.upper()}": str(config[k]) for k in keys if config.get(k)}
        return {"PYWORKFLOW_STORAGE_TYPE": kind, **env}
    return {}  # no env form: pool processes get the configured storage by fork


def _describe_storage(config: dict[str, Any]) -> str:
    """A one-line description of storage ``config`` (no password)."""
    if config.get("base_path"):
        return f"{config['type']} {os.path.abspath(str(config['base_path']))}"
    if config.get("dsn"):
        return f"{config['type']} {_safe_url(str(config['dsn']))}"
    host = f" {config['host']}:{config.get('port')}/{config.get('database')}"
    return str(config.get("type")) + (host if config.get("host") else "")


def build_argv(queues: list[str], loglevel: str, options: dict[str, Any]) -> list[str]:
    """The arguments of ``app.worker_main``; ``options`` are Celery worker options
    (``None`` and ``False`` left out, ``True`` as a bare flag).

    Example:
        >>> build_argv(["pyworkflow.steps"], "info", {"pool": "solo", "beat": False})
        ['worker', '--loglevel=INFO', '--queues=pyworkflow.steps', '--pool=solo']
    """
    argv = ["worker", f"--loglevel={loglevel.upper()}", f"--queues={','.join(queues)}"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv.append(f"{flag}={value}")
    return argv


def _prepare(state: CLIState, broker: str | None, loglevel: str) -> tuple[str, str]:
    """Check broker and storage, export them for the worker's processes, import modules."""
    url = _broker_url(state, broker)
    check_broker(url)  # first: nothing is created when the broker is down
    config = storage_to_config(state.storage()) or {}
    if config.get("type") == "memory":
        raise fail(
            "A Celery worker cannot use in-memory storage (other processes cannot see it). "
            "Use --storage sqlite --storage-path FILE, or postgres."
        )
    described = _describe_storage(config)

    async def touch(_: Any) -> None:
        return None

    try:
        state.run(touch)  # a wrong path or DSN fails here, not later in every task
    except Exception as error:
        raise fail(f"Cannot open the storage {described}: {error}") from error
    os.environ.update(_storage_env(config))
    os.environ["PYWORKFLOW_CELERY_BROKER"] = url
    os.environ["PYWORKFLOW_CELERY_RESULT_BACKEND"] = _result_backend(state)
    os.environ["PYWORKFLOW_LOG_LEVEL"] = loglevel.upper()
    if state.module_names():
        os.environ["PYWORKFLOW_DISCOVER"] = str(state.module_names())
    from loguru import logger

    logger.enable("pyworkflow")  # the root command silences it unless -v
    configure_logging(loglevel.upper())
    state.configure_engine()
    state.discover()
    return url, described


def _banner(state: CLIState, info: dict[str, Any]) -> None:
    (shown,) = _joined([info])
    emit(
        state,
        info,
        table=lambda out: fields_table(out, shown, title="pyworkflow worker"),
        plain=[f"{key}: {value}" for key, value in shown.items()],
    )
    sys.stdout.flush()
    if not info["workflows"]:
        click.echo("Warning: no workflows registered; pass --module (or set it).", err=True)
    if info["beat"] and SCHEDULES_QUEUE not in info["queues"]:
        click.echo(f"Note: Beat's ticks go to {SCHEDULES_QUEUE}; run a worker on it.", err=True)


def _run_worker(app: Any, argv: list[str]) -> int:
    """``app.worker_main(argv)``; the exit code: 0 after a warm shutdown (SIGTERM, the
    first Ctrl+C), else the worker's own (Celery returns 1 after Ctrl+C)."""
    from celery.signals import celeryd_init, worker_shutting_down

    seen: dict[str, Any] = {}

    def on_init(instance: Any = None, **_: Any) -> None:
        seen["worker"] = instance

    def on_shutting_down(how: str | None = None, **_: Any) -> None:
        seen["how"] = how

    celeryd_init.connect(on_init, weak=False)
    worker_shutting_down.connect(on_shutting_down, weak=False)
    try:
        app.worker_main(argv)
    finally:
        celeryd_init.disconnect(on_init)
        worker_shutting_down.disconnect(on_shutting_down)
    if seen.get("how") == "Warm":
        return 0
    return int(getattr(seen.get("worker"), "exitcode", 0) or 0)


def _check_options(pool: str, beat: bool, autoscale: str | None) -> None:
    if autoscale and not all(part.strip().isdigit() for part in autoscale.split(",")):
        raise fail(f"--autoscale takes MAX,MIN (e.g. 10,2), got {autoscale!r}.")
    if pool not in ("eventlet", "gevent"):
        return
    if beat:
        raise fail(
            f"--beat does not work with the {pool} pool; run Beat on its own: "
            f"celery -A pyworkflow.celery.app beat --scheduler {BEAT_SCHEDULER}"
        )
    if importlib.util.find_spec(pool) is None:
        raise fail(f"The {pool} pool needs the {pool} package: pip install {pool}")
    from celery import maybe_patch_concurrency

    maybe_patch_concurrency(["-P", pool])


@click.command("run")
@click.option("--workflow", "on_workflows", is_flag=True, help=f"Consume {WORKFLOWS_QUEUE}.")
@click.option("--step", "on_steps", is_flag=True, help=f"Consume {STEPS_QUEUE}.")
@click.option("--schedule", "on_schedules", is_flag=True, help=f"Consume {SCHEDULES_QUEUE}.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), help="Pool size (default: CPUs).")
@click.option(
    "-l",
    "--loglevel",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="Log level of Celery and pyworkflow.",
)
@click.option("-n", "--hostname", help="Node name, e.g. steps@%h (default: celery@<host>).")
@click.option("--beat", is_flag=True, help="Also run Celery Beat (timers, schedules) here.")
@click.option("--pool", type=click.Choice(POOLS), default="prefork", show_default=True)
@click.option("--broker", help=BROKER_HELP)
@click.option("--autoscale", metavar="MAX,MIN", help="Grow the pool between MIN and MAX.")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), help="Recycle after N tasks.")
@click.option("--prefetch-multiplier", type=click.IntRange(min=1), help="Messages per process (1).")
@click.option("--time-limit", type=SECONDS, help="Kill a task after this many seconds.")
@click.option("--soft-time-limit", type=SECONDS, help="Warn a task after this many seconds.")
@click.pass_obj
def run_command(
    state: CLIState,
    /,
    on_workflows: bool,
    on_steps: bool,
    on_schedules: bool,
    loglevel: str,
    broker: str | None,
    **options: Any,
) -> None:
    """Start a Celery worker on pyworkflow's queues.

    All four queues unless --workflow, --step or --schedule choose some; the storage
    and modules of the root options (--storage, --module, ...), handed to its processes
    as PYWORKFLOW_* variables. SIGTERM or Ctrl+C stops it with a warm shutdown: running
    tasks finish, then it exits with code 0.

    \b
    Example:
        pyworkflow --module myapp.workflows worker run --workflow --schedule --beat
        pyworkflow --module myapp.workflows worker run --step -c 8
    """
    _check_options(options["pool"], options["beat"], options["autoscale"])
    url, described = _prepare(state, broker, loglevel)
    from celery.utils.nodenames import default_nodename, host_format

    queues = select_queues(on_workflows, on_steps, on_schedules)
    info = {
        "hostname": host_format(default_nodename(options["hostname"])),
        "broker": _safe_url(url),
        "storage": described,
        "queues": queues,
        "beat": options["beat"],
        "pool": options["pool"],
        "concurrency": options["concurrency"],
        "workflows": sorted(list_workflows()),
        "steps": sorted(list_steps()),
    }
    _banner(state, info)
    if options["beat"]:
        options["scheduler"] = BEAT_SCHEDULER
    argv = build_argv(queues, loglevel, options)
    if state.output == "json":
        argv.insert(0, "--quiet")  # Celery's own banner would follow the JSON on stdout
    from pyworkflow.celery.app import celery_app as app  # where the tasks are registered

    # Built at import, from the environment of then; nothing has connected yet.
    app.conf.broker_url = url
    app.conf.result_backend = os.environ["PYWORKFLOW_CELERY_RESULT_BACKEND"]
    code = _run_worker(app, argv)
    if code:
        raise SystemExit(code)
