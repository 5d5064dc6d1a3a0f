"""The errors storage backends raise, re-exported by :mod:`pyworkflow.storage.base`.

Example:
    >>> str(SequenceConflictError("run_1", 4))
    'Run run_1: events were appended after sequence 4'
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of storage-level errors the engine reacts to."""


class SequenceConflictError(StorageError):
    """Another writer appended to the run after the sequence this commit expected.

    Nothing of the commit was written. The engine reloads the new events and retries.
    """

    def __init__(self, run_id: str, expected: int) -> None:
        super().__init__(f"Run {run_id}: events were appended after sequence {expected}")
        self.run_id = run_id
        self.expected = expected


class DuplicateEventError(StorageError):
    """An event with the same de-duplication key already exists for the run.

    Nothing of the commit was written. Raised, for instance, when a step's result
    or a hook's payload would be recorded a second time.
    """

    def __init__(self, run_id: str, key: str) -> None:
        super().__init__(f"Run {run_id}: an event with key {key!r} is already recorded")
        self.run_id = run_id
        self.key = key


class RunEndedError(StorageError):
    """A commit with ``require_open`` found the run already ended; nothing was written.

    Late writers (a step worker finishing after a cancellation, a hook payload racing
    the run's end) use it so that nothing is appended after the terminal event.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id} has already ended")
        self.run_id = run_id


class RunAlreadyExistsError(StorageError, ValueError):
    """``create_run`` with an id that is taken (a ``ValueError`` for upstream code)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Workflow run {run_id} already exists")
        self.run_id = run_id


class CorruptStorageError(StorageError):
    """A storage file or record cannot be read; the message names it and the fix."""
