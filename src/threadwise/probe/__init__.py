"""The GIL probe: how much a running program holds and waits for the GIL.

``gil_monitor()`` measures the current process; ``threadwise probe -- CMD``
(:mod:`threadwise.probe.cli`) wraps a program; ``holds_gil(fn, ...)`` checks
one call.  Method and accuracy: ``benchmarks/PROBE.md``.
"""
from .holds import GilHoldResult, holds_gil
from .monitor import DEFAULT_INTERVAL_S, GilMonitor, gil_monitor
from .stats import GilEnabledEvent, GilStats, ThreadStats

__all__ = [
    "gil_monitor",
    "holds_gil",
    "GilMonitor",
    "GilHoldResult",
    "GilStats",
    "ThreadStats",
    "GilEnabledEvent",
    "DEFAULT_INTERVAL_S",
]
