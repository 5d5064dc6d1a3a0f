"""Step records, hooks and cancellation flags.

Example:
    >>> SELECT_HOOK.startswith("SELECT hook_id, run_id, token")
    True
"""

from __future__ import annotations

from typing import Any

from pyworkflow.storage.schemas import Hook, HookStatus, StepExecution, StepStatus
from pyworkflow.storage.sql.codec import hook_to_row, row_to_hook, row_to_step, step_to_row
from pyworkflow.storage.sql.core import SQLCore, placeholders, utcnow
from pyworkflow.storage.sql.schema import HOOK_COLUMNS, STEP_COLUMNS

SELECT_STEP = f"SELECT {', '.join(STEP_COLUMNS)} FROM steps"
SELECT_HOOK = f"SELECT {', '.join(HOOK_COLUMNS)} FROM hooks"
_INSERT_HOOK = f"INSERT INTO hooks ({', '.join(HOOK_COLUMNS)}) VALUES ({placeholders(12)})"
_FINISHED_STEP = (StepStatus.COMPLETED, StepStatus.FAILED)
# Hook ids repeat across runs (hook_<name>_<n>); without a run, the newest hook with the
# id is meant, as in the other backends.
_NEWEST_HOOK_RUN = (
    "(SELECT run_id FROM hooks WHERE hook_id = ? ORDER BY created_at DESC, run_id DESC LIMIT 1)"
)


class RecordsMixin(SQLCore):
    """Steps, hooks and cancellation flags of the storage protocol."""

    # ------------------------------------------------------------------ steps

    async def create_step(self, step: StepExecution) -> None:
        """Insert a step record, replacing one with the same id (as the other backends)."""
        upsert = self._dialect.upsert("steps", STEP_COLUMNS, ("step_id",), STEP_COLUMNS[1:])
        await self._write_one(upsert, step_to_row(self._dialect, step))

    async def get_step(self, step_id: str) -> StepExecution | None:
        row = await self._fetch_one(f"{SELECT_STEP} WHERE step_id = ?", (step_id,))
        return row_to_step(self._dialect, row) if row else None

    async def update_step_status(
        self,
        step_id: str,
        status: str,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        value = StepStatus(status)  # a bad status is a ValueError, not a bad row
        now = self._dt(utcnow())
        sets, params = ["status = ?", "updated_at = ?"], [value.value, now]
        for column, given in (("result", result), ("error", error)):
            if given is not None:
                sets.append(f"{column} = ?")
                params.append(given)
        if value is StepStatus.RUNNING:
            sets.append("started_at = COALESCE(started_at, ?)")
            params.append(now)
        if value in _FINISHED_STEP:
            sets.append("completed_at = ?")
            params.append(now)
        await self._write_one(
            f"UPDATE steps SET {', '.join(sets)} WHERE step_id = ?", [*params, step_id]
        )

    async def list_steps(self, run_id: str) -> list[StepExecution]:
        rows = await self._fetch_all(
            f"{SELECT_STEP} WHERE run_id = ? ORDER BY created_at, step_id", (run_id,)
        )
        return [row_to_step(self._dialect, r) for r in rows]

    # ------------------------------------------------------------------ hooks

    async def create_hook(self, hook: Hook) -> None:
        try:
            await self._insert_one(_INSERT_HOOK, hook_to_row(self._dialect, hook))
        except Exception as exc:
            constraint = self._constraint(exc)
            if constraint == "hooks_pk":
                raise ValueError(
                    f"Hook {hook.hook_id} of run {hook.run_id} already exists"
                ) from exc
            if constraint == "hooks_token_uq":
                raise ValueError(f"Hook token of {hook.hook_id} is already in use") from exc
            raise

    async def get_hook(self, hook_id: str, run_id: str | None = None) -> Hook | None:
        sql, params = f"{SELECT_HOOK} WHERE hook_id = ?", [hook_id]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        row = await self._fetch_one(f"{sql} ORDER BY created_at DESC, run_id DESC LIMIT 1", params)
        return row_to_hook(self._dialect, row) if row else None

    async def get_hook_by_token(self, token: str) -> Hook | None:
        row = await self._fetch_one(f"{SELECT_HOOK} WHERE token = ?", (token,))
        return row_to_hook(self._dialect, row) if row else None

    async def update_hook_status(
        self, hook_id: str, status: HookStatus, payload: str | None = None
    ) -> None:
        sets, params = ["status = ?"], [status.value]
        if status is HookStatus.RECEIVED:
            sets.append("received_at = ?")
            params.append(self._dt(utcnow()))
        if payload is not None:
            sets.append("payload = ?")
            params.append(payload)
        await self._write_one(
            f"UPDATE hooks SET {', '.join(sets)} WHERE hook_id = ? AND run_id = {_NEWEST_HOOK_RUN}",
            [*params, hook_id, hook_id],
        )

    async def list_hooks(
        self,
        run_id: str | None = None,
        status: HookStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Hook]:
        where: list[str] = []
        params: list[Any] = []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch_all(
            f"{SELECT_HOOK}{clause} ORDER BY created_at DESC, hook_id DESC LIMIT ? OFFSET ?",
            [*params, max(limit, 0), max(offset, 0)],
        )
        return [row_to_hook(self._dialect, r) for r in rows]

    # ------------------------------------------------------------------ cancellation

    async def set_cancellation_flag(self, run_id: str) -> None:
        await self._write_one(
            self._dialect.insert_ignore(
                "cancellation_flags", ("run_id", "created_at"), ("run_id",)
            ),
            (run_id, self._dt(utcnow())),
        )

    async def check_cancellation_flag(self, run_id: str) -> bool:
        row = await self._fetch_one("SELECT 1 FROM cancellation_flags WHERE run_id = ?", (run_id,))
        return row is not None

    async def clear_cancellation_flag(self, run_id: str) -> None:
        await self._write_one("DELETE FROM cancellation_flags WHERE run_id = ?", (run_id,))
