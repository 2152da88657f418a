"""threadwise: will threads make my Python code faster?  Measured, not guessed.

The public API, in three parts (everything else is internal)::

    measure your code       advise(fn, items)         which backend wins, and why
                            holds_gil(fn, *args)      does this call hold the GIL
                            gil_monitor()             how much a running program holds
                                                      and waits for the GIL
    run it the way that wins
                            pmap(fn, items, backend="auto")    a parallel map
                            Executor(backend="auto")           a concurrent.futures.Executor
    results                 MapResults (pmap's list, with .choice and .stats), Failure
                            (an item's place with errors="collect"), Choice, Statistics
    errors                  ThreadwiseError (what happened, the likely cause, the fix),
                            ItemError, WorkerCrashedError, ItemTimeoutError

The command line (``threadwise bench | claims | interpreters | probe | advise |
report | export``) is in :mod:`threadwise.cli`; results files in
:mod:`threadwise.bench.results`.  Names load lazily (``__getattr__``; type
checkers read the imports under ``TYPE_CHECKING``), so ``import threadwise``
stays cheap.
"""
from importlib import import_module
from typing import TYPE_CHECKING, Any, Dict, List

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads each on first use
    from threadwise.errors import ThreadwiseError
    from threadwise.executor import (Advice, Choice, Executor, Failure, ItemError,
                                     ItemTimeoutError, MapResults, Statistics,
                                     WorkerCrashedError, pmap)
    # from its module: in threadwise.executor "advise" names both the function and
    # the submodule, and mypy reports importing it from there as a redefinition
    from threadwise.executor.advise import advise
    from threadwise.probe import (GilEnabledEvent, GilHoldResult, GilMonitor, GilStats,
                                  ThreadStats, gil_monitor, holds_gil)

# Literal, so that static tools read it; tests/test_public_api.py checks that it,
# the imports above and _EXPORTS below name the same things.
__all__ = [
    "Advice",
    "Choice",
    "Executor",
    "Failure",
    "GilEnabledEvent",
    "GilHoldResult",
    "GilMonitor",
    "GilStats",
    "ItemError",
    "ItemTimeoutError",
    "MapResults",
    "Statistics",
    "ThreadStats",
    "ThreadwiseError",
    "WorkerCrashedError",
    "__version__",
    "advise",
    "gil_monitor",
    "holds_gil",
    "pmap",
]

_EXPORTS: Dict[str, str] = {
    "advise": "threadwise.executor", "Advice": "threadwise.executor",
    "pmap": "threadwise.executor", "Executor": "threadwise.executor",
    "Choice": "threadwise.executor", "Statistics": "threadwise.executor",
    "MapResults": "threadwise.executor", "Failure": "threadwise.executor",
    "ItemError": "threadwise.executor", "WorkerCrashedError": "threadwise.executor",
    "ItemTimeoutError": "threadwise.executor",
    "gil_monitor": "threadwise.probe", "GilStats": "threadwise.probe",
    "holds_gil": "threadwise.probe", "GilHoldResult": "threadwise.probe",
    "GilMonitor": "threadwise.probe", "ThreadStats": "threadwise.probe",
    "GilEnabledEvent": "threadwise.probe",
    "ThreadwiseError": "threadwise.errors",
}


if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is an error, not Any
    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError("module 'threadwise' has no attribute %r" % name)
        value = getattr(import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> List[str]:
    return sorted(list(globals()) + list(_EXPORTS))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext threadwise`` (IPython, Jupyter): adds ``%advise`` and ``%probe``.

    An IPython hook, not part of the API (so not in ``__all__``); IPython itself is
    imported only here, when the extension loads (:mod:`threadwise.ipython`)."""
    from threadwise.ipython import load_ipython_extension as load
    load(ipython)
