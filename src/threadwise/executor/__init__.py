"""Run a function over many items on the backend that wins: measured, then chosen.

::

    advise(fn, items)   measure a sample on every backend, recommend one (advise.py)
    pmap(fn, items)     map on backend="auto" | serial | threads | processes |
                        interpreters | dask, return a list (_executor.py)
    Executor(...)       the same as a concurrent.futures.Executor (submit, map, imap)

    items --lazy--> auto.plan: first items serially, timed (wall, CPU, GIL held)
                    --> choice --> _engine.run_chunks --> backend (one module each:
                    serial.py, threads.py, processes.py + _worker.py,
                    interpreters.py, dask.py) --> results in order

No library chooses between threads and processes by measuring how much the
work holds the GIL; ``auto`` does (``_gilmeter.py``), and says why
(``Choice.reason``).  Errors carry the item's index and the worker's traceback
(``ItemError``); a dead worker is named and replaced (``WorkerCrashedError``);
a hung item hits ``timeout`` (``ItemTimeoutError``).
"""
from ._base import (BACKENDS, BackendUnavailableError, Choice, Failure, ItemError,
                    ItemTimeoutError, NotCallableError, Statistics, WorkerCrashedError)
from ._cpus import cpu_count, cpu_count_explained
from ._executor import Executor, MapResults, pmap
from .advise import Advice, BackendResult, advise

__all__ = [
    "pmap", "Executor", "advise",
    "Advice", "BackendResult", "Choice", "Statistics", "MapResults", "Failure",
    "ItemError", "WorkerCrashedError", "ItemTimeoutError", "BackendUnavailableError",
    "NotCallableError", "BACKENDS", "cpu_count", "cpu_count_explained",
]
