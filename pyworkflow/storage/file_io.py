"""Low-level file handling for :mod:`pyworkflow.storage.file`.

* ids become file names through :func:`safe_name` (no path traversal, no collisions);
* whole files are replaced atomically (:func:`atomic_write`: temp file + ``os.replace``),
  so a reader in another process sees the old or the new record, never half of one;
* unreadable records raise :class:`CorruptStorageError` naming the file and the fix;
* event logs are JSON lines, appended under the run's lock. A final line without its
  newline is an append still in progress (or cut short by a crash): readers ignore
  it and the next writer, holding the lock, cuts it off.

Example:
    >>> safe_name("run_1"), safe_name("../etc")[:6]
    ('run_1', '.._etc')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyworkflow.engine.events import Event, dedup_key
from pyworkflow.storage.base import CorruptStorageError

_SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def safe_name(part: str) -> str:
    """A file name for an id: the id itself when harmless, else a readable prefix plus a
    hash. ``~`` never occurs in a harmless id, so the two forms cannot collide.

    Example:
        >>> safe_name("run:sleep:s1").startswith("run_sleep_s1~")
        True
    """
    if _SAFE.fullmatch(part):
        return part
    digest = hashlib.sha256(part.encode()).hexdigest()[:16]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", part)[:60] + "~" + digest


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (creating parent folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A ``.tmp`` suffix keeps half-written files out of every record scan.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def corrupt(path: Path, reason: object, line: int | None = None) -> CorruptStorageError:
    """The error for an unreadable record, naming the file and how to fix it."""
    where = f"{path}, line {line}" if line is not None else str(path)
    what = "that line" if line is not None else "the file"
    return CorruptStorageError(
        f"Corrupt storage record in {where}: {reason}. Restore the file from a backup, "
        f"or delete {what} to drop the damaged record (its data is then lost)."
    )


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file does not exist."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(path, exc) from None
    if not isinstance(data, dict):
        raise corrupt(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def encode_event(event: Event) -> str:
    """One log line (with its newline)."""
    return json.dumps(event.to_dict(), separators=(",", ":")) + "\n"


def parse_events(path: Path, data: bytes, first_line: int = 1) -> list[Event]:
    """Decode complete lines of a log; ``first_line`` numbers lines in error messages."""
    events = []
    for number, line in enumerate(data.split(b"\n")[:-1], start=first_line):
        try:
            event = Event.from_dict(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise corrupt(path, f"{type(exc).__name__}: {exc}", number) from None
        if event.sequence is None:
            raise corrupt(path, "event without a sequence", number)
        events.append(event)
    return events


def read_log(path: Path) -> list[Event]:
    """Every committed event of a log (an unterminated last line is ignored)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return parse_events(path, data[: data.rfind(b"\n") + 1])


@dataclass
class LogTail:
    """What a process knows about the end of one log: byte size, line count, last
    sequence and dedup keys. Kept between commits so an append reads only new lines."""

    inode: int = -1
    size: int = 0
    lines: int = 0
    last_sequence: int = -1
    keys: set[str] = field(default_factory=set)

    def absorb(self, events: list[Event], size: int) -> None:
        """Account for ``events`` now ending at byte ``size``."""
        for event in events:
            key = dedup_key(event)
            if key is not None:
                self.keys.add(key)
            self.last_sequence = event.sequence if event.sequence is not None else -1
        self.lines += len(events)
        self.size = size


def refresh_tail(path: Path, tail: LogTail | None) -> LogTail:
    """Bring ``tail`` up to date with the file, reading only what it has not seen.

    The caller holds the run's lock, so an unterminated last line is a crashed
    append, never one in progress: it is cut off here.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return LogTail()
    if tail is None or tail.inode != stat.st_ino or stat.st_size < tail.size:
        tail = LogTail(inode=stat.st_ino)
    if stat.st_size > tail.size:
        with path.open("rb") as handle:
            handle.seek(tail.size)
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            os.truncate(path, tail.size + complete)
        tail.absorb(parse_events(path, data[:complete], tail.lines + 1), tail.size + complete)
    return tail


def append_at(path: Path, offset: int, text: str) -> None:
    """Write ``text`` at byte ``offset`` of a log, dropping anything after it (so
    replaying an interrupted append from a journal cannot duplicate lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as _:
        pass  # create the file if needed without clobbering it
    with path.open("r+b") as handle:
        handle.truncate(offset)
        handle.seek(offset)
        handle.write(text.encode("utf-8"))
