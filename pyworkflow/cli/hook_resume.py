"""``pyworkflow hooks resume``: deliver a JSON payload to a pending hook and continue its run.

This module holds the ``resume`` command (registered on the ``hooks`` group by
:mod:`pyworkflow.cli.hooks`) and everything it needs: finding a hook by its token
(:func:`mask_token` hides the secret part in errors), parsing ``--payload`` /
``--payload-file`` as JSON, the interactive hook picker and per-field payload form used
on a terminal, the delivery itself and its report. ``hooks info`` shares the token
lookup and the decoding of stored payloads and schemas.

Example:
    >>> parse_payload('{"approved": true}'), mask_token("run_1:hook_approval_1:s3cr3t")
    ({'approved': True}, 'run_1:hook_approval_1:…')
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from pyworkflow.cli.output import emit, fields_table, iso
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
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import Hook, HookStatus, RunStatus, WorkflowRun

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


def _decode(text: str | None, decoder: Any) -> Any:
    if text is None:
        return None
    try:
        return decoder(text)
    except ValueError:
        return text  # not JSON: show it as stored


async def _lookup(storage: StorageBackend, token: str) -> Hook:
    """The hook with exactly this token (compared in constant time), else exit 1."""
    try:
        return await find_hook(storage, token)
    except (InvalidTokenError, HookNotFoundError):
        raise fail(
            f"Hook not found for token {mask_token(token)}: pass the whole token "
            "('<run_id>:<hook_id>:<secret>') as `pyworkflow hooks list` prints it."
        ) from None


@click.command("resume")
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
