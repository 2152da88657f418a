"""The interpreters backend: sub-interpreters, each with its own GIL (PEP 684/734).

Python 3.14 ships ``concurrent.futures.InterpreterPoolExecutor``: one thread
per worker, each running its own interpreter, so pure-Python work runs in
parallel inside one process without pickling through a pipe (arguments still
cross as pickled bytes).  Earlier versions don't have it; the PyPI backport
(``interpreters-pep-734``, for 3.13) is used when it is installed.

::

    engine --submit_chunk--> cloudpickle((fn, base, items, stop)) --> InterpreterPoolExecutor
                             _chunk.run_pickled in the sub-interpreter --> pickled results

A running interpreter can't be stopped from outside: an item past
``timeout`` is reported and its interpreter's thread abandoned (like threads).
The deadline counts from when the chunk *starts* (its Future turns running in
the pool's thread), never from its submission: a chunk queued behind a hung
one is not blamed for it.  A chunk's items can't be watched one by one from
outside, so a chunk of n items gets n x ``timeout``; a late chunk of several
items comes back with no index and the engine re-runs its items one by one,
each with ``timeout`` alone.

Interpreters start on demand (the pool starts a thread, and its interpreter,
per submitted chunk while fewer than ``workers`` run), so a map never makes
more interpreters than chunks in flight; ``workers`` is bounded at the public
boundary (``_base.MAX_WORKERS``).
"""
from __future__ import annotations

import concurrent.futures as cf
import importlib
import pickle
import platform
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import _chunk
from ._base import (Backend, BackendUnavailableError, ChunkBroken, ChunkDone, Watchdog,
                    check_workers, resolve)


def _pool_class() -> Tuple[Optional[Any], str]:
    try:
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]
        return InterpreterPoolExecutor, ""
    except ImportError as e:
        first = str(e)
    try:  # the PEP 734 backport (imported by name: it has no type information)
        backport = importlib.import_module("interpreters_backport.concurrent.futures")
        return backport.InterpreterPoolExecutor, ""
    except ImportError:
        pass
    return None, first


def available() -> Tuple[bool, str]:
    """(True, "") where sub-interpreter pools exist, else (False, why not)."""
    cls, why = _pool_class()
    if cls is not None:
        return True, ""
    return False, "%s %s has no InterpreterPoolExecutor" % (
        platform.python_implementation(), platform.python_version())


def check_available() -> None:
    ok, why = available()
    if not ok:
        raise BackendUnavailableError(
            "backend='interpreters' is not available on this interpreter: %s" % why,
            "sub-interpreter pools need Python 3.14 (concurrent.interpreters) or the "
            "interpreters-pep-734 backport",
            "run on Python 3.14+, pip install interpreters-pep-734 on 3.13, or use "
            "backend='processes' (the same isolation, one process per worker)")


class InterpreterBackend(Backend):
    name = "interpreters"
    chunk_target_s = 0.01

    def __init__(self, workers: int) -> None:
        check_workers(workers)
        super().__init__(workers)
        cls, _ = _pool_class()
        if cls is None:
            check_available()
        assert cls is not None
        self._pool = cls(max_workers=workers)
        self._lock = threading.Lock()
        # outer Future -> [inner Future, base, n, timeout, started (None while queued)]
        self._timed: Dict["cf.Future[Any]", List[Any]] = {}
        self._watchdog = Watchdog("threadwise-interp-watchdog", self._abandon, scan=self._late)
        self._abandoned = 0

    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        payload = _chunk.dumps((fn, base, items, stop_on_error))
        inner = self._pool.submit(_chunk.run_pickled, payload)
        outer: "cf.Future[Any]" = cf.Future()
        outer.set_running_or_notify_cancel()
        if timeout is not None:
            with self._lock:
                self._timed[outer] = [inner, base, len(items), timeout, None]
            self._watchdog.start()

        def done(f: "cf.Future[Any]") -> None:
            with self._lock:
                self._timed.pop(outer, None)
            if f.cancelled():
                resolve(outer, exc=cf.CancelledError())
                return
            exc = f.exception()
            if exc is not None:
                resolve(outer, exc=exc)
                return
            results, elapsed, nfail = pickle.loads(f.result())
            resolve(outer, ChunkDone(results, elapsed, nfail))

        inner.add_done_callback(done)
        return outer

    def _late(self) -> Tuple[List[Tuple["cf.Future[Any]", int, int]], float]:
        """The watchdog's scan: a chunk's clock starts when the pool starts running it
        (queued chunks are never late); past n x timeout it is late."""
        now = time.monotonic()
        late = []
        tick = 0.1
        with self._lock:
            for outer, entry in list(self._timed.items()):
                inner, base, n, timeout, started = entry
                tick = min(tick, max(0.005, timeout / 10.0))
                if started is None:
                    if inner.running() or inner.done():
                        entry[4] = now
                    continue
                if now - started > timeout * n:
                    del self._timed[outer]
                    late.append((outer, base, n))
        return late, tick

    def _abandon(self, late: Tuple["cf.Future[Any]", int, int]) -> None:
        """The watchdog's verdict on a chunk past its deadline: timed out, its interpreter left behind."""
        fut, base, n = late
        if resolve(fut, ChunkBroken("timeout", base if n == 1 else None, [],
                                    "the interpreter was abandoned: it can't be stopped "
                                    "from outside and runs on until the call returns")):
            self._abandoned += 1

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        return self._pool.submit(fn, *args, **kwargs)

    def abort(self) -> None:
        pass

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        self._watchdog.close()
        # never wait for a call abandoned past its timeout (it may never return); note that
        # concurrent.futures still joins its worker threads when the interpreter exits
        wait = wait and not kill and not self._abandoned
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures or kill or bool(self._abandoned))

