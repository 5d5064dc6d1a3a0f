"""``pyworkflow workflows``: list, describe and run registered workflows.

Every subcommand first imports the user's modules (``--module``, ``PYWORKFLOW_MODULE``,
settings, ``pyworkflow.config.yaml``), then reads the registry. JSON keys follow
upstream: ``list`` items ``{name, max_duration, tags}`` (``max_duration`` is the string
``"None"`` when unset), ``info`` ``{name, max_duration, tags, function: {name, module,
doc}, parameters}``, ``run`` ``{run_id, workflow_name, runtime, status}`` plus ``result``
and ``error`` once the run has ended.

``run`` exits 1 when the run failed or was cancelled, 124 when ``--timeout`` passed
first and 130 on Ctrl-C; the run itself is durable and goes on either way.

Example (shell)::

    pyworkflow --module myapp.workflows workflows list
    pyworkflow workflows run process_order --arg order_id='"A-1"' --arg amount=42
    pyworkflow --output json workflows run process_order --args-json '{"amount": 42}' --wait
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

import click
from loguru import logger
from rich.console import Console

from pyworkflow.cli.output import emit, fields_table, list_table
from pyworkflow.cli.run_watch import Progress, RunRequest, Watch, report, start_and_watch
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.core.registry import WorkflowMetadata, get_workflow, list_workflows

#: Keyword names ``start()`` keeps for itself; a workflow argument cannot use them.
_RESERVED = ("runtime", "durable", "storage", "idempotency_key")

NO_WORKFLOWS_HINT = (
    "No workflows found. Point pyworkflow at the module(s) defining them with "
    "--module myapp.workflows, the PYWORKFLOW_MODULE environment variable, or "
    "'module: myapp.workflows' in pyworkflow.config.yaml."
)


@click.group()
def workflows() -> None:
    """List, inspect and run workflows."""


def _registered(state: CLIState) -> dict[str, WorkflowMetadata]:
    state.discover()
    return dict(sorted(list_workflows().items()))


def _summary(meta: WorkflowMetadata) -> dict[str, Any]:
    # Upstream prints str(None) for an unset max_duration; scripts may compare with it.
    return {"name": meta.name, "max_duration": str(meta.max_duration), "tags": list(meta.tags)}


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def parameters(meta: WorkflowMetadata) -> list[dict[str, Any]]:
    """The workflow's keyword parameters as ``{name, default, annotation, required}``.

    Example:
        >>> async def order(order_id: str, amount: int = 0, *rest: int) -> None: ...
        >>> [p["name"] for p in parameters(WorkflowMetadata("order", order, order))]
        ['order_id', 'amount']
    """
    found = []
    for param in inspect.signature(meta.original_func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        empty = param.default is inspect.Parameter.empty
        found.append(
            {
                "name": param.name,
                "default": None if empty else param.default,
                "annotation": _annotation_text(param.annotation),
                "required": empty,
            }
        )
    return found


def _annotation_text(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    # Under ``from __future__ import annotations`` the annotation is already its source text.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


@workflows.command("list")
@click.pass_obj
def list_command(state: CLIState) -> None:
    """List the registered workflows (name, max duration, tags, description).

    \b
    Example:
      pyworkflow --module myapp.workflows workflows list
    """
    found = _registered(state)
    if not found and state.output != "json":
        click.echo(NO_WORKFLOWS_HINT, err=state.output == "plain")
        return
    rows = [
        {**_summary(meta), "description": _first_line(meta.description)} for meta in found.values()
    ]
    columns = [
        ("name", "Name"),
        ("max_duration", "Max duration"),
        ("tags", "Tags"),
        ("description", "Description"),
    ]

    def table(out: Console) -> None:
        shown = [{**row, "tags": ", ".join(row["tags"]) or None} for row in rows]
        list_table(out, shown, columns, title="Workflows")

    emit(state, [_summary(meta) for meta in found.values()], table=table, plain=list(found))


def _lookup(state: CLIState, name: str) -> WorkflowMetadata:
    found = _registered(state)
    meta = get_workflow(name)
    if meta is not None:
        return meta
    if not found:
        raise fail(f"Workflow '{name}' not found. {NO_WORKFLOWS_HINT}")
    raise fail(f"Workflow '{name}' not found. Registered: {', '.join(found)}")


@workflows.command("info")
@click.argument("name")
@click.pass_obj
def info_command(state: CLIState, name: str) -> None:
    """Show one workflow: options, function, docstring and parameters.

    \b
    Example:
      pyworkflow --output json workflows info process_order
    """
    meta = _lookup(state, name)
    func = meta.original_func
    data = {
        **_summary(meta),
        "function": {
            "name": getattr(func, "__name__", repr(func)),
            "module": getattr(func, "__module__", None),
            "doc": inspect.getdoc(func),
        },
        "parameters": parameters(meta),
    }

    def table(out: Console) -> None:
        fields_table(
            out,
            {
                "name": meta.name,
                "max_duration": meta.max_duration,
                "tags": ", ".join(meta.tags) or None,
                "function": f"{data['function']['module']}.{data['function']['name']}",
                "doc": data["function"]["doc"],
            },
        )
        list_table(
            out,
            data["parameters"],
            [("name", "Parameter"), ("annotation", "Type"), ("default", "Default")],
            title="Parameters",
            empty="No parameters.",
        )

    emit(state, data, table=table, plain=[meta.name])


def parse_value(raw: str) -> Any:
    """An argument value: JSON when it parses, else the text itself (never unpickled).

    Example:
        >>> parse_value("42"), parse_value('{"a": [1]}'), parse_value("hello")
        (42, {'a': [1]}, 'hello')
    """
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_arguments(pairs: tuple[str, ...], args_json: str | None) -> dict[str, Any]:
    """Merge ``--args-json`` and the ``--arg KEY=VALUE`` pairs (which win).

    Example:
        >>> parse_arguments(("x=1", "name=ada"), '{"x": 0, "y": true}')
        {'x': 1, 'y': True, 'name': 'ada'}
    """
    kwargs: dict[str, Any] = {}
    if args_json is not None:
        try:
            loaded = json.loads(args_json)
        except ValueError as error:
            raise fail(f"--args-json is not valid JSON ({error}); e.g. '{{\"x\": 1}}'") from None
        if not isinstance(loaded, dict):
            raise fail(
                f"--args-json must be a JSON object such as '{{\"x\": 1}}', "
                f"not {type(loaded).__name__}"
            )
        kwargs.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"Invalid --arg '{pair}': expected KEY=VALUE, e.g. --arg amount=42")
        kwargs[key.strip()] = parse_value(raw)
    return kwargs


def _interactive() -> bool:
    return sys.stdin.isatty()


def _pick_workflow(state: CLIState, name: str | None) -> WorkflowMetadata:
    if name is not None:
        return _lookup(state, name)
    found = _registered(state)
    if not found:
        raise fail(f"Missing workflow name. {NO_WORKFLOWS_HINT}")
    if not _interactive():
        raise fail(f"Missing workflow name. Registered workflows: {', '.join(found)}")
    names = list(found)
    click.echo("Workflows:", err=True)
    for number, candidate in enumerate(names, start=1):
        line = _first_line(found[candidate].description)
        click.echo(f"  {number}. {candidate}" + (f" - {line}" if line else ""), err=True)
    choice = click.prompt("Workflow number", type=click.IntRange(1, len(names)), err=True)
    return found[names[choice - 1]]


def _complete_arguments(meta: WorkflowMetadata, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check ``kwargs`` against the signature; ask for missing ones on a terminal."""
    params = inspect.signature(meta.original_func).parameters.values()
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    known = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = [key for key in kwargs if key not in known and not takes_any]
    if unknown:
        raise fail(
            f"Unknown argument(s) for workflow '{meta.name}': {', '.join(unknown)}. "
            f"Its parameters: {', '.join(sorted(known)) or 'none'}"
        )
    clash = [key for key in kwargs if key in _RESERVED]
    if clash:
        raise fail(
            f"Workflow argument(s) {', '.join(clash)} clash with options of "
            "pyworkflow.start(); rename the parameter to run it from the CLI"
        )
    missing = [p for p in parameters(meta) if p["required"] and p["name"] not in kwargs]
    if missing and _interactive():
        for param in missing:
            hint = f" ({param['annotation']})" if param["annotation"] else ""
            text = click.prompt(f"{param['name']}{hint}", type=str, err=True)
            kwargs[param["name"]] = parse_value(text)
    elif missing:
        names = ", ".join(p["name"] for p in missing)
        raise fail(
            f"Missing required argument(s) for workflow '{meta.name}': {names}. "
            f"Pass them with --arg NAME=VALUE or --args-json '{{...}}'"
        )
    return kwargs


@workflows.command("run")
@click.argument("name", required=False)
@click.option(
    "--arg",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A keyword argument; VALUE is parsed as JSON, else kept as a string.",
)
@click.option("--args-json", metavar="JSON", help="Keyword arguments as one JSON object.")
@click.option(
    "--durable/--no-durable",
    default=True,
    show_default=True,
    help="Record the run in storage (transient runs keep nothing).",
)
@click.option("--idempotency-key", help="Start at most one run for this key.")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Watch the run until it ends. Default: wait, except with --output json.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop watching after this many seconds (exit 124; the run goes on).",
)
@click.option("--debug", is_flag=True, help="Show pyworkflow's logs while the run executes.")
@click.pass_obj
def run_command(
    state: CLIState,
    name: str | None,
    pairs: tuple[str, ...],
    args_json: str | None,
    durable: bool,
    idempotency_key: str | None,
    wait: bool | None,
    timeout: float | None,
    debug: bool,
) -> None:
    """Start a workflow with keyword arguments and, by default, wait for its result.

    Without NAME on a terminal, pick the workflow from a list and type each required
    argument. Exit codes: 1 if the run failed or was cancelled, 124 after --timeout,
    130 on Ctrl-C (the run itself goes on; see `pyworkflow runs status RUN_ID`).

    \b
    Examples:
      pyworkflow workflows run process_order --arg order_id=A-1 --arg amount=42
      pyworkflow --output json workflows run process_order --args-json '{"amount": 42}' --wait
    """
    if debug:
        logger.enable("pyworkflow")
    kwargs = parse_arguments(pairs, args_json)
    runtime = state.runtime_name()
    if runtime == "celery" and not durable:
        raise fail(
            "The celery runtime runs durable workflows only: drop --no-durable "
            "or use --runtime local"
        )
    if idempotency_key is not None and not durable:
        raise fail("--idempotency-key needs a durable run: drop --no-durable")
    meta = _pick_workflow(state, name)
    request = RunRequest(
        workflow=meta,
        kwargs=_complete_arguments(meta, kwargs),
        runtime=runtime,
        durable=durable,
        idempotency_key=idempotency_key,
        wait=_should_wait(state, wait, timeout),
        timeout=timeout,
    )
    state.configure_engine()
    report(state, request, _execute(state, request))


def _should_wait(state: CLIState, wait: bool | None, timeout: float | None) -> bool:
    # Upstream's JSON mode prints the run id at once; --wait or a --timeout asks to watch.
    if wait is not None:
        return wait
    return timeout is not None or state.output != "json"


def _execute(state: CLIState, request: RunRequest) -> Watch:
    watch = Watch()
    progress = Progress(enabled=request.wait)
    try:
        state.run(lambda storage: start_and_watch(storage, request, watch, progress))
    except KeyboardInterrupt:
        progress.close()
        if watch.run_id is None:
            click.echo(f"Interrupted while starting workflow '{request.workflow.name}'.", err=True)
        else:
            click.echo(
                f"Stopped watching run {watch.run_id} (still {watch.status}); see "
                f"`pyworkflow runs status {watch.run_id}`",
                err=True,
            )
        click.get_current_context().exit(130)
    finally:
        progress.close()
    return watch
