"""The GIL probe: how much a running program holds and waits for the GIL.

``gil_monitor()`` measures the current process; ``threadwise probe -- CMD``
(:mod:`threadwise.probe.cli`) wraps a program; ``holds_gil(fn, ...)`` checks
one call.  Method and accuracy: ``benchmarks/PROBE.md``.

Names are loaded on first use (PEP 562), so that ``threadwise probe`` starts
the wrapped program without first importing what only the library needs.
"""
from typing import TYPE_CHECKING, Any, List

__all__ = [
    "gil_monitor",
    "holds_gil",
    "GilMonitor",
    "GilStats",
    "ThreadStats",
    "GilEnabledEvent",
    "GilHoldResult",
    "DEFAULT_INTERVAL_S",
]

_WHERE = {
    "gil_monitor": "monitor",
    "GilMonitor": "monitor",
    "DEFAULT_INTERVAL_S": "monitor",
    "holds_gil": "holds",
    "GilHoldResult": "holds",
    "GilStats": "stats",
    "ThreadStats": "stats",
    "GilEnabledEvent": "stats",
}

if TYPE_CHECKING:  # pragma: no cover
    from .holds import GilHoldResult, holds_gil
    from .monitor import DEFAULT_INTERVAL_S, GilMonitor, gil_monitor
    from .stats import GilEnabledEvent, GilStats, ThreadStats


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error, not Any
    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError("module 'threadwise.probe' has no attribute %r" % name)
        import importlib
        value = getattr(importlib.import_module("." + module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> List[str]:
    return sorted(list(globals()) + list(_WHERE))
