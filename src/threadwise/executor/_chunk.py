"""Run one chunk of items through fn, keeping every result and every failure.

Standard library only (cloudpickle when present): this module is imported by
worker processes, sub-interpreters and Dask workers, not only by the host.

A chunk is ``items[0..n)`` whose first item has the index ``base`` in the
user's input.  The runners return ``(results, elapsed, nfail)``: one entry per
item, a :class:`Failed` record where fn raised, so one bad item never loses
the other items' results.

Why ``results.extend(map(fn, items))``: it is the cheapest loop CPython
has (no bytecode per item) and, when fn raises, ``list.extend`` keeps what it
appended before the error (checked at import, on every interpreter we run
on); ``len(results)`` is then the failing item.  The loop resumes after it.
"""
from __future__ import annotations

import os
import pickle
import time
import traceback
from itertools import islice
from typing import Any, Callable, List, Optional, Tuple

#: cloudpickle, imported on first use (None: not installed): a worker process needs it only
#: to send a result plain pickle refuses, and its import is most of a fresh worker's
#: start-up (26 of 37 ms measured here), so it is not imported at start.  (A function
#: pickled by value imports it in the worker through ``pickle.loads`` by itself.)
_CLOUDPICKLE: List[Any] = []


def cloudpickle_module() -> Any:
    """cloudpickle, or None where it is not installed (asked once)."""
    if not _CLOUDPICKLE:
        try:
            import cloudpickle
        except ImportError:  # pragma: no cover - cloudpickle is a dependency; workers may lack it
            cloudpickle = None
        _CLOUDPICKLE.append(cloudpickle)
    return _CLOUDPICKLE[0]


clock = time.perf_counter
PROTOCOL = pickle.HIGHEST_PROTOCOL


class Failed:
    """fn raised on the item at ``index``: the exception (when it pickles) and the traceback."""

    __slots__ = ("index", "exc", "exc_type", "message", "tb", "where")

    def __init__(self, index: int, exc: Optional[BaseException], exc_type: str, message: str,
                 tb: str, where: str = "") -> None:
        self.index = index
        self.exc = exc
        self.exc_type = exc_type
        self.message = message
        self.tb = tb
        self.where = where

    def __reduce__(self):
        return (Failed, (self.index, self.exc, self.exc_type, self.message, self.tb, self.where))

    def __repr__(self) -> str:
        return "Failed(%d, %s: %s)" % (self.index, self.exc_type, self.message)


_HERE = os.path.dirname(os.path.abspath(__file__))


def capture(exc: BaseException, index: int, where: str = "") -> Failed:
    """A Failed record; the traceback starts at fn (threadwise's own frames left out)."""
    tb_obj = exc.__traceback__
    while tb_obj is not None and tb_obj.tb_frame.f_code.co_filename.startswith(_HERE):
        tb_obj = tb_obj.tb_next
    tb = "".join(traceback.format_exception(type(exc), exc, tb_obj or exc.__traceback__))
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable %s>" % type(exc).__name__
    return Failed(index, exc, type(exc).__name__, message, tb, where)


def _extend_keeps_partial() -> bool:
    def f(x: int) -> int:
        if x == 2:
            raise ValueError(x)
        return x
    out: List[int] = []
    try:
        out.extend(map(f, range(4)))
    except ValueError:
        pass
    return out == [0, 1]


EXTEND_KEEPS_PARTIAL = _extend_keeps_partial()


def run_items(fn: Callable[[Any], Any], items: List[Any], base: int, stop_on_error: bool,
              catch: Any = Exception, where: str = "") -> Tuple[List[Any], float, int]:
    """The fast runner: no per-item bookkeeping (serial, threads without a timeout)."""
    results: List[Any] = []
    nfail = 0
    n = len(items)
    pos = 0
    t0 = clock()
    if not EXTEND_KEEPS_PARTIAL:  # pragma: no cover - an interpreter we have not met
        return run_items_loop(fn, items, base, stop_on_error, catch, where)
    while pos < n:
        try:
            results.extend(map(fn, items if pos == 0 else islice(items, pos, None)))
            break
        except catch as e:
            k = len(results)
            results.append(capture(e, base + k, where))
            nfail += 1
            pos = k + 1
            if stop_on_error:
                break
    return results, clock() - t0, nfail


def run_items_loop(fn: Callable[[Any], Any], items: List[Any], base: int, stop_on_error: bool,
                   catch: Any = Exception, where: str = "") -> Tuple[List[Any], float, int]:
    results: List[Any] = []
    app = results.append
    nfail = 0
    t0 = clock()
    for k, x in enumerate(items):
        try:
            app(fn(x))
        except catch as e:
            app(capture(e, base + k, where))
            nfail += 1
            if stop_on_error:
                break
    return results, clock() - t0, nfail


# --------------------------------------------------------------------------
# pickling across processes and interpreters
# --------------------------------------------------------------------------
def dumps(obj: Any) -> bytes:
    """Pickle for another process: by value where plain pickle can't (lambdas, __main__)."""
    cp = cloudpickle_module()
    if cp is not None:
        return cp.dumps(obj, protocol=PROTOCOL)
    return pickle.dumps(obj, protocol=PROTOCOL)


def dumps_results(results: List[Any], base: int = 0) -> Tuple[bytes, int]:
    """Pickle a chunk's results: (bytes, how many results became Failed records because
    they can't be pickled; the others still travel)."""
    try:
        return pickle.dumps(results, protocol=PROTOCOL), 0
    except Exception:
        pass
    try:
        return dumps(results), 0
    except Exception:
        pass
    fixed = []
    bad = 0
    for k, r in enumerate(results):
        try:
            dumps(r)
            fixed.append(r)
        except Exception as e:
            f = capture(e, base + k)
            f.message = "the result can't be sent back to the parent process: %s" % f.message
            f.exc = RuntimeError("%s: %s" % (f.exc_type, f.message))
            fixed.append(f)
            bad += 1
    return dumps(fixed), bad


def sendable_failure(f: Failed) -> Failed:
    """Drop an exception object that won't pickle (its type, message and traceback stay)."""
    if f.exc is not None and not _picklable(f.exc):
        f.exc = None
    return f


def _picklable(obj: Any) -> bool:
    try:
        dumps(obj)
        return True
    except Exception:
        return False


def run_pickled(payload: bytes) -> bytes:
    """Sub-interpreter entry point: ``(fn, base, items, stop)`` in, ``(results, elapsed, nfail)`` out."""
    fn, base, items, stop = pickle.loads(payload)
    results, elapsed, nfail = run_items(fn, items, base, stop, BaseException, "interpreter")
    for r in results:
        if isinstance(r, Failed):
            sendable_failure(r)
    data, bad = dumps_results(results, base)
    return dumps([pickle.loads(data), elapsed, nfail + bad])


def run_remote(fn: Callable[[Any], Any], base: int, items: List[Any], stop: bool,
               where: str = "dask") -> Tuple[List[Any], float, int]:
    """Dask task: run a chunk on a Dask worker (the results travel by Dask's own pickling)."""
    results, elapsed, nfail = run_items(fn, items, base, stop, Exception, where)
    for r in results:
        if isinstance(r, Failed):
            sendable_failure(r)
    return results, elapsed, nfail
