#!/usr/bin/env python3
"""Write (or check) the command reference in docs/guides/cli.md from the real ``--help``.

The reference sits between two marker lines in the page; everything else on the page is
written by hand. ``--check`` exits 1 when the page is out of date, which the test suite
runs so that the docs can never drift from the commands.

Usage::

    .venv/bin/python scripts/cli_reference.py          # rewrite the section
    .venv/bin/python scripts/cli_reference.py --check  # exit 1 if it would change
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from pyworkflow.cli import main

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "cli.md"
BEGIN = "<!-- BEGIN GENERATED: scripts/cli_reference.py -->"
END = "<!-- END GENERATED -->"
# A fixed width: the page must not depend on the terminal of whoever regenerated it.
WIDTH = 88


def walk(
    command: click.Command, path: list[str], parent: click.Context | None
) -> Iterator[tuple[list[str], str]]:
    """Every command with its help text, depth first, in the order ``--help`` lists them."""
    ctx = click.Context(
        command,
        info_name=path[-1],
        parent=parent,
        terminal_width=WIDTH,
        max_content_width=WIDTH,
    )
    yield path, command.get_help(ctx)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, [*path, name], ctx)


def reference() -> str:
    """The generated section, markers included."""
    parts = [BEGIN, ""]
    for path, text in walk(main, ["pyworkflow"], None):
        level = "###" if len(path) <= 2 else "####"
        parts += [f"{level} `{' '.join(path)}`", "", "```text", text.rstrip(), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def updated(page: str) -> str:
    """``page`` with its generated section replaced by the current one."""
    start, stop = page.find(BEGIN), page.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"{PAGE}: the markers {BEGIN!r} and {END!r} are missing")
    return page[:start] + reference() + page[stop + len(END) :]


def run(argv: list[str]) -> int:
    current = PAGE.read_text(encoding="utf-8")
    fresh = updated(current)
    if "--check" in argv:
        if fresh != current:
            print(f"{PAGE} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        PAGE.write_text(fresh, encoding="utf-8")
        print(f"updated {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
