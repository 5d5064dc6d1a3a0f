"""The Celery app: ``celery -A pyworkflow.celery.app worker|beat`` loads this module.

Importing it builds the app (no network, no imports of user code). Worker and Beat
processes import the user's workflow modules (``PYWORKFLOW_DISCOVER``, or
``module``/``modules`` of ``./pyworkflow.config.yaml``) when they start, via Celery
signals, printing one line per module; a module that fails to import is logged and
the worker keeps running.

Settings, each from the argument, then the environment, then a default:

* broker: ``PYWORKFLOW_CELERY_BROKER``, ``celery.broker`` in the YAML file,
  ``redis://localhost:6379/0``;
* result backend: ``PYWORKFLOW_CELERY_RESULT_BACKEND``, ``redis://localhost:6379/1``;
* ``PYWORKFLOW_CELERY_VISIBILITY_TIMEOUT`` (seconds, default 12 h) and
  ``PYWORKFLOW_TICK_INTERVAL`` (seconds between timer ticks, default 1.0).

Example:
    >>> app = create_celery_app("redis://example:6379/0", "redis://example:6379/1")
    >>> app.conf.broker_url, app.conf.task_acks_late, app.conf.worker_prefetch_multiplier
    ('redis://example:6379/0', True, 1)
    >>> app.conf.beat_schedule["pyworkflow.tick"]["task"]
    'pyworkflow.tick'
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, celeryd_init, worker_process_init
from loguru import logger

from pyworkflow.celery.queues import (
    DEFAULT_QUEUE,
    DEFAULT_ROUTING_KEY,
    EXCHANGE_NAME,
    SCHEDULES_QUEUE,
    TASK_ROUTES,
    TICK,
    task_queues,
)
from pyworkflow.config import CONFIG_FILE_NAME, read_yaml_config
from pyworkflow.discovery import discover_workflows
from pyworkflow.observability import configure_logging

DEFAULT_BROKER = "redis://localhost:6379/0"
DEFAULT_RESULT_BACKEND = "redis://localhost:6379/1"
#: Redis re-delivers an unacknowledged message after this long. It must exceed the
#: longest task: a step still running at that point would be delivered a second time.
DEFAULT_VISIBILITY_TIMEOUT = 12 * 3600.0
DEFAULT_TICK_INTERVAL = 1.0


def _positive_float(var: str, default: float) -> float:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{var} must be a positive number of seconds, got {raw!r}.")
    return value


def tick_interval() -> float:
    """Seconds between two timer ticks (``PYWORKFLOW_TICK_INTERVAL``, default 1.0).

    Example:
        >>> tick_interval() > 0
        True
    """
    return _positive_float("PYWORKFLOW_TICK_INTERVAL", DEFAULT_TICK_INTERVAL)


def visibility_timeout() -> float:
    """Redis visibility timeout (``PYWORKFLOW_CELERY_VISIBILITY_TIMEOUT``, default 12 h).

    Example:
        >>> visibility_timeout() >= 1
        True
    """
    return _positive_float("PYWORKFLOW_CELERY_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT)


def resolve_broker_url(explicit: str | None = None) -> str:
    """The broker: ``explicit``, ``PYWORKFLOW_CELERY_BROKER``, YAML ``celery.broker``,
    else local Redis db 0.

    Example:
        >>> resolve_broker_url("redis://cache:6379/4")
        'redis://cache:6379/4'
    """
    if explicit:
        return explicit
    env = os.environ.get("PYWORKFLOW_CELERY_BROKER", "").strip()
    if env:
        return env
    yaml_path = Path.cwd() / CONFIG_FILE_NAME
    if yaml_path.is_file():
        section = read_yaml_config(yaml_path).get("celery") or {}
        if isinstance(section, dict) and section.get("broker"):
            return str(section["broker"])
    return DEFAULT_BROKER


def resolve_result_backend(explicit: str | None = None) -> str:
    """The result backend: ``explicit``, ``PYWORKFLOW_CELERY_RESULT_BACKEND``, else local
    Redis db 1.

    Example:
        >>> resolve_result_backend("redis://cache:6379/5")
        'redis://cache:6379/5'
    """
    env = os.environ.get("PYWORKFLOW_CELERY_RESULT_BACKEND", "").strip()
    return explicit or env or DEFAULT_RESULT_BACKEND


def tick_entry(interval: float | None = None) -> dict[str, Any]:
    """The Beat entry of the timer tick.

    A tick that waited longer than a few intervals is dropped (``expires``): the next
    one does the same work, and a backlog of ticks would only repeat it.

    Example:
        >>> tick_entry(2.0)["schedule"], tick_entry(2.0)["options"]["expires"]
        (2.0, 10.0)
    """
    every = interval if interval is not None else tick_interval()
    return {
        "task": TICK,
        "schedule": every,
        "options": {"queue": SCHEDULES_QUEUE, "expires": max(5.0, 5 * every)},
    }


def create_celery_app(
    broker_url: str | None = None,
    result_backend: str | None = None,
    app_name: str = "pyworkflow",
) -> Celery:
    """Build a Celery app configured for pyworkflow (nothing connects yet).

    Example:
        >>> app = create_celery_app("memory://", "cache+memory://", app_name="docs")
        >>> app.main, app.conf.task_serializer, app.conf.task_default_queue
        ('docs', 'json', 'pyworkflow.default')
    """
    app = Celery(
        app_name,
        broker=resolve_broker_url(broker_url),
        backend=resolve_result_backend(result_backend),
        include=["pyworkflow.celery.tasks", "pyworkflow.celery.timer_tasks"],
    )
    app.conf.update(
        # JSON only: a pickle payload from the broker would run code in the worker.
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_default_queue=DEFAULT_QUEUE,
        task_default_exchange=EXCHANGE_NAME,
        task_default_exchange_type="topic",
        task_default_routing_key=DEFAULT_ROUTING_KEY,
        task_queues=task_queues(),
        task_routes=dict(TASK_ROUTES),
        # A task is acknowledged after it ran, and given back when its worker died:
        # a message is never lost with a crashed worker. Everything our tasks do is
        # idempotent, so running one twice is harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per process: a long step never holds a queue of
        # others hostage while idle workers wait.
        worker_prefetch_multiplier=1,
        # Reconnects after a Redis restart even while holding reserved messages.
        worker_consumer="pyworkflow.celery.consumer:Consumer",
        broker_transport_options={"visibility_timeout": visibility_timeout()},
        broker_connection_retry_on_startup=True,
        # Bridges a short broker outage (Redis restarting) instead of failing the send.
        task_publish_retry_policy={
            "max_retries": 20,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        result_expires=3600,
        result_persistent=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_schedule={TICK: tick_entry()},
    )
    return app


celery_app: Celery = create_celery_app()
#: What ``celery -A pyworkflow.celery.app`` looks for first.
app = celery_app


def get_celery_app() -> Celery:
    """The module's app (the one ``celery -A pyworkflow.celery.app`` runs).

    Example:
        >>> get_celery_app() is celery_app
        True
    """
    return celery_app


# --------------------------------------------------------------------- process start

_started = False
_start_lock = threading.Lock()


def discover_in_worker() -> list[str]:
    """Import the user's workflow modules and print one line each.

    Modules come from ``PYWORKFLOW_DISCOVER`` (comma-separated), else from
    ``module``/``modules`` of ``./pyworkflow.config.yaml``. A module that fails to
    import is printed and logged; the process keeps running (its runs fail with a
    clear "not registered" error instead). Returns the modules that failed.

    Example (not run: it imports your application)::

        discover_in_worker()   # prints "pyworkflow: ✓ imported myapp.workflows"
    """
    env = os.environ.get("PYWORKFLOW_DISCOVER", "")
    names = [n.strip() for n in env.split(",") if n.strip()]
    if not names and (Path.cwd() / CONFIG_FILE_NAME).is_file():
        names = [""]  # the YAML's module/modules, in one call
    failed: list[str] = []
    for name in names:
        label = name or f"modules of {CONFIG_FILE_NAME}"
        try:
            discover_workflows(module_path=name or None)
        except Exception as error:
            failed.append(label)
            print(f"pyworkflow: \u2717 could not import {label}: {error}", flush=True)
            logger.error("Workflow discovery failed for {}: {}", label, error)
        else:
            print(f"pyworkflow: \u2713 imported {label}", flush=True)
    return failed


def _on_process_start(**_: Any) -> None:
    """Once per process (a forked child inherits the flag, and the modules)."""
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
    configure_logging(os.environ.get("PYWORKFLOW_LOG_LEVEL", "INFO"))
    discover_in_worker()


# celeryd_init: the worker's main process, before the pool forks (children inherit the
# imports); worker_process_init: pools that do not fork from it; beat_init: Beat.
celeryd_init.connect(_on_process_start, weak=False)
worker_process_init.connect(_on_process_start, weak=False)
beat_init.connect(_on_process_start, weak=False)
