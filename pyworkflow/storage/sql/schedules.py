"""Schedules, stored whole (spec, counters, running runs, buffer).

Example:
    >>> SELECT_SCHEDULE.startswith("SELECT schedule_id, workflow_name, spec")
    True
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyworkflow.storage.base import ANY_TIME
from pyworkflow.storage.schemas import Schedule, ScheduleSpec, ScheduleStatus
from pyworkflow.storage.sql.codec import row_to_schedule, schedule_to_row
from pyworkflow.storage.sql.core import SQLCore, placeholders, utcnow
from pyworkflow.storage.sql.schema import SCHEDULE_COLUMNS

SELECT_SCHEDULE = f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM schedules"
_INSERT_SCHEDULE = (
    f"INSERT INTO schedules ({', '.join(SCHEDULE_COLUMNS)}) "
    f"VALUES ({placeholders(len(SCHEDULE_COLUMNS))})"
)
_UPDATE_SCHEDULE = (
    f"UPDATE schedules SET {', '.join(f'{c} = ?' for c in SCHEDULE_COLUMNS[1:])}"
    " WHERE schedule_id = ?"
)


def _missing(schedule_id: str) -> ValueError:
    return ValueError(f"Schedule {schedule_id} not found")


class SchedulesMixin(SQLCore):
    """The schedule methods of the storage protocol."""

    async def create_schedule(self, schedule: Schedule) -> None:
        try:
            await self._insert_one(_INSERT_SCHEDULE, schedule_to_row(self._dialect, schedule))
        except Exception as exc:
            if self._constraint(exc) == "schedules_pk":
                raise ValueError(f"Schedule {schedule.schedule_id} already exists") from exc
            raise

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        row = await self._fetch_one(f"{SELECT_SCHEDULE} WHERE schedule_id = ?", (schedule_id,))
        return row_to_schedule(self._dialect, row) if row else None

    async def update_schedule(self, schedule: Schedule) -> None:
        row = schedule_to_row(self._dialect, schedule)
        if await self._write_one(_UPDATE_SCHEDULE, [*row[1:], row[0]]) == 0:
            raise _missing(schedule.schedule_id)

    async def patch_schedule(
        self,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        if_updated_at: datetime | object | None = ANY_TIME,
    ) -> bool:
        """Set some columns in one UPDATE (see ``StorageBackend.patch_schedule``)."""
        # Encode through a scratch schedule so each value gets its column's codec.
        scratch = Schedule(schedule_id, "", ScheduleSpec())
        for name, value in changes.items():
            setattr(scratch, name, value)
        row = schedule_to_row(self._dialect, scratch)
        columns = [c for c in SCHEDULE_COLUMNS if c in changes]
        values = [row[SCHEDULE_COLUMNS.index(c)] for c in columns]
        sql = f"UPDATE schedules SET {', '.join(f'{c} = ?' for c in columns)} WHERE schedule_id = ?"
        params: list[Any] = [*values, schedule_id]
        if if_updated_at is not ANY_TIME:
            if if_updated_at is None:
                sql += " AND updated_at IS NULL"
            else:
                sql += " AND updated_at = ?"
                params.append(self._dt(if_updated_at))  # type: ignore[arg-type]
        if await self._write_one(sql, params) == 1:
            return True
        if await self.get_schedule(schedule_id) is None:
            raise _missing(schedule_id)
        return False

    async def delete_schedule(self, schedule_id: str) -> None:
        changed = await self._write_one(
            "UPDATE schedules SET status = ?, updated_at = ? WHERE schedule_id = ?",
            (ScheduleStatus.DELETED.value, self._dt(utcnow()), schedule_id),
        )
        if changed == 0:
            raise _missing(schedule_id)

    async def list_schedules(
        self,
        workflow_name: str | None = None,
        status: ScheduleStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Schedule]:
        where: list[str] = []
        params: list[Any] = []
        if workflow_name is not None:
            where.append("workflow_name = ?")
            params.append(workflow_name)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch_all(
            f"{SELECT_SCHEDULE}{clause} ORDER BY created_at DESC, schedule_id DESC"
            " LIMIT ? OFFSET ?",
            [*params, max(limit, 0), max(offset, 0)],
        )
        return [row_to_schedule(self._dialect, r) for r in rows]

    async def get_due_schedules(self, now: datetime) -> list[Schedule]:
        rows = await self._fetch_all(
            f"{SELECT_SCHEDULE} WHERE status = ? AND next_run_time IS NOT NULL"
            " AND next_run_time <= ? ORDER BY next_run_time, schedule_id",
            (ScheduleStatus.ACTIVE.value, self._dt(now)),
        )
        return [row_to_schedule(self._dialect, r) for r in rows]

    async def add_running_run(self, schedule_id: str, run_id: str) -> None:
        await self._edit_running(schedule_id, lambda ids: ids if run_id in ids else [*ids, run_id])

    async def remove_running_run(self, schedule_id: str, run_id: str) -> None:
        await self._edit_running(schedule_id, lambda ids: [i for i in ids if i != run_id])

    async def _edit_running(
        self, schedule_id: str, change: Callable[[list[str]], list[str]]
    ) -> None:
        # Read-modify-write inside one write transaction: concurrent schedulers adding
        # and removing runs must not lose each other's change.
        d = self._dialect
        select = self._sql(
            "SELECT running_run_ids FROM schedules WHERE schedule_id = ?" + d.for_update
        )
        update = self._sql(
            "UPDATE schedules SET running_run_ids = ?, updated_at = ? WHERE schedule_id = ?"
        )

        async def once() -> None:
            async with self._transaction() as conn:
                row = await conn.fetch_one(select, (schedule_id,))
                if row is None:
                    raise _missing(schedule_id)
                ids = [str(i) for i in d.decode_json(row[0]) or []]
                new_ids = change(ids)
                if new_ids != ids:
                    params = (d.encode_json(new_ids), self._dt(utcnow()), schedule_id)
                    await conn.execute(update, params)

        # Adding or removing a run id twice is the same as once.
        await self._attempt(once)
