"""The processes backend: a pool of worker processes that never hangs on a dead worker.

::

    caller thread                         manager thread (lives as long as the pool)
    submit_chunk: pickle items, send  ---------- to an idle worker ----------> socket k --> worker k
      them to an idle worker, else    -->   pending deque --send when one is idle--^
      queue them; more workers wanted     starts workers up to the demand, at most ``workers``
      (at most ``workers``)? ask the      (fork when no other thread could hold a lock the
      manager, parked while it forks      child needs, else a fresh interpreter); stops the
                                          surplus when the pool is resized down
                                          poll([socket 1..n, wake pipe])  <-- results
                                          (the worker's next chunk sent before they are decoded)
                                          sets Future(ChunkDone | ChunkBroken)
                                          EOF on socket k / waitpid: worker k died
                                          --> ChunkBroken(crash, index from shared slot k),
                                              a replacement started
                                          item in slot k past its timeout: SIGKILL, same path
                                          idle ``idle_s`` with no lease (the shared pool): stop

Ideas taken from loky, not its code: one socket per worker (a dead worker can
only corrupt its own channel, so only it is replaced, the other workers keep
their chunks); the parent watches every worker's socket and exit status, so
a death is noticed at once, where ``multiprocessing.Pool`` waits forever for
a result that will never come; the error names the exit code or the signal;
one pool reused across calls (``_pool.py``: the shared pool behind ``pmap``),
resized on demand, stopped after an idle timeout.

Every worker is started by the manager thread, never by the caller: Linux's
parent-death signal (``threadwise._lifetime.die_with_parent``, the worker's
first act) fires when the *thread* that started a child ends, and a shared
pool outlives the user thread that first needed it.  Workers start lazily, one
per chunk waiting, so a map of 3 items starts at most 3.  A worker is forked
(a few milliseconds, inherits the parent's modules) when every other thread is
one of threadwise's own parked ones (``_base.fork_is_safe``: the caller waits
for the fork in a known state), else it is a fresh ``python -S`` given the
parent's ``sys.path`` (safe when threads run, never re-executes the user's
unguarded ``__main__``).  What each start really cost is recorded per start
method (:func:`startup_estimate`).

Functions travel by cloudpickle (lambdas and closures work), once per worker:
a worker keeps the functions it loaded across maps (keyed by the digest of
their pickle, so a function whose globals changed is sent again, and an
identical one is not), at most ``WORKER_FNS`` of them.  Items travel by
cloudpickle too, results back by pickle (cloudpickle when pickle can't).

Workers ignore SIGINT (Ctrl-C is the parent's to handle: it kills them) and
die with their parent, so none outlives it.
"""
from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import gc
import hashlib
import math
import mmap
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import weakref
from multiprocessing.connection import Connection
from typing import (Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Set, Tuple)

from ..errors import UsageError
from . import _chunk, _worker
from ._base import (MAX_WORKERS, STARTUP_S, Backend, ChunkBroken, ChunkDone, WorkerCrashedError,
                    fork_is_safe, fork_safe_enter, fork_safe_exit, resolve)
from ._base import check_workers as base_check_workers

PROTOCOL = pickle.HIGHEST_PROTOCOL
START_METHODS = ("fork", "spawn")
WORKER_FNS = 64          # functions a worker keeps loaded (least recently used dropped)
TRACK_BELOW_S = 5e-6     # items quicker than this run untracked (see _worker): +25 ns each
DIGESTS = 1024           # pickled functions a pool remembers (digest -> fid)
_CAN_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")
_POOLS: "weakref.WeakSet[ProcessBackend]" = weakref.WeakSet()


class FunctionNotPicklable(UsageError, TypeError):
    """fn can't be sent to a worker process."""


class ItemNotPicklable(FunctionNotPicklable):
    """An item can't be sent to a worker process; ``index`` is its place in the input."""

    def __init__(self, what: str, why: str = "", fix: str = "", index: int = -1) -> None:
        super().__init__(what, why, fix)
        self.index = index


def check_workers(workers: int) -> None:
    """At most ``_base.MAX_WORKERS`` worker processes (the boundary's own check, for a pool
    made or resized directly): the shared-memory slots are sized for that many."""
    base_check_workers(workers)


class FnRef:
    """A function as the workers know it: ``fid`` (one per distinct pickle), the pickle,
    and the file name cloudpickle blanks (restored in the worker's tracebacks)."""

    __slots__ = ("fid", "data", "filename")

    def __init__(self, fid: int, data: bytes, filename: Optional[str]) -> None:
        self.fid = fid
        self.data = data
        self.filename = filename


class _Task:
    __slots__ = ("future", "tid", "fn", "kind", "base", "n", "timeout", "data", "aborted",
                 "owner", "payload", "stop", "track", "started")

    def __init__(self, future: "cf.Future[Any]", tid: int, fn: FnRef, kind: str, base: int,
                 n: int, timeout: Optional[float], payload: bytes, owner: Any,
                 stop: bool = False, track: bool = True) -> None:
        self.future = future
        self.tid = tid
        self.fn = fn
        self.kind = kind            # "chunk" | "call"
        self.base = base
        self.n = n
        self.timeout = timeout
        self.payload = payload      # the pickled items (or arguments)
        self.stop = stop
        self.track = track          # the worker notes each item's index (see _worker)
        self.aborted = False
        self.started = False        # its Future was set running
        self.owner = owner          # the lease (shared pool) that submitted it, or None
        self.data = self.message()  # the pickled message for the worker

    def message(self) -> bytes:
        if self.kind == "call":
            return pickle.dumps(("call", self.tid, self.fn.fid, self.payload), PROTOCOL)
        return pickle.dumps(("chunk", self.tid, self.fn.fid, self.base, self.timeout is not None,
                             self.stop, self.payload, self.track), PROTOCOL)


class _Proc:
    __slots__ = ("slot", "pid", "conn", "popen", "task", "fns", "dead", "status", "method",
                 "launched", "ready", "stopping", "loaded")

    def __init__(self, slot: int, pid: int, conn: Connection, popen: Optional[subprocess.Popen],
                 method: str, launched: float) -> None:
        self.slot = slot
        self.pid = pid
        self.conn = conn
        self.popen = popen
        self.task: Optional[_Task] = None
        self.fns: "collections.OrderedDict[int, None]" = collections.OrderedDict()
        self.dead = False            # death handled (task failed, slot freed)
        self.status: Optional[int] = None  # wait status once reaped
        self.method = method         # "fork" | "spawn"
        self.launched = launched     # time.monotonic() when its start began
        self.ready = False           # its "ready" message came
        self.stopping = False        # asked to stop (pool resized down, or closing)
        self.loaded: Set[int] = set()  # fids it said it has loaded ("loaded", or a chunk done)


# -- what starting a worker costs in this program ----------------------------------------
class _StartCosts:
    """Per start method: workers started, the parent's seconds to launch them (fork, or
    ``Popen``: sequential), and seconds from launch to the worker's "ready" message."""

    def __init__(self) -> None:
        self.launched = 0
        self.launch_s = 0.0
        self.ready = 0
        self.ready_s = 0.0

    def mean_launch(self) -> float:
        return self.launch_s / self.launched if self.launched else 0.0

    def mean_ready(self) -> Optional[float]:
        return self.ready_s / self.ready if self.ready else None


_COSTS: Dict[str, _StartCosts] = {"fork": _StartCosts(), "spawn": _StartCosts()}


def start_method_now(start_method: Optional[str] = None) -> str:
    """The way a worker started now would start: ``start_method`` if given, else fork
    while no other thread could hold a lock the child needs (``_base.fork_is_safe``,
    asked from the calling thread, which waits parked while the manager forks), else
    spawn (a fresh interpreter)."""
    if start_method is not None:
        return start_method
    return "fork" if _CAN_FORK and fork_is_safe() else "spawn"


def startup_estimate(workers: int, start_method: Optional[str] = None,
                     fn: Optional[Callable[..., Any]] = None, *,
                     pool: Optional[str] = "same") -> Tuple[float, str]:
    """Seconds before ``pmap(..., backend="processes", workers=workers)`` could run its
    first items on that many workers, and how that figure was obtained.

    0 when the shared pool (``_pool.py``) already has ``workers`` workers started (plus,
    when ``fn`` is given and they have not loaded it yet, the measured time to load it).
    Otherwise the cost of starting the missing workers the way they would start now
    (:func:`start_method_now`): measured on the workers this program started before
    (parent-side launch, sequential; launch-to-ready, in parallel up to the CPUs), or
    the ``_base.STARTUP_S`` guess when none was started yet ("assumed").  Importing fn's
    module in a fresh worker is part of a worker's first load of fn, added when it was
    measured.  ``pool``: the start method the shared pool was asked for (``pmap``'s
    ``start_method``, None by default: then its workers start the way
    ``start_method_now`` says at each start), when ``start_method`` is only how they
    would start now."""
    from . import _pool
    from ._cpus import cpu_count
    method = start_method_now(start_method)
    shared = _pool.peek(start_method if pool == "same" else pool)
    have = shared.started() if shared is not None else 0
    need = max(0, workers - have)
    load_s, loaded = (shared.fn_load_s(fn) if shared is not None and fn is not None
                      else (None, False))
    load = load_s if (load_s is not None and not loaded) else 0.0
    if need == 0:
        how = "warm: the shared pool has %d worker%s started" % (have, "" if have == 1 else "s")
        if fn is not None:
            how += (", fn loaded" if loaded else ", fn not loaded yet (%s)" % (
                "%.1f ms to load it, measured" % (load * 1e3) if load_s is not None else
                "its load is not measured yet"))
        return load, how
    costs = _COSTS[method]
    ready = costs.mean_ready()
    waves = math.ceil(need / max(1, cpu_count()))
    if ready is None:
        secs = STARTUP_S[method] * waves
        how = ("assumed: %s ~%.0f ms per wave of workers (no %s worker started in this "
               "program yet)" % (method, STARTUP_S[method] * 1e3, method))
    else:
        launch = costs.mean_launch()
        secs = need * launch + max(0.0, ready - launch) * waves
        how = ("measured: %s, %.1f ms to launch and %.1f ms to ready per worker (%d started "
               "in this program), %d to start" % (method, launch * 1e3, ready * 1e3,
                                                  costs.launched, need))
    if load_s is not None and not loaded:
        how += ", plus %.1f ms to load fn" % (load * 1e3)
    return secs + load, how


def describe_status(status: Optional[int]) -> Tuple[str, Optional[int]]:
    """("killed by signal SIGSEGV (segmentation fault)", -11) from a waitpid status."""
    if status is None:
        return "exit status unknown", None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "signal %d" % sig
        hint = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (kill -9, or the out-of-memory killer)",
                "SIGABRT": " (abort)", "SIGBUS": " (bus error)", "SIGFPE": " (arithmetic error)",
                "SIGTERM": " (terminated)"}.get(name, "")
        return "killed by signal %s%s" % (name, hint), -sig
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return "exited with code %d" % code, code
    return "exit status %d" % status, None


class ProcessBackend(Backend):
    """A pool of up to ``workers`` worker processes (see the module docstring).

    ``idle_s``: stop every worker (and the manager thread) after that many seconds with
    no lease and no work (the shared pool); None: live until :meth:`shutdown`."""

    name = "processes"
    chunk_target_s = 0.05

    def __init__(self, workers: int, start_method: Optional[str] = None, *,
                 idle_s: Optional[float] = None) -> None:
        super().__init__(workers)
        if start_method is not None and start_method not in START_METHODS:
            raise UsageError("start_method must be None, 'fork' or 'spawn', got %r" % (start_method,),
                             "an unknown way to start worker processes",
                             "leave start_method=None: fork while the process has one thread, "
                             "spawn otherwise")
        if start_method == "fork" and not hasattr(os, "fork"):
            raise UsageError("start_method='fork' is not available on this platform",
                             "os.fork() does not exist here", "use start_method='spawn'")
        check_workers(workers)
        self.start_method = start_method   # None: decided at each start (start_method_now)
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: Deque[_Task] = collections.deque()
        self._tids = 0
        self._want = 0                     # workers wanted live: grows with demand, <= workers
        self._leases = 0
        self._last_used = time.monotonic()
        self._procs: List[_Proc] = []
        self._start_error: Optional[BaseException] = None
        self._digests: "collections.OrderedDict[bytes, int]" = collections.OrderedDict()
        self._fids = 0
        self._memo: Dict[int, List[Optional[float]]] = {}   # fid -> [seconds per item, load s]
        self._own: "collections.OrderedDict[int, Tuple[Any, FnRef]]" = collections.OrderedDict()
        self._preload: Optional[FnRef] = None  # a function to load into every ready worker
        self._closing = False
        self._killing = False
        self._forked_away = False
        self._ppid = os.getpid()
        self._setup_shared_memory()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._poll = select.poll()
        self._poll.register(self._wake_r, select.POLLIN)
        self._by_fd: Dict[int, _Proc] = {}
        _POOLS.add(self)
        self._manager = threading.Thread(target=self._manage, name="threadwise-process-manager",
                                         daemon=True)
        self._manager.start()

    def _setup_shared_memory(self) -> None:
        """The slots: [index of the running item, time it started] per worker (module doc of
        ``_worker``), sized for the most workers a pool may have (16 KiB)."""
        size = max(mmap.PAGESIZE, _worker.SLOT_BYTES * MAX_WORKERS)
        if hasattr(os, "memfd_create"):
            self._shm_fd = os.memfd_create("threadwise-slots", 0)
        else:  # pragma: no cover - non-Linux POSIX
            import tempfile
            tmp = tempfile.TemporaryFile()
            self._shm_fd = os.dup(tmp.fileno())
            tmp.close()
        os.ftruncate(self._shm_fd, size)
        self._shm_size = size
        self._mm = mmap.mmap(self._shm_fd, size)
        self._cur = memoryview(self._mm).cast("q")
        self._tm = memoryview(self._mm).cast("d")

    # -- size ---------------------------------------------------------------
    def resize(self, workers: int) -> None:
        """At most ``workers`` workers from now on: idle ones beyond are stopped, busy ones
        when their chunk is done; more start as work asks for them."""
        check_workers(workers)
        with self._lock:
            self.workers = workers
            self._want = min(self._want, workers)
        self._wake()

    def acquire(self, workers: int) -> bool:
        """A lease on this pool for a map on ``workers`` workers (the shared pool); False if
        the pool is closing.  Alone, the lease sizes the pool; beside others it may grow it."""
        check_workers(workers)
        with self._lock:
            if self._closing:
                return False
            self._leases += 1
            resized = workers != self.workers and (self._leases == 1 or workers > self.workers)
            if resized:
                self.workers = workers
                self._want = min(self._want, workers)
            self._last_used = time.monotonic()
        if resized:  # the manager stops the surplus
            self._wake()
        return True

    def release(self) -> None:
        with self._lock:
            self._leases -= 1
            self._last_used = time.monotonic()

    def start_workers(self, n: Optional[int] = None, wait_ready: bool = False,
                      timeout: float = 60.0) -> None:
        """Start ``n`` workers now (all ``workers`` when None) instead of as chunks ask for
        them; ``wait_ready``: until each has said it is ready (a fresh interpreter boots
        for tens of milliseconds after it is launched).  An ``Executor``'s own pool starts
        all its workers this way, as it always did; the shared pool only when asked (to
        time its start-up, say)."""
        with self._lock:
            want = min(self.workers if n is None else n, self.workers)
            grow = want > self._want
            if grow:
                self._want = want
        if grow and start_method_now(self.start_method) == "fork":
            self._wait_started(want)
        elif grow:
            self._wake()
        if not wait_ready:
            return
        deadline = time.monotonic() + timeout
        with self._cond:
            while (not self._closing and self._start_error is None
                   and sum(1 for p in self._procs if p.ready and not p.dead) < want
                   and time.monotonic() < deadline):
                self._cond.wait(0.05)

    def ready_workers(self) -> int:
        """Workers that said they are ready and are not stopping or dead; -1 when the pool
        is closing or could not start a worker (auto stops waiting for them)."""
        with self._lock:
            if self._closing or self._start_error is not None:
                return -1
            return sum(1 for p in self._procs if p.ready and not p.dead and not p.stopping)

    def warm_fn(self, fn: Callable[..., Any]) -> None:
        """:meth:`preload` for this pool's own callers (an Executor)."""
        self.preload(self._own_ref(fn))

    def fn_ready(self, fn: Callable[..., Any]) -> int:
        """:meth:`loaded_workers` for this pool's own callers."""
        return self.loaded_workers(self._own_ref(fn))

    def preload(self, ref: FnRef) -> None:
        """Have every worker, as soon as it is ready and idle, load this function (import its
        module) before any chunk needs it: auto overlaps that with items it runs itself."""
        with self._lock:
            self._preload = ref
        self._wake()

    def loaded_workers(self, ref: FnRef) -> int:
        """Live workers that have loaded ref's function; -1 when the pool is closing or
        could not start a worker."""
        with self._lock:
            if self._closing or self._start_error is not None:
                return -1
            return sum(1 for p in self._procs
                       if ref.fid in p.loaded and not p.dead and not p.stopping)

    def _send_preloads(self) -> None:
        """(manager thread) The "load" message to each ready, idle worker that lacks the
        function :meth:`preload` asked for."""
        with self._lock:
            ref = self._preload
            if ref is None:
                return
            todo = []
            for p in self._procs:
                if (p.ready and p.task is None and not p.dead and not p.stopping
                        and ref.fid not in p.fns):
                    todo.append((p, self._note_sent(p, ref.fid)))
            if all(ref.fid in p.fns for p in self._procs if not p.dead and not p.stopping):
                self._preload = None
        for p, drop in todo:
            try:
                p.conn.send_bytes(pickle.dumps(("load", ref.fid, ref.data, ref.filename,
                                                _worker.parent_path(), drop), PROTOCOL))
            except (OSError, EOFError):
                pass  # its death shows on its socket

    def started(self) -> int:
        """Workers started and not stopping or dead (0 when closing)."""
        with self._lock:
            if self._closing:
                return 0
            return sum(1 for p in self._procs if not p.dead and not p.stopping)

    def pids(self) -> List[int]:
        """The worker processes' ids (for tests and the curious)."""
        with self._lock:
            return [p.pid for p in self._procs if not p.dead and not p.stopping]

    # -- functions ----------------------------------------------------------
    def fn_ref(self, fn: Callable[..., Any]) -> FnRef:
        """Pickle fn; its fid is the same for the same pickle (the workers keep it loaded)."""
        try:
            data = _chunk.dumps(fn)
        except Exception as e:
            raise FunctionNotPicklable(
                "fn %r can't be sent to a worker process: %s: %s" % (
                    getattr(fn, "__qualname__", fn), type(e).__name__, e),
                "fn (or something it refers to: a lock, an open file, a socket, a database "
                "connection) can't be pickled%s" % ("" if _chunk.cloudpickle_module() else
                                                     ", and cloudpickle is not installed"),
                "use backend='threads' (nothing is pickled), or create the unpicklable object "
                "inside fn, or define fn at module level") from e
        digest = hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            fid = self._digests.get(digest)
            if fid is None:
                self._fids += 1
                fid = self._digests[digest] = self._fids
                while len(self._digests) > DIGESTS:
                    self._memo.pop(self._digests.popitem(last=False)[1], None)
            else:
                self._digests.move_to_end(digest)
        code = getattr(fn, "__code__", None)
        return FnRef(fid, data, getattr(code, "co_filename", None))

    def _own_ref(self, fn: Callable[..., Any]) -> FnRef:
        """fn's FnRef for this pool's own callers (an Executor), cached by identity."""
        key = id(fn)
        with self._lock:
            entry = self._own.get(key)
            if entry is not None and entry[0] is fn:
                self._own.move_to_end(key)
                return entry[1]
        ref = self.fn_ref(fn)
        with self._lock:
            self._own[key] = (fn, ref)
            while len(self._own) > 64:
                self._own.popitem(last=False)
        return ref

    def item_s_of(self, ref: FnRef) -> Optional[float]:
        """Seconds per item the workers measured for this function on earlier chunks."""
        memo = self._memo.get(ref.fid)
        return memo[0] if memo is not None else None

    def item_s_for(self, fn: Callable[..., Any]) -> Optional[float]:
        return self.item_s_of(self._own_ref(fn))

    def fn_load_s(self, fn: Callable[..., Any]) -> Tuple[Optional[float], bool]:
        """(Seconds a worker took to load fn, measured, else None; whether every started
        worker has it loaded already)."""
        try:
            ref = self.fn_ref(fn)
        except UsageError:
            return None, False
        memo = self._memo.get(ref.fid)
        with self._lock:
            live = [p for p in self._procs if not p.dead and not p.stopping]
            loaded = bool(live) and all(ref.fid in p.fns for p in live)
        return (memo[1] if memo is not None else None), loaded

    # -- submission (caller's thread) -----------------------------------------
    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        return self.submit_chunk_ref(self._own_ref(fn), base, items, timeout=timeout,
                                     stop_on_error=stop_on_error,
                                     track=not 0 < self.item_s_hint < TRACK_BELOW_S)

    def submit_chunk_ref(self, ref: FnRef, base: int, items: List[Any], *,
                         timeout: Optional[float], stop_on_error: bool,
                         owner: Any = None, track: bool = True) -> "cf.Future[Any]":
        """Send ``items`` to a worker; ``track`` False for tiny items (see ``_worker``)."""
        try:
            payload = _chunk.dumps(items)
        except Exception as e:
            bad = _first_unpicklable(items)
            raise ItemNotPicklable(
                "item #%d can't be sent to a worker process: %s: %s" % (
                    base + bad, type(e).__name__, e),
                "the item (or something inside it) can't be pickled",
                "use backend='threads', or pass items that pickle (plain data, paths, ids); "
                "with errors='collect' it becomes a Failure and the others run",
                index=base + bad) from e
        with self._lock:
            self._tids += 1
            tid = self._tids
        f: "cf.Future[Any]" = cf.Future()
        self._enqueue(_Task(f, tid, ref, "chunk", base, len(items), timeout, payload, owner,
                            stop_on_error, track or timeout is not None or len(items) == 1))
        return f

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        return self.submit_call_ref(self._own_ref(fn), args, kwargs)

    def submit_call_ref(self, ref: FnRef, args: Sequence[Any], kwargs: Mapping[str, Any],
                        owner: Any = None) -> "cf.Future[Any]":
        try:
            payload = _chunk.dumps((tuple(args), dict(kwargs)))
        except Exception as e:
            raise FunctionNotPicklable(
                "the arguments can't be sent to a worker process: %s: %s" % (type(e).__name__, e),
                "an argument can't be pickled", "use backend='threads'") from e
        with self._lock:
            self._tids += 1
            tid = self._tids
        f: "cf.Future[Any]" = cf.Future()
        self._enqueue(_Task(f, tid, ref, "call", 0, 1, None, payload, owner))
        return f

    def _enqueue(self, task: _Task) -> None:
        """Send a task to an idle worker from this thread (no hop through the manager), else
        queue it; when it asks for one more worker, have the manager start it (and wait,
        parked, while a fork is possible: see the module doc)."""
        grow = 0
        with self._lock:
            if self._closing:
                if self._forked_away:
                    raise RuntimeError("this process pool belongs to the parent process "
                                       "(pid %d): a forked child can't use it" % self._ppid)
                raise RuntimeError("cannot schedule new futures after shutdown")
            idle = None if self._pending else self._worker_for(task)
            if idle is not None:
                assigned = self._assign(task, idle)
            else:
                assigned = None
                self._pending.append(task)
                if self._want < self.workers:
                    busy = sum(1 for p in self._procs if p.task is not None)
                    want = min(self.workers, busy + len(self._pending))
                    if want > self._want:
                        self._want = grow = want
        if assigned is not None:
            p, fn_msg = assigned
            if p is not None and not self._send_task(p, task, fn_msg):
                self._wake()   # the manager sees the closed socket and handles the death
            elif task.timeout is not None:   # the manager's look at the clock must know
                self._wake()
        elif grow and start_method_now(self.start_method) == "fork":
            self._wait_started(grow)
        else:
            self._wake()

    def _wait_started(self, n: int) -> None:
        """Have the manager start workers until ``n`` run, and wait, marked fork-safe (before
        the manager is woken): it forks them while this thread is parked here, in a known
        state, holding no lock a child needs."""
        ident = fork_safe_enter()
        try:
            self._wake()
            deadline = time.monotonic() + 30.0
            with self._cond:
                while (not self._closing and self._start_error is None and self._want >= n
                       and sum(1 for p in self._procs if not p.dead and not p.stopping) < n
                       and time.monotonic() < deadline):
                    self._cond.wait(0.1)
        finally:
            fork_safe_exit(ident)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # -- the manager thread ---------------------------------------------------
    def _manage(self) -> None:
        ident = fork_safe_enter()
        last_poll = time.monotonic()
        try:
            while True:
                self._adjust()
                self._dispatch()
                self._send_preloads()
                with self._lock:
                    busy = any(p.task is not None for p in self._procs)
                    if not self._closing and self._idle_expired(busy):
                        self._closing = True
                    if self._closing and not self._pending and not busy:
                        break
                    timeouts = [p.task.timeout for p in self._procs
                                if p.task is not None and p.task.timeout and not p.dead]
                tick = 0.25 if self.idle_s is None else max(0.01, min(0.25, self.idle_s / 5))
                if timeouts:
                    tick = max(0.005, min(tick, min(timeouts) / 10.0))
                self._serve_ready(self._poll.poll(tick * 1000.0))
                if timeouts:
                    self._check_timeouts()
                now = time.monotonic()
                if now - last_poll > 0.5:
                    last_poll = now
                    self._poll_exits()
        except BaseException as e:  # pragma: no cover - a bug here must not hang the caller
            with self._lock:
                tasks = list(self._pending) + [p.task for p in self._procs if p.task is not None]
                self._pending.clear()
                self._closing = True
            for t in tasks:
                resolve(t.future, exc=e)
            raise
        finally:
            try:
                self._stop_workers()
            finally:
                fork_safe_exit(ident)
                with self._cond:
                    self._closing = True
                    self._cond.notify_all()
                _POOLS.discard(self)

    def _idle_expired(self, busy: bool) -> bool:
        """The shared pool's idle timeout (lock held): no lease, no work for ``idle_s``."""
        return (self.idle_s is not None and self._leases == 0 and not self._pending
                and not busy and time.monotonic() - self._last_used > self.idle_s)

    def _serve_ready(self, events: List[Tuple[int, int]]) -> None:
        """Handle what poll() reported: wake-ups, replies, closed sockets (deaths)."""
        for fd, _ in events:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 65536)
                except OSError:
                    pass
                continue
            p = self._by_fd.get(fd)
            if p is None or p.dead:
                continue
            if not self._receive(p):
                if p.stopping:
                    self._retire(p)
                else:
                    self._on_death(p, "crash", None)

    def _poll_exits(self) -> None:
        """A second look at every worker's exit status (a death the socket did not show)."""
        with self._lock:
            procs = [p for p in self._procs if not p.dead]
        for p in procs:
            if _exited(p) is not None:
                if p.stopping:
                    self._retire(p)
                else:
                    self._on_death(p, "crash", None)

    def _adjust(self) -> None:
        """Start the workers wanted, stop the surplus (manager thread)."""
        with self._lock:
            live = [p for p in self._procs if not p.dead and not p.stopping]
            n_new = 0 if self._closing else self._want - len(live)
            extra = len(live) - self.workers
            surplus = sorted((p for p in live if p.task is None), key=lambda p: -p.slot)
            surplus = surplus[:max(0, extra)]
            for p in surplus:
                p.stopping = True
        for p in surplus:
            _send_stop(p)
        t0 = time.monotonic()
        method = None
        for _ in range(max(0, n_new)):
            try:
                p = self._start_worker()
            except Exception as e:
                self._start_failed(e)
                break
            method = p.method
            with self._cond:
                self._procs.append(p)
                self._by_fd[p.conn.fileno()] = p
                self._cond.notify_all()
            self._poll.register(p.conn.fileno(), select.POLLIN)
        if method is not None:
            # what auto reads today: the parent's side of starting them (startup_estimate
            # has the whole cost, the worker's own start-up included)
            STARTUP_S[method] = 0.5 * STARTUP_S[method] + 0.5 * (time.monotonic() - t0)

    def _start_failed(self, e: BaseException) -> None:
        """A worker could not start (out of processes, memory): with none running, every
        task waiting fails with the reason; else the others carry on."""
        with self._cond:
            self._want = min(self._want, sum(1 for p in self._procs if not p.dead))
            self._cond.notify_all()
            if any(not p.dead for p in self._procs):
                return
            self._start_error = e
            tasks = list(self._pending)
            self._pending.clear()
        for t in tasks:
            resolve(t.future, exc=e)

    def _free_slot(self) -> int:
        used = {p.slot for p in self._procs}
        return next(s for s in range(MAX_WORKERS) if s not in used)

    def _dispatch(self) -> None:
        """Send waiting tasks to idle workers (manager thread)."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                task = self._pending[0]
                worker = self._worker_for(task)
                if worker is None:
                    return
                self._pending.popleft()
                p, fn_msg = self._assign(task, worker)
            if p is not None and not self._send_task(p, task, fn_msg):
                self._on_death(p, "crash", None)

    def _worker_for(self, task: _Task) -> Optional[_Proc]:
        """(lock held) An idle worker for ``task``: one that has its function loaded, if
        any.  (Queueing a chunk behind a busy worker would save the round trip between
        two chunks, but a worker about to finish would then sit idle at the map's end.)"""
        fid = task.fn.fid
        idle = [p for p in self._procs if p.task is None and not p.dead and not p.stopping]
        if idle:
            return next((p for p in idle if fid in p.fns), idle[0])
        return None

    def _assign(self, task: _Task, p: _Proc) -> Tuple[Optional[_Proc], Optional[Tuple[Any, ...]]]:
        """(lock held) Give ``task`` to idle worker ``p``: (p, the "fn" message it needs
        first, or None); (None, None) when the task was cancelled meanwhile."""
        if not task.started:
            if not task.future.set_running_or_notify_cancel():
                return None, None
            task.started = True
        p.task = task
        fid = task.fn.fid
        if fid in p.fns:
            p.fns.move_to_end(fid)
            return p, None
        return p, ("fn", fid, task.fn.data, task.fn.filename, self._note_sent(p, fid))

    @staticmethod
    def _note_sent(p: _Proc, fid: int) -> Tuple[int, ...]:
        """(lock held) fid is being sent to p: the functions it must drop to make room."""
        p.fns[fid] = None
        drop: Tuple[int, ...] = ()
        while len(p.fns) > WORKER_FNS:
            old = p.fns.popitem(last=False)[0]
            p.loaded.discard(old)
            drop += (old,)
        return drop

    def _send_task(self, p: _Proc, task: _Task, fn_msg: Optional[Tuple[Any, ...]]) -> bool:
        """Send a task (and the function first, when the worker lacks it); False when the
        worker's socket is gone (the manager handles the death: it polls that socket)."""
        try:
            if fn_msg is not None:
                _, fid, data, filename, drop = fn_msg
                p.conn.send_bytes(pickle.dumps(("fn", fid, data, filename, _worker.parent_path(),
                                                drop), PROTOCOL))
            p.conn.send_bytes(task.data)
            return True
        except (OSError, EOFError):
            return False
        except Exception as e:  # pragma: no cover
            with self._lock:
                p.task = None
            resolve(task.future, exc=e)
            return True

    def _receive(self, p: _Proc, dispatch: bool = True) -> bool:
        """Handle one message from ``p``; False when its socket is closed (it died).
        ``dispatch``: send the next waiting task before decoding the results."""
        try:
            data = p.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        try:
            msg = pickle.loads(data)
        except BaseException as e:  # an unpicklable exception class, a truncated frame
            msg = ("broken", e)
        if msg[0] == "ready":
            self._note_ready(p)
            return True
        if msg[0] == "loaded":   # a preload done: ("loaded", fid, seconds)
            with self._lock:
                p.loaded.add(msg[1])
                memo = self._memo.setdefault(msg[1], [None, None])
                memo[1] = msg[2] if memo[1] is None else max(memo[1], msg[2])
            return True
        with self._lock:
            task, p.task = p.task, None
            self._last_used = time.monotonic()
            more = dispatch and bool(self._pending)
        if more:  # the next chunk first, the results after: the worker does not wait on them
            self._dispatch()
        if task is None:  # pragma: no cover - a reply to a task already given up on
            return True
        try:
            if msg[0] == "done":
                _, tid, elapsed, nfail, rdata, load_s = msg
                p.loaded.add(task.fn.fid)
                self._note_chunk(task, elapsed, load_s)
                resolve(task.future, ChunkDone(pickle.loads(rdata), elapsed, nfail))
            elif msg[0] == "ok":
                resolve(task.future, pickle.loads(msg[2]))
            elif msg[0] == "err":
                failed = msg[2]
                exc = failed.exc if failed.exc is not None else RuntimeError(
                    "%s: %s" % (failed.exc_type, failed.message))
                exc.__cause__ = _remote(failed.tb)
                resolve(task.future, exc=exc)
            else:
                resolve(task.future, exc=msg[1])
        except BaseException as e:  # an unpicklable result class
            resolve(task.future, exc=e)
        return True

    def _note_ready(self, p: _Proc) -> None:
        """A worker's "ready": what its start cost, for :func:`startup_estimate`."""
        if p.ready:
            return
        with self._cond:
            p.ready = True
            self._cond.notify_all()
        secs = time.monotonic() - p.launched
        c = _COSTS[p.method]
        c.ready += 1
        c.ready_s += secs

    def _note_chunk(self, task: _Task, elapsed: float, load_s: float) -> None:
        """Remember fn's seconds per item (chunk sizes of later maps) and its load time."""
        memo = self._memo.get(task.fn.fid)
        if memo is None:
            memo = self._memo[task.fn.fid] = [None, None]
        if task.n:
            per = elapsed / task.n
            memo[0] = per if memo[0] is None else 0.5 * memo[0] + 0.5 * per
        if load_s > 0:
            memo[1] = load_s if memo[1] is None else max(memo[1], load_s)

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for p in list(self._procs):
            t = p.task
            if t is None or t.timeout is None or p.dead:
                continue
            index = self._cur[2 * p.slot]
            if index < 0:
                continue
            if now - self._tm[2 * p.slot + 1] > t.timeout:
                _kill(p.pid)
                self._on_death(p, "timeout", index)

    def _on_death(self, p: _Proc, kind: str, index: Optional[int]) -> None:
        """Worker ``p`` died (or was killed): fail its task; the manager's next
        :meth:`_adjust` starts a replacement (the pool keeps the workers it had)."""
        if p.dead:
            return
        if p.task is not None and kind == "crash":
            try:  # a reply sent just before dying still counts
                while p.task is not None and p.conn.poll(0) and self._receive(p, False):
                    pass
            except (OSError, EOFError):
                pass
        if p.dead:
            return
        status = _reap(p)
        detail, code = describe_status(status)
        if kind == "crash":
            index = self._cur[2 * p.slot]
        with self._lock:
            task, p.task = p.task, None
            if not self._closing:
                self.workers_replaced += 1
            retry = (task is not None and kind == "crash" and not task.track and task.n > 1
                     and not task.aborted and not self._killing)
            if retry and task is not None:  # untracked: run it again, tracked, to name the item
                task.track = True
                task.data = task.message()
                self._pending.appendleft(task)
        self._retire(p)
        if task is None or retry:
            return
        if task.aborted or self._killing:
            resolve(task.future, exc=cf.CancelledError())
            return
        if task.kind == "call":
            resolve(task.future, exc=WorkerCrashedError(
                "the worker process (pid %d) running a submitted call died: %s" % (p.pid, detail),
                _CRASH_WHY, "the worker was replaced; run the call in a plain Python process to "
                "see the crash, or use backend='threads' if it must share the parent's memory",
                index=-1, backend="processes"))
            return
        if kind == "timeout":
            detail = "killed after running past the timeout (%s)" % detail
        if index is not None and not (task.base <= index < task.base + task.n):
            index = None  # died between items (receiving or sending): the item is unknown
        resolve(task.future, ChunkBroken(kind, index, [], detail, p.pid, True))

    def _retire(self, p: _Proc) -> None:
        """Forget a worker that exited (reaped): its socket, its slot."""
        _reap(p)
        try:
            self._poll.unregister(p.conn.fileno())
        except (KeyError, ValueError, OSError):
            pass
        with self._lock:
            p.dead = True
            self._by_fd = {fd: q for fd, q in self._by_fd.items() if q is not p}
            if p in self._procs:
                self._procs.remove(p)
        try:
            p.conn.close()
        except OSError:
            pass

    # -- starting workers (manager thread only) ---------------------------------
    def _start_worker(self) -> _Proc:
        """Start one worker in a free slot: forked when safe now, else a fresh interpreter."""
        slot = self._free_slot()
        method = start_method_now(self.start_method)
        self._cur[2 * slot] = -1
        parent_sock, child_sock = socket.socketpair()
        t0 = time.monotonic()
        if method == "fork":
            pid = self._fork(slot, parent_sock, child_sock)
            popen = None
        else:
            popen = self._spawn(slot, child_sock)
            pid = popen.pid
        child_sock.close()
        c = _COSTS[method]
        c.launched += 1
        c.launch_s += time.monotonic() - t0
        return _Proc(slot, pid, Connection(parent_sock.detach()), popen, method, t0)

    def _fork(self, slot: int, parent_sock: socket.socket, child_sock: socket.socket) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            # 3.12+ warns at every fork while threads run; here the only others are
            # threadwise's own, parked (start_method_now checked it): the warning's hazard
            # (a lock held mid-way by another thread) can't arise
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid != 0:
            return pid
        # the child (its at-fork handler closed every pool's descriptors): never returns
        code = 1
        try:
            parent_sock.close()
            # everything inherited from the parent stays: out of the collector's sight, so
            # that a full collection in a long-lived worker does not walk (and copy, page
            # by page) the parent's whole heap again and again
            if hasattr(gc, "freeze"):
                gc.freeze()
            _worker.serve(Connection(child_sock.detach()), self._mm, slot, self._ppid,
                          self._native_threads())
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _native_threads(self) -> int:
        """A worker's share of the CPUs for the native thread pools of its calls."""
        from ._cpus import cpu_count
        return max(1, cpu_count() // max(1, self.workers))

    def _spawn(self, slot: int, child_sock: socket.socket) -> subprocess.Popen:
        env = dict(os.environ)
        env.update(_worker.worker_env(self._native_threads()))
        child_fd = child_sock.fileno()
        return subprocess.Popen(
            [sys.executable, "-S", "-c", _worker.bootstrap_code(), str(child_fd), str(self._shm_fd),
             str(self._shm_size), str(slot), str(self._ppid)],
            pass_fds=(child_fd, self._shm_fd), env=env, stdin=subprocess.DEVNULL)

    # -- stopping ---------------------------------------------------------
    def abort(self, owner: Any = None) -> None:
        """Cancel the waiting tasks and kill the workers running tasks (of ``owner`` only,
        when given: one map's lease on the shared pool)."""
        with self._lock:
            mine = [t for t in self._pending if owner is None or t.owner is owner]
            if mine:
                self._pending = collections.deque(t for t in self._pending
                                                  if not (owner is None or t.owner is owner))
            running = [p for p in self._procs if p.task is not None and
                       (owner is None or p.task.owner is owner)]
            for p in running:
                p.task.aborted = True  # type: ignore[union-attr]
        for t in mine:
            t.future.cancel()
        for p in running:
            _kill(p.pid)
        self._wake()

    def wait_idle(self, owner: Any = None, timeout: Optional[float] = None) -> None:
        """Wait until no task (of ``owner``, when given) is waiting or running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                busy = any(owner is None or t.owner is owner for t in self._pending) or any(
                    p.task is not None and (owner is None or p.task.owner is owner)
                    for p in self._procs)
                if not busy or self._closing and not self._manager.is_alive():
                    return
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        with self._lock:
            already = self._closing
            self._closing = True
            if kill:
                self._killing = True
            pending = list(self._pending) if (cancel_futures or kill) else []
            if cancel_futures or kill:
                self._pending.clear()
        for t in pending:
            t.future.cancel()
        if kill:
            self._kill_all()
        self._wake()
        if wait or kill:
            if self._manager is not threading.current_thread():
                self._manager.join(None if (wait and not kill) else 5.0)
        if not already:
            _POOLS.discard(self)

    def _stop_workers(self) -> None:
        """The manager's last act: ask every worker to stop, then make sure it did."""
        with self._lock:
            procs = [p for p in self._procs if not p.dead]
        for p in procs:
            _send_stop(p)
        deadline = time.monotonic() + 2.0
        for p in procs:
            while _exited(p) is None:
                if time.monotonic() > deadline:
                    _kill(p.pid)
                    _reap(p)
                    break
                time.sleep(0.002)
            p.dead = True
            try:
                p.conn.close()
            except OSError:
                pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _kill_all(self, reap: bool = False) -> None:
        """SIGKILL every worker; the manager notices the deaths and reaps them."""
        for p in list(self._procs):
            if not p.dead:
                _kill(p.pid)
        if reap:
            for p in list(self._procs):
                _reap(p)

    def _abandon_in_child(self) -> None:
        """In a child forked from this process (by anyone): this pool is the parent's.
        Close the child's copies of its descriptors (a worker's socket held open here
        would hide the worker's death from the parent) and refuse any use."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._closing = self._forked_away = True
        self._pending = collections.deque()
        for p in self._procs:
            try:
                p.conn.close()
            except OSError:
                pass
        for fd in (self._wake_r, self._wake_w, self._shm_fd):
            try:
                os.close(fd)
            except OSError:
                pass


_CRASH_WHY = ("fn crashed the worker process: a segmentation fault in a C extension, os._exit(), "
              "a signal (kill -9, or the out-of-memory killer when the item needs too much memory)")


def _remote(tb: str) -> BaseException:
    from ._base import _RemoteTraceback
    return _RemoteTraceback(tb)


def _send_stop(p: _Proc) -> None:
    try:
        p.conn.send_bytes(pickle.dumps(("stop",), PROTOCOL))
    except OSError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(p: _Proc) -> Optional[int]:
    """The wait status if the worker has exited (reaping it once), else None."""
    if p.status is not None:
        return p.status
    try:
        pid, status = os.waitpid(p.pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: the status is lost
        p.status = 0
        return 0
    if pid == 0:
        return None
    p.status = status
    if p.popen is not None:  # keep Popen from warning that the process "is still running"
        p.popen.returncode = os.waitstatus_to_exitcode(status)
    return status


def _reap(p: _Proc, timeout: float = 2.0) -> Optional[int]:
    """Wait for a dead or dying worker; SIGKILL it if it lingers.  The wait status."""
    deadline = time.monotonic() + timeout
    while True:
        status = _exited(p)
        if status is not None:
            return status
        if time.monotonic() > deadline:
            _kill(p.pid)
            deadline = time.monotonic() + timeout
        time.sleep(0.001)


def _first_unpicklable(items: List[Any]) -> int:
    for k, x in enumerate(items):
        try:
            _chunk.dumps(x)
        except Exception:
            return k
    return 0


def _forget_pools_in_child() -> None:
    for pool in list(_POOLS):
        pool._abandon_in_child()
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


@atexit.register
def _kill_pools_at_exit() -> None:
    for pool in list(_POOLS):
        try:
            pool.shutdown(wait=False, kill=True)
        except Exception:
            pass
