"""The shared, warm process pool behind ``pmap`` (and ``advise``): started once per program.

::

    pmap(fn, items, backend="processes")         pmap(g, more) later, any thread
      Executor (shared)                            Executor (shared)
        lease(W, start_method) --------+    +------- lease(W', start_method)
        map on the lease               v    v        map on the lease
        release: workers stay warm    one ProcessBackend per start_method (None, "fork",
                                      "spawn"): started on first need (its workers as
                                      chunks ask for them), resized to W by a lone lease,
                                      grown by a concurrent one; a dead worker replaced

The pool goes when it has had no lease for ``IDLE_S`` seconds (300 by default; the
environment variable ``THREADWISE_POOL_IDLE_S`` sets it), at exit, and, in a
child forked from this process, at once: the child never touches its parent's
workers (the pool records the pid that made it; an at-fork handler forgets it
and closes the child's copies of its sockets), and starts its own on first need.

A lease is what a map sees as its backend: its own ``workers`` (chunks in flight),
``abort()`` that cancels and kills only its own tasks (another thread's map on the
same pool goes on), ``shutdown()`` that releases it.  Functions are pickled once per
lease (a map) and known to the workers by the digest of that pickle: a worker
imports a function's module once, map after map, and a function whose globals
changed between maps is sent again, as a fresh pool would have it.

``Executor(...)`` keeps a pool of its own, as before; only ``pmap`` (and ``advise``'s
measurements, through :func:`threadwise.executor._executor.shared_executor`) lease.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._base import Backend
from .processes import TRACK_BELOW_S, FnRef, ProcessBackend


def _idle_from_env() -> float:
    try:
        return max(0.0, float(os.environ.get("THREADWISE_POOL_IDLE_S", "300")))
    except ValueError:
        return 300.0


#: seconds a shared pool lives on with no lease (the tests lower it)
IDLE_S = _idle_from_env()

_LOCK = threading.Lock()
_SHARED: Dict[Optional[str], ProcessBackend] = {}
_PID = os.getpid()


def _check_pid() -> None:
    """(lock held) A forked child never uses its parent's pools (the at-fork handler
    already dropped them; this is the second line, where that handler did not run)."""
    global _PID
    if _PID != os.getpid():
        _SHARED.clear()
        _PID = os.getpid()


def lease(workers: int, start_method: Optional[str] = None) -> "Lease":
    """A lease on the shared pool for ``start_method`` (started now if there is none, or if
    it closed), sized for ``workers``."""
    with _LOCK:
        _check_pid()
        pool = _SHARED.get(start_method)
        if pool is None or not pool.acquire(workers):
            pool = ProcessBackend(workers, start_method, idle_s=IDLE_S)
            pool.acquire(workers)
            _SHARED[start_method] = pool
    return Lease(pool, workers)


def peek(start_method: Optional[str] = None) -> Optional[ProcessBackend]:
    """The shared pool for ``start_method`` if this process has a live one (starts nothing)."""
    with _LOCK:
        _check_pid()
        pool = _SHARED.get(start_method)
    if pool is None or pool._closing:
        return None
    return pool


def shutdown_shared(kill: bool = False) -> None:
    """Stop every shared pool now (tests; the idle timeout and exit do it otherwise)."""
    with _LOCK:
        _check_pid()
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.shutdown(wait=True, kill=kill)


def _forget_in_child() -> None:
    global _LOCK, _PID
    _LOCK = threading.Lock()
    _SHARED.clear()
    _PID = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class Lease(Backend):
    """One map's (or one shared Executor's) use of a shared pool: the Backend the engine
    talks to.  Abort and shutdown touch only this lease's tasks."""

    name = "processes"
    chunk_target_s = ProcessBackend.chunk_target_s

    def __init__(self, pool: ProcessBackend, workers: int) -> None:
        super().__init__(workers)
        self.pool = pool
        self._refs: Dict[int, Tuple[Any, FnRef]] = {}   # id(fn) -> (fn, its FnRef), this lease
        self._replaced0 = pool.workers_replaced
        self._released = False
        self._lock = threading.Lock()

    @property
    def workers_replaced(self) -> int:
        """Workers of the pool that died and were replaced while this lease held it."""
        return self.pool.workers_replaced - self._replaced0

    @workers_replaced.setter
    def workers_replaced(self, value: int) -> None:  # Backend.__init__ sets 0
        pass

    def _ref(self, fn: Callable[..., Any]) -> FnRef:
        entry = self._refs.get(id(fn))
        if entry is not None and entry[0] is fn:
            return entry[1]
        ref = self.pool.fn_ref(fn)
        self._refs[id(fn)] = (fn, ref)
        return ref

    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        return self.pool.submit_chunk_ref(self._ref(fn), base, items, timeout=timeout,
                                          stop_on_error=stop_on_error, owner=self,
                                          track=not 0 < self.item_s_hint < TRACK_BELOW_S)

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        return self.pool.submit_call_ref(self._ref(fn), args, kwargs, owner=self)

    def item_s_for(self, fn: Callable[..., Any]) -> Optional[float]:
        """fn's seconds per item measured by the pool's workers on earlier maps, if any."""
        return self.pool.item_s_of(self._ref(fn))

    def pids(self) -> List[int]:
        return self.pool.pids()

    def start_workers(self, n: Optional[int] = None, wait_ready: bool = False) -> None:
        """Start this lease's workers now (``n``, else its ``workers``); see
        :meth:`ProcessBackend.start_workers`."""
        self.pool.start_workers(self.workers if n is None else min(n, self.workers), wait_ready)

    def ready_workers(self) -> int:
        """See :meth:`ProcessBackend.ready_workers`."""
        return self.pool.ready_workers()

    def warm_fn(self, fn: Callable[..., Any]) -> None:
        """See :meth:`ProcessBackend.preload`."""
        self.pool.preload(self._ref(fn))

    def fn_ready(self, fn: Callable[..., Any]) -> int:
        """See :meth:`ProcessBackend.loaded_workers`."""
        return self.pool.loaded_workers(self._ref(fn))

    def abort(self) -> None:
        self.pool.abort(owner=self)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        """Release the lease; ``kill``/``cancel_futures``: this lease's tasks first stopped
        (its running workers killed and replaced), ``wait``: finished."""
        if kill or cancel_futures:
            self.pool.abort(owner=self)
        elif wait:
            self.pool.wait_idle(owner=self)
        with self._lock:
            released, self._released = self._released, True
        if not released:
            self.pool.release()
            self._refs.clear()
