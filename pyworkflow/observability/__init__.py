"""Logging for pyworkflow: loguru setup and run/step context binding.

Example (not run: it installs log handlers)::

    from pyworkflow.observability import configure_logging, get_logger
    configure_logging(level="INFO")
    get_logger(__name__).info("ready")
"""

from pyworkflow.observability.logging import (
    bind_step_context,
    bind_workflow_context,
    configure_logging,
    get_logger,
)

__all__ = ["bind_step_context", "bind_workflow_context", "configure_logging", "get_logger"]
