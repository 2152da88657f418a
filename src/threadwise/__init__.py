"""threadwise: will threads make my Python code faster?  Measured, not guessed.

The public API, in three parts (everything else is internal)::

    measure your code       advise(fn, items)         which backend wins, and why
                            holds_gil(fn, *args)      does this call hold the GIL
                            gil_monitor()             how much a running program holds
                                                      and waits for the GIL
    run it the way that wins
                            pmap(fn, items, backend="auto")    a parallel map
                            Executor(backend="auto")           a concurrent.futures.Executor
    errors                  ThreadwiseError (what happened, the likely cause, the fix),
                            ItemError, WorkerCrashedError, ItemTimeoutError

The command line (``threadwise bench | claims | interpreters | probe | advise |
report | export``) is in :mod:`threadwise.cli`; results files in
:mod:`threadwise.bench.results`.  Names load lazily, so ``import threadwise`` stays cheap.
"""
from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "advise": "threadwise.executor", "Advice": "threadwise.executor",
    "pmap": "threadwise.executor", "Executor": "threadwise.executor",
    "Choice": "threadwise.executor", "Statistics": "threadwise.executor",
    "ItemError": "threadwise.executor", "WorkerCrashedError": "threadwise.executor",
    "ItemTimeoutError": "threadwise.executor",
    "gil_monitor": "threadwise.probe", "GilStats": "threadwise.probe",
    "holds_gil": "threadwise.probe", "GilHoldResult": "threadwise.probe",
    "GilMonitor": "threadwise.probe", "ThreadStats": "threadwise.probe",
    "GilEnabledEvent": "threadwise.probe",
    "ThreadwiseError": "threadwise.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'threadwise' has no attribute %r" % name)
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
