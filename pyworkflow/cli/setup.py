"""``pyworkflow setup`` and ``pyworkflow quickstart``.

``quickstart`` scaffolds a project (a ``workflows`` package with two examples, the YAML
config, a README and a docker-compose file) whose first command runs a durable
workflow on SQLite. ``setup`` writes ``pyworkflow.config.yaml`` for an existing project
and checks it: the storage connects, the module imports, the broker answers.

Both ask questions when stdin is a terminal, and use their flags and defaults with
``--non-interactive`` or when stdin is not a terminal (CI). ``setup --output json``
prints ``{config_path, backup_path, docker_compose_path, checks: [{name, ok, detail}]}``.

Example (shell)::

    pyworkflow quickstart --non-interactive
    pyworkflow setup --non-interactive --runtime celery --storage postgres \\
        --dsn postgresql://app@db/app --broker redis://localhost:6379/0 --module app.flows
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from pyworkflow.cli import scaffold
from pyworkflow.cli.output import emit
from pyworkflow.cli.setup_checks import Check, validate
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.config import CONFIG_FILE_NAME, read_yaml_config
from pyworkflow.storage.config import SUPPORTED_TYPES

_MARK_STYLES = {"✓": "green", "✗": "red", "!": "yellow"}


def interactive_mode(non_interactive: bool) -> bool:
    """True when questions may be asked: no ``--non-interactive`` and stdin is a terminal.

    Example:
        >>> interactive_mode(True)
        False
    """
    if non_interactive:
        return False
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    click.echo("Note: stdin is not a terminal; using the flags and defaults.", err=True)
    return False


def check_storage_type(raw: str) -> str:
    """The storage type ``raw`` names, or a clear error for the ones we do not ship.

    Example:
        >>> check_storage_type("PostgreSQL")
        'postgres'
    """
    kind = raw.strip().lower()
    if kind == "postgresql":
        kind = "postgres"
    if kind in SUPPORTED_TYPES:
        return kind
    supported = "/".join(SUPPORTED_TYPES)
    if kind in ("mysql", "dynamodb", "cassandra", "redis"):
        raise fail(f"Storage '{raw}' is not supported by this version; use {supported}.")
    raise fail(f"Unknown storage type '{raw}'; use {supported}.")


# --------------------------------------------------------------------------- quickstart


@click.command()
@click.option("--non-interactive", is_flag=True, help="Ask nothing; use the flags and defaults.")
@click.option("--skip-docker", is_flag=True, help="Do not write docker-compose.yml.")
@click.option(
    "--template",
    type=click.Choice(scaffold.TEMPLATES),
    help="Project template. Default: basic.",
)
@click.option(
    "--storage",
    "storage_type",
    type=click.Choice(scaffold.QUICKSTART_STORAGES),
    help="Where runs are kept. Default: sqlite.",
)
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Directory to scaffold in (created if missing). Default: the current one.",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.pass_obj
def quickstart(
    state: CLIState,
    non_interactive: bool,
    skip_docker: bool,
    template: str | None,
    storage_type: str | None,
    directory: Path,
    force: bool,
) -> None:
    """Scaffold a project whose first command runs a durable workflow.

    Writes workflows/ (a `hello` workflow with steps and a durable sleep, an `approval`
    workflow waiting on a hook), pyworkflow.config.yaml (local runtime, SQLite), a
    README and a docker-compose.yml (Redis and PostgreSQL for Celery). If any of these
    files exists, nothing is written unless --force.

    \b
    Example:
        pyworkflow quickstart --non-interactive
        pyworkflow workflows run hello --arg name=Ada
    """
    docker = not skip_docker
    if interactive_mode(non_interactive):
        template = template or click.prompt(
            "Template", type=click.Choice(scaffold.TEMPLATES), default="basic", err=True
        )
        storage_type = storage_type or click.prompt(
            "Storage", type=click.Choice(scaffold.QUICKSTART_STORAGES), default="sqlite", err=True
        )
        if docker:
            docker = click.confirm(
                "Write docker-compose.yml (Redis + PostgreSQL for Celery)?", default=True, err=True
            )
    files = scaffold.scaffold_files(
        template=template or "basic", storage=storage_type or "sqlite", docker=docker
    )
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        raise fail(
            f"These files already exist in {directory.resolve()}: {', '.join(existing)}. "
            "Nothing was written; pass --force to overwrite them or choose another --directory."
        )
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    _report_quickstart(state, directory, template or "basic", storage_type or "sqlite", files)


def _report_quickstart(
    state: CLIState, directory: Path, template: str, storage: str, files: dict[str, str]
) -> None:
    here = directory.resolve() == Path.cwd().resolve()
    steps = scaffold.next_steps(None if here else str(directory))
    data = {
        "directory": str(directory.resolve()),
        "template": template,
        "storage": storage,
        "files": list(files),
        "next_steps": steps,
    }
    lines = [f"Created a pyworkflow project in {data['directory']}:"]
    lines += [f"  {name}" for name in files]
    lines += ["", "Next steps:"] + [f"  {step}" for step in steps]
    emit(state, data, table=lambda out: _print_lines(out, lines), plain=lines)


def _print_lines(out: Console, lines: list[str]) -> None:
    # soft_wrap: a long path or error must stay on one line, whatever the width.
    for line in lines:
        out.print(Text(line, style=_MARK_STYLES.get(line[:1], "")), soft_wrap=True)


# -------------------------------------------------------------------------------- setup


@dataclass
class _Answers:
    module: str | None
    runtime: str
    storage: str
    storage_path: str | None
    dsn: str | None
    broker: str | None
    result_backend: str | None
    docker: bool


def _ask(answers: _Answers, given: set[str]) -> None:
    """Fill in by questions what the flags left open (prompts on stderr: stdout is output)."""
    if "module" not in given:
        module = click.prompt(
            "Module(s) defining your workflows (blank for none)",
            default=answers.module or "",
            err=True,
        )
        answers.module = module.strip() or None
    if "runtime" not in given:
        answers.runtime = click.prompt(
            "Runtime", type=click.Choice(["local", "celery"]), default="local", err=True
        )
    if "storage" not in given:
        answers.storage = click.prompt(
            "Storage", type=click.Choice(SUPPORTED_TYPES), default="sqlite", err=True
        )
    if answers.storage in ("sqlite", "file") and answers.storage_path is None:
        default = scaffold.storage_options(answers.storage)["base_path"]
        answers.storage_path = click.prompt("Storage path", default=default, err=True)
    if answers.storage == "postgres" and answers.dsn is None:
        answers.dsn = click.prompt(
            "PostgreSQL DSN", default=scaffold.COMPOSE_POSTGRES_DSN, err=True
        )
    if answers.runtime == "celery" and answers.broker is None:
        answers.broker = click.prompt(
            "Celery broker URL", default=scaffold.COMPOSE_REDIS_BROKER, err=True
        )
    if answers.docker:
        answers.docker = click.confirm(
            "Write docker-compose.yml (Redis + PostgreSQL)?", default=True, err=True
        )


@click.command()
@click.option("--non-interactive", is_flag=True, help="Ask nothing; use the flags and defaults.")
@click.option("--skip-docker", is_flag=True, help="Do not write docker-compose.yml.")
@click.option("--module", help="Module(s) defining your workflows, comma-separated.")
@click.option(
    "--runtime", type=click.Choice(["local", "celery"]), help="Where runs execute. Default: local."
)
@click.option(
    "--storage",
    "storage_type",
    metavar="[" + "|".join(SUPPORTED_TYPES) + "]",
    help="Storage backend. Default: sqlite.",
)
@click.option("--storage-path", help="SQLite file or file-storage directory.")
@click.option("--dsn", help="PostgreSQL DSN (postgresql://user:pass@host:5432/db).")
@click.option("--broker", help="Celery broker URL. Default: redis://localhost:6379/0.")
@click.option("--result-backend", help="Celery result backend. Default: the next Redis db.")
@click.pass_obj
def setup(
    state: CLIState,
    non_interactive: bool,
    skip_docker: bool,
    module: str | None,
    runtime: str | None,
    storage_type: str | None,
    storage_path: str | None,
    dsn: str | None,
    broker: str | None,
    result_backend: str | None,
) -> None:
    """Write pyworkflow.config.yaml, then check the storage, module and broker.

    An existing pyworkflow.config.yaml is first copied to pyworkflow.config.yaml.backup;
    an existing docker-compose.yml is left unchanged. A broker that does not answer is a
    warning (start it later); a storage that fails to connect or a module that fails to
    import exits 1, with the files written.

    \b
    Example:
        pyworkflow setup --non-interactive --storage sqlite --module app.flows
    """
    config_path = Path(CONFIG_FILE_NAME)
    answers = _Answers(
        # Re-running setup to change the storage must not drop the project's modules.
        module=module or _configured_modules(config_path),
        runtime=runtime or "local",
        storage=check_storage_type(storage_type) if storage_type else "sqlite",
        storage_path=storage_path,
        dsn=dsn,
        broker=broker,
        result_backend=result_backend,
        docker=not skip_docker,
    )
    if interactive_mode(non_interactive):
        given = {"module": module, "runtime": runtime, "storage": storage_type}
        _ask(answers, {name for name, value in given.items() if value is not None})
        answers.storage = check_storage_type(answers.storage)
    _check_combination(answers)
    data = scaffold.config_data(
        module=answers.module,
        runtime=answers.runtime,
        storage=scaffold.storage_options(answers.storage, answers.storage_path, answers.dsn),
        broker=answers.broker,
        result_backend=answers.result_backend,
    )
    backup = _backup(config_path)
    config_path.write_text(scaffold.config_yaml(data), encoding="utf-8")
    compose = _write_compose() if answers.docker else None
    checks = validate(config_path, answers.module)
    _report_setup(state, config_path, backup, compose, checks)


def _configured_modules(config_path: Path) -> str | None:
    """The ``module``/``modules`` of an existing config, comma-joined; None if unreadable."""
    try:
        data = read_yaml_config(config_path) if config_path.is_file() else {}
    except (ValueError, ImportError):
        return None
    several = data.get("modules")
    names = [data.get("module"), *(several if isinstance(several, list) else [])]
    return ",".join(str(name) for name in names if name) or None


def _check_combination(answers: _Answers) -> None:
    if answers.storage_path and answers.storage not in ("sqlite", "file"):
        raise fail(f"--storage-path is for sqlite or file storage, not {answers.storage}.")
    if answers.dsn and answers.storage != "postgres":
        raise fail("--dsn is for postgres storage: add --storage postgres.")
    if (answers.broker or answers.result_backend) and answers.runtime != "celery":
        raise fail(
            "--broker and --result-backend are for the celery runtime: add --runtime celery."
        )


def _backup(path: Path) -> Path | None:
    """Copy ``path`` to the first free ``.backup``/``.backup.N`` name; older backups stay."""
    if not path.exists():
        return None
    target = path.with_name(path.name + ".backup")
    number = 1
    while target.exists():
        target = path.with_name(f"{path.name}.backup.{number}")
        number += 1
    target.write_bytes(path.read_bytes())
    return target


def _write_compose() -> Path | None:
    path = Path(scaffold.COMPOSE_FILE_NAME)
    if path.exists():
        # It may be the project's own compose file: never replace it.
        click.echo(f"Note: {path} already exists; left unchanged.", err=True)
        return None
    path.write_text(scaffold.COMPOSE_TEMPLATE, encoding="utf-8")
    return path


def _report_setup(
    state: CLIState,
    config_path: Path,
    backup: Path | None,
    compose: Path | None,
    checks: list[Check],
) -> None:
    data = {
        "config_path": str(config_path.resolve()),
        "backup_path": str(backup.resolve()) if backup else None,
        "docker_compose_path": str(compose.resolve()) if compose else None,
        "checks": [check.as_json() for check in checks],
    }
    lines = [f"Wrote {config_path}"]
    if backup:
        lines.append(f"Backed up the previous one to {backup}")
    if compose:
        lines.append(f"Wrote {compose} (docker compose up -d)")
    lines += ["", *(check.line() for check in checks)]
    emit(state, data, table=lambda out: _print_lines(out, lines), plain=lines)
    failed = [check.name for check in checks if not check.ok and not check.warning]
    if failed:
        raise fail(
            f"Setup wrote {config_path}, but these checks failed: {', '.join(failed)}. "
            "Fix them and run `pyworkflow setup` again."
        )
