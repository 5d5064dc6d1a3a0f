"""``pyworkflow hooks``: list waiting hooks and resume them."""

from __future__ import annotations

import click


@click.group()
def hooks() -> None:
    """List hooks and resume them with a JSON payload."""
