"""Primitives a workflow calls: ``sleep``, ``hook``, typed hooks, ``shield``, child
workflows, ``continue_as_new``; and ``resume_hook`` to deliver a hook's payload.

Example:
    >>> from pyworkflow.primitives import hook, resume_hook, shield, sleep
"""

from pyworkflow.primitives.child_handle import ChildWorkflowHandle
from pyworkflow.primitives.child_workflow import start_child_workflow
from pyworkflow.primitives.continue_as_new import continue_as_new
from pyworkflow.primitives.define_hook import TypedHook, define_hook
from pyworkflow.primitives.hooks import hook
from pyworkflow.primitives.resume_hook import ResumeResult, resume_hook
from pyworkflow.primitives.shield import shield
from pyworkflow.primitives.sleep import sleep

__all__ = [
    "ChildWorkflowHandle",
    "ResumeResult",
    "TypedHook",
    "continue_as_new",
    "define_hook",
    "hook",
    "resume_hook",
    "shield",
    "sleep",
    "start_child_workflow",
]
