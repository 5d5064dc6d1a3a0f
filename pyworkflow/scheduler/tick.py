"""One tick of distributed timer firing: claim what is due, say whom to wake.

A tick claims timers due now or within ``lookahead`` seconds (atomically, so two
ticking processes never both get one) and returns one :class:`Wakeup` per run with
the moment to resume it. The caller sends each resume with that short delay, so a
run wakes on time although ticks come only every second or so — and nothing waits
in the broker for longer than the lookahead. Runs whose activation died (lease
expired) are returned too, to be resumed now.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> asyncio.run(claim_wakeups(InMemoryStorageBackend(), "tick-1"))
    []
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loguru import logger

from pyworkflow.storage.base import CommitBatch, StorageBackend


@dataclass
class Wakeup:
    """Resume ``run_id`` at ``at`` (because of these timer kinds)."""

    run_id: str
    at: datetime
    kinds: list[str] = field(default_factory=list)

    @property
    def is_schedule(self) -> bool:
        """A schedule's timer (``run_id`` is then the schedule id): process the
        schedule rather than resume a run."""
        return "schedule" in self.kinds

    def delay_seconds(self, now: datetime | None = None) -> float:
        """Seconds from ``now`` until the wake-up (0 when already due)."""
        current = now or datetime.now(UTC)
        return max(0.0, (self.at - current).total_seconds())


async def claim_wakeups(
    storage: StorageBackend,
    owner: str,
    *,
    lookahead: float = 1.0,
    claim_seconds: float = 30.0,
    limit: int = 500,
    include_stale: bool = True,
) -> list[Wakeup]:
    """Claim timers due within ``lookahead`` seconds; return the runs to wake."""
    now = datetime.now(UTC)
    timers = await storage.claim_due_timers(
        now + timedelta(seconds=lookahead), owner, claim_seconds, limit
    )
    wakeups: dict[str, Wakeup] = {}
    wake_only: dict[str, list[str]] = {}
    for timer in timers:
        wake = wakeups.setdefault(timer.run_id, Wakeup(timer.run_id, timer.fire_at))
        wake.at = min(wake.at, timer.fire_at)
        wake.kinds.append(timer.kind)
        if timer.kind == "wake":
            wake_only.setdefault(timer.run_id, []).append(timer.timer_id)
    # A "wake" timer is consumed by firing it: no activation deletes it.
    for run_id, timer_ids in wake_only.items():
        await storage.commit(CommitBatch(run_id=run_id, timers_delete=timer_ids))
    if include_stale:
        try:
            stale = await storage.list_stale_runs(now)
        except Exception as error:
            # The timers above are claimed already: failing the tick here would leave
            # healthy runs waiting out their claims because of one unreadable record
            # (the file backend reads every run for this scan). Fire them; report.
            logger.error("Stale-run scan failed, due timers fire anyway: {}", error)
            stale = []
        for run_id in stale:
            wakeups.setdefault(run_id, Wakeup(run_id, now, ["stale"]))
    return sorted(wakeups.values(), key=lambda w: w.at)
