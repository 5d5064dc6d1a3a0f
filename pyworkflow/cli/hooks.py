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
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyworkflow.cli.hook_resume import _decode, _lookup, mask_token, parse_payload, resume
from pyworkflow.cli.output import emit, fields_table, iso, status_text
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.serialization.decoder import deserialize_untrusted
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import Hook, HookStatus

__all__ = [
    "hook_details",
    "hook_summary",
    "hooks",
    "info",
    "list_hooks",
    "mask_token",
    "parse_payload",
    "resume",
    "run_hooks",
]

_PAGE = 500
_OTHER_COLUMNS = 70  # width of the columns beside the token, borders included


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


hooks.add_command(resume)
