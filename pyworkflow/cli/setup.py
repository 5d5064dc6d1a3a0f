"""``pyworkflow setup`` and ``pyworkflow quickstart``."""

from __future__ import annotations

import click


@click.command()
def setup() -> None:
    """Write pyworkflow.config.yaml."""


@click.command()
def quickstart() -> None:
    """Scaffold a project."""
