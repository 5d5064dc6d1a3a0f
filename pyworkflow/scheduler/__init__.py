"""Timers and schedules of the local runtime: the in-process timer service, the
schedule processor and ``LocalScheduler``.

Example:
    >>> from pyworkflow.scheduler import LocalScheduler
    >>> LocalScheduler().poll_interval
    5.0
"""

from pyworkflow.scheduler.local_scheduler import LocalScheduler

__all__ = ["LocalScheduler"]
