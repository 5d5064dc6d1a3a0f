"""The files ``pyworkflow quickstart`` and ``pyworkflow setup`` write, as text.

Everything here is pure: functions return file contents and never touch the disk, so
the commands decide what may be overwritten. The YAML they produce is read back by
:func:`pyworkflow.config.read_yaml_config` (the same keys as API.md §5.7).

Example:
    >>> files = scaffold_files(storage="sqlite", docker=False)
    >>> sorted(files)[:2]
    ['README.md', 'pyworkflow.config.yaml']
    >>> "module: workflows" in files["pyworkflow.config.yaml"]
    True
"""

from __future__ import annotations

from typing import Any

import yaml

from pyworkflow.config import CONFIG_FILE_NAME
from pyworkflow.storage.config import DEFAULT_FILE_PATH, DEFAULT_SQLITE_PATH

#: The ``quickstart --template`` choices.
TEMPLATES = ("basic",)
#: The storages ``quickstart --storage`` offers: the two that need no server.
QUICKSTART_STORAGES = ("sqlite", "file")
#: The compose file both commands write unless ``--skip-docker``.
COMPOSE_FILE_NAME = "docker-compose.yml"
#: Connection settings matching :data:`COMPOSE_TEMPLATE`'s services.
COMPOSE_POSTGRES_DSN = "postgresql://pyworkflow:pyworkflow@localhost:5432/pyworkflow"
COMPOSE_REDIS_BROKER = "redis://localhost:6379/0"

_CONFIG_HEADER = """\
# pyworkflow configuration. The `pyworkflow` command and pyworkflow.configure() read it
# from the current directory; PYWORKFLOW_* environment variables override it.
#   module / modules: what to import so your workflows register
#   runtime: local (runs in the calling process) or celery (runs on workers)
#   storage: where runs, events and hooks are kept
"""

_CELERY_TRAILER = f"""\

# To run the same workflows on Celery workers instead, start Redis and PostgreSQL
# (`docker compose up -d`), replace runtime and storage above with these lines and
# start a worker with `pyworkflow worker run`:
# runtime: celery
# storage:
#   type: postgres
#   dsn: {COMPOSE_POSTGRES_DSN}
# celery:
#   broker: {COMPOSE_REDIS_BROKER}
#   result_backend: redis://localhost:6379/1
"""

INIT_TEMPLATE = '''\
"""Your workflows. pyworkflow imports this package (``module: workflows`` in
pyworkflow.config.yaml), which imports each module so its decorators register."""

from . import approval, hello

__all__ = ["approval", "hello"]
'''

HELLO_TEMPLATE = '''\
"""A first durable workflow: two steps with a durable sleep between them.

    pyworkflow workflows run hello --arg name=Ada
"""

from pyworkflow import sleep, step, workflow


@step
async def make_greeting(name: str) -> str:
    """Its result is recorded: when the run replays, the step is not run again."""
    return f"Hello, {name}!"


@step(max_retries=3, retry_delay="1s")
async def deliver(greeting: str) -> str:
    """Pretend to send the greeting. Were it to raise, it would be retried 3 times, 1 s apart."""
    return f"{greeting} (delivered)"


@workflow
async def hello(name: str = "world") -> str:
    greeting = await make_greeting(name)
    # Durable: the run suspends and a timer resumes it, even in another process.
    await sleep("1s")
    return await deliver(greeting)
'''

APPROVAL_TEMPLATE = '''\
"""A workflow that waits for a person: it suspends on a hook until someone resumes it.

    pyworkflow workflows run approval --arg item=laptop --no-wait
    pyworkflow hooks list
    pyworkflow hooks resume <token> --payload '{"approved": true}'
"""

from pyworkflow import hook, step, workflow


@step
async def place_order(item: str) -> str:
    return f"ordered {item}"


@workflow
async def approval(item: str = "a laptop") -> str:
    # Nothing runs or waits in memory until the hook is resumed (or expires in 7 days).
    decision = await hook("manager_approval", timeout="7d")
    approved = isinstance(decision, dict) and bool(decision.get("approved"))
    if not approved:
        return f"{item}: rejected"
    return await place_order(item)
'''

COMPOSE_TEMPLATE = f"""\
# Redis (the Celery broker) and PostgreSQL (storage every worker shares) for running
# these workflows on Celery. Start them with `docker compose up -d`, point
# {CONFIG_FILE_NAME} at them (see the comment at its end) and start a worker with
# `pyworkflow worker run`. The local runtime on SQLite needs neither.
services:
  redis:
    image: redis:7-alpine
    # Append-only file: queued messages survive a Redis restart.
    command: ["redis-server", "--appendonly", "yes"]
    ports: ["127.0.0.1:6379:6379"]
    volumes: ["redis-data:/data"]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 2s
      timeout: 3s
      retries: 15

  postgres:
    image: postgres:16-alpine
    environment:
      POSTGRES_USER: pyworkflow
      POSTGRES_PASSWORD: pyworkflow
      POSTGRES_DB: pyworkflow
    ports: ["127.0.0.1:5432:5432"]
    volumes: ["postgres-data:/var/lib/postgresql/data"]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U pyworkflow -d pyworkflow"]
      interval: 2s
      timeout: 3s
      retries: 15

volumes:
  redis-data:
  postgres-data:
"""

_README_TEMPLATE = """\
# My pyworkflow project

Made by `pyworkflow quickstart`. Runs are kept in {storage_where}; every command below
works from this directory with no server.

| File | What it is |
|---|---|
| `workflows/hello.py` | `hello`: two steps and a durable one-second sleep |
| `workflows/approval.py` | `approval`: waits on a hook until someone approves |
| `{config}` | which modules to import, the runtime and the storage |
{compose_row}
## Try it

```bash
pyworkflow workflows list
pyworkflow workflows run hello --arg name=Ada
pyworkflow runs list
pyworkflow runs status <run_id>
pyworkflow runs logs <run_id>

pyworkflow workflows run approval --arg item=laptop --no-wait
pyworkflow hooks list
pyworkflow hooks resume <token> --payload '{{"approved": true}}'
pyworkflow runs list --status completed
```

Add `--output json` before the command (`pyworkflow --output json runs list`) for
output scripts can parse. Add a workflow by writing a module in `workflows/` and
importing it in `workflows/__init__.py`. Keep `pyworkflow_data/` out of version control.
"""


def storage_options(kind: str, path: str | None = None, dsn: str | None = None) -> dict[str, Any]:
    """The ``storage:`` mapping of the YAML for a storage type and its path or DSN.

    ``sqlite`` and ``file`` get ``base_path`` (the embedded defaults when ``path`` is
    None), ``postgres`` gets ``dsn`` (the compose file's server when None).

    Example:
        >>> storage_options("sqlite")
        {'type': 'sqlite', 'base_path': './pyworkflow_data/pyworkflow.db'}
        >>> storage_options("postgres", dsn="postgresql://db/app")
        {'type': 'postgres', 'dsn': 'postgresql://db/app'}
    """
    if kind == "sqlite":
        return {"type": "sqlite", "base_path": path or DEFAULT_SQLITE_PATH}
    if kind == "file":
        return {"type": "file", "base_path": path or DEFAULT_FILE_PATH}
    if kind == "postgres":
        return {"type": "postgres", "dsn": dsn or COMPOSE_POSTGRES_DSN}
    return {"type": kind}


def result_backend_for(broker: str) -> str:
    """The Celery result backend to pair with ``broker``: the next Redis database.

    Example:
        >>> result_backend_for("redis://localhost:6379/0")
        'redis://localhost:6379/1'
        >>> result_backend_for("amqp://guest@localhost//")
        'amqp://guest@localhost//'
    """
    head, _, last = broker.rpartition("/")
    if broker.startswith(("redis://", "rediss://")) and head and last.isdigit():
        return f"{head}/{int(last) + 1}"
    return broker


def config_data(
    *,
    module: str | None,
    runtime: str,
    storage: dict[str, Any],
    broker: str | None = None,
    result_backend: str | None = None,
) -> dict[str, Any]:
    """The content of ``pyworkflow.config.yaml`` as a dict, keys in the documented order.

    ``celery`` is written only for the celery runtime.

    Example:
        >>> config_data(module="app", runtime="local", storage={"type": "memory"})
        {'module': 'app', 'runtime': 'local', 'storage': {'type': 'memory'}}
    """
    data: dict[str, Any] = {}
    if module:
        modules = [name.strip() for name in module.split(",") if name.strip()]
        if len(modules) == 1:
            data["module"] = modules[0]
        elif modules:
            data["modules"] = modules
    data["runtime"] = runtime
    data["storage"] = storage
    if runtime == "celery":
        chosen = broker or COMPOSE_REDIS_BROKER
        data["celery"] = {
            "broker": chosen,
            "result_backend": result_backend or result_backend_for(chosen),
        }
    return data


def config_yaml(data: dict[str, Any], *, celery_hint: bool = False) -> str:
    """``data`` as commented YAML; ``celery_hint`` appends the Celery settings as comments.

    Example:
        >>> print(config_yaml({"runtime": "local"}).splitlines()[-1])
        runtime: local
    """
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return _CONFIG_HEADER + body + (_CELERY_TRAILER if celery_hint else "")


def scaffold_files(
    *, template: str = "basic", storage: str = "sqlite", docker: bool = True
) -> dict[str, str]:
    """The files of a quickstart project: relative path (with ``/``) to content.

    Example:
        >>> sorted(scaffold_files(storage="file"))  # doctest: +NORMALIZE_WHITESPACE
        ['README.md', 'docker-compose.yml', 'pyworkflow.config.yaml',
         'workflows/__init__.py', 'workflows/approval.py', 'workflows/hello.py']
    """
    if template not in TEMPLATES:
        raise ValueError(f"Unknown template {template!r}. Choose one of: {', '.join(TEMPLATES)}.")
    if storage not in QUICKSTART_STORAGES:
        raise ValueError(
            f"quickstart storage must be one of {', '.join(QUICKSTART_STORAGES)}, not {storage!r}."
        )
    options = storage_options(storage)
    data = config_data(module="workflows", runtime="local", storage=options)
    where = f"the SQLite file `{options['base_path']}`"
    if storage == "file":
        where = f"JSON files under `{options['base_path']}/`"
    compose_row = (
        f"| `{COMPOSE_FILE_NAME}` | Redis and PostgreSQL, for running on Celery later |\n"
        if docker
        else ""
    )
    files = {
        CONFIG_FILE_NAME: config_yaml(data, celery_hint=docker),
        "README.md": _README_TEMPLATE.format(
            storage_where=where, config=CONFIG_FILE_NAME, compose_row=compose_row
        ),
        "workflows/__init__.py": INIT_TEMPLATE,
        "workflows/hello.py": HELLO_TEMPLATE,
        "workflows/approval.py": APPROVAL_TEMPLATE,
    }
    if docker:
        files[COMPOSE_FILE_NAME] = COMPOSE_TEMPLATE
    return dict(sorted(files.items()))


def next_steps(directory_hint: str | None = None) -> list[str]:
    """The commands to try after ``quickstart``, in order; ``cd`` first when needed.

    Example:
        >>> next_steps()[0]
        'pyworkflow workflows run hello --arg name=Ada'
    """
    steps = [] if directory_hint is None else [f"cd {directory_hint}"]
    return [
        *steps,
        "pyworkflow workflows run hello --arg name=Ada",
        "pyworkflow runs list",
        "pyworkflow runs status <run_id>",
        "pyworkflow runs logs <run_id>",
        "pyworkflow workflows run approval --arg item=laptop --no-wait",
        "pyworkflow hooks list",
        "pyworkflow hooks resume <token> --payload '{\"approved\": true}'",
    ]
