"""Distributed execution on Celery: the app, its tasks and the Beat scheduler.

Run workers and Beat against the same broker and storage as your application::

    celery -A pyworkflow.celery.app worker -Q pyworkflow.workflows,pyworkflow.schedules
    celery -A pyworkflow.celery.app worker -Q pyworkflow.steps
    celery -A pyworkflow.celery.app beat \\
        --scheduler pyworkflow.celery.scheduler:PyWorkflowScheduler

and start runs with ``await start(wf, ..., runtime="celery", storage=...)``.
See DISTRIBUTED.md for the topology and failure semantics.

Example:
    >>> from pyworkflow.celery import celery_app, execute_step_task
    >>> execute_step_task.name, celery_app.conf.task_acks_late
    ('pyworkflow.execute_step', True)
"""

from pyworkflow.celery.app import celery_app, create_celery_app, get_celery_app
from pyworkflow.celery.scheduler import PyWorkflowScheduler
from pyworkflow.celery.tasks import (
    execute_step_task,
    resume_workflow_task,
    schedule_workflow_resumption,
    start_workflow_task,
)
from pyworkflow.celery.timer_tasks import execute_scheduled_workflow_task, tick_task

__all__ = [
    "PyWorkflowScheduler",
    "celery_app",
    "create_celery_app",
    "execute_scheduled_workflow_task",
    "execute_step_task",
    "get_celery_app",
    "resume_workflow_task",
    "schedule_workflow_resumption",
    "start_workflow_task",
    "tick_task",
]
