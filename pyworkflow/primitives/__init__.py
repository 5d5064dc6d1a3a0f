"""Primitives a workflow calls: ``sleep``, ``hook``, typed hooks, ``shield``;
and ``resume_hook`` to deliver a hook's payload from outside.

Example:
    >>> from pyworkflow.primitives import hook, resume_hook, shield, sleep
"""

from pyworkflow.primitives.define_hook import TypedHook, define_hook
from pyworkflow.primitives.hooks import hook
from pyworkflow.primitives.resume_hook import ResumeResult, resume_hook
from pyworkflow.primitives.shield import shield
from pyworkflow.primitives.sleep import sleep

__all__ = ["ResumeResult", "TypedHook", "define_hook", "hook", "resume_hook", "shield", "sleep"]
