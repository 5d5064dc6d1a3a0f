"""``pyworkflow worker``: Celery workers."""

from __future__ import annotations

import click


@click.group()
def worker() -> None:
    """Run and inspect Celery workers."""
