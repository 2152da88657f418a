"""The loop a worker process runs: receive a chunk, run it, send the results back.

Started by ``processes.py``'s manager thread, either by ``os.fork()`` (when no
other thread could hold a lock the child needs: fast, nothing is re-imported) or
as a fresh interpreter (``python -S -c 'from threadwise.executor._worker import
main; main()'`` with the parent's ``sys.path``: safe with threads, never re-runs
the user's ``__main__``).  A worker serves one pool for its whole life, map after
map (the shared pool behind ``pmap`` keeps it warm between calls).

Messages, each one pickled frame on the worker's own socket::

    parent -> worker   ("fn",    fid, fn_bytes, filename, sys_path, drop)  once per worker
                                 and function; ``drop``: fids to forget (the parent's LRU)
                       ("chunk", tid, fid, base, timed, stop, items_bytes, track)
                       ("call",  tid, fid, args_bytes)
                       ("stop",)
    worker -> parent   ("ready", pid)                                  once, when it starts
                       ("done",  tid, elapsed, nfail, results_bytes, load_s)
                       ("ok",    tid, value_bytes)  |  ("err", tid, Failed)

``load_s`` is the time spent loading functions (unpickling: importing their
modules) since the previous reply: the parent learns what a cold worker costs.

Invariant the parent relies on to name the item that killed a worker: before
each item of a ``track``-ed chunk the worker writes the item's index into its
slot of a shared memory block (and, for a map with a timeout, the time it
started); it writes -1 when the chunk is over.  A chunk of tiny items runs
untracked (the slot reads UNTRACKED): when its worker dies, the parent runs
it again, tracked.

No orphans: the first thing a worker does is ask the kernel to SIGKILL it when the
thread that started it (the pool's long-lived manager thread) goes
(``threadwise._lifetime.die_with_parent``, Linux); a watch thread that exits
when the parent pid changes is the second line (other systems).
"""
from __future__ import annotations

import marshal
import mmap
import os
import pickle
import signal
import struct
import sys
import threading
import time
import types
from typing import Any, Dict, List, Optional, Tuple

from .._lifetime import die_with_parent
from . import _chunk

PROTOCOL = pickle.HIGHEST_PROTOCOL
SLOT_BYTES = 16  # int64 index of the running item, float64 time it started
UNTRACKED = -2   # the slot's index while a chunk runs without per-item bookkeeping


class _LoadFailed:
    def __init__(self, failed: _chunk.Failed) -> None:
        self.failed = failed


def _refile(fn: Any, filename: Optional[str]) -> Any:
    """Give a function cloudpickle sent by value its file name back (cloudpickle 3 writes
    "<dynamic-code>"), and so do the functions of the same module it refers to: the
    worker's tracebacks then name the user's file and show its lines."""
    if not filename or not isinstance(fn, types.FunctionType):
        return fn

    def fix(code: types.CodeType) -> types.CodeType:
        if code.co_filename != "<dynamic-code>":
            return code
        consts = tuple(fix(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
        return code.replace(co_filename=filename, co_consts=consts)

    try:
        fn.__code__ = fix(fn.__code__)
        for g in list(fn.__globals__.values()):
            if isinstance(g, types.FunctionType) and g.__module__ == fn.__module__:
                g.__code__ = fix(g.__code__)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - an exotic callable
        pass
    return fn


def _watch_parent(ppid: int) -> None:
    while True:
        time.sleep(0.25)
        if os.getppid() != ppid:
            os._exit(3)


def serve(conn: Any, mm: mmap.mmap, slot: int, ppid: int, native_threads: int = 0) -> None:
    """Serve tasks on ``conn`` until "stop" or the parent goes away; ``native_threads``
    (forked workers): this worker's share of the CPUs for native thread pools."""
    die_with_parent(ppid)   # first: a watch thread can't run while fn holds the GIL in C
    if native_threads:
        limit_native_threads(native_threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(ppid,), name="threadwise-orphan-watch",
                     daemon=True).start()
    state = _RunningSlot(mm, slot)
    where = "worker process pid %d" % os.getpid()
    fns: Dict[int, Any] = {}   # fid -> fn (or _LoadFailed), kept across maps
    recv = conn.recv_bytes
    send = conn.send_bytes
    loads = pickle.loads
    load_s = 0.0
    send(pickle.dumps(("ready", os.getpid()), PROTOCOL))
    while True:
        try:
            msg = loads(recv())
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "chunk":
            send(_run_chunk(msg, fns, state, where, load_s))
            load_s = 0.0
        elif kind == "fn" or kind == "load":
            # "fn": the function the next chunk needs; "load": the same, sent ahead of
            # any chunk (the parent preloads while it runs items itself): answered
            t0 = _chunk.clock()
            _, fid, data, filename, path, drop = msg
            for old in drop:
                fns.pop(old, None)
            if path is not None and sys.path != path:
                sys.path[:] = path   # the parent's, now: a module imported since can be found
            fns[fid] = _load_fn(data, filename, where)
            if kind == "load":
                send(pickle.dumps(("loaded", fid, _chunk.clock() - t0), PROTOCOL))
            else:
                load_s += _chunk.clock() - t0
        elif kind == "call":
            send(_call(msg, fns, state, where))
        elif kind == "stop":
            return


class _RunningSlot:
    """This worker's slot of the shared memory block: the index of the running item
    (-1: none) and, in a map with a timeout, the time it started (see the module doc)."""

    __slots__ = ("cur", "tm", "k")

    def __init__(self, mm: mmap.mmap, slot: int) -> None:
        self.cur = memoryview(mm).cast("q")
        self.tm = memoryview(mm).cast("d")
        self.k = 2 * slot
        self.cur[self.k] = -1


def _load_fn(data: bytes, filename: Optional[str], where: str) -> Any:
    """The function of a "fn" message, or a _LoadFailed that every item it runs on reports."""
    try:
        return _refile(pickle.loads(data), filename)
    except BaseException as e:
        f = _chunk.capture(e, -1, where)
        f.message = "fn can't be unpickled in the worker process: " + f.message
        return _LoadFailed(_chunk.sendable_failure(f))


def _run_chunk(msg: Tuple[Any, ...], fns: Dict[int, Any], state: _RunningSlot, where: str,
               load_s: float = 0.0) -> bytes:
    """Run a "chunk" message's items; the pickled "done" reply.

    ``track`` False (tiny items, no timeout): the items run without the per-item index
    in the slot (``results.extend(map(fn, items))``: that bookkeeping would double the
    cost of a 50 ns item); the slot reads UNTRACKED meanwhile, and should the worker
    die, the parent runs the chunk again tracked to name the item."""
    _, tid, fid, base, timed, stop, payload, track = msg
    fn: Any = fns.get(fid)
    results: List[Any] = []
    nfail = 0
    t0 = _chunk.clock()
    try:
        items = pickle.loads(payload)
    except BaseException as e:
        f = _chunk.capture(e, base, where)
        f.message = "the items can't be unpickled in the worker: " + f.message
        items = []
        results.append(f)
        nfail = 1
    if isinstance(fn, _LoadFailed):
        for j in range(len(items)):
            results.append(_chunk.Failed(base + j, fn.failed.exc, fn.failed.exc_type,
                                         fn.failed.message, fn.failed.tb, where))
            nfail += 1
            if stop:
                break
    elif track or timed:
        nfail += _run_items(fn, items, base, stop, timed, results, state, where)
    else:
        state.cur[state.k] = UNTRACKED
        out, _, nf = _chunk.run_items(fn, items, base, stop, BaseException, where)
        results.extend(out)
        nfail += nf
    elapsed = _chunk.clock() - t0
    state.cur[state.k] = -1
    if nfail:
        for r in results:
            if isinstance(r, _chunk.Failed):
                _chunk.sendable_failure(r)
    data, bad = _chunk.dumps_results(results, base)
    return pickle.dumps(("done", tid, elapsed, nfail + bad, data, load_s), PROTOCOL)


def _run_items(fn: Any, items: List[Any], base: int, stop: bool, timed: bool,
               results: List[Any], state: _RunningSlot, where: str) -> int:
    """fn over items into ``results``, the running item's index in the slot before each
    call (and, ``timed``, the time it started); returns the number of failures.

    Two loops, not one with ``if timed:`` inside: the test costs every item ~3 ns (4% of
    this loop on tiny items), for the rare map with a timeout."""
    app = results.append
    capture = _chunk.capture
    cur, tm, k = state.cur, state.tm, state.k
    nfail = 0
    i = base
    if timed:
        monotonic = time.monotonic
        for x in items:
            cur[k] = i
            tm[k + 1] = monotonic()
            try:
                app(fn(x))
            except BaseException as e:
                app(capture(e, i, where))
                nfail += 1
                if stop:
                    break
            i += 1
    else:
        for x in items:
            cur[k] = i
            try:
                app(fn(x))
            except BaseException as e:
                app(capture(e, i, where))
                nfail += 1
                if stop:
                    break
            i += 1
    return nfail


def _call(msg: Tuple[Any, ...], fns: Dict[int, Any], state: _RunningSlot, where: str) -> bytes:
    """Run a "call" message (``Executor.submit``); the pickled "ok" or "err" reply."""
    _, tid, fid, payload = msg
    fn: Any = fns.get(fid)
    state.cur[state.k] = 0
    reply: Tuple[Any, ...]
    try:
        if isinstance(fn, _LoadFailed):
            reply = ("err", tid, fn.failed)
        else:
            args, kwargs = pickle.loads(payload)
            value = fn(*args, **kwargs)
            reply = ("ok", tid, _chunk.dumps(value))
    except BaseException as e:
        reply = ("err", tid, _chunk.sendable_failure(_chunk.capture(e, -1, where)))
    state.cur[state.k] = -1
    try:
        return pickle.dumps(reply, PROTOCOL)
    except Exception as e:
        return pickle.dumps(("err", tid, _chunk.sendable_failure(_chunk.capture(e, -1, where))),
                            PROTOCOL)


class Channel:
    """``multiprocessing.connection.Connection``'s framing on a socket's descriptor (a
    big-endian int32 length, or -1 and a uint64 one, then the bytes), without importing
    multiprocessing: a fresh worker starts ~10 ms sooner."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _read(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = os.readv(self.fd, [view[got:]])
            if k == 0:
                raise EOFError
            got += k
        return buf

    def recv_bytes(self) -> bytearray:
        n = struct.unpack("!i", self._read(4))[0]
        if n == -1:
            n = struct.unpack("!Q", self._read(8))[0]
        return self._read(n)

    def _write(self, data: Any) -> None:
        view = memoryview(data)
        while len(view):
            view = view[os.write(self.fd, view):]

    def send_bytes(self, data: bytes) -> None:
        n = len(data)
        if n > 0x7fffffff:
            self._write(struct.pack("!iQ", -1, n))
        elif n <= 16384:
            self._write(struct.pack("!i", n) + data)
            return
        else:
            self._write(struct.pack("!i", n))
        self._write(data)


def main() -> None:
    """Entry point of a spawned worker: ``argv = [conn_fd, shm_fd, shm_size, slot, ppid]``."""
    conn_fd, shm_fd, size, slot, ppid = (int(a) for a in sys.argv[1:6])
    mm = mmap.mmap(shm_fd, size)
    code = 0
    try:
        serve(Channel(conn_fd), mm, slot, ppid)
    except BaseException:  # pragma: no cover - a bug in the loop itself: say so, exit non-zero
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def bootstrap_code() -> str:
    """The ``-c`` program of a spawned worker: the parent's sys.path, then :func:`main`.

    It loads this module (and the two it needs) under stand-in ``threadwise`` and
    ``threadwise.executor`` packages, dropped right after: the real packages'
    ``__init__`` would import the whole library (~40 ms) for nothing; a function that
    needs ``threadwise`` later imports the real thing, which finds these modules loaded."""
    return ("import sys, os, types, marshal\n"
            "e = os.environ\n"
            "sys.path[:] = marshal.loads(bytes.fromhex(e.pop('THREADWISE_WORKER_PATH')))\n"
            "root = e.pop('THREADWISE_WORKER_ROOT')\n"
            "for name, where in (('threadwise', root), ('threadwise.executor', root + '/executor')):\n"
            "    m = sys.modules[name] = types.ModuleType(name)\n"
            "    m.__path__ = [where]\n"
            "from threadwise.executor._worker import main\n"
            "del sys.modules['threadwise'], sys.modules['threadwise.executor']\n"
            "main()\n")


def parent_path() -> List[str]:
    """This process's ``sys.path`` as absolute paths, with threadwise's own directory."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [p for p in sys.path]
    if here not in path:
        path.insert(0, here)
    return [os.path.abspath(p) if p else os.getcwd() for p in path]


#: the variables native thread pools (OpenBLAS, MKL, OpenMP, Accelerate, BLIS, numexpr)
#: read for their size when they are loaded
NATIVE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                      "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def native_thread_env(threads: int) -> Dict[str, str]:
    """Each worker's share of the CPUs for the native thread pools its calls may start,
    where the user has not sized them: W workers each running a BLAS pool of one thread
    per CPU oversubscribe the machine W times (numpy's matmul on 2 processes ran 6x
    slower than serially here).  loky (joblib) does the same."""
    if any(v in os.environ for v in NATIVE_THREAD_VARS):
        return {}
    return {v: str(max(1, threads)) for v in NATIVE_THREAD_VARS}


def limit_native_threads(threads: int) -> None:
    """In a forked worker: the native thread pools the parent already loaded (numpy's BLAS)
    are sized by then, so limit them through threadpoolctl; those loaded later read the
    environment.  Nothing when the user sized them (the environment names a size)."""
    env = native_thread_env(threads)
    if not env:
        return
    os.environ.update(env)
    if "numpy" in sys.modules or "scipy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(limits=max(1, threads))
        except Exception:   # pragma: no cover - threadpoolctl missing or a library it can't drive
            pass


def worker_env(threads: int = 0) -> Dict[str, str]:
    """What a fresh worker's :func:`bootstrap_code` reads from its environment, and its
    share of the CPUs for native thread pools (``threads``; 0: not limited)."""
    env = {"THREADWISE_WORKER_PATH": marshal.dumps(parent_path()).hex(),
           "THREADWISE_WORKER_ROOT": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    if threads:
        env.update(native_thread_env(threads))
    return env
