"""Registry of runtimes by name.

Example:
    >>> from pyworkflow.runtime.factory import list_runtimes
    >>> "local" in list_runtimes()
    True
"""

from __future__ import annotations

from pyworkflow.runtime.base import Runtime

_runtimes: dict[str, type[Runtime]] = {}


def register_runtime(name: str, cls: type[Runtime]) -> None:
    """Make ``cls`` available as ``get_runtime(name)``.

    Example:
        >>> from pyworkflow.runtime.local import LocalRuntime
        >>> register_runtime("local", LocalRuntime)  # re-registers the built-in one
        >>> type(get_runtime("local")).__name__
        'LocalRuntime'
    """
    _runtimes[name] = cls


def get_runtime(name: str) -> Runtime:
    """A new instance of the runtime registered as ``name``.

    Example:
        >>> get_runtime("local").name
        'local'
        >>> get_runtime("local") is get_runtime("local")
        False
    """
    cls = _runtimes.get(name)
    if cls is None:
        available = ", ".join(sorted(_runtimes))
        raise ValueError(f"Unknown runtime: '{name}'. Available runtimes: {available}")
    return cls()


def list_runtimes() -> list[str]:
    """Names of the registered runtimes."""
    return sorted(_runtimes)


def validate_runtime_durable(runtime: Runtime, durable: bool) -> None:
    """Refuse a durability mode the runtime cannot run."""
    if durable and not runtime.supports_durable:
        raise ValueError(f"Runtime '{runtime.name}' does not support durable workflows")
    if not durable and not runtime.supports_transient:
        raise ValueError(
            f"Runtime '{runtime.name}' only runs durable workflows: pass durable=True "
            "(and configure a storage backend)"
        )


def runtime_name_here() -> str:
    """The runtime of the workflow or step this code runs in, else the configured
    default: a resume or cancel issued from inside a Celery worker goes through Celery
    even when the process's configuration says ``local``.

    Example:
        >>> runtime_name_here()  # outside any workflow: the configured default
        'local'
    """
    from pyworkflow.config import get_config  # config imports the runtimes' package
    from pyworkflow.context.base import _current

    ctx = _current.get()
    name = ctx.runtime if ctx is not None else None
    return name or get_config().default_runtime
