"""Run rows: create, read, update, list with cursor paging, chains and children.

Example:
    >>> from pyworkflow.storage.sql.runs import SELECT_RUN
    >>> SELECT_RUN.startswith("SELECT run_id, workflow_name")
    True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyworkflow.storage.base import RunAlreadyExistsError
from pyworkflow.storage.schemas import RunStatus, WorkflowRun
from pyworkflow.storage.sql.codec import row_to_run, run_to_row
from pyworkflow.storage.sql.core import SQLCore, placeholders, utcnow
from pyworkflow.storage.sql.schema import RUN_COLUMNS, RUN_INSERT_COLUMNS

SELECT_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM workflow_runs"
INSERT_RUN = (
    f"INSERT INTO workflow_runs ({', '.join(RUN_INSERT_COLUMNS)}) "
    f"VALUES ({placeholders(len(RUN_INSERT_COLUMNS))})"
)
# Keyset paging: rows strictly after the cursor run in (created_at desc, run_id desc).
_AFTER_CURSOR = (
    "(created_at < (SELECT created_at FROM workflow_runs WHERE run_id = ?)"
    " OR (created_at = (SELECT created_at FROM workflow_runs WHERE run_id = ?)"
    " AND run_id < ?))"
)
_QUERY_MATCH = "(LOWER(workflow_name) LIKE ? ESCAPE '\\' OR LOWER(input_kwargs) LIKE ? ESCAPE '\\')"
_FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED)


def escape_like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE ... ESCAPE '\\'`` pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class RunsMixin(SQLCore):
    """The run methods of :class:`~pyworkflow.storage.base.StorageBackend`."""

    def _insert_run_params(
        self, run: WorkflowRun, lease_owner: str | None, lease_until: datetime | None
    ) -> list[Any]:
        return [*run_to_row(self._dialect, run), lease_owner, self._dt(lease_until)]

    async def create_run(self, run: WorkflowRun) -> None:
        try:
            await self._insert_one(INSERT_RUN, self._insert_run_params(run, None, None))
        except Exception as exc:
            raise self._run_insert_error(exc, run) from exc

    def _run_insert_error(self, exc: Exception, run: WorkflowRun) -> Exception:
        constraint = self._constraint(exc)
        if constraint == "workflow_runs_pk":
            return RunAlreadyExistsError(run.run_id)
        if constraint == "workflow_runs_idempotency_uq":
            return ValueError(
                f"Idempotency key {run.idempotency_key!r} is already used by another run; "
                "look that run up with get_run_by_idempotency_key()"
            )
        return exc

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        row = await self._fetch_one(f"{SELECT_RUN} WHERE run_id = ?", (run_id,))
        return row_to_run(self._dialect, row) if row else None

    async def get_run_by_idempotency_key(self, key: str) -> WorkflowRun | None:
        row = await self._fetch_one(f"{SELECT_RUN} WHERE idempotency_key = ?", (key,))
        return row_to_run(self._dialect, row) if row else None

    async def update_run_status(
        self,
        run_id: str,
        status: RunStatus,
        result: str | None = None,
        error: str | None = None,
    ) -> None:
        now = utcnow()
        sets, params = ["status = ?", "updated_at = ?"], [status.value, self._dt(now)]
        for column, value in (("result", result), ("error", error)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if status in _FINISHED:
            sets.append("completed_at = ?")
            params.append(self._dt(now))
        await self._write_one(
            f"UPDATE workflow_runs SET {', '.join(sets)} WHERE run_id = ?", [*params, run_id]
        )

    async def update_run_recovery_attempts(self, run_id: str, recovery_attempts: int) -> None:
        await self._write_one(
            "UPDATE workflow_runs SET recovery_attempts = ?, updated_at = ? WHERE run_id = ?",
            (recovery_attempts, self._dt(utcnow()), run_id),
        )

    async def update_run_context(self, run_id: str, context: dict[str, object]) -> None:
        await self._write_one(
            "UPDATE workflow_runs SET context = ?, updated_at = ? WHERE run_id = ?",
            (self._dialect.encode_json(context), self._dt(utcnow()), run_id),
        )

    async def get_run_context(self, run_id: str) -> dict[str, object]:
        row = await self._fetch_one("SELECT context FROM workflow_runs WHERE run_id = ?", (run_id,))
        return dict(self._dialect.decode_json(row[0]) or {}) if row else {}

    async def list_runs(
        self,
        query: str | None = None,
        status: RunStatus | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[WorkflowRun], str | None]:
        where: list[str] = []
        params: list[Any] = []
        if query:
            pattern = f"%{escape_like(query.lower())}%"
            where.append(_QUERY_MATCH)
            params += [pattern, pattern]
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if start_time is not None:
            where.append("created_at >= ?")
            params.append(self._dt(start_time))
        if end_time is not None:
            where.append("created_at < ?")
            params.append(self._dt(end_time))
        if cursor is not None:
            where.append(_AFTER_CURSOR)
            params += [cursor, cursor, cursor]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # One extra row tells whether another page exists without a COUNT query.
        rows = await self._fetch_all(
            f"{SELECT_RUN}{clause} ORDER BY created_at DESC, run_id DESC LIMIT ?",
            [*params, max(limit, 0) + 1],
        )
        runs = [row_to_run(self._dialect, r) for r in rows[: max(limit, 0)]]
        more = len(rows) > len(runs) and bool(runs)
        return runs, (runs[-1].run_id if more else None)

    async def update_run_continuation(self, run_id: str, continued_to_run_id: str) -> None:
        await self._write_one(
            "UPDATE workflow_runs SET continued_to_run_id = ?, updated_at = ? WHERE run_id = ?",
            (continued_to_run_id, self._dt(utcnow()), run_id),
        )

    async def get_workflow_chain(self, run_id: str) -> list[WorkflowRun]:
        start = await self.get_run(run_id)
        if start is None:
            return []
        # Chains are short (one run per continue-as-new); the seen set guards cycles.
        seen = {start.run_id}
        older: list[WorkflowRun] = []
        current = start
        while current.continued_from_run_id and current.continued_from_run_id not in seen:
            previous = await self.get_run(current.continued_from_run_id)
            if previous is None:
                break
            seen.add(previous.run_id)
            older.append(previous)
            current = previous
        chain = [*reversed(older), start]
        current = start
        while current.continued_to_run_id and current.continued_to_run_id not in seen:
            following = await self.get_run(current.continued_to_run_id)
            if following is None:
                break
            seen.add(following.run_id)
            chain.append(following)
            current = following
        return chain

    async def get_children(
        self, parent_run_id: str, status: RunStatus | None = None
    ) -> list[WorkflowRun]:
        sql, params = f"{SELECT_RUN} WHERE parent_run_id = ?", [parent_run_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status.value)
        rows = await self._fetch_all(f"{sql} ORDER BY created_at, run_id", params)
        return [row_to_run(self._dialect, r) for r in rows]

    async def get_parent(self, run_id: str) -> WorkflowRun | None:
        row = await self._fetch_one(
            f"{SELECT_RUN} WHERE run_id = (SELECT parent_run_id FROM workflow_runs"
            " WHERE run_id = ?)",
            (run_id,),
        )
        return row_to_run(self._dialect, row) if row else None

    async def get_nesting_depth(self, run_id: str) -> int:
        row = await self._fetch_one(
            "SELECT nesting_depth FROM workflow_runs WHERE run_id = ?", (run_id,)
        )
        return int(row[0]) if row else 0
