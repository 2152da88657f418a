"""``Executor`` (a ``concurrent.futures.Executor``) and ``pmap``, over every backend.

::

    pmap(fn, items, backend=...) --> Executor --> _run(): auto.plan (probe + decision)
                                                   --> run_chunks(engine) on the backend
                                  <-- MapResults (a list, with .choice and .stats)

An Executor starts its backends lazily, one per (backend, workers) it needs,
and keeps them until ``shutdown()``.  ``pmap`` makes one for a single map whose
processes come from the shared warm pool (``_pool.py``: started on first need,
kept between calls, stopped after an idle timeout and at exit); its shutdown
releases that lease, and stops every other backend, before returning.
"""
from __future__ import annotations

import concurrent.futures as cf
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import UsageError
from . import auto as _auto
from ._base import (Backend, Choice, Failure, ItemError,
                    Statistics, _RemoteTraceback, check_backend, check_bool, check_chunksize,
                    check_errors, check_fn, check_timeout, check_workers)
from ._chunk import clock
from ._cpus import cpu_count
from ._engine import Chunker, Counters, MapRun, run_chunks, run_serial
from .serial import SerialBackend
from .threads import ThreadBackend


def default_workers(backend: str) -> int:
    """Workers a backend gets when ``workers=None``: one per CPU; threads like the
    standard library (``min(32, cpus + 4)``, they also overlap waits); serial one."""
    cpus = cpu_count()
    if backend == "serial":
        return 1
    if backend == "threads":
        return min(32, cpus + 4)
    return cpus


class MapResults(list):
    """The list ``pmap`` returns, with ``.choice`` (which backend, and why) and ``.stats``."""

    choice: Optional[Choice] = None
    _final: Optional[Tuple[Any, ...]] = None
    _stats: Optional[Statistics] = None

    @property
    def stats(self) -> Optional[Statistics]:
        """The map's :class:`Statistics` (made when first read: a 1 ms map would pay for it)."""
        if self._stats is None and self._final is not None:
            self._stats = Statistics(*self._final)
        return self._stats


class _Star:
    """``fn(*args)`` for ``Executor.map(fn, *iterables)`` (picklable when fn is)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, args: Tuple[Any, ...]) -> Any:
        return self.fn(*args)


def _total(iterable: Iterable[Any]) -> Optional[int]:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def _check_map_args(fn: Any, iterable: Any, ordered: Any, progress: Any, chunksize: Any,
                    timeout: Any, errors: Any) -> Tuple[Any, Optional[float], Iterator[Any]]:
    """The public map calls' argument checks, in one place: (chunk size, timeout, iterator)."""
    check_fn(fn)
    check_bool(ordered, "ordered")
    check_bool(progress, "progress")
    size = check_chunksize(chunksize)
    timeout = check_timeout(timeout)
    check_errors(errors)
    return size, timeout, _check_iterable(iterable)


def _check_iterable(iterable: Any) -> Iterator[Any]:
    try:
        return iter(iterable)
    except TypeError:
        raise UsageError(
            "items must be iterable, got %s (a %s)" % (repr(iterable)[:60], type(iterable).__name__),
            "a single item, or the arguments in the wrong order",
            "pass an iterable: pmap(fn, [1, 2, 3]) or pmap(fn, range(n))") from None


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` on any backend, ``auto`` by default.

    ``backend``: ``"auto"`` (measure the first items of each map and pick
    serial, threads or processes; ``.choice`` says why), ``"serial"``,
    ``"threads"``, ``"processes"``, ``"interpreters"`` (Python 3.14+) or ``"dask"``
    (``address=`` a scheduler, else a LocalCluster on 127.0.0.1).
    ``workers``: None for one per CPU (threads: ``min(32, cpus + 4)``).
    ``chunksize``: ``"auto"`` (sized from the measured time per item) or an int.
    ``start_method``: processes only: None (fork while single-threaded, else
    a fresh interpreter), ``"fork"`` or ``"spawn"``.
    ``explain``: print the choice of ``auto`` on stderr.
    """

    def __init__(self, backend: str = "auto", workers: Optional[int] = None, *,
                 chunksize: Any = "auto", address: Any = None, start_method: Optional[str] = None,
                 explain: bool = False) -> None:
        self._backend_name = check_backend(backend)
        self._workers = check_workers(workers)
        self._chunksize = check_chunksize(chunksize)
        check_bool(explain, "explain")
        if address is not None and backend != "dask":
            raise UsageError("address=%r only applies to backend='dask', got backend=%r" % (
                address, backend), "a scheduler address without the Dask backend",
                "pass backend='dask' with address=, or leave address out")
        if start_method is not None and backend not in ("processes", "auto"):
            raise UsageError("start_method=%r only applies to backend='processes' or 'auto'" % (
                start_method,), "a process start method for a backend without processes",
                "leave start_method out")
        if start_method is not None and start_method not in ("fork", "spawn"):
            raise UsageError("start_method must be None, 'fork' or 'spawn', got %r" % (start_method,),
                             "an unknown way to start worker processes",
                             "leave start_method=None: fork while single-threaded, spawn otherwise")
        self._address = address
        self._start_method = start_method
        self._explain = explain
        self._lock = threading.Lock()
        self._backends: Dict[Tuple[str, int], Backend] = {}
        self._counters = Counters()
        self._choice: Optional[Choice] = None
        self._last_backend = backend
        self._last_workers = self._workers or (default_workers(backend) if backend != "auto" else cpu_count())
        self._closed = False
        if backend == "interpreters":
            from .subinterpreters import check_available
            check_available()
        if backend == "dask":
            self._get("dask", self._workers or 0)

    # -- backends ---------------------------------------------------------
    def _get(self, name: str, workers: int) -> Backend:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if name == "dask":  # one cluster per executor, whatever the worker count
                for (n, _), b in self._backends.items():
                    if n == "dask":
                        return b
            key = (name, workers)
            found = self._backends.get(key)
            if found is None:
                found = self._make(name, workers)
                self._backends[key] = found
            return found

    #: processes come from the shared warm pool (a lease), not a pool of this executor's
    #: own: pmap's executors and :func:`shared_executor`'s
    _shared = False

    def _make(self, name: str, workers: int) -> Backend:
        if name == "serial":
            return SerialBackend()
        if name == "threads":
            return ThreadBackend(workers)
        if name == "processes":
            if self._shared:
                from ._pool import lease
                return lease(workers, self._start_method)
            from .processes import ProcessBackend
            pool = ProcessBackend(workers, self._start_method)
            try:
                pool.start_workers()  # an Executor's own pool starts whole, as it always did
            except BaseException:
                pool.shutdown(wait=False, kill=True)
                raise
            return pool
        if name == "interpreters":
            from .subinterpreters import InterpreterBackend
            return InterpreterBackend(workers)
        if name == "dask":
            from .dask import DaskBackend
            return DaskBackend(workers or None, self._address)
        raise AssertionError(name)  # pragma: no cover

    @property
    def choice(self) -> Optional[Choice]:
        """The backend the last map ran on and why (``auto``'s measured reasoning)."""
        return self._choice

    def statistics(self) -> Statistics:
        return Statistics(*self._tallies())

    def _tallies(self) -> Tuple[Any, ...]:
        """:class:`Statistics`'s fields, as plain values."""
        c = self._counters
        with self._lock:
            replaced = sum(b.workers_replaced for b in self._backends.values())
        with c.lock:
            return (self._last_backend, self._last_workers, c.items_done, c.items_failed,
                    c.chunks, c.calls, replaced, self._choice)

    # -- concurrent.futures API -------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "cf.Future[Any]":
        """Run ``fn(*args, **kwargs)`` on the backend (``auto``: the last map's choice, else
        threads: one call gives nothing to measure)."""
        check_fn(fn)
        name = self._backend_name
        if name == "auto":
            name = self._choice.backend if self._choice is not None else "threads"
        workers = self._workers or (self._choice.workers if self._choice is not None and
                                    self._backend_name == "auto" else default_workers(name))
        backend = self._get(name, workers)
        with self._counters.lock:
            self._counters.calls += 1
        return backend.submit_call(fn, args, kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: Optional[float] = None,
            chunksize: Any = "auto", buffersize: Optional[int] = None) -> Iterator[Any]:
        """``concurrent.futures.Executor.map``: results in order; ``timeout`` is the total
        seconds from this call; an exception from fn is raised as it is (with a note naming
        the item) when its result is reached.  Input is consumed lazily."""
        check_fn(fn)
        if not iterables:
            raise UsageError("map() needs at least one iterable", "no items given",
                             "pass the items: executor.map(fn, items)")
        check_timeout(timeout)
        size = check_chunksize(chunksize)
        deadline = clock() + timeout if timeout is not None else None
        if len(iterables) == 1:
            call: Callable[[Any], Any] = fn
            it = _check_iterable(iterables[0])
            total = _total(iterables[0])
        else:
            call = _Star(fn)
            it = zip(*[_check_iterable(x) for x in iterables])
            total = None
        chunks = self._run(call, it, ordered=True, chunksize=size, timeout=None, errors="collect",
                           progress=False, total=total, deadline=deadline)
        return _raise_failures(chunks)

    def imap(self, fn: Callable[[Any], Any], iterable: Iterable[Any], *, ordered: bool = True,
             chunksize: Any = "auto", timeout: Optional[float] = None, errors: str = "raise",
             progress: bool = False) -> Iterator[Any]:
        """A lazy ``pmap``: results one by one as they come (see :func:`pmap`)."""
        chunks = self.map_chunks(fn, iterable, ordered=ordered, chunksize=chunksize,
                                 timeout=timeout, errors=errors, progress=progress)
        return (r for chunk in chunks for r in chunk)

    def map_chunks(self, fn: Callable[[Any], Any], iterable: Iterable[Any], *, ordered: bool = True,
                   chunksize: Any = "auto", timeout: Optional[float] = None, errors: str = "raise",
                   progress: bool = False) -> Iterator[List[Any]]:
        """Like :meth:`imap`, in lists (one per chunk): the cheapest way to stream results."""
        size, timeout, it = _check_map_args(fn, iterable, ordered, progress, chunksize, timeout,
                                            errors)
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self._run(fn, it, ordered=ordered, chunksize=size, timeout=timeout, errors=errors,
                         progress=progress, total=_total(iterable))

    def _run(self, fn: Callable[[Any], Any], it: Iterator[Any], *, ordered: bool,
             chunksize: Optional[int], timeout: Optional[float], errors: str, progress: bool,
             total: Optional[int], deadline: Optional[float] = None,
             sink: Optional[List[Any]] = None) -> Iterator[List[Any]]:
        """The results, as lists in order; serial work appends straight to ``sink`` when
        one is given (pmap's result list: no copy), the rest is yielded."""
        bar = None
        if progress:
            from .progress import ProgressBar
            bar = ProgressBar(total, "pmap")
        run = MapRun(fn, errors=errors, ordered=ordered, timeout=timeout,
                     counters=self._counters, progress=bar, deadline=deadline)
        fixed = chunksize if chunksize is not None else self._chunksize
        try:
            name = self._backend_name
            base = 0
            remaining = total
            item_s = None
            if name == "auto":
                p = yield from _auto.plan(
                    run, it, workers=self._workers, start_method=self._start_method, sink=sink,
                    probe_backend=self._get("threads", 1) if timeout is not None else None,
                    start_processes=lambda w: self._get("processes", w))
                choice = p.choice
                name, workers = choice.backend, choice.workers
                it, base, remaining, item_s = p.it, p.next_index, p.remaining, p.item_s
                if self._explain:
                    print("threadwise: %s" % choice.reason, file=sys.stderr)
            else:
                workers = self._workers or default_workers(name)
                if name == "dask":
                    workers = self._get("dask", 0).workers
                choice = Choice(name, workers, _chosen_by_caller(name, workers))
            if name == "serial" and timeout is not None:
                name, workers = "threads", 1
                choice = Choice(choice.backend, 1, choice.reason + "; with a timeout the items run "
                                "in one helper thread, so a hung item can be left behind",
                                choice.chunksize, choice.item_s, choice.cpu_share, choice.gil_held,
                                choice.sampled, choice.remaining, choice.predicted_s)
            self._choice = choice
            self._last_backend, self._last_workers = choice.backend, workers
            if bar is not None:
                bar.describe("pmap [%s x%d]" % (choice.backend, workers))
            if name == "serial" and fixed is None:
                if self._backend_name != "auto":
                    yield from run_serial(run, it, base, sink, item_s)
                    return
                # auto: time the serial run, so that auto's memory of fn stays current
                t0 = time.perf_counter()
                done = yield from run_serial(run, it, base, sink, item_s)
                elapsed = time.perf_counter() - t0
                if done >= 16:
                    _auto.remember(fn, elapsed / done)
                return
            backend = self._get(name, workers)
            if item_s is None and fixed is None:
                item_s = _remembered_item_s(backend, fn)
            chunker = Chunker(fixed, backend.chunk_target_s, backend.workers, remaining, item_s)
            yield from run_chunks(run, backend, it, base, chunker)
        finally:
            if bar is not None:
                bar.close()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False, kill: bool = False) -> None:
        """Release every backend; ``kill`` ends worker processes without waiting."""
        with self._lock:
            self._closed = True
            backends = list(self._backends.values())
        for b in backends:
            b.shutdown(wait=wait, cancel_futures=cancel_futures, kill=kill)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Ctrl-C (or any error) inside the with block: don't wait for running work
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.shutdown(wait=False, cancel_futures=True, kill=True)
        else:
            self.shutdown(wait=True)


def _remembered_item_s(backend: Backend, fn: Callable[..., Any]) -> Optional[float]:
    """fn's seconds per item as the backend's workers measured it on earlier maps (a
    process pool's memory), so that the first chunks are sized right at once."""
    recall = getattr(backend, "item_s_for", None)
    if recall is None:
        return None
    try:
        return recall(fn)
    except Exception:  # fn can't be pickled: the map's first submit says so, properly
        return None


def _chosen_by_caller(name: str, workers: int) -> Callable[[], str]:
    """The reason of an explicit backend's Choice, written when it is read."""
    return lambda: "%s x%d: chosen by the caller (backend=%r)" % (name, workers, name)


def _raise_failures(chunks: Iterator[List[Any]]) -> Iterator[Any]:
    for chunk in chunks:
        for r in chunk:
            if isinstance(r, Failure):
                exc = r.exception
                if r.kind == "exception":
                    if exc.__traceback__ is None and r.traceback and exc.__cause__ is None:
                        exc.__cause__ = _RemoteTraceback(r.traceback)
                    if hasattr(exc, "add_note"):
                        exc.add_note("threadwise: raised by fn on item #%d (%s)" % (r.index, r.item))
                raise exc
            yield r


def pmap(fn: Callable[[Any], Any], iterable: Iterable[Any], *, backend: str = "auto",
         workers: Optional[int] = None, chunksize: Any = "auto", ordered: bool = True,
         timeout: Optional[float] = None, progress: bool = False, errors: str = "raise",
         explain: bool = False, address: Any = None,
         start_method: Optional[str] = None) -> MapResults:
    """``[fn(x) for x in iterable]`` on the backend that wins, as a list.

    ``backend="auto"`` runs the first items serially while measuring their time,
    CPU share and how much they hold the GIL, then picks serial, threads or
    processes (``result.choice`` says why with the numbers; ``explain=True`` prints
    it).  The input is consumed lazily; ``timeout`` bounds each item (a hung item
    fails with :class:`ItemTimeoutError`, its worker killed or abandoned);
    ``errors="raise"`` raises :class:`ItemError` (index, the worker's traceback,
    the other results in ``.results``), ``errors="collect"`` puts a
    :class:`Failure` in each failed item's place.  ``ordered=False`` lists
    results in the order they finish.  ``progress=True`` shows a progress bar.
    """
    size, timeout, it = _check_map_args(fn, iterable, ordered, progress, chunksize, timeout, errors)
    total = _total(iterable)
    ex = shared_executor(backend, workers, chunksize=chunksize, address=address,
                         start_method=start_method, explain=explain)
    out = MapResults()
    ok = False
    try:
        for chunk in ex._run(fn, it, ordered=ordered, chunksize=size, timeout=timeout,
                             errors=errors, progress=progress, total=total, sink=out):
            out.extend(chunk)
        ok = True
    except ItemError as e:
        ok = True  # nothing runs any more: a clean shutdown
        if ordered:
            for i, v in enumerate(out):
                e.results.setdefault(i, v)
        raise
    finally:
        ex.shutdown(wait=ok, cancel_futures=not ok, kill=not ok)
    out.choice = ex.choice
    out._final = ex._tallies()  # plain values (the results pickle); Statistics when read
    return out


def shared_executor(backend: str = "auto", workers: Optional[int] = None, **kwargs: Any) -> Executor:
    """An :class:`Executor` (same arguments) whose processes are a lease on the shared warm
    pool (``_pool.py``) instead of a pool of its own: what ``pmap`` runs on, and what
    ``advise`` measures with so that its start-up figure is what ``pmap`` will pay.
    ``shutdown()`` releases the lease (``kill=True``: this executor's tasks are stopped,
    the pool's other workers stay)."""
    ex = Executor(backend, workers, **kwargs)
    ex._shared = True
    return ex
