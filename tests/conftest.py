"""Fixtures shared by every test.

* ``redis_server`` / ``postgres_server``: real servers (tests/servers.py) on free loopback
  ports, started the first time a test asks for them and stopped when the session ends.
* ``redis_url``: an empty Redis logical database of its own for each test.
* ``pg_dsn``: a new PostgreSQL database for each test, dropped afterwards.
* Global pyworkflow state is reset around every test.

Every test is bounded by pytest-timeout (``timeout`` in pyproject.toml).
Helpers are imported as ``from tests.support import eventually``.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `.venv/bin/pytest` does not put the repository root on sys.path; the helpers live in the
# `tests` package namespace, so add it once here.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pyworkflow.config import reset_config  # noqa: E402
from pyworkflow.core.registry import _registry  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's Redis server. Tests may stop/kill/restart it; the next test that asks
    for ``redis_url`` gets it running again on the same port."""
    with RedisServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (same stop/kill/restart contract as ``redis_server``)."""
    with PostgresServer.start() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:<port>/<n>``: a logical database no other test uses, empty.
    A test needing a second one (e.g. a Celery result backend) calls
    ``redis_server.fresh_url()``."""
    redis_server.ensure_running()
    return redis_server.fresh_url()


_database_numbers = itertools.count(1)


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a database created for this test alone, dropped after it."""
    postgres_server.ensure_running()
    slug = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())
    name = f"t{next(_database_numbers)}_{slug}"[:63]
    yield postgres_server.create_database(name)
    if postgres_server.running:  # a test that left the server down has nothing to drop
        postgres_server.drop_database(name)


def _reset_pyworkflow_state() -> None:
    reset_config()


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Workflows and steps a test defines disappear after it, so names can be reused."""
    workflows = dict(_registry._workflows)
    steps = dict(_registry._steps)
    yield
    _registry._workflows.clear()
    _registry._workflows.update(workflows)
    _registry._steps.clear()
    _registry._steps.update(steps)


@pytest.fixture(autouse=True)
def _clean_pyworkflow_state() -> Iterator[None]:
    """Each test starts and ends with no global pyworkflow configuration."""
    _reset_pyworkflow_state()
    yield
    _reset_pyworkflow_state()
