"""Runtimes: where and how runs execute.

Example:
    >>> from pyworkflow.runtime import get_runtime, LocalRuntime
    >>> isinstance(get_runtime("local"), LocalRuntime)
    True
"""

from pyworkflow.runtime.base import Runtime
from pyworkflow.runtime.celery import CeleryRuntime  # registers "celery"; imports Celery lazily
from pyworkflow.runtime.factory import (
    get_runtime,
    list_runtimes,
    register_runtime,
    validate_runtime_durable,
)
from pyworkflow.runtime.local import LocalRuntime, timer_service

__all__ = [
    "CeleryRuntime",
    "LocalRuntime",
    "Runtime",
    "get_runtime",
    "list_runtimes",
    "register_runtime",
    "timer_service",
    "validate_runtime_durable",
]
