"""The root ``pyworkflow`` command: global options and the storage they select.

Storage: ``--storage``/``--storage-path`` (or ``PYWORKFLOW_STORAGE_BACKEND`` /
``PYWORKFLOW_STORAGE_PATH``), else the configured one (env, ``pyworkflow.config.yaml``),
else the embedded SQLite file ``./pyworkflow_data/pyworkflow.db``.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(main, ["--version"]).output.startswith("pyworkflow")
    True
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click
from loguru import logger

from pyworkflow import __version__
from pyworkflow.config import get_config
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.config import SUPPORTED_TYPES, config_to_storage


@dataclass
class CLIState:
    """What the root options chose, passed to subcommands."""

    storage_type: str | None
    storage_path: str | None
    output: str
    verbose: bool

    def storage(self) -> StorageBackend:
        """The storage the options (or the configuration) select."""
        if self.storage_type or self.storage_path:
            cfg: dict[str, Any] = {"type": self.storage_type or "sqlite"}
            if self.storage_path:
                cfg["base_path"] = self.storage_path
            return config_to_storage(cfg)
        configured = get_config().storage
        return configured if configured is not None else config_to_storage({})


class FriendlyGroup(click.Group):
    """Turns library errors into one-line messages (tracebacks with ``-v``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            state = ctx.find_object(CLIState)
            if state is not None and state.verbose:
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(1)


@click.group(cls=FriendlyGroup)
@click.version_option(__version__, prog_name="pyworkflow")
@click.option(
    "--storage",
    "storage_type",
    envvar="PYWORKFLOW_STORAGE_BACKEND",
    type=click.Choice(sorted(SUPPORTED_TYPES)),
    help="Storage backend type.",
)
@click.option(
    "--storage-path",
    envvar="PYWORKFLOW_STORAGE_PATH",
    help="File or directory of the sqlite/file backend.",
)
@click.option(
    "--output",
    type=click.Choice(["table", "json", "plain"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show library logs and full tracebacks.")
@click.pass_context
def main(
    ctx: click.Context,
    storage_type: str | None,
    storage_path: str | None,
    output: str,
    verbose: bool,
) -> None:
    """pyworkflow: durable workflows. Inspect runs stored on this machine."""
    if not verbose:
        logger.disable("pyworkflow")
    ctx.obj = CLIState(storage_type, storage_path, output, verbose)


from pyworkflow.cli import runs  # noqa: E402  (registers the "runs" group)

main.add_command(runs.runs)
