"""Typed hooks: a hook whose payload is a pydantic model, validated on both sides.

``resume_hook`` validates the payload against the model before recording it (a bad
payload is rejected with the validation errors and the run keeps waiting); the
workflow gets a model instance back.

Example:
    >>> from pydantic import BaseModel
    >>> class Approval(BaseModel):
    ...     approved: bool
    ...     reviewer: str
    >>> approval_hook = define_hook("approval", Approval)
    >>> approval_hook
    TypedHook(name='approval', schema=Approval)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from pydantic import BaseModel

from pyworkflow.core.exceptions import HookValidationError
from pyworkflow.engine.hooks import register_schema
from pyworkflow.primitives.hooks import hook

__all__ = ["HookValidationError", "TypedHook", "define_hook"]

M = TypeVar("M", bound=BaseModel)


class TypedHook(Generic[M]):
    """A named hook whose payload is validated as ``schema``.

    Example:
        >>> import asyncio
        >>> from pydantic import BaseModel
        >>> from pyworkflow.context.mock import MockContext
        >>> class Decision(BaseModel):
        ...     approved: bool
        >>> decision = TypedHook("decision", Decision)
        >>> async def main():
        ...     with MockContext(mock_hooks={"decision": {"approved": True}}):
        ...         return await decision(timeout="1h")
        >>> asyncio.run(main())
        Decision(approved=True)
    """

    def __init__(self, name: str, schema: type[M]) -> None:
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise TypeError(
                f"TypedHook {name!r} needs a pydantic model class as schema, got {schema!r}"
            )
        self.name = name
        self.schema = schema
        register_schema(schema)

    async def __call__(
        self,
        *,
        timeout: str | int | float | None = None,
        on_created: Callable[[str], Awaitable[None]] | None = None,
    ) -> M:
        """Wait for the payload and return it as a ``schema`` instance."""
        payload = await hook(
            self.name, timeout=timeout, on_created=on_created, payload_schema=self.schema
        )
        return self.schema.model_validate(payload)

    def __repr__(self) -> str:
        return f"TypedHook(name={self.name!r}, schema={self.schema.__name__})"


def define_hook(name: str, schema: type[M]) -> TypedHook[M]:
    """A :class:`TypedHook` named ``name`` with payload model ``schema``.

    Example:
        >>> from pydantic import BaseModel
        >>> class Shipment(BaseModel):
        ...     tracking: str
        >>> define_hook("shipped", Shipment).name
        'shipped'
    """
    return TypedHook(name, schema)
