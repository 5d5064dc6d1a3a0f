"""Run leases and durable timers: what keeps two workers or schedulers apart.

Every operation here is a single conditional ``UPDATE`` (``... RETURNING`` for timer
claims), so the database's own write serialization makes it atomic across
processes: two schedulers never claim the same timer and two workers never both
take a run's lease.

Example:
    >>> "RETURNING" in claim_timers_sql("")
    True
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyworkflow.storage.base import RunLease
from pyworkflow.storage.schemas import STALE_STATUSES, TERMINAL_STATUSES, RunStatus, Timer
from pyworkflow.storage.sql.codec import row_to_timer
from pyworkflow.storage.sql.core import SQLCore
from pyworkflow.storage.sql.driver import Row
from pyworkflow.storage.sql.schema import TIMER_COLUMNS

_LEASE_FREE = (
    "(lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ?"
    " OR lease_owner = ? OR lease_owner = ?)"
)
#: Statuses ``begin_activation`` leaves as they are (ended runs, and RUNNING itself).
_KEEP_STATUS = tuple(
    s.value for s in (*sorted(TERMINAL_STATUSES, key=lambda s: s.value), RunStatus.RUNNING)
)
_CLAIMABLE = "(claimed_by IS NULL OR claimed_until IS NULL OR claimed_until <= ?)"


def claim_timers_sql(skip_locked: str) -> str:
    """The claim statement; ``skip_locked`` lets row-locking databases skip timers
    another claimer is busy with instead of waiting for it.

    Parameters: ``now`` twice, the limit, the owner and the claim's end. The due timers
    are picked in a CTE, which PostgreSQL evaluates exactly once (a sub-select inside
    ``IN (...)`` may be re-run by the planner, and its row locks with it).
    """
    return (
        f"WITH due AS (SELECT timer_id FROM timers WHERE fire_at <= ? AND {_CLAIMABLE}"
        f" ORDER BY fire_at, timer_id LIMIT ?{skip_locked})"
        " UPDATE timers SET claimed_by = ?, claimed_until = ?"
        " WHERE timer_id IN (SELECT timer_id FROM due)"
        f" RETURNING {', '.join(TIMER_COLUMNS)}"
    )


class CoordinationMixin(SQLCore):
    """Leases and timers of :class:`~pyworkflow.storage.base.StorageBackend`."""

    # ------------------------------------------------------------------ leases

    async def acquire_run_lease(
        self,
        run_id: str,
        owner: str,
        ttl_seconds: float,
        now: datetime,
        steal_from: str | None = None,
    ) -> bool:
        until = now + timedelta(seconds=ttl_seconds)
        # steal_from=None binds NULL, and "lease_owner = NULL" is never true.
        changed = await self._write_one(
            f"UPDATE workflow_runs SET lease_owner = ?, lease_expires_at = ?"
            f" WHERE run_id = ? AND {_LEASE_FREE}",
            (owner, self._dt(until), run_id, self._dt(now), owner, steal_from),
        )
        return changed > 0

    async def begin_activation(
        self,
        run_id: str,
        owner: str,
        ttl_seconds: float,
        now: datetime,
        steal_from: str | None = None,
    ) -> bool:
        until = now + timedelta(seconds=ttl_seconds)
        # One UPDATE for lease and status: a resume costs one write (one fsync) less.
        # An ended run keeps its status; the caller sees it and gives the lease back.
        keep = ", ".join("?" for _ in _KEEP_STATUS)
        changed = await self._write_one(
            f"UPDATE workflow_runs SET lease_owner = ?, lease_expires_at = ?,"
            f" updated_at = CASE WHEN status IN ({keep}) THEN updated_at ELSE ? END,"
            f" status = CASE WHEN status IN ({keep}) THEN status ELSE ? END"
            f" WHERE run_id = ? AND {_LEASE_FREE}",
            (
                owner,
                self._dt(until),
                *_KEEP_STATUS,
                self._dt(now),
                *_KEEP_STATUS,
                RunStatus.RUNNING.value,
                run_id,
                self._dt(now),
                owner,
                steal_from,
            ),
        )
        return changed > 0

    async def renew_run_lease(
        self, run_id: str, owner: str, ttl_seconds: float, now: datetime
    ) -> bool:
        until = now + timedelta(seconds=ttl_seconds)
        changed = await self._write_one(
            "UPDATE workflow_runs SET lease_expires_at = ? WHERE run_id = ? AND lease_owner = ?",
            (self._dt(until), run_id, owner),
        )
        return changed > 0

    async def release_run_lease(self, run_id: str, owner: str) -> None:
        await self._write_one(
            "UPDATE workflow_runs SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE run_id = ? AND lease_owner = ?",
            (run_id, owner),
        )

    async def get_run_lease(self, run_id: str) -> RunLease | None:
        row = await self._fetch_one(
            "SELECT lease_owner, lease_expires_at FROM workflow_runs WHERE run_id = ?",
            (run_id,),
        )
        if row is None or row[0] is None:
            return None
        expires = self._dialect.decode_dt(row[1])
        return RunLease(owner=row[0], expires_at=expires) if expires else None

    async def list_stale_runs(self, now: datetime, limit: int = 100) -> list[str]:
        rows = await self._fetch_all(
            "SELECT run_id FROM workflow_runs WHERE status IN (?, ?)"
            " AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ?)"
            " ORDER BY created_at, run_id LIMIT ?",
            (*STALE_STATUSES, self._dt(now), max(limit, 0)),
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ timers

    async def claim_due_timers(
        self, now: datetime, owner: str, lease_seconds: float, limit: int = 100
    ) -> list[Timer]:
        until = now + timedelta(seconds=lease_seconds)
        sql = self._sql(claim_timers_sql(self._dialect.skip_locked))
        params = (self._dt(now), self._dt(now), max(limit, 0), owner, self._dt(until))

        async def once() -> list[Row]:
            async with self._writer() as conn:
                return await conn.fetch_all(sql, params)

        # Repeating a claim whose reply was lost is safe: the timers it took stay
        # claimed by this owner until the claim expires, and then fire once.
        rows = await self._attempt(once)
        timers = [row_to_timer(self._dialect, r) for r in rows]
        # RETURNING gives rows in no particular order.
        timers.sort(key=lambda t: (t.fire_at, t.timer_id))
        return timers

    async def next_timer_due(self) -> datetime | None:
        # A timer under a live claim becomes claimable again when that claim expires.
        row = await self._fetch_one(
            "SELECT MIN(CASE WHEN claimed_until IS NOT NULL AND claimed_until > fire_at"
            " THEN claimed_until ELSE fire_at END) FROM timers"
        )
        return self._dialect.decode_dt(row[0]) if row else None

    async def list_timers(self, run_id: str | None = None) -> list[Timer]:
        sql, params = f"SELECT {', '.join(TIMER_COLUMNS)} FROM timers", []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        rows = await self._fetch_all(f"{sql} ORDER BY fire_at, timer_id", params)
        return [row_to_timer(self._dialect, r) for r in rows]
