"""The root ``pyworkflow`` command: global options, error handling, the command tree.

Global options (each also read from the environment): ``--module`` (``PYWORKFLOW_MODULE``),
``--runtime local|celery`` (``PYWORKFLOW_RUNTIME``), ``--storage`` / ``--storage-path``
(``PYWORKFLOW_STORAGE_BACKEND`` / ``PYWORKFLOW_STORAGE_PATH``), ``--output
table|json|plain`` and ``-v``. See :mod:`pyworkflow.cli.state` for how storage and
runtime are chosen when the options are absent.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(main, ["--version"]).output.startswith("pyworkflow")
    True
"""

from __future__ import annotations

import sys
from typing import Any

import click
from loguru import logger

from pyworkflow import __version__
from pyworkflow.cli import hooks, runs, schedules, setup, worker, workflows
from pyworkflow.cli.settings import load_settings
from pyworkflow.cli.state import CLIState
from pyworkflow.storage.config import SUPPORTED_TYPES


class FriendlyGroup(click.Group):
    """Turns any error into ``Error: <message>`` and exit code 1 (the traceback with ``-v``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            state = ctx.find_object(CLIState)
            if state is not None and state.verbose:
                raise
            message = str(error) or type(error).__name__
            click.echo(f"Error: {message}", err=True)
            click.echo("(run with -v for the traceback)", err=True)
            sys.exit(1)


@click.group(
    name="pyworkflow",
    cls=FriendlyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="pyworkflow")
@click.option(
    "--module",
    envvar="PYWORKFLOW_MODULE",
    help="Module(s) defining your workflows, comma-separated (imported before commands).",
)
@click.option(
    "--runtime",
    envvar="PYWORKFLOW_RUNTIME",
    type=click.Choice(["local", "celery"]),
    help="Where runs execute. Default: the configured runtime, else local.",
)
@click.option(
    "--storage",
    "storage_type",
    envvar="PYWORKFLOW_STORAGE_BACKEND",
    type=click.Choice(sorted(SUPPORTED_TYPES)),
    help="Storage backend. Default: the configured one, else sqlite.",
)
@click.option(
    "--storage-path",
    envvar="PYWORKFLOW_STORAGE_PATH",
    help="File (sqlite) or directory (file) of the storage. Default: ./pyworkflow_data.",
)
@click.option(
    "--output",
    type=click.Choice(["table", "json", "plain"]),
    default="table",
    show_default=True,
    help="Output format: tables, JSON for scripts, or one id per line.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show library logs and full tracebacks.")
@click.pass_context
def main(
    ctx: click.Context,
    module: str | None,
    runtime: str | None,
    storage_type: str | None,
    storage_path: str | None,
    output: str,
    verbose: bool,
) -> None:
    """pyworkflow: durable workflows that survive crashes, sleep, wait and retry.

    Runs, hooks and schedules live in the storage (by default the SQLite file
    ./pyworkflow_data/pyworkflow.db), so every command works on this machine with no
    server. Start with `pyworkflow quickstart`.
    """
    if verbose:
        logger.enable("pyworkflow")
    else:
        logger.disable("pyworkflow")
    ctx.obj = CLIState(
        module=module,
        runtime=runtime,
        storage_type=storage_type,
        storage_path=storage_path,
        output=output,
        verbose=verbose,
        settings=load_settings(),
    )


main.add_command(workflows.workflows)
main.add_command(runs.runs)
main.add_command(hooks.hooks)
main.add_command(schedules.schedules)
main.add_command(schedules.scheduler)
main.add_command(worker.worker)
main.add_command(setup.setup)
main.add_command(setup.quickstart)
