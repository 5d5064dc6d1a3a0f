"""Real Redis and PostgreSQL servers for the test suite, on free loopback ports.

DESIGN.md §4: tests talk to real servers that the suite starts by itself; nothing is mocked.
Each server lives in its own temp directory, is started as a child process (so tests can
``stop()``, ``restart()`` on the same port, or ``kill()`` it with SIGKILL for fault
injection), and is stopped at interpreter exit even if a fixture finalizer never ran.

Binaries are looked up like ``scripts/ensure-servers.sh`` does (``make test`` runs it and
installs them): PATH first, then the highest ``/usr/lib/postgresql/<version>/bin``.

Example::

    with RedisServer.start() as server, server.client() as client:
        assert client.ping()
    with PostgresServer.start() as pg:
        dsn = pg.create_database("example")
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import asyncpg
import redis

from tests.support import free_port, kill_tree, process_alive

T = TypeVar("T")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = (
    "Run `make test`, which installs it (scripts/ensure-servers.sh: "
    "apt-get install redis-server postgresql), or put it on PATH."
)
_DIR_PREFIX = "pyworkflow-test-"
_SHM = "/dev/shm"
_PG_TOOLS = ("initdb", "pg_ctl", "postgres")
# Server processes must not inherit a broken or exotic locale from the caller's shell.
_ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}


class ServerBinaryMissing(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


# -- locating binaries ----------------------------------------------------------------------


def find_redis_server() -> str:
    """Path of ``redis-server``, e.g. ``/usr/bin/redis-server``."""
    path = shutil.which("redis-server")
    if path is None:
        raise ServerBinaryMissing(f"redis-server not found on PATH. {INSTALL_HINT}")
    return path


def find_postgres_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres of one version.

    Example: ``find_postgres_bindir()`` gives ``Path("/usr/lib/postgresql/15/bin")``.
    """

    def version(d: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", d.parent.name))

    on_path = shutil.which("postgres")
    candidates = [Path(on_path).parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in _PG_TOOLS):
            return bindir
    raise ServerBinaryMissing(
        f"PostgreSQL server binaries ({', '.join(_PG_TOOLS)}) not found on PATH or under "
        f"/usr/lib/postgresql/*/bin. {INSTALL_HINT}"
    )


# -- processes ------------------------------------------------------------------------------


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _base_dir(other_user: bool) -> Path:
    """Where server directories go. tmpfs when it has room: on ext4, even with fsync off,
    CREATE DATABASE (once per test) takes ~0.3 s instead of ~0.04 s. As root, the server's
    unprivileged user must reach the directory, so never a $TMPDIR that may sit in /root."""
    with contextlib.suppress(OSError):
        stat = os.statvfs(_SHM)
        if os.access(_SHM, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= 2 << 30:
            return Path(_SHM)
    return Path("/tmp") if other_user else Path(tempfile.gettempdir())


def _sweep_orphans() -> None:
    """Remove servers left behind by test sessions that were SIGKILLed themselves."""
    bases = {Path(_SHM), Path("/tmp"), Path(tempfile.gettempdir())}
    for workdir in (w for base in bases for w in base.glob(_DIR_PREFIX + "*")):
        owner = _read_pid(workdir / "owner.pid")
        if owner is None or process_alive(owner):
            continue  # another user's, still being set up, or its session still runs
        server = _read_pid(workdir / "server.pid")
        with contextlib.suppress(OSError):  # kill only what runs there: pids get reused
            if server is not None and os.readlink(f"/proc/{server}/cwd").startswith(str(workdir)):
                kill_tree(server)
        shutil.rmtree(workdir, ignore_errors=True)


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is running
    in this thread (e.g. a test calling ``create_database`` from an async test)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _Server:
    """A server child process with its own temp directory."""

    kind: ClassVar[str] = "server"
    _live: ClassVar[list[_Server]] = []

    def __init__(self, run_as: pwd.struct_passwd | None = None) -> None:
        _sweep_orphans()
        self.run_as = run_as
        base = _base_dir(other_user=run_as is not None)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{self.kind}-", dir=base))
        if run_as:
            os.chown(self.workdir, run_as.pw_uid, run_as.pw_gid)
        (self.workdir / "owner.pid").write_text(str(os.getpid()))
        self.port = 0
        self.startup_seconds = 0.0  # of the last (re)start, for the curious
        self.proc: subprocess.Popen[bytes] | None = None
        _Server._live.append(self)

    @classmethod
    def start(cls) -> Self:
        """Start a server on a free port; return once it accepts connections."""
        server = cls()
        try:
            server._prepare()
            server._launch(attempts=3, new_port=True)  # another process may grab the port
        except BaseException:
            server.close()
            raise
        return server

    # subclass hooks
    def _prepare(self) -> None:
        """One-time setup before the first launch."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _stop_signal(self) -> signal.Signals:
        return signal.SIGTERM

    def _user_kwargs(self) -> dict[str, Any]:
        # Like setpriv: the child drops to the server user right before exec, so the pid we
        # hold (and signal) is the server itself, not a runuser/su wrapper.
        if self.run_as is None:
            return {}
        return {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.workdir / "server.log", "ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=_ENV,
                start_new_session=True,  # a Ctrl-C in the terminal goes to pytest only
                **self._user_kwargs(),
            )

    def _launch(self, attempts: int, new_port: bool = False) -> None:
        for attempt in range(1, attempts + 1):
            if new_port:
                self.port = free_port()
            try:
                self._launch_once()
                return
            except ServerStartError:
                if attempt == attempts:
                    raise
                time.sleep(0.2)

    def _launch_once(self) -> None:
        started = time.monotonic()
        proc = self.proc = self._spawn(self._command())
        (self.workdir / "server.pid").write_text(str(proc.pid))
        while time.monotonic() - started < START_TIMEOUT:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"{self.kind} exited with {proc.returncode}:\n{self.log_tail()}"
                )
            if self._ready():
                self.startup_seconds = time.monotonic() - started
                return
            time.sleep(0.01)
        self.kill()
        raise ServerStartError(f"{self.kind} not ready after {START_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        try:
            return (self.workdir / "server.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        """Start the server again on its port if a test stopped or killed it."""
        if not self.running:
            self.restart()

    def stop(self) -> None:
        """Stop cleanly (data is flushed); falls back to SIGKILL after STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self._stop_signal())
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Crash the server: SIGKILL it and all its child processes, no shutdown at all."""
        if self.proc is None or self.proc.poll() is not None:
            return
        kill_tree(self.proc.pid)
        self.proc.wait()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        # Right after a kill() the kernel may need a moment to release the old process's
        # port or shared memory: retry briefly.
        self._launch(attempts=5)

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _Server._live:
            _Server._live.remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    for server in list(_Server._live):
        server.close()


# -- Redis ----------------------------------------------------------------------------------


class RedisServer(_Server):
    """``redis-server`` without persistence on 127.0.0.1.

    Example::

        redis = RedisServer.start()
        url = redis.fresh_url()   # redis://127.0.0.1:<port>/<n>, an empty database
        redis.kill(); redis.restart()
    """

    kind = "redis"
    # Enough logical databases that every test gets its own (fresh_url) without wrapping.
    DATABASES = 1000

    def __init__(self) -> None:
        self.binary = find_redis_server()
        super().__init__()
        self._last_db = 0

    def _command(self) -> list[str]:
        return [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            *("--daemonize", "no", "--databases", str(self.DATABASES)),
        ]

    def _ready(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    @property
    def url(self) -> str:
        """URL of database 0, e.g. ``redis://127.0.0.1:6390/0``."""
        return self.url_for_db(0)

    def url_for_db(self, db: int) -> str:
        """URL of logical database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def fresh_url(self) -> str:
        """URL of a logical database no earlier call returned, flushed; db 0 is never used."""
        self._last_db = self._last_db % (self.DATABASES - 1) + 1
        with self.client(self._last_db) as client:
            client.flushdb()
        return self.url_for_db(self._last_db)

    def client(self, db: int = 0) -> redis.Redis:
        """A new ``redis.Redis`` client for database ``db``; use it as a context manager.

        Example: ``with redis_server.client(3) as c: c.set("k", "v")``
        """
        return redis.Redis(port=self.port, db=db, socket_timeout=5, socket_connect_timeout=1)


# -- PostgreSQL -----------------------------------------------------------------------------


def _server_user() -> pwd.struct_passwd | None:
    """The user to run initdb/postgres as: they refuse to run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):  # Debian's postgresql package creates `postgres`
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerStartError("running as root, and neither user 'postgres' nor 'nobody' exists")


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster on 127.0.0.1, user ``postgres``, trust auth.

    Example::

        pg = PostgresServer.start()
        dsn = pg.create_database("test_orders")   # postgresql://postgres@127.0.0.1:<port>/test_orders
        pg.restart()                               # same port, same data
    """

    kind = "postgres"

    def __init__(self) -> None:
        self.bindir = find_postgres_bindir()
        super().__init__(run_as=_server_user())
        self.datadir = self.workdir / "data"

    def _prepare(self) -> None:
        result = subprocess.run(
            [
                *(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres"),
                *("--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"),
            ],
            cwd=self.workdir,
            env=_ENV,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
            **self._user_kwargs(),
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise ServerStartError(f"initdb failed ({result.returncode}):\n{output}")

    def _command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            *("-D", str(self.datadir), "-p", str(self.port), "-k", str(self.workdir)),
            *("-c", "listen_addresses=127.0.0.1"),
            # Speed over durability, for a throwaway cluster: without fsync tests run several
            # times faster, and since only processes die here (never the machine), the OS
            # page cache still holds every written page. But synchronous_commit=off
            # acknowledges a commit before its WAL leaves shared memory, so kill() may lose
            # the last few hundred milliseconds of commits; a test that kills PostgreSQL and
            # counts on acknowledged commits runs `ALTER DATABASE <db> SET
            # synchronous_commit = on` first. stop() and restart() lose nothing.
            *("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"),
            # Bounded WAL (each CREATE DATABASE logs ~7 MB), as the data may sit in tmpfs.
            *("-c", "max_connections=200", "-c", "max_wal_size=256MB"),
        ]

    def _stop_signal(self) -> signal.Signals:
        return signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to disconnect

    def _ready(self) -> bool:
        # postmaster.pid's 8th line turns to "ready" once connections are accepted (this is
        # what pg_ctl waits for); its first line guards against a stale file after kill().
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        assert self.proc is not None
        return len(lines) >= 8 and lines[0] == str(self.proc.pid) and lines[7].strip() == "ready"

    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` maintenance database."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """DSN of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN; works from sync and async code."""
        self._execute(f'CREATE DATABASE "{_identifier(name)}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        self._execute(f'DROP DATABASE IF EXISTS "{_identifier(name)}" WITH (FORCE)')

    def _execute(self, sql: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        _run_async(run())


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain lowercase SQL identifier of at most 63 chars: {name!r}")
    return name
