"""``pyworkflow hooks``: list waiting hooks, inspect them, resume them with a JSON payload.

JSON keys follow upstream: ``hooks list`` items (and ``hooks run``'s ``hooks``) are
``{token, hook_id, run_id, name, status, created_at, expires_at, has_schema}``;
``hooks info`` adds ``received_at``, ``payload`` and ``payload_schema``; ``hooks resume``
prints ``{run_id, hook_id, status, run_status}``. Payloads are parsed with
:func:`json.loads` and stored payloads are decoded without ever unpickling.

Example (shell)::

    pyworkflow hooks list --status pending
    pyworkflow hooks resume 'run_3f2a…:hook_approval_1:Xy3…' --payload '{"approved": true}'
    echo '{"approved": true}' | pyworkflow hooks resume "$TOKEN" --payload-file -

Example:
    >>> mask_token("run_1:hook_approval_1:s3cr3t")
    'run_1:hook_approval_1:…'
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyworkflow.cli.output import emit, fields_table, iso, status_text
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.core.exceptions import (
    HookAlreadyReceivedError,
    HookDisposedError,
    HookExpiredError,
    HookNotFoundError,
    HookValidationError,
    InvalidTokenError,
)
from pyworkflow.core.registry import get_workflow
from pyworkflow.engine.hook_delivery import find_hook
from pyworkflow.primitives.resume_hook import resume_hook
from pyworkflow.serialization.decoder import deserialize_untrusted
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import Hook, HookStatus, RunStatus, WorkflowRun

_PAGE = 500
_OTHER_COLUMNS = 70  # width of the columns beside the token, borders included
_SKIP = object()  # an optional field left empty at the prompt


def mask_token(token: str) -> str:
    """The token with its secret part hidden, safe to print in an error message.

    Example:
        >>> mask_token("run_1:hook_a_1:s3cr3t"), mask_token("no-colon-here")
        ('run_1:hook_a_1:…', '…')
    """
    head, sep, _ = str(token).rpartition(":")
    return f"{head}:…" if sep and head else "…"


def parse_payload(text: str, source: str = "--payload") -> Any:
    """Parse a payload given on the command line as JSON (never pickle).

    Example:
        >>> parse_payload('{"approved": true}')
        {'approved': True}
        >>> parse_payload('{"approved": }')
        Traceback (most recent call last):
        ...
        click.exceptions.ClickException: Invalid JSON in --payload: Expecting value at line 1 ...
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(
            f"Invalid JSON in {source}: {error.msg} at line {error.lineno} column "
            f"{error.colno} (char {error.pos}). Pass a JSON document, e.g. "
            "--payload '{\"approved\": true}'."
        ) from None


def hook_summary(hook: Hook) -> dict[str, Any]:
    """One hook as ``hooks list`` shows it (JSON-ready).

    Example:
        >>> sorted(hook_summary(Hook("hook_a_1", "run_1", "run_1:hook_a_1:x")))
        ['created_at', 'expires_at', 'has_schema', 'hook_id', 'name', 'run_id', 'status', 'token']
    """
    return {
        "token": hook.token,
        "hook_id": hook.hook_id,
        "run_id": hook.run_id,
        "name": hook.name,
        "status": hook.status.value,
        "created_at": iso(hook.created_at),
        "expires_at": iso(hook.expires_at),
        "has_schema": bool(hook.payload_schema),
    }


def hook_details(hook: Hook) -> dict[str, Any]:
    """:func:`hook_summary` plus ``received_at``, the decoded ``payload`` and ``payload_schema``.

    Example:
        >>> h = Hook("hook_a_1", "run_1", "run_1:hook_a_1:x", payload='{"ok": true}')
        >>> hook_details(h)["payload"]
        {'ok': True}
    """
    return hook_summary(hook) | {
        "received_at": iso(hook.received_at),
        # Outside data: value tags only, a pickle tag stays a plain dict.
        "payload": _decode(hook.payload, deserialize_untrusted),
        "payload_schema": _decode(hook.payload_schema, json.loads),
    }


def _decode(text: str | None, decoder: Any) -> Any:
    if text is None:
        return None
    try:
        return decoder(text)
    except ValueError:
        return text  # not JSON: show it as stored


@click.group()
def hooks() -> None:
    """List waiting hooks, inspect them and resume them with a JSON payload.

    A hook's token authorises resuming it, like a password-reset link: `hooks list`
    and `hooks info` print tokens because anyone who can run them can read the
    storage anyway. Keep their output out of shared logs.
    """


@hooks.command("list")
@click.option("--run-id", help="Only the hooks of this run.")
@click.option(
    "--status", type=click.Choice([s.value for s in HookStatus]), help="Only hooks in this state."
)
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="At most this many.",
)
@click.pass_obj
def list_hooks(state: CLIState, run_id: str | None, status: str | None, limit: int) -> None:
    """List hooks, newest first, with their tokens.

    Tokens are secrets: whoever holds one can resume its hook. They are shown
    because whoever can run this command can read the storage anyway; keep the
    output out of shared logs.

    \b
    Example:
        pyworkflow hooks list --status pending
        pyworkflow --output plain hooks list --run-id run_3f2a9c0d1e4b5a67
    """
    chosen = HookStatus(status) if status else None
    found = state.run(lambda s: s.list_hooks(run_id=run_id, status=chosen, limit=limit))
    rows = [hook_summary(h) for h in found]
    tokens = [r["token"] for r in rows]
    emit(state, rows, table=lambda o: _hooks_table(o, rows, empty="No hooks found."), plain=tokens)


@hooks.command("info")
@click.argument("token")
@click.pass_obj
def info(state: CLIState, token: str) -> None:
    """Show one hook: status, payload (if received) and payload schema.

    \b
    Example:
        pyworkflow --output json hooks info 'run_3f2a…:hook_approval_1:Xy3…'
    """
    data = hook_details(state.run(lambda s: _lookup(s, token)))
    emit(state, data, table=lambda out: _info_table(out, data), plain=[data["status"]])


def _info_table(out: Console, data: dict[str, Any]) -> None:
    out.print(Text(f"Hook {data['hook_id']}", style="bold"))
    # Printed unwrapped, so that the token can be copied from a narrow terminal.
    out.print(Text.assemble(("token".ljust(16), "bold"), data["token"]), soft_wrap=True)
    fields_table(out, {k: v for k, v in data.items() if k != "token"})


@hooks.command("run")
@click.argument("run_id")
@click.pass_obj
def run_hooks(state: CLIState, run_id: str) -> None:
    """Show the hooks of one run, oldest first.

    \b
    Example:
        pyworkflow hooks run run_3f2a9c0d1e4b5a67
    """
    found = state.run(lambda s: _hooks_of_run(s, run_id))
    rows = [hook_summary(h) for h in found]
    data = {"run_id": run_id, "hook_count": len(rows), "hooks": rows}

    def table(out: Console) -> None:
        title = f"Hooks of run {run_id} ({len(rows)})"
        _hooks_table(out, rows, title=title, empty=f"Run {run_id} has no hooks.")

    emit(state, data, table=table, plain=[r["token"] for r in rows])


def _hooks_table(
    out: Console, rows: list[dict[str, Any]], *, empty: str, title: str | None = None
) -> None:
    """Hooks as a table, or one block per hook on a narrow terminal: a token is never
    folded or cut, so it can be copied."""
    if not rows:
        out.print(empty)
        return
    width = max(len(r["token"]) for r in rows)
    if out.width < width + _OTHER_COLUMNS:
        _hook_blocks(out, rows, title)
        return
    table = Table(title=title, header_style="bold")
    table.add_column("Token", no_wrap=True, min_width=width)
    for heading in ("Name", "Status", "Created", "Expires", "Schema"):
        table.add_column(heading)
    for r in rows:
        table.add_row(r["token"], *_cells(r))
    out.print(table)


def _hook_blocks(out: Console, rows: list[dict[str, Any]], title: str | None) -> None:
    if title:
        out.print(Text(title, style="bold"))
    for r in rows:
        name, status, created, expires, schema = _cells(r)
        line = Text.assemble(
            (name, "bold"), "  ", status, f"  created {created}  expires {expires}"
        )
        if schema == "yes":
            line.append("  typed")
        out.print(line)
        out.print(f"  {r['token']}", soft_wrap=True)


def _cells(row: dict[str, Any]) -> tuple[str, Text, str, str, str]:
    return (
        row["name"] or row["hook_id"],
        status_text(row["status"]),
        _short(row["created_at"]),
        _short(row["expires_at"]),
        "yes" if row["has_schema"] else "-",
    )


def _short(moment: str | None) -> str:
    # "2026-01-02T03:04:05.678+00:00" -> "2026-01-02 03:04:05" (tables only; JSON keeps ISO)
    return moment[:19].replace("T", " ") if moment else "-"


async def _hooks_of_run(storage: StorageBackend, run_id: str) -> list[Hook]:
    found: list[Hook] = []
    while True:
        page = await storage.list_hooks(run_id=run_id, limit=_PAGE, offset=len(found))
        found.extend(page)
        if len(page) < _PAGE:
            break
    if not found and await storage.get_run(run_id) is None:
        raise fail(f"Workflow run not found: {run_id}")
    return sorted(found, key=lambda h: h.created_at)


async def _lookup(storage: StorageBackend, token: str) -> Hook:
    """The hook with exactly this token (compared in constant time), else exit 1."""
    try:
        return await find_hook(storage, token)
    except (InvalidTokenError, HookNotFoundError):
        raise fail(
            f"Hook not found for token {mask_token(token)}: pass the whole token "
            "('<run_id>:<hook_id>:<secret>') as `pyworkflow hooks list` prints it."
        ) from None


@hooks.command("resume")
@click.argument("token", required=False)
@click.option("-p", "--payload", "payload_text", help="The payload as JSON, e.g. '{\"ok\": true}'.")
@click.option(
    "-f",
    "--payload-file",
    type=click.File("r", encoding="utf-8"),
    help="Read the JSON payload from this file ('-' for stdin).",
)
@click.pass_obj
def resume(state: CLIState, token: str | None, payload_text: str | None, payload_file: Any) -> None:
    """Deliver a JSON payload to a pending hook and continue its run.

    On the local runtime the run continues in this process until it ends or waits
    again, so its workflow module must be importable (--module, or your settings).
    The payload is checked against the hook's model or JSON schema first; a bad
    one is refused and the hook stays pending. Without TOKEN or payload on a
    terminal, you pick a pending hook and fill in the payload field by field.

    \b
    Example:
        pyworkflow hooks resume "$TOKEN" --payload '{"approved": true, "reviewer": "ada"}'
        pyworkflow hooks resume "$TOKEN" --payload-file answer.json
    """
    payload = _given_payload(payload_text, payload_file)
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if token is None and not interactive:
        raise fail("Missing TOKEN: pass the hook's token (see `pyworkflow hooks list`).")
    if payload is _SKIP and not interactive:
        raise fail(
            "Missing --payload: pass the payload as JSON with --payload or --payload-file "
            "(use --payload '{}' for an empty payload)."
        )
    state.discover()
    state.configure_engine()
    if token is None:
        token = _pick_token(state)
    hook = state.run(lambda s: _lookup(s, token))
    _require_pending(hook)
    if payload is _SKIP:
        payload = _prompt_payload(hook)
    run = state.run(lambda s: _deliver(s, token, payload))
    _report(state, hook, run)


def _given_payload(payload_text: str | None, payload_file: Any) -> Any:
    if payload_text is not None and payload_file is not None:
        raise fail("Pass either --payload or --payload-file, not both.")
    if payload_text is not None:
        return parse_payload(payload_text)
    if payload_file is not None:
        name = getattr(payload_file, "name", "-")
        source = "stdin" if name in ("-", "<stdin>") else str(name)
        return parse_payload(payload_file.read(), f"--payload-file ({source})")
    return _SKIP


def _require_pending(hook: Hook) -> None:
    if hook.status is HookStatus.PENDING:
        return
    if hook.status is HookStatus.RECEIVED:
        raise fail(
            f"Hook {hook.hook_id} of run {hook.run_id} was already received "
            f"(at {iso(hook.received_at)}); a hook is resumed only once."
        )
    raise fail(
        f"Hook {hook.hook_id} of run {hook.run_id} is {hook.status.value}, not pending; "
        "only a pending hook can be resumed."
    )


async def _deliver(storage: StorageBackend, token: str, payload: Any) -> WorkflowRun | None:
    """Resume the hook (on the local runtime the run advances here) and re-read the run."""
    try:
        result = await resume_hook(token, payload, storage=storage)
    except HookValidationError as error:
        problems = "\n".join(f"  {p}" for p in error.errors) or f"  {error.validation_error}"
        raise fail(
            f"Payload for hook '{error.hook_name}' does not match its schema; nothing was "
            f"recorded and the hook is still pending:\n{problems}"
        ) from None
    except HookAlreadyReceivedError as error:
        raise fail(f"Hook {error.hook_id} was already received; a hook is resumed once.") from None
    except HookExpiredError as error:
        raise fail(f"Hook {error.hook_id} has expired; it no longer accepts payloads.") from None
    except HookDisposedError as error:
        raise fail(str(error)) from None
    except (InvalidTokenError, HookNotFoundError):
        raise fail(f"Hook not found for token {mask_token(token)}.") from None
    return await storage.get_run(result.run_id)


def _report(state: CLIState, hook: Hook, run: WorkflowRun | None) -> None:
    data: dict[str, Any] = {"run_id": hook.run_id, "hook_id": hook.hook_id, "status": "resumed"}
    data["run_status"] = run.status.value if run is not None else None
    if run is not None and run.status is RunStatus.SUSPENDED and _not_here(state, run):
        click.echo(
            f"Warning: the payload is recorded, but workflow '{run.workflow_name}' is not "
            f"importable here, so run {run.run_id} waits for a process that has it "
            "(pass --module, or resume it from your app).",
            err=True,
        )

    def table(out: Console) -> None:
        out.print(f"Hook {hook.hook_id} resumed.")
        fields_table(out, data)

    emit(state, data, table=table, plain=[hook.run_id])


def _not_here(state: CLIState, run: WorkflowRun) -> bool:
    return state.runtime_name() == "local" and get_workflow(run.workflow_name) is None


def _pick_token(state: CLIState) -> str:
    """Ask which pending hook to resume (stdin is a terminal)."""
    pending = state.run(lambda s: s.list_hooks(status=HookStatus.PENDING, limit=50))
    if not pending:
        raise fail("No pending hooks to resume.")
    click.echo("Pending hooks:", err=True)
    for number, h in enumerate(pending, 1):
        schema = ", typed" if h.payload_schema else ""
        click.echo(
            f"  {number}) {h.name or h.hook_id}  run {h.run_id}  "
            f"created {iso(h.created_at)}{schema}",
            err=True,
        )
    choice = click.prompt("Hook number", type=click.IntRange(1, len(pending)), err=True)
    return pending[choice - 1].token


def _prompt_payload(hook: Hook) -> Any:
    """Build the payload at the terminal: a prompt per schema field, else one JSON text."""
    schema = _decode(hook.payload_schema, json.loads)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    name = hook.name or hook.hook_id
    if not isinstance(properties, dict) or not properties:
        return click.prompt(f"Payload for hook '{name}' (JSON)", value_proc=_json_doc, err=True)
    required = set(schema.get("required") or [])
    click.echo(
        f"Payload for hook '{name}': values are read as JSON, else as text; "
        "Enter leaves an optional field out.",
        err=True,
    )
    payload: dict[str, Any] = {}
    for field, spec in properties.items():
        value = _prompt_field(field, spec if isinstance(spec, dict) else {}, field in required)
        if value is not _SKIP:
            payload[field] = value
    return payload


def _prompt_field(field: str, spec: dict[str, Any], required: bool) -> Any:
    types = _types(spec)
    text_only = bool(types) and types - {"null"} == {"string"}
    notes = ["|".join(sorted(types)) or "any"]
    if required:
        notes.append("required")
    elif "default" in spec:
        notes.append(f"default {json.dumps(spec['default'])}")

    def convert(text: str) -> Any:
        if text == "" and not required:
            return _SKIP
        return text if text_only else _json_or_text(text)

    return click.prompt(
        f"  {field} ({', '.join(notes)})",
        default=None if required else "",
        show_default=False,
        value_proc=convert,
        err=True,
    )


def _types(spec: dict[str, Any]) -> set[str]:
    """The JSON types a schema field allows (through ``anyOf``/``oneOf`` too)."""
    kind = spec.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    found: set[str] = set()
    for alternative in [*spec.get("anyOf", []), *spec.get("oneOf", [])]:
        if isinstance(alternative, dict):
            found |= _types(alternative)
    return found


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _json_doc(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # click asks again after a BadParameter.
        raise click.BadParameter(f"not JSON ({error.msg} at char {error.pos})") from None
