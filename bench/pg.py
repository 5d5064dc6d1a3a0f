"""The PostgreSQL server of W2: the test suite's throwaway cluster (tests/servers.py,
which also handles running as root), made durable like a production server.

The test suite turns ``fsync``, ``full_page_writes`` and ``synchronous_commit`` off and
keeps its data in tmpfs; a benchmark of durable steps must pay for the flushes, so
here they are on and the data directory is on disk, next to the SQLite files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from tests import servers

_DURABLE = {
    "fsync=off": "fsync=on",
    "full_page_writes=off": "full_page_writes=on",
    "synchronous_commit=off": "synchronous_commit=on",
}


class DurablePostgres(servers.PostgresServer):
    """``PostgresServer`` with the durability settings of a default installation."""

    def _command(self) -> list[str]:
        return [_DURABLE.get(arg, arg) for arg in super()._command()]


def _on_disk(other_user: bool) -> Path:
    # As root the server runs as `postgres`, which cannot enter a $TMPDIR under /root.
    return Path("/tmp") if other_user else Path(tempfile.gettempdir())


@contextmanager
def durable_postgres() -> Iterator[DurablePostgres]:
    """Start the server on a free loopback port; stop it and delete its files after."""
    with mock.patch.object(servers, "_base_dir", _on_disk):
        server = DurablePostgres.start()
    try:
        yield server
    finally:
        server.close()
