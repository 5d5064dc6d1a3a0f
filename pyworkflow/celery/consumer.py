"""The worker's broker consumer: Celery's own, surviving a Redis restart while it holds
unacknowledged messages.

With ``task_acks_late`` a worker holds the messages it reserved (an ETA/countdown
resume until it is due, a task while it runs) unacknowledged. When Redis goes away,
Celery closes the broken connection before reconnecting; closing the channel tries to
give those messages back to the queue, on a transport kombu has already released, and
fails with ``AttributeError: 'NoneType' object has no attribute 'hostname'``. Celery
only ignores connection errors there, so the worker stops with "Unrecoverable error"
and nothing is consumed until someone starts it again (seen with celery/kombu 5.7,
found by the ``celery_redis_restart`` chaos scenario).

Our consumer closes that connection without letting this error escape. Nothing is
lost by not giving the messages back at that moment: kombu keeps every reserved
message in Redis' unacked set, and any worker returns it to its queue once the
visibility timeout has passed (when Redis kept its data; when it did not, the engine's
resume guard and tick send the lost resumes again).

Selected by ``worker_consumer`` in :func:`pyworkflow.celery.app.create_celery_app`.

Example::

    app.conf.worker_consumer = "pyworkflow.celery.consumer:Consumer"
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from loguru import logger


def close_quietly(connection: Any) -> None:
    """Close a broken broker connection; an error of a transport kombu already
    released is logged, not raised.

    Example::

        close_quietly(consumer.connection)
    """
    try:
        connection.release()
    except AttributeError as error:
        # Only the released-transport failure is expected here; anything else of
        # this kind still surfaces in the log with its text.
        logger.warning(
            "Broker connection closed without returning its reserved messages ({}); "
            "they go back to their queue after the visibility timeout",
            error,
        )


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer whose reconnect does not die closing the broken connection.

    Example::

        app.conf.worker_consumer = "pyworkflow.celery.consumer:Consumer"
    """

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        connection = self.connection
        if connection is not None:
            # Celery calls ``ignore_errors(connection, connection.close)``, which lets
            # the AttributeError through: an instance attribute replaces that close.
            connection.close = lambda: close_quietly(connection)
        super().on_connection_error_after_connected(exc)
