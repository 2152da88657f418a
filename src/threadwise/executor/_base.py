"""What every backend shares: the result records, the errors, the checks at the boundary.

The engine (``_engine.py``) talks to every backend through :class:`Backend`::

    engine --submit_chunk(fn, base, items, timeout, stop_on_error)--> backend
           <--------- Future resolving to ChunkDone | ChunkBroken ----------

* :class:`ChunkDone`: every item of the chunk ran; ``results`` holds one value
  per item, a :class:`_chunk.Failed` record where ``fn`` raised.
* :class:`ChunkBroken`: the chunk did not finish, because the worker running it
  died (``kind="crash"``) or one item ran past ``timeout`` (``kind="timeout"``).
  ``done`` holds the results of the items before the broken one when the
  backend still has them (threads do, a dead process does not); ``index`` is
  the item that broke it, or None when the backend can't tell which item of the
  chunk it was (Dask): the engine then re-runs the chunk one item at a time.

Errors reach the user in three parts (what happened, the likely cause, the
fix), with the item's index and the worker's traceback (``ItemError``).

Where a hung call can't be stopped (threads, sub-interpreters, Dask) one
:class:`Watchdog` per backend enforces ``timeout``: it resolves the late chunk's
Future as :class:`ChunkBroken` ``kind="timeout"`` and the backend leaves the
call behind.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import numbers
import operator
import os
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import ThreadwiseError, UsageError

#: measured seconds to start a pool of W worker processes, per start method (auto's cost
#: model reads it; every pool this process starts updates it).  Here, not in processes.py,
#: so that ``auto`` deciding "serial" never imports the process machinery.
STARTUP_S: Dict[str, float] = {"fork": 0.03, "spawn": 0.15}

# Threads of threadwise's own that hold no lock a forked child could need: process-pool
# manager threads (they never run the user's code but for a Future's done callbacks), and
# callers parked in a pool's wait.  Forking while every other thread is one of these is as
# safe as forking a single-threaded process: the child runs only the worker loop, which
# touches none of their objects.  thread ident -> nesting depth.
_FORK_SAFE: Dict[int, int] = {}


def fork_safe_enter() -> int:
    """Mark the calling thread fork-safe (see ``_FORK_SAFE``) until :func:`fork_safe_exit`."""
    ident = threading.get_ident()
    _FORK_SAFE[ident] = _FORK_SAFE.get(ident, 0) + 1
    return ident


def fork_safe_exit(ident: int) -> None:
    depth = _FORK_SAFE.get(ident, 0) - 1
    if depth > 0:
        _FORK_SAFE[ident] = depth
    else:
        _FORK_SAFE.pop(ident, None)


def fork_is_safe() -> bool:
    """True when every live thread but the calling one is fork-safe (``_FORK_SAFE``): a
    child forked now inherits no lock held half-way by someone else's code."""
    n = threading.active_count()
    if n == 1:
        return True
    if n - 1 > len(_FORK_SAFE):
        return False
    me = threading.get_ident()
    return all(t.ident == me or t.ident in _FORK_SAFE for t in threading.enumerate())


if hasattr(os, "register_at_fork"):  # a forked child has one thread: none of those above
    os.register_at_fork(after_in_child=_FORK_SAFE.clear)


def default_start_method() -> str:
    """``fork`` on Linux while no thread but threadwise's own parked ones runs (see
    :func:`fork_is_safe`), ``spawn`` (a fresh interpreter) otherwise."""
    if hasattr(os, "fork") and sys.platform.startswith("linux") and fork_is_safe():
        return "fork"
    return "spawn"

#: every backend name, in the order they are described
BACKENDS: Tuple[str, ...] = ("serial", "threads", "processes", "interpreters", "dask")
#: what ``backend=`` accepts
BACKEND_CHOICES: Tuple[str, ...] = ("auto",) + BACKENDS
ERRORS_CHOICES: Tuple[str, ...] = ("raise", "collect")


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """Stands in a result list (``errors="collect"``) where an item failed.

    ``kind`` is ``"exception"`` (fn raised), ``"crash"`` (the worker process died
    running it) or ``"timeout"`` (it ran past ``timeout``); ``exception`` is the
    exception fn raised, or the :class:`WorkerCrashedError` /
    :class:`ItemTimeoutError` that describes the crash or the timeout.
    """

    index: int
    kind: str
    exception: BaseException
    traceback: str = ""
    item: str = ""

    def __repr__(self) -> str:
        return "Failure(index=%d, kind=%r, exception=%r)" % (self.index, self.kind, self.exception)


@dataclass(frozen=True, init=False)
class Choice:
    """The backend a map runs on, and why (``auto`` measures; an explicit backend says so)."""

    backend: str
    workers: int
    reason: str
    chunksize: Optional[int] = None
    item_s: Optional[float] = None        # measured seconds per item (serial)
    cpu_share: Optional[float] = None     # CPU time / wall time of the sampled items
    gil_held: Optional[float] = None      # share of the time the sampled items held the GIL
    sampled: int = 0                      # items run while measuring
    remaining: Optional[int] = None       # items left when it decided (None: unknown)
    predicted_s: Mapping[str, float] = field(default_factory=dict)  # backend -> seconds for the rest

    def __init__(self, backend: str, workers: int, reason: Union[str, Callable[[], str]],
                 chunksize: Optional[int] = None, item_s: Optional[float] = None,
                 cpu_share: Optional[float] = None, gil_held: Optional[float] = None,
                 sampled: int = 0, remaining: Optional[int] = None,
                 predicted_s: Optional[Mapping[str, float]] = None) -> None:
        # the fields in one step: a frozen dataclass's own __init__ sets them one by one
        # through object.__setattr__ (2.3 µs, a tenth of auto's whole decision on tiny
        # items); ``reason`` may come as a function that writes it, called when it is
        # first read (formatting it is most of the rest, on a map nobody asks about)
        self.__dict__.update(backend=backend, workers=workers,
                             chunksize=chunksize, item_s=item_s, cpu_share=cpu_share,
                             gil_held=gil_held, sampled=sampled, remaining=remaining,
                             predicted_s={} if predicted_s is None else predicted_s)
        self.__dict__["reason" if isinstance(reason, str) else "_write_reason"] = reason

    def __getattr__(self, name: str) -> Any:
        # only for a reason not written yet (fields found in __dict__ never come here)
        write = self.__dict__.get("_write_reason") if name == "reason" else None
        if write is None:
            raise AttributeError(name)
        text = self.__dict__["reason"] = write()
        del self.__dict__["_write_reason"]
        return text

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__, reason=self.reason)
        state.pop("_write_reason", None)
        return state

    def __str__(self) -> str:
        return self.reason

    def to_dict(self) -> Dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers, "reason": self.reason,
                "chunksize": self.chunksize, "item_s": self.item_s, "cpu_share": self.cpu_share,
                "gil_held": self.gil_held, "sampled": self.sampled, "remaining": self.remaining,
                "predicted_s": dict(self.predicted_s)}


@dataclass(frozen=True)
class Statistics:
    """Observable state of an :class:`~threadwise.executor.Executor` (or of one ``pmap``)."""

    backend: str                 # the backend that ran the last map ("auto" before any ran)
    workers: int
    items_done: int              # items whose result (or Failure) came back
    items_failed: int            # of which failed (exception, crash or timeout)
    chunks: int                  # chunks dispatched
    calls: int                   # submit() calls
    workers_replaced: int        # dead, killed or abandoned workers replaced
    choice: Optional[Choice] = None


@dataclass
class ChunkDone:
    results: List[Any]
    elapsed: float               # seconds spent in fn for the whole chunk (worker side)
    nfail: int = 0


@dataclass
class ChunkBroken:
    kind: str                    # "crash" | "timeout"
    index: Optional[int]         # the item that broke the chunk, None when unknown
    done: List[Any]              # results of the items before ``index`` still available
    detail: str = ""             # "killed by signal SIGKILL", "exit code 3", ...
    pid: Optional[int] = None
    replaced: bool = True        # the worker was replaced (or abandoned, for threads)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
class NotCallableError(UsageError, TypeError):
    """``fn`` is not callable."""


class ItemError(ThreadwiseError):
    """fn failed on one item of a map (``errors="raise"``).

    ``index`` is the item's position in the input, ``item`` its repr,
    ``exception`` what fn raised (its ``__cause__`` carries the worker's
    traceback), ``remote_traceback`` that traceback as text, ``results`` every
    result that came back (a dict index -> value, the other items' results are
    not lost) and ``failures`` every :class:`Failure` seen before the map stopped.
    """

    def __init__(self, what: str, why: str = "", fix: str = "", *, index: int = -1,
                 item: str = "", exception: Optional[BaseException] = None,
                 remote_traceback: str = "", backend: str = "") -> None:
        super().__init__(what, why, fix)
        self.index = index
        self.item = item
        self.exception = exception
        self.remote_traceback = remote_traceback
        self.backend = backend
        self.results: Dict[int, Any] = {}
        self.failures: List[Failure] = []

    def __reduce__(self):  # keep the attributes across pickling (Dask, processes)
        return (_rebuild_item_error, (type(self), self.what, self.why, self.fix, self.__dict__))


def _rebuild_item_error(cls, what, why, fix, state):
    e = cls.__new__(cls)
    ThreadwiseError.__init__(e, what, why, fix)
    e.__dict__.update(state)
    return e


class WorkerCrashedError(ItemError, BrokenProcessPool):
    """The worker running an item died (os._exit, a signal, a segfault, the OOM killer)."""


# concurrent.futures.TimeoutError is the builtin one from 3.11 on, its own class before
_TIMEOUT_BASES = (TimeoutError,) if cf.TimeoutError is TimeoutError else (TimeoutError, cf.TimeoutError)


class ItemTimeoutError(ItemError, *_TIMEOUT_BASES):  # type: ignore[misc]
    """An item ran longer than ``timeout`` seconds."""


class BackendUnavailableError(UsageError):
    """The backend can't run on this interpreter or without an optional package."""


class _RemoteTraceback(Exception):
    """Carries a worker's traceback as the ``__cause__`` of the exception it raised."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\"\"\"\n%s\"\"\"" % self.tb


# --------------------------------------------------------------------------
# checks at the public boundary
# --------------------------------------------------------------------------
#: the most workers a pool may have (threads, processes, interpreters, LocalCluster
#: processes): past it the system runs out of threads or processes before the map starts
MAX_WORKERS = 1024


def check_fn(fn: Any) -> None:
    if not callable(fn):
        raise NotCallableError(
            "fn must be callable, got %s (a %s)" % (_short_repr(fn), type(fn).__name__),
            "the function and the items were swapped, or a call result was passed instead of "
            "the function (fn() instead of fn)",
            "pass the function itself: pmap(fn, items)")


def check_backend(backend: Any) -> str:
    if not isinstance(backend, str) or backend not in BACKEND_CHOICES:
        raise UsageError(
            "backend must be one of %s, got %s" % (", ".join(repr(b) for b in BACKEND_CHOICES),
                                                   _short_repr(backend)),
            "a misspelt or unsupported backend name",
            "pass backend='auto' to let threadwise measure, or one of the names above")
    return backend


def _as_int(value: Any) -> Optional[int]:
    """``value`` as an int when it is a whole number type (int, numpy.int64), else None
    (bool, float, str, ...: ``True`` is not a count, ``2.0`` and ``"2"`` are not ints)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _got(value: Any) -> str:
    """``got VALUE`` for a message, with the type where the repr hides it (``'2'`` is a str)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "got %s" % _short_repr(value)
    return "got %s (a %s)" % (_short_repr(value), type(value).__name__)


def check_workers(workers: Any, argname: str = "workers") -> Optional[int]:
    """None, or a whole number in [1, MAX_WORKERS] (no upper bound for another ``argname``,
    such as advise's ``max_items``)."""
    if workers is None:
        return None
    n = _as_int(workers)
    pool = argname == "workers"
    none_means = "None (one per CPU)" if pool else "None"
    if n is None:
        raise UsageError(
            "%s must be %s or an integer >= 1, %s" % (argname, none_means, _got(workers)),
            "a count that is not a whole number (a float, a string or a bool)",
            "pass %s=None or a positive integer such as %s=4" % (argname, argname))
    if n < 1:
        raise UsageError("%s must be >= 1, got %d" % (argname, n),
                         "a zero or negative count",
                         "pass %s=None or a positive integer" % argname)
    if pool and n > MAX_WORKERS:
        raise UsageError(
            "workers must be >= 1 and <= %d, got %d" % (MAX_WORKERS, n),
            "that many threads, processes or interpreters exhaust the system (\"can't start new "
            "thread\") before the map starts, and more workers than items or CPUs run nothing "
            "faster",
            "pass workers=None (one per CPU; threads: min(32, cpus + 4)) or at most %d; for "
            "thousands of concurrent waits, use asyncio" % MAX_WORKERS)
    return n


def check_chunksize(chunksize: Any) -> Optional[int]:
    if chunksize is None or (isinstance(chunksize, str) and chunksize == "auto"):
        return None
    n = _as_int(chunksize)
    if n is None or n < 1:
        raise UsageError(
            "chunksize must be 'auto' or an integer >= 1, %s" % _got(chunksize),
            "a chunk holds a whole number of items, at least one",
            "pass chunksize='auto' (sized from the measured time per item) or a positive integer")
    return n


def check_timeout(timeout: Any, argname: str = "timeout") -> Optional[float]:
    """None, or a finite number of seconds > 0 (int, float, numpy float; not bool, nan, inf)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise UsageError(
            "%s must be None or a number of seconds, %s" % (argname, _got(timeout)),
            "a timeout that is not a number",
            "pass %s=None (no limit) or the longest one item may run, in seconds" % argname)
    value = float(timeout)
    if math.isnan(value) or math.isinf(value):
        raise UsageError(
            "%s must be a finite number of seconds, got %s" % (argname, _short_repr(timeout)),
            "nan or infinity is not a time limit",
            "pass %s=None for no limit, or a number of seconds such as %s=30" % (argname, argname))
    if value <= 0:
        raise UsageError(
            "%s must be > 0 seconds, got %s" % (argname, _short_repr(timeout)),
            "a zero or negative timeout would fail every item at once",
            "pass %s=None (no limit) or the longest one item may run, in seconds" % argname)
    return value


def check_errors(errors: Any) -> str:
    if errors not in ERRORS_CHOICES:
        raise UsageError(
            "errors must be 'raise' or 'collect', got %s" % _short_repr(errors),
            "an unknown error policy",
            "pass errors='raise' (stop at the first failure) or errors='collect' "
            "(a Failure in each failed item's place)")
    return errors


def check_bool(value: Any, argname: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError("%s must be True or False, got %s" % (argname, _short_repr(value)),
                         "a non-boolean flag", "pass %s=True or %s=False" % (argname, argname))
    return value


def _short_repr(obj: Any, limit: int = 80) -> str:
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not hide the real error
        text = "<%s object>" % type(obj).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------
# the backend interface
# --------------------------------------------------------------------------
class Backend:
    """A pool of workers the engine sends chunks to (see the module docstring)."""

    name = "?"
    #: seconds of work a chunk should hold: long enough that the per-chunk cost
    #: (messages, wake-ups) is a small share, short enough to balance the load
    chunk_target_s = 0.01
    #: chunks in flight per worker (one running, one waiting)
    inflight_per_worker = 2
    #: the engine's latest measured seconds per item (backends that set deadlines read it)
    item_s_hint = 0.0

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.workers_replaced = 0

    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        raise NotImplementedError

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        raise NotImplementedError

    def abort(self) -> None:
        """Stop running work now (Ctrl-C): cancel what waits, stop or kill what runs."""

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        """Release the workers; ``kill`` ends them without waiting for running work."""

    def describe(self) -> str:
        return "%s x%d" % (self.name, self.workers)


def done_future(value: Any = None, exc: Optional[BaseException] = None) -> "cf.Future[Any]":
    f: "cf.Future[Any]" = cf.Future()
    f.set_running_or_notify_cancel()
    if exc is not None:
        f.set_exception(exc)
    else:
        f.set_result(value)
    return f


def resolve(future: "cf.Future[Any]", value: Any = None, exc: Optional[BaseException] = None) -> bool:
    """Set a future's outcome unless it already has one (a cancelled or timed-out task); True if set."""
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
        return True
    except (cf.InvalidStateError, RuntimeError):
        return False


# --------------------------------------------------------------------------
# the deadline watchdog
# --------------------------------------------------------------------------
class Watchdog:
    """One daemon thread that enforces ``timeout`` for a backend whose calls can't be stopped.

    ::

        backend --watch(key, deadline, what)--> deadlines <--forget(key)-- the chunk finished
        watchdog thread, every ``tick`` s: scan() --> expire(what) for each one past its deadline

    The thread starts at the first :meth:`watch` or :meth:`start` (a map without a
    timeout starts none) and ends at :meth:`close`.  ``scan`` replaces the deadline
    table where the backend finds late work another way (threads read the item each
    worker runs, which costs the worker nothing per item); it returns what is late
    and the seconds until the next look.  ``expire`` runs in the watchdog thread,
    outside the lock.
    """

    def __init__(self, name: str, expire: Callable[[Any], None], tick: float = 0.05,
                 scan: Optional[Callable[[], Tuple[List[Any], float]]] = None) -> None:
        self.name = name
        self.tick = tick
        self._expire = expire
        self._scan = scan if scan is not None else self.due
        self._lock = threading.Lock()
        self._deadlines: Dict[Any, Tuple[float, Any]] = {}   # key -> (time.monotonic(), what)
        self._thread: Optional[threading.Thread] = None
        self._closed = threading.Event()

    def watch(self, key: Any, deadline: float, what: Any) -> None:
        """Expire ``what`` once ``time.monotonic()`` passes ``deadline``, unless forgotten first."""
        with self._lock:
            self._deadlines[key] = (deadline, what)
        self.start()

    def forget(self, key: Any) -> None:
        with self._lock:
            self._deadlines.pop(key, None)

    def drain(self) -> List[Any]:
        """Stop watching everything; returns what was watched."""
        with self._lock:
            watched = [what for _, what in self._deadlines.values()]
            self._deadlines.clear()
        return watched

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._closed.set()

    def due(self) -> Tuple[List[Any], float]:
        """What is past its deadline (no longer watched), and the seconds until the next look."""
        now = time.monotonic()
        with self._lock:
            late = [key for key, (deadline, _) in self._deadlines.items() if now > deadline]
            return [self._deadlines.pop(key)[1] for key in late], self.tick

    def _run(self) -> None:
        while not self._closed.is_set():
            late, tick = self._scan()
            for what in late:
                self._expire(what)
            self._closed.wait(tick)
