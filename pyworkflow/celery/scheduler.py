"""``PyWorkflowScheduler``: a Celery Beat scheduler that always sends the timer tick.

Durable timers (sleeps, retry delays, hook expiries, run deadlines) are rows in
storage; the ``pyworkflow.tick`` task claims the due ones. This scheduler makes sure
Beat sends that tick even when the app's ``beat_schedule`` was replaced by the
user's own entries, which it keeps (persisted in a shelve file like Celery's
default scheduler).

Run it with::

    celery -A pyworkflow.celery.app beat \\
        --scheduler pyworkflow.celery.scheduler:PyWorkflowScheduler

Several Beat processes may run at once: tick claims are atomic, so a timer still
fires once. Give each its own ``--schedule`` file when they share a directory.

Example:
    >>> import os, tempfile
    >>> from pyworkflow.celery.app import create_celery_app
    >>> app = create_celery_app("memory://", "cache+memory://")
    >>> app.conf.beat_schedule = {}             # the user's config dropped the tick
    >>> path = os.path.join(tempfile.mkdtemp(), "celerybeat-schedule")
    >>> sched = PyWorkflowScheduler(app, schedule_filename=path)
    >>> sorted(sched.schedule)
    ['pyworkflow.tick']
    >>> sched.close()
"""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler

from pyworkflow.celery.app import tick_entry
from pyworkflow.celery.queues import TICK

#: How often the schedule file is written, in seconds (the tick itself needs none).
SYNC_INTERVAL = 5.0


class PyWorkflowScheduler(PersistentScheduler):  # type: ignore[misc]
    """Beat scheduler with the pyworkflow timer tick always installed.

    ``storage_config`` is accepted for compatibility with upstream's constructor;
    ticks use the storage the workers are configured with.
    """

    sync_every = SYNC_INTERVAL

    def __init__(self, *args: Any, storage_config: dict[str, Any] | None = None, **kwargs: Any):
        self.storage_config = storage_config
        super().__init__(*args, **kwargs)

    def install_default_entries(self, data: Any) -> None:
        """Celery's defaults, plus the tick when no entry sends ``pyworkflow.tick``."""
        super().install_default_entries(data)
        entries = data.values() if hasattr(data, "values") else []
        if not any(getattr(entry, "task", None) == TICK for entry in entries):
            self.update_from_dict({TICK: tick_entry()})
