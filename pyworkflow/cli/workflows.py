"""``pyworkflow workflows``: list, describe and run registered workflows."""

from __future__ import annotations

import click


@click.group()
def workflows() -> None:
    """List, inspect and run workflows."""
