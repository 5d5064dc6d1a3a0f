"""Workflows that wait on hooks, for the ``pyworkflow hooks`` subprocess tests.

The tests import this module as ``hooks_app`` (its directory on ``sys.path``) and the
CLI subprocesses get ``--module hooks_app`` with the same directory on ``PYTHONPATH``,
so the payload model's class path (``hooks_app.Approval``) resolves in both.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pyworkflow import hook, workflow


class Approval(BaseModel):
    """The payload of the typed ``approval`` hook."""

    approved: bool
    reviewer: str
    score: int = 0


@workflow(name="hooks_cli_approval")
async def approval_flow(doc: str) -> dict[str, Any]:
    """Wait for an approval (validated against :class:`Approval`), return it with ``doc``."""
    decision = await hook("approval", payload_schema=Approval)
    return {"doc": doc, "decision": decision}


@workflow(name="hooks_cli_untyped")
async def untyped_flow() -> Any:
    """Wait on a hook without a schema and return whatever payload it gets."""
    return await hook("signal")
