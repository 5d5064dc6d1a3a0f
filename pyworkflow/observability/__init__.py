"""Logging for pyworkflow: loguru setup and run/step context binding.

Example:
    >>> from pyworkflow.observability import configure_logging, get_logger
    >>> configure_logging(level="INFO")  # doctest: +SKIP
    >>> get_logger(__name__).info("ready")  # doctest: +SKIP
"""

from pyworkflow.observability.logging import (
    bind_step_context,
    bind_workflow_context,
    configure_logging,
    get_logger,
)

__all__ = ["bind_step_context", "bind_workflow_context", "configure_logging", "get_logger"]
