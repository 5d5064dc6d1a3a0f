"""The SQL schema, as numbered migrations, and the column lists the queries use.

DDL is written once as templates whose column types (``{text}``, ``{ts}``,
``{json}``, ``{int}``, ``{bool}``) each dialect fills in. Constraints and unique
indexes carry explicit names so that every driver can say which one a write hit:
that is how the core tells a sequence conflict from a duplicate event.

Never edit a released migration; append a new one.

Example:
    >>> [m.version for m in MIGRATIONS][:1]
    [1]
    >>> CONSTRAINTS["events_sequence_uq"]
    ('events', ('run_id', 'sequence'))
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION_TABLE = "pyworkflow_schema_version"

VERSION_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
    " version {int} PRIMARY KEY,"
    " description {text} NOT NULL,"
    " applied_at {ts} NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    """One schema step: DDL statements applied together in one transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


RUN_COLUMNS = (
    "run_id",
    "workflow_name",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "input_args",
    "input_kwargs",
    "result",
    "error",
    "idempotency_key",
    "max_duration",
    "context",
    "recovery_attempts",
    "max_recovery_attempts",
    "recover_on_worker_loss",
    "parent_run_id",
    "nesting_depth",
    "continued_from_run_id",
    "continued_to_run_id",
)
RUN_INSERT_COLUMNS = (*RUN_COLUMNS, "lease_owner", "lease_expires_at")
EVENT_COLUMNS = ("run_id", "sequence", "event_id", "type", "timestamp", "data", "dedup_key")
STEP_COLUMNS = (
    "step_id",
    "run_id",
    "step_name",
    "status",
    "attempt",
    "max_retries",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "input_args",
    "input_kwargs",
    "result",
    "error",
    "retry_after",
    "retry_delay",
)
HOOK_COLUMNS = (
    "hook_id",
    "run_id",
    "token",
    "url",
    "status",
    "created_at",
    "received_at",
    "expires_at",
    "payload",
    "name",
    "payload_schema",
    "metadata",
)
TIMER_COLUMNS = ("timer_id", "run_id", "kind", "key", "fire_at", "claimed_by", "claimed_until")
SCHEDULE_COLUMNS = (
    "schedule_id",
    "workflow_name",
    "spec",
    "status",
    "args",
    "kwargs",
    "overlap_policy",
    "created_at",
    "updated_at",
    "last_run_at",
    "next_run_time",
    "last_run_id",
    "running_run_ids",
    "buffered_count",
    "total_runs",
    "successful_runs",
    "failed_runs",
    "skipped_runs",
)

#: Every unique constraint or unique index: name -> (table, columns).
CONSTRAINTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "workflow_runs_pk": ("workflow_runs", ("run_id",)),
    "workflow_runs_idempotency_uq": ("workflow_runs", ("idempotency_key",)),
    "events_sequence_uq": ("events", ("run_id", "sequence")),
    "events_dedup_uq": ("events", ("run_id", "dedup_key")),
    "steps_pk": ("steps", ("step_id",)),
    "hooks_pk": ("hooks", ("run_id", "hook_id")),
    "hooks_token_uq": ("hooks", ("token",)),
    "timers_pk": ("timers", ("timer_id",)),
    "schedules_pk": ("schedules", ("schedule_id",)),
    "cancellation_flags_pk": ("cancellation_flags", ("run_id",)),
    VERSION_TABLE: (VERSION_TABLE, ("version",)),
}

_V1 = (
    # Runs carry the activation lease next to the status so that taking a lease and
    # finding stale RUNNING runs are single-row / single-index operations.
    "CREATE TABLE workflow_runs ("
    " run_id {text} NOT NULL, workflow_name {text} NOT NULL, status {text} NOT NULL,"
    " created_at {ts} NOT NULL, updated_at {ts} NOT NULL, started_at {ts},"
    " completed_at {ts}, input_args {text} NOT NULL, input_kwargs {text} NOT NULL,"
    " result {text}, error {text}, idempotency_key {text}, max_duration {text},"
    " context {json} NOT NULL, recovery_attempts {int} NOT NULL,"
    " max_recovery_attempts {int} NOT NULL, recover_on_worker_loss {bool} NOT NULL,"
    " parent_run_id {text}, nesting_depth {int} NOT NULL, continued_from_run_id {text},"
    " continued_to_run_id {text}, lease_owner {text}, lease_expires_at {ts},"
    " CONSTRAINT workflow_runs_pk PRIMARY KEY (run_id))",
    "CREATE UNIQUE INDEX workflow_runs_idempotency_uq ON workflow_runs (idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX workflow_runs_status_ix ON workflow_runs (status)",
    "CREATE INDEX workflow_runs_parent_ix ON workflow_runs (parent_run_id)",
    "CREATE INDEX workflow_runs_created_ix ON workflow_runs (created_at, run_id)",
    # No foreign key to workflow_runs: schedules log events under their own id.
    "CREATE TABLE events ("
    " run_id {text} NOT NULL, sequence {int} NOT NULL, event_id {text} NOT NULL,"
    " type {text} NOT NULL, timestamp {ts} NOT NULL, data {json} NOT NULL,"
    " dedup_key {text},"
    " CONSTRAINT events_sequence_uq UNIQUE (run_id, sequence),"
    " CONSTRAINT events_dedup_uq UNIQUE (run_id, dedup_key))",
    "CREATE TABLE steps ("
    " step_id {text} NOT NULL, run_id {text} NOT NULL, step_name {text} NOT NULL,"
    " status {text} NOT NULL, attempt {int} NOT NULL, max_retries {int} NOT NULL,"
    " created_at {ts} NOT NULL, updated_at {ts} NOT NULL, started_at {ts},"
    " completed_at {ts}, input_args {text} NOT NULL, input_kwargs {text} NOT NULL,"
    " result {text}, error {text}, retry_after {ts}, retry_delay {text},"
    " CONSTRAINT steps_pk PRIMARY KEY (step_id))",
    "CREATE INDEX steps_run_ix ON steps (run_id, created_at)",
    # Hook ids are per run (hook_<name>_<n>); the token is what is globally unique.
    "CREATE TABLE hooks ("
    " hook_id {text} NOT NULL, run_id {text} NOT NULL, token {text} NOT NULL,"
    " url {text} NOT NULL, status {text} NOT NULL, created_at {ts} NOT NULL,"
    " received_at {ts}, expires_at {ts}, payload {text}, name {text},"
    " payload_schema {text}, metadata {json} NOT NULL,"
    " CONSTRAINT hooks_pk PRIMARY KEY (run_id, hook_id),"
    " CONSTRAINT hooks_token_uq UNIQUE (token))",
    "CREATE INDEX hooks_hook_id_ix ON hooks (hook_id)",
    "CREATE INDEX hooks_created_ix ON hooks (created_at)",
    "CREATE TABLE timers ("
    " timer_id {text} NOT NULL, run_id {text} NOT NULL, kind {text} NOT NULL,"
    " key {text} NOT NULL, fire_at {ts} NOT NULL, claimed_by {text},"
    " claimed_until {ts},"
    " CONSTRAINT timers_pk PRIMARY KEY (timer_id))",
    "CREATE INDEX timers_fire_at_ix ON timers (fire_at)",
    "CREATE INDEX timers_run_ix ON timers (run_id)",
    # The whole Schedule is kept: spec (calendar, start/end, jitter) as JSON, counters,
    # last_run_id, running_run_ids and buffered_count, so overlap policies survive
    # restarts.
    "CREATE TABLE schedules ("
    " schedule_id {text} NOT NULL, workflow_name {text} NOT NULL, spec {json} NOT NULL,"
    " status {text} NOT NULL, args {text} NOT NULL, kwargs {text} NOT NULL,"
    " overlap_policy {text} NOT NULL, created_at {ts} NOT NULL, updated_at {ts},"
    " last_run_at {ts}, next_run_time {ts}, last_run_id {text},"
    " running_run_ids {json} NOT NULL, buffered_count {int} NOT NULL,"
    " total_runs {int} NOT NULL, successful_runs {int} NOT NULL,"
    " failed_runs {int} NOT NULL, skipped_runs {int} NOT NULL,"
    " CONSTRAINT schedules_pk PRIMARY KEY (schedule_id))",
    "CREATE INDEX schedules_due_ix ON schedules (status, next_run_time)",
    "CREATE INDEX schedules_created_ix ON schedules (created_at)",
    "CREATE TABLE cancellation_flags ("
    " run_id {text} NOT NULL, created_at {ts} NOT NULL,"
    " CONSTRAINT cancellation_flags_pk PRIMARY KEY (run_id))",
)

_V2 = (
    # list_runs(status=...) pages through one status newest first, and list_stale_runs
    # scans the RUNNING runs oldest first: both walk (status, created_at, run_id) in
    # order instead of sorting every run of that status. It covers the old index.
    "CREATE INDEX workflow_runs_status_created_ix ON workflow_runs (status, created_at, run_id)",
    "DROP INDEX workflow_runs_status_ix",
    # Retention deletes finished runs by age (docs/guides/storage.md); unfinished runs
    # have no completed_at and stay out of the index.
    "CREATE INDEX workflow_runs_completed_ix ON workflow_runs (completed_at)"
    " WHERE completed_at IS NOT NULL",
)

#: Every migration, in order. Versions are consecutive from 1.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: runs, events, steps, hooks, timers, schedules", _V1),
    Migration(2, "run indexes for listing by status and for retention by age", _V2),
)
