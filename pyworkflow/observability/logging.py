"""Loguru setup for pyworkflow and helpers that bind run and step context.

pyworkflow logs through loguru's global ``logger``. The library leaves the application's
handlers alone: importing it adds a handler only when the application has removed every
handler (so that pyworkflow's messages are not lost silently, as upstream does), and
:func:`configure_logging` replaces only the handlers it added itself.

Example:
    >>> from pyworkflow.observability import bind_step_context
    >>> log = bind_step_context("run_1", "step_a", "charge")
    >>> log.bind(amount=12) is not log
    True
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Logger, Record

_BASE_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan>"
)
# The context fields shown, in order, when a record carries them.
_CONTEXT_KEYS = ("run_id", "step_id")

# Ids of the handlers pyworkflow added, so a later configure_logging() can replace them
# without touching the handlers the application added.
_handler_ids: list[int] = []
_lock = threading.Lock()


def _format_with_context(record: Record) -> str:
    """Loguru format function: the base format plus ``[run_id=… step_id=…]`` when bound."""
    extra = record["extra"]
    # Refer to the values through loguru's own placeholders rather than pasting them in,
    # so braces or markup inside an id are printed literally.
    parts = [f"{key}={{extra[{key}]}}" for key in _CONTEXT_KEYS if key in extra]
    context = f" <magenta>[{' '.join(parts)}]</magenta>" if parts else ""
    return _BASE_FORMAT + context + " - <level>{message}</level>\n{exception}"


_PLAIN_FORMAT = _BASE_FORMAT + " - <level>{message}</level>"


def configure_logging(
    level: str | int = "INFO",
    log_file: str | Path | None = None,
    json_logs: bool = False,
    show_context: bool = True,
) -> None:
    """Send logs at ``level`` and above to stderr and, optionally, to a rotated file.

    The file rotates at 100 MB, old files are kept 30 days and gzip-compressed.
    ``json_logs`` writes one JSON object per line; ``show_context`` adds the bound
    ``run_id``/``step_id``. Calling it again replaces what the previous call added;
    handlers the application added itself are kept.

    Example (not run: it writes log output)::

        configure_logging(level="DEBUG", log_file="logs/pyworkflow.log")
    """
    if isinstance(level, str):
        level = level.upper()
    log_format = _format_with_context if show_context else _PLAIN_FORMAT
    with _lock:
        _remove_own_handlers()
        # loguru's built-in stderr handler (id 0) logs everything from DEBUG; left in
        # place it would print each line twice and ignore ``level``.
        with contextlib.suppress(ValueError):
            logger.remove(0)
        # diagnose=False: variable values in tracebacks can hold secrets.
        _handler_ids.append(
            logger.add(
                sys.stderr, level=level, format=log_format, serialize=json_logs, diagnose=False
            )
        )
        if log_file is not None:
            _handler_ids.append(
                logger.add(
                    str(log_file),
                    level=level,
                    format=log_format,
                    serialize=json_logs,
                    diagnose=False,
                    rotation="100 MB",
                    retention="30 days",
                    compression="gz",
                    encoding="utf-8",
                )
            )


def _remove_own_handlers() -> None:
    for handler_id in _handler_ids:
        # The application may have removed it already (``logger.remove()``).
        with contextlib.suppress(ValueError):
            logger.remove(handler_id)
    _handler_ids.clear()


@functools.lru_cache(maxsize=256)
def get_logger(name: str | None = None) -> Logger:
    """Return the loguru logger bound with ``module=name`` (cached: bound loggers are immutable).

    Example (not run: it writes log output)::

        get_logger("myapp.orders").info("order {} received", 42)
    """
    return logger.bind(module=name)


def bind_workflow_context(run_id: str, workflow_name: str) -> Logger:
    """Return a logger whose records carry ``run_id`` and ``workflow_name``.

    Example (not run: it writes log output)::

        bind_workflow_context("run_1", "order").info("started")
    """
    return logger.bind(run_id=run_id, workflow_name=workflow_name)


def bind_step_context(run_id: str, step_id: str, step_name: str) -> Logger:
    """Return a logger whose records carry ``run_id``, ``step_id`` and ``step_name``.

    Example (not run: it writes log output)::

        bind_step_context("run_1", "step_x", "charge").info("done")
    """
    return logger.bind(run_id=run_id, step_id=step_id, step_name=step_name)


def _has_no_handlers() -> bool:
    # loguru has no public way to list handlers; read its core defensively so a future
    # loguru that renames the attribute makes this a no-op rather than an error.
    handlers = getattr(getattr(logger, "_core", None), "handlers", None)
    return isinstance(handlers, dict) and not handlers


def _install_fallback_handler() -> None:
    """At import: add an INFO handler only if the application removed every handler."""
    with _lock:
        if _has_no_handlers():
            _handler_ids.append(
                logger.add(sys.stderr, level="INFO", format=_format_with_context, diagnose=False)
            )


_install_fallback_handler()
