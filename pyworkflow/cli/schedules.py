"""``pyworkflow schedules`` and ``pyworkflow scheduler run``."""

from __future__ import annotations

import click


@click.group()
def schedules() -> None:
    """Create and manage schedules."""


@click.group()
def scheduler() -> None:
    """Run the local scheduler."""
