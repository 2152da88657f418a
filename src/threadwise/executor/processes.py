"""The processes backend: a small pool of worker processes that never hangs on a dead worker.

::

    caller thread                     manager thread                      worker k
    submit_chunk: pickle items  -->   pending deque --send to idle-->   socket k  --> run chunk
    (cloudpickle, in the caller)      wait([socket 1..W, wake pipe])  <-- results
                                      sets Future(ChunkDone|ChunkBroken)
                                      EOF on socket k / waitpid: worker k died
                                      --> ChunkBroken(crash, index from shared slot k),
                                          start a replacement in slot k
                                      item in slot k past its timeout: SIGKILL, same path

Ideas taken from loky, not its code: one socket per worker (a dead worker can
only corrupt its own channel, so only it is replaced, the other workers keep
their chunks); the parent watches every worker's socket and exit status, so
a death is noticed at once, where ``multiprocessing.Pool`` waits forever for
a result that will never come; the error names the exit code or the signal.

A worker is started by ``os.fork()`` while the parent has one thread (a few
milliseconds, inherits the parent's modules), else as a fresh ``python -S``
given the parent's ``sys.path`` (safe when threads run, never re-executes the
user's unguarded ``__main__``).  Replacements are always fresh interpreters:
the manager thread runs by then.  Functions travel by cloudpickle (lambdas and
closures work), once per worker; items by cloudpickle too, results back by
pickle (cloudpickle when pickle can't).

Workers ignore SIGINT (Ctrl-C is the parent's to handle: it kills them) and
exit when their parent disappears, so none outlives it.
"""
from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import mmap
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing.connection import Connection, wait as mp_wait
from typing import Any, Callable, Deque, List, Mapping, Optional, Sequence, Set, Tuple

from ..errors import UsageError
from . import _chunk, _worker
from ._base import (STARTUP_S, Backend, ChunkBroken, ChunkDone, WorkerCrashedError,
                    default_start_method, resolve)

PROTOCOL = pickle.HIGHEST_PROTOCOL
START_METHODS = ("fork", "spawn")
_POOLS: "weakref.WeakSet[ProcessBackend]" = weakref.WeakSet()


class FunctionNotPicklable(UsageError, TypeError):
    """fn can't be sent to a worker process."""


class _Task:
    __slots__ = ("future", "tid", "fid", "kind", "base", "n", "timeout", "data", "aborted")

    def __init__(self, future: "cf.Future[Any]", tid: int, fid: int, kind: str, base: int, n: int,
                 timeout: Optional[float], data: bytes) -> None:
        self.future = future
        self.tid = tid
        self.fid = fid
        self.kind = kind            # "chunk" | "call"
        self.base = base
        self.n = n
        self.timeout = timeout
        self.data = data            # the pickled message for the worker
        self.aborted = False


class _Proc:
    __slots__ = ("slot", "pid", "conn", "popen", "task", "fns", "dead", "status")

    def __init__(self, slot: int, pid: int, conn: Connection, popen: Optional[subprocess.Popen]) -> None:
        self.slot = slot
        self.pid = pid
        self.conn = conn
        self.popen = popen
        self.task: Optional[_Task] = None
        self.fns: Set[int] = set()
        self.dead = False            # death handled (task failed, replacement started)
        self.status: Optional[int] = None  # wait status once reaped


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
    name = "processes"
    chunk_target_s = 0.05

    def __init__(self, workers: int, start_method: Optional[str] = None) -> None:
        super().__init__(workers)
        if start_method is not None and start_method not in START_METHODS:
            raise UsageError("start_method must be None, 'fork' or 'spawn', got %r" % (start_method,),
                             "an unknown way to start worker processes",
                             "leave start_method=None: fork while the process has one thread, "
                             "spawn otherwise")
        if start_method == "fork" and not hasattr(os, "fork"):
            raise UsageError("start_method='fork' is not available on this platform",
                             "os.fork() does not exist here", "use start_method='spawn'")
        self.start_method = start_method or default_start_method()
        self._lock = threading.Lock()
        self._pending: Deque[_Task] = collections.deque()
        self._tids = 0
        self._fn_ids: "collections.OrderedDict[int, Tuple[Any, int, bytes, Optional[str]]]" = \
            collections.OrderedDict()
        self._fids = 0
        self._closing = False
        self._killing = False
        self._ppid = os.getpid()
        # the shared slots: [index of the running item, time it started] per worker
        size = max(mmap.PAGESIZE, _worker.SLOT_BYTES * workers)
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
        for s in range(workers):
            self._cur[2 * s] = -1
        t0 = time.perf_counter()
        self._procs: List[_Proc] = []
        try:
            for slot in range(workers):
                self._procs.append(self._start_worker(slot, self.start_method))
        except BaseException:
            self._kill_all(reap=True)
            raise
        STARTUP_S[self.start_method] = 0.5 * STARTUP_S[self.start_method] + \
            0.5 * (time.perf_counter() - t0)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        _POOLS.add(self)
        self._manager = threading.Thread(target=self._manage, name="threadwise-process-manager",
                                         daemon=True)
        self._manager.start()

    # -- starting workers -------------------------------------------------
    def _start_worker(self, slot: int, method: str) -> _Proc:
        parent_sock, child_sock = socket.socketpair()
        self._cur[2 * slot] = -1
        if method == "fork":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: never returns
                code = 1
                try:
                    parent_sock.close()
                    for p in self._procs:
                        try:
                            p.conn.close()
                        except OSError:
                            pass
                    _worker.serve(Connection(child_sock.detach()), self._mm, slot, self._ppid)
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
            child_sock.close()
            return _Proc(slot, pid, Connection(parent_sock.detach()), None)
        env = dict(os.environ)
        env["THREADWISE_WORKER_PATH"] = _worker.worker_path()
        child_fd = child_sock.fileno()
        popen = subprocess.Popen(
            [sys.executable, "-S", "-c", _worker.bootstrap_code(), str(child_fd), str(self._shm_fd),
             str(self._shm_size), str(slot), str(self._ppid)],
            pass_fds=(child_fd, self._shm_fd), env=env, stdin=subprocess.DEVNULL)
        child_sock.close()
        return _Proc(slot, popen.pid, Connection(parent_sock.detach()), popen)

    # -- submission (caller's thread) -------------------------------------
    def _fid(self, fn: Callable[..., Any]) -> int:
        key = id(fn)
        entry = self._fn_ids.get(key)
        if entry is not None and entry[0] is fn:
            self._fn_ids.move_to_end(key)
            return entry[1]
        try:
            data = _chunk.dumps(fn)
        except Exception as e:
            raise FunctionNotPicklable(
                "fn %r can't be sent to a worker process: %s: %s" % (
                    getattr(fn, "__qualname__", fn), type(e).__name__, e),
                "fn (or something it refers to: a lock, an open file, a socket, a database "
                "connection) can't be pickled%s" % ("" if _chunk._cloudpickle else
                                                     ", and cloudpickle is not installed"),
                "use backend='threads' (nothing is pickled), or create the unpicklable object "
                "inside fn, or define fn at module level") from e
        self._fids += 1
        code = getattr(fn, "__code__", None)
        self._fn_ids[key] = (fn, self._fids, data, getattr(code, "co_filename", None))
        while len(self._fn_ids) > 64:
            self._fn_ids.popitem(last=False)
        return self._fids

    def _fn_data(self, fid: int) -> Optional[Tuple[bytes, Optional[str]]]:
        for fn, f, data, filename in self._fn_ids.values():
            if f == fid:
                return data, filename
        return None

    def _enqueue(self, task: _Task) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.append(task)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        fid = self._fid(fn)
        try:
            payload = _chunk.dumps(items)
        except Exception as e:
            bad = _first_unpicklable(items)
            raise FunctionNotPicklable(
                "item #%d can't be sent to a worker process: %s: %s" % (
                    base + bad, type(e).__name__, e),
                "the item (or something inside it) can't be pickled",
                "use backend='threads', or pass items that pickle (plain data, paths, ids)") from e
        with self._lock:
            self._tids += 1
            tid = self._tids
        data = pickle.dumps(("chunk", tid, fid, base, timeout is not None, stop_on_error, payload),
                            PROTOCOL)
        f: "cf.Future[Any]" = cf.Future()
        self._enqueue(_Task(f, tid, fid, "chunk", base, len(items), timeout, data))
        return f

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        fid = self._fid(fn)
        try:
            payload = _chunk.dumps((tuple(args), dict(kwargs)))
        except Exception as e:
            raise FunctionNotPicklable(
                "the arguments can't be sent to a worker process: %s: %s" % (type(e).__name__, e),
                "an argument can't be pickled", "use backend='threads'") from e
        with self._lock:
            self._tids += 1
            tid = self._tids
        data = pickle.dumps(("call", tid, fid, payload), PROTOCOL)
        f: "cf.Future[Any]" = cf.Future()
        self._enqueue(_Task(f, tid, fid, "call", 0, 1, None, data))
        return f

    # -- the manager thread -----------------------------------------------
    def _manage(self) -> None:
        last_poll = time.monotonic()
        try:
            while True:
                self._dispatch()
                with self._lock:
                    busy = any(p.task is not None for p in self._procs)
                    if self._closing and not self._pending and not busy:
                        break
                    # a dead worker not replaced (the pool is closing) has a closed socket
                    procs = [p for p in self._procs if not p.dead]
                    timeouts = [p.task.timeout for p in procs if p.task is not None and p.task.timeout]
                tick = 0.25
                if timeouts:
                    tick = max(0.005, min(tick, min(timeouts) / 10.0))
                ready = mp_wait([p.conn for p in procs] + [self._wake_r], timeout=tick)
                by_conn = {id(p.conn): p for p in procs}
                for r in ready:
                    if r == self._wake_r:
                        try:
                            os.read(self._wake_r, 65536)
                        except OSError:
                            pass
                        continue
                    p = by_conn.get(id(r))
                    if p is not None and not p.dead and not self._receive(p):
                        self._on_death(p, "crash", None)
                if timeouts:
                    self._check_timeouts()
                now = time.monotonic()
                if now - last_poll > 0.5:
                    last_poll = now
                    for p in procs:
                        if not p.dead and _exited(p) is not None:
                            self._on_death(p, "crash", None)
        except BaseException as e:  # pragma: no cover - a bug here must not hang the caller
            with self._lock:
                tasks = list(self._pending) + [p.task for p in self._procs if p.task is not None]
                self._pending.clear()
            for t in tasks:
                resolve(t.future, exc=e)
            raise
        finally:
            self._stop_workers()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                idle = [p for p in self._procs if p.task is None and not p.dead]
                if not idle:
                    return
                task = self._pending.popleft()
                if not task.future.set_running_or_notify_cancel():
                    continue
                p = idle[0]
                p.task = task
            try:
                if task.fid not in p.fns:
                    data = self._fn_data(task.fid)
                    if data is None:  # pragma: no cover - evicted while queued: very old fn
                        raise RuntimeError("fn is no longer known to the pool")
                    p.conn.send_bytes(pickle.dumps(("fn", task.fid) + data, PROTOCOL))
                    p.fns.add(task.fid)
                p.conn.send_bytes(task.data)
            except (OSError, EOFError):
                self._on_death(p, "crash", None)
            except Exception as e:  # pragma: no cover
                with self._lock:
                    p.task = None
                resolve(task.future, exc=e)

    def _receive(self, p: _Proc) -> bool:
        """Handle one reply from ``p``; False when its socket is closed (it died)."""
        try:
            data = p.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        task = p.task
        with self._lock:
            p.task = None
        if task is None:  # pragma: no cover - a reply to a task already given up on
            return True
        try:
            msg = pickle.loads(data)
            if msg[0] == "done":
                _, tid, elapsed, nfail, rdata = msg
                resolve(task.future, ChunkDone(pickle.loads(rdata), elapsed, nfail))
            elif msg[0] == "ok":
                resolve(task.future, pickle.loads(msg[2]))
            else:
                failed = msg[2]
                exc = failed.exc if failed.exc is not None else RuntimeError(
                    "%s: %s" % (failed.exc_type, failed.message))
                exc.__cause__ = _remote(failed.tb)
                resolve(task.future, exc=exc)
        except BaseException as e:  # an unpicklable result class, a truncated frame
            resolve(task.future, exc=e)
        return True

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
        """Worker ``p`` died (or was killed): fail its task, start a replacement in its slot."""
        if p.dead:
            return
        if p.task is not None and kind == "crash":
            try:  # a reply sent just before dying still counts
                while p.task is not None and p.conn.poll(0) and self._receive(p):
                    pass
            except (OSError, EOFError):
                pass
        if p.dead:
            return
        p.dead = True
        status = _reap(p)
        detail, code = describe_status(status)
        if kind == "crash":
            index = self._cur[2 * p.slot]
        try:
            p.conn.close()
        except OSError:
            pass
        with self._lock:
            task, p.task = p.task, None
            replace = not (self._closing and (self._killing or not self._pending))
        if replace:
            try:
                new = self._start_worker(p.slot, "spawn")
            except Exception as e:  # pragma: no cover - can't start a process at all
                with self._lock:
                    pending = list(self._pending)
                    self._pending.clear()
                for t in pending + ([task] if task else []):
                    resolve(t.future, exc=e)
                return
            with self._lock:
                self._procs[self._procs.index(p)] = new
                self.workers_replaced += 1
        if task is None:
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

    # -- stopping ---------------------------------------------------------
    def abort(self) -> None:
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            running = [p for p in self._procs if p.task is not None]
            for p in running:
                p.task.aborted = True  # type: ignore[union-attr]
        for t in pending:
            t.future.cancel()
        for p in running:
            _kill(p.pid)
        self._wake()

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
        for p in self._procs:
            if not p.dead:
                try:
                    p.conn.send_bytes(pickle.dumps(("stop",), PROTOCOL))
                except OSError:
                    pass
        deadline = time.monotonic() + 2.0
        for p in self._procs:
            if p.dead:
                continue
            while _exited(p) is None:
                if time.monotonic() > deadline:
                    _kill(p.pid)
                    _reap(p)
                    break
                time.sleep(0.005)
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
        for p in getattr(self, "_procs", []):
            if not p.dead:
                _kill(p.pid)
        if reap:
            for p in getattr(self, "_procs", []):
                _reap(p)

    def pids(self) -> List[int]:
        """The worker processes' ids (for tests and the curious)."""
        with self._lock:
            return [p.pid for p in self._procs if not p.dead]



_CRASH_WHY = ("fn crashed the worker process: a segmentation fault in a C extension, os._exit(), "
              "a signal (kill -9, or the out-of-memory killer when the item needs too much memory)")


def _remote(tb: str) -> BaseException:
    from ._base import _RemoteTraceback
    return _RemoteTraceback(tb)


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
        time.sleep(0.002)


def _first_unpicklable(items: List[Any]) -> int:
    for k, x in enumerate(items):
        try:
            _chunk.dumps(x)
        except Exception:
            return k
    return 0


@atexit.register
def _kill_pools_at_exit() -> None:
    for pool in list(_POOLS):
        try:
            pool.shutdown(wait=False, kill=True)
        except Exception:
            pass
