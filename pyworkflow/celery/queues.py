"""Queue names, routing keys and task routes of the Celery runtime.

Every task is published to the ``pyworkflow`` topic exchange with a routing key
that exactly one queue's binding matches:

============================ ========================== ==============================
queue                        binding key                tasks
============================ ========================== ==============================
``pyworkflow.workflows``     ``workflow.workflow.#``    start_workflow, resume_workflow
``pyworkflow.steps``         ``workflow.step.#``        execute_step
``pyworkflow.schedules``     ``workflow.schedule.#``    tick
``pyworkflow.default``       ``workflow.default``       anything unrouted
============================ ========================== ==============================

The default queue is bound to ``workflow.default`` only (not ``workflow.#``): on a
topic exchange a wildcard binding would put a second copy of every step and
workflow message into the default queue.

Example:
    >>> route_for("pyworkflow.execute_step")
    {'queue': 'pyworkflow.steps', 'routing_key': 'workflow.step.execute'}
    >>> [q.name for q in task_queues()][:2]
    ['pyworkflow.default', 'pyworkflow.workflows']
"""

from __future__ import annotations

from kombu.entity import Exchange, Queue

EXCHANGE_NAME = "pyworkflow"
DEFAULT_QUEUE = "pyworkflow.default"
WORKFLOWS_QUEUE = "pyworkflow.workflows"
STEPS_QUEUE = "pyworkflow.steps"
SCHEDULES_QUEUE = "pyworkflow.schedules"
DEFAULT_ROUTING_KEY = "workflow.default"

#: Queue name -> the binding key of that queue on the ``pyworkflow`` exchange.
QUEUE_BINDINGS: dict[str, str] = {
    DEFAULT_QUEUE: DEFAULT_ROUTING_KEY,
    WORKFLOWS_QUEUE: "workflow.workflow.#",
    STEPS_QUEUE: "workflow.step.#",
    SCHEDULES_QUEUE: "workflow.schedule.#",
}

START_WORKFLOW = "pyworkflow.start_workflow"
RESUME_WORKFLOW = "pyworkflow.resume_workflow"
EXECUTE_STEP = "pyworkflow.execute_step"
TICK = "pyworkflow.tick"
EXECUTE_SCHEDULED = "pyworkflow.execute_scheduled_workflow"

#: Task name -> where it is published (Celery's ``task_routes``).
TASK_ROUTES: dict[str, dict[str, str]] = {
    START_WORKFLOW: {"queue": WORKFLOWS_QUEUE, "routing_key": "workflow.workflow.start"},
    RESUME_WORKFLOW: {"queue": WORKFLOWS_QUEUE, "routing_key": "workflow.workflow.resume"},
    EXECUTE_STEP: {"queue": STEPS_QUEUE, "routing_key": "workflow.step.execute"},
    TICK: {"queue": SCHEDULES_QUEUE, "routing_key": "workflow.schedule.tick"},
    EXECUTE_SCHEDULED: {"queue": SCHEDULES_QUEUE, "routing_key": "workflow.schedule.execute"},
}


def exchange() -> Exchange:
    """The topic exchange every pyworkflow queue is bound to.

    Example:
        >>> exchange().type
        'topic'
    """
    return Exchange(EXCHANGE_NAME, type="topic", durable=True)  # type: ignore[no-untyped-call]


def task_queues() -> tuple[Queue, ...]:
    """The four queues (Celery's ``task_queues``), default queue first.

    Example:
        >>> {q.name: q.routing_key for q in task_queues()}["pyworkflow.steps"]
        'workflow.step.#'
    """
    ex = exchange()
    return tuple(
        Queue(name, ex, routing_key=key, durable=True)  # type: ignore[no-untyped-call]
        for name, key in QUEUE_BINDINGS.items()
    )


def route_for(task_name: str) -> dict[str, str]:
    """Queue and routing key of ``task_name`` (the default queue when it has no route)."""
    return dict(
        TASK_ROUTES.get(task_name, {"queue": DEFAULT_QUEUE, "routing_key": DEFAULT_ROUTING_KEY})
    )
