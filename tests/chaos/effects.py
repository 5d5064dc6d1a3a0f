"""Side-effect counters of the chaos workloads, and how to judge them.

Step bodies append ``enter|leave <key> <pid> <nonce> [<unix time>]`` lines to
``effects.log`` (``O_APPEND``, one write per line, so processes never interleave),
with ``<key>`` = ``<run_id>:<step_id>``, and return the nonce in their result: the
recorded ``step.completed`` then names the execution that won. Any other execution
of the same key is allowed only if its process was SIGKILLed (it died inside the
body or before recording it) or it ran while the storage could not record anything.

Import these from :mod:`tests.chaos.harness`, which re-exports them.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyworkflow.storage.base import StorageBackend
from pyworkflow.testing.invariants import Violation, check_side_effects

EFFECTS = "effects.log"


@dataclass
class Execution:
    """One execution of a step body, as its markers in ``effects.log`` tell."""

    key: str
    pid: int
    nonce: str
    left: bool = False
    at: float = 0.0  # when it entered the body (unix time; 0 if not written)


def add_effect_line(by_nonce: dict[str, Execution], line: str) -> tuple[str, str] | None:
    """Fold one ``enter``/``leave`` line into ``by_nonce``; returns ``(marker, nonce)``,
    or None for a line cut short by a kill mid-write."""
    parts = line.split()
    if len(parts) not in (4, 5) or parts[0] not in ("enter", "leave"):
        return None
    marker, key, pid, nonce = parts[:4]
    at = float(parts[4]) if len(parts) == 5 else 0.0
    ex = by_nonce.setdefault(nonce, Execution(key, int(pid), nonce, at=at))
    ex.left = ex.left or marker == "leave"
    return marker, nonce


def read_effects(path: Path) -> list[Execution]:
    """Parse ``effects.log`` (a missing file means no step ran)."""
    by_nonce: dict[str, Execution] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            add_effect_line(by_nonce, line)
    return list(by_nonce.values())


async def recorded_nonces(
    storage: StorageBackend, run_ids: Iterable[str]
) -> dict[str, list[str | None]]:
    """For each ``<run_id>:<step_id>``, the nonces carried by its ``step.completed``
    events (one entry per event; None when the result has no nonce)."""
    found: dict[str, list[str | None]] = collections.defaultdict(list)
    for run_id in run_ids:
        for event in await storage.get_events(run_id, ["step.completed"]):
            try:
                nonce = json.loads(event.data.get("result") or "null").get("nonce")
            except (AttributeError, ValueError):
                nonce = None
            found[f"{run_id}:{event.data.get('step_id')}"].append(nonce)
    return found


def side_effect_violations(
    executions: list[Execution],
    recorded: dict[str, list[str | None]],
    killed: set[int],
    outages: Iterable[tuple[float, float]] = (),
) -> list[Violation]:
    """:func:`check_side_effects` on the executions and recorded completions. An
    execution other than the recorded one is allowed when its process was killed, or
    when it ran during a storage outage (its result could not be recorded)."""
    windows = list(outages)
    counts = collections.Counter(ex.key for ex in executions)
    completed = {key: len(nonces) for key, nonces in recorded.items()}
    died_inside = [
        ex.key
        for ex in executions
        if ex.nonce not in recorded.get(ex.key, [])
        and (ex.pid in killed or any(lo <= ex.at <= hi for lo, hi in windows))
    ]
    return check_side_effects(counts, completed, died_inside)


def rerun_note(executions: list[Execution], recorded: dict[str, list[str | None]]) -> str:
    """One line for the scenario's notes: how many executions were not the recorded one."""
    extra = [ex for ex in executions if ex.nonce not in recorded.get(ex.key, [])]
    inside = sum(1 for ex in extra if not ex.left)
    return (
        f"step executions={len(executions)}, not recorded={len(extra)}"
        f" (killed inside the body: {inside})"
    )
