"""The threads backend: daemon worker threads pulling chunks from one queue.

::

    engine --submit_chunk--> SimpleQueue --get--> worker thread 1..W --> Future.set_result
                                   watchdog (only with a timeout): abandons a hung item

Threads share the interpreter, so nothing is pickled: the cheapest backend
to start and to feed, and the fastest where fn releases the GIL (I/O, zlib,
hashlib, NumPy) or where there is no GIL (free-threaded builds).

A thread can't be killed.  When an item runs past ``timeout`` the watchdog
resolves its chunk as timed out (with the results of the items before it),
flags the chunk so the thread stops after the hung call returns, retires that
thread and starts a replacement: the map goes on, the hung call runs on in the
background.  The workers are daemon threads so a hung call never blocks the
interpreter's exit.

Threads start on demand, not all at once: a task put on the queue while no
thread waits for one starts a thread, up to ``workers``.  So a map never has
more threads than chunks in flight (``pmap(fn, range(3), workers=500)`` starts
three), and ``workers`` itself is bounded at the public boundary
(``_base.MAX_WORKERS``) so a huge count ends in a clear error, not in
``RuntimeError: can't start new thread`` halfway through a map.
"""
from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..errors import ThreadwiseError
from . import _chunk
from ._base import Backend, ChunkBroken, ChunkDone, Watchdog, check_workers, resolve

clock = _chunk.clock


class _Task:
    __slots__ = ("future", "fn", "base", "items", "timeout", "stop", "args", "kwargs",
                 "cancelled", "partial", "index", "started")

    def __init__(self, future: "cf.Future[Any]", fn: Callable[..., Any], base: int = 0,
                 items: Optional[List[Any]] = None, timeout: Optional[float] = None,
                 stop: bool = False, args: Sequence[Any] = (),
                 kwargs: Optional[Mapping[str, Any]] = None) -> None:
        self.future = future
        self.fn = fn
        self.base = base
        self.items = items          # None: a submit() call
        self.timeout = timeout
        self.stop = stop
        self.args = args
        self.kwargs = kwargs or {}
        self.cancelled = False
        self.partial: List[Any] = []
        self.index: Optional[int] = None
        self.started = 0.0


class _Worker(threading.Thread):
    def __init__(self, backend: "ThreadBackend", number: int) -> None:
        super().__init__(name="threadwise-thread-%d" % number, daemon=True)
        self.backend = backend
        self.task: Optional[_Task] = None
        self.retired = False

    def run(self) -> None:
        backend = self.backend
        q = backend._queue
        lock = backend._lock
        while not self.retired:
            with lock:
                backend._idle += 1
            task = q.get()
            with lock:
                backend._idle -= 1
                if task is not None:
                    backend._queued -= 1
            if task is None:
                return
            if not task.future.set_running_or_notify_cancel():
                continue
            self.task = task
            try:
                self._execute(task)
            finally:
                self.task = None
                task = None  # drop the references while idle

    def _execute(self, task: _Task) -> None:
        where = "thread %s" % self.name
        if task.items is None:
            try:
                value = task.fn(*task.args, **task.kwargs)
            except BaseException as e:  # SystemExit in fn must not end the thread silently
                resolve(task.future, exc=e)
            else:
                resolve(task.future, value)
            return
        if task.timeout is None:
            results, elapsed, nfail = _chunk.run_items(task.fn, task.items, task.base, task.stop,
                                                       BaseException, where)
            resolve(task.future, ChunkDone(results, elapsed, nfail))
            return
        # with a timeout: record the running item so the watchdog can tell which one hangs
        results = task.partial
        app = results.append
        fn = task.fn
        nfail = 0
        t0 = clock()
        index = task.base
        for x in task.items:
            if task.cancelled:  # timed out (already resolved) or aborted
                resolve(task.future, exc=cf.CancelledError())
                return
            task.index = index
            task.started = clock()
            try:
                app(fn(x))
            except BaseException as e:
                app(_chunk.capture(e, index, where))
                nfail += 1
                if task.stop:
                    break
            index += 1
        task.index = None
        if not task.cancelled:
            resolve(task.future, ChunkDone(results, clock() - t0, nfail))


class ThreadBackend(Backend):
    name = "threads"
    chunk_target_s = 0.005

    def __init__(self, workers: int) -> None:
        check_workers(workers)  # also from inside (auto): never more than MAX_WORKERS threads
        super().__init__(workers)
        self._queue: "queue.SimpleQueue[Optional[_Task]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: List[_Worker] = []
        self._numbered = 0
        self._idle = 0      # threads waiting on the queue
        self._queued = 0    # tasks on the queue no thread has taken yet
        self._watchdog = Watchdog("threadwise-watchdog", self._abandon, scan=self._late)
        self._closed = False

    def _put(self, task: _Task) -> None:
        """Queue a task; start a thread when no idle one will take it (up to ``workers``)."""
        with self._lock:
            self._queued += 1
            self._grow()
        self._queue.put(task)

    def _grow(self) -> None:
        """Start a thread if tasks wait that the idle threads won't cover (lock held)."""
        if self._closed or self._queued <= self._idle or len(self._threads) >= self.workers:
            return
        self._numbered += 1
        w = _Worker(self, self._numbered)
        try:
            w.start()
        except RuntimeError as e:  # "can't start new thread": the OS's limit, below ours
            if self._threads:
                self.workers = len(self._threads)  # go on with the threads there are
                return
            self._queued -= 1
            raise ThreadwiseError(
                "the threads backend could not start a single thread (%s)" % e,
                "this process has reached the system's limit on threads (ulimit -u, the "
                "container's pids limit, or memory for thread stacks)",
                "end threads this process no longer needs, raise the limit, or use "
                "backend='serial'") from None
        self._threads.append(w)

    # -- submission -------------------------------------------------------
    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        f: "cf.Future[Any]" = cf.Future()
        self._put(_Task(f, fn, base, items, timeout, stop_on_error))
        if timeout is not None:
            self._watchdog.start()
        return f

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        f: "cf.Future[Any]" = cf.Future()
        self._put(_Task(f, fn, args=args, kwargs=kwargs))
        return f

    # -- the watchdog -----------------------------------------------------
    def _late(self) -> Tuple[List[Tuple[_Worker, _Task, int]], float]:
        """The watchdog's scan: workers whose running item is past its timeout, and the
        seconds until the next look (a tenth of the shortest timeout, 5 to 100 ms)."""
        tick = 0.1
        now = clock()
        late = []
        with self._lock:
            workers = list(self._threads)
        for w in workers:
            t = w.task
            if t is None or t.timeout is None:
                continue
            tick = min(tick, max(0.005, t.timeout / 10.0))
            index = t.index
            if index is None or now - t.started <= t.timeout:
                continue
            late.append((w, t, index))
        return late, tick

    def _abandon(self, late: Tuple[_Worker, _Task, int]) -> None:
        """Resolve the hung item's chunk as timed out, retire its thread, start another."""
        w, t, index = late
        t.cancelled = True
        done = list(t.partial[:index - t.base])
        for k, r in enumerate(done):  # ``done`` counts as plain results: the items from a
            if isinstance(r, _chunk.Failed):  # failure on run again (the engine's contract)
                del done[k:]
                break
        broken = ChunkBroken("timeout", index, done,
                             "the thread was abandoned: the hung call runs on in the "
                             "background until it returns (threads can't be killed)")
        if resolve(t.future, broken):
            with self._lock:
                w.retired = True
                if w in self._threads:
                    self._threads.remove(w)
                self.workers_replaced += 1
                self._grow()  # a replacement, if tasks wait for one

    # -- stopping ---------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                with self._lock:
                    self._queued -= 1
                task.cancelled = True
                task.future.cancel()

    def abort(self) -> None:
        self._drain()
        with self._lock:
            for w in self._threads:
                t = w.task
                if t is not None:
                    t.cancelled = True

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        if cancel_futures or kill:
            self.abort()
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        self._watchdog.close()
        for _ in threads:
            self._queue.put(None)
        if wait and not kill:
            for w in threads:
                if w is not threading.current_thread():
                    w.join()
