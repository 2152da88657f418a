"""The Dask backend: the same map, on a Dask cluster, for work that outgrows one machine.

::

    engine --submit_chunk--> client.submit(run_chunk, fn, base, items, stop, timeout)
                             Dask scheduler --> worker (any machine):
                               run_chunk: the items in order; with a timeout, in a helper
                               thread, each item timed from its own start by the task's thread
           <-- done callback: ("done", results, ...)      -> ChunkDone
                              ("timeout", index, before)  -> ChunkBroken(timeout, index)
                              KilledWorker, or the result lost with its worker
                                  --> suspects --> triage thread (below)
    triage thread: holds new chunks back, waits until no other chunk runs, then runs
        each suspect *alone* on the cluster:
          it finishes            -> ChunkDone (it was a bystander of another chunk's crash)
          its worker dies again  -> bisect it, each half alone, down to the one item
                                    that kills a worker -> ChunkBroken(crash, index)
        then sends the held chunks.

Dask costs milliseconds per task (``Client.map`` on tiny items: ~2.8 ms per
item), so items travel in chunks of about ``chunk_target_s`` = 0.2 s of work,
sized from the measured time per item: the per-item overhead drops to
microseconds.

``address=None`` starts a ``LocalCluster`` on 127.0.0.1 (one single-threaded
worker process per CPU) and closes it at shutdown.  Dask always starts an HTTP
server in the scheduler (health and metrics routes): here it listens on a free
port of 127.0.0.1 with the dashboard off, never on 8787; the scratch files
(``dask-scratch-space``) go to a temporary directory removed at shutdown, never
to the current directory.  ``address=`` a scheduler (``"tcp://10.0.0.5:8786"``),
a ``distributed.Client`` or a cluster object uses that instead: the step from a
laptop to a cluster is that one argument.  An optional extra:
``pip install 'threadwise[dask]'``.

Why crashes are triaged: when a worker dies, Dask fails (``KilledWorker``) or
re-runs every task the scheduler had sent to it, the one that killed it and
the bystanders queued behind it alike, and a finished result not yet fetched
dies with it.  Dask can't tell them apart; running each suspect alone can.  Our
own LocalCluster's scheduler has ``allowed_failures=0`` (one death is enough to
hand a task back, so a killer costs one worker per run, not four); a cluster
given by ``address`` keeps its own setting (the triage is the same, slower).
Killers bisected one after another kill workers faster than Dask expects: our
cluster keeps every nanny however often its worker dies (:func:`_keep_nannies`).

Why timeouts are timed on the worker: a chunk waits in Dask's queues for an
unknown time, so a deadline set at submission blames the chunks queued behind
a hung one.  The worker's task thread times each item from its start instead
and, past ``timeout``, returns the results before it; the hung call is left
running in its helper thread (a thread can't be stopped; our LocalCluster's
workers end with the cluster) and the worker goes on with other chunks.  A call
that holds the GIL inside C code for good freezes its whole worker, that thread
too; Dask's heartbeat limit (``distributed.scheduler.worker-ttl``) is then the
only backstop, as no deadline is kept on the host.

A script that calls ``pmap(..., backend="dask")`` at its top level, without
``if __name__ == "__main__":``, can't start a LocalCluster: Dask's workers
start as fresh interpreters (multiprocessing ``spawn``) that import the script
again, run the map again, and die ("Nanny failed to start", a traceback per
worker).  :func:`check_main_guard` finds the unguarded call on the stack first
and raises one error saying so (the processes backend never re-imports the
script, so it needs no guard).
"""
from __future__ import annotations

import ast
import collections
import concurrent.futures as cf
import itertools
import linecache
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import types
import uuid
import weakref
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from ..errors import UsageError
from . import _chunk
from ._base import Backend, BackendUnavailableError, ChunkBroken, ChunkDone, resolve
from ._cpus import cpu_count

clock = _chunk.clock

#: what a task returns: ("done", results, elapsed, nfail)
#: or ("timeout", index, the results before it, elapsed)
TaskResult = Tuple[Any, ...]

#: the name of our LocalCluster's scratch directory, in the temporary directory
SCRATCH_PREFIX = "threadwise-dask-"

TIMEOUT_DETAIL = ("fn was left running in a background thread of its Dask worker (a thread can't "
                  "be stopped); the worker went on with other chunks")


def _import() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise BackendUnavailableError(
            "backend='dask' needs the dask.distributed package, which is not installed (%s)" % e,
            "Dask is an optional extra of threadwise",
            "pip install 'threadwise[dask]' (or pip install 'dask[distributed]')") from None
    return distributed


def check_address(address: str, timeout: float = 3.0) -> Tuple[str, int]:
    """Fail at once, with one clear message, when nobody listens at ``address``."""
    text = address if "://" in address else "tcp://" + address
    try:
        parsed = urlparse(text)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(
            "address must look like 'tcp://host:port', got %r" % (address,),
            "no host or no port in the scheduler address",
            "pass the address the Dask scheduler prints (e.g. 'tcp://10.0.0.5:8786'), or leave "
            "address out for a LocalCluster on 127.0.0.1")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(
            "address=%r: nobody listens there (%s)" % (address, e.strerror or e),
            "no Dask scheduler runs at that host and port, or a firewall blocks it",
            "start one (`dask scheduler`, then `dask worker %s` on each machine), fix the "
            "address, or leave address out for a LocalCluster on 127.0.0.1" % text) from None
    return host, port


# --------------------------------------------------------------------------
# the unguarded __main__
# --------------------------------------------------------------------------
def _reimported_main() -> Optional[Any]:
    """The ``__main__`` module when a spawned process would import it again (a script, or
    ``python -m module``), else None (interactive, ``-c``, a package's ``__main__``)."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if spec_name is not None:  # multiprocessing's own rule: a __main__.py is never re-run
        return None if spec_name == "__main__" or spec_name.endswith(".__main__") else main
    path = getattr(main, "__file__", None)
    if not path or os.path.splitext(os.path.basename(path))[0] == "__main__":
        return None
    return main


def _under_name_test(tree: ast.AST, lineno: int) -> bool:
    """Whether ``lineno`` lies inside an ``if`` whose test reads ``__name__``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            if any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node.test)):
                return True
    return False


def unguarded_call() -> Optional[Tuple[str, int]]:
    """(file, line) of the main script's top-level statement that led here when it is not
    under ``if __name__ == "__main__":`` and a spawned process would run it again; else None."""
    main = _reimported_main()
    if main is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            break
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    lines = linecache.getlines(filename)
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        return None
    if not lines or _under_name_test(tree, lineno):
        return None
    return filename, lineno


def check_main_guard() -> None:
    """Raise one clear error where a LocalCluster's workers would re-run the user's script."""
    import dask
    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return
    found = unguarded_call()
    if found is None:
        return
    filename, lineno = found
    raise UsageError(
        "backend='dask' can't start a LocalCluster from %s: the map runs from the script's top "
        "level (line %d), outside `if __name__ == \"__main__\":`" % (filename, lineno),
        "Dask starts each worker as a fresh Python process (multiprocessing 'spawn') that "
        "imports the script again; without the guard every worker would run the map again and "
        "fail to start (\"Nanny failed to start\", a traceback per worker)",
        "put the code that runs the map under `if __name__ == \"__main__\":` at the bottom of "
        "%s, or pass address= a running Dask scheduler (the other backends don't need the "
        "guard)" % os.path.basename(filename))


# --------------------------------------------------------------------------
# the task, on a Dask worker
# --------------------------------------------------------------------------
class _Running:
    """What the helper thread of a timed chunk shares with the task's thread."""

    __slots__ = ("current", "results", "elapsed", "nfail", "done")

    def __init__(self) -> None:
        self.current: Optional[Tuple[int, float]] = None   # (index, start) of the running item
        self.results: List[Any] = []
        self.elapsed = 0.0
        self.nfail = 0
        self.done = threading.Event()


def _run_timed_items(run: _Running, fn: Callable[[Any], Any], base: int, items: List[Any],
                     stop: bool, where: str) -> None:
    app = run.results.append
    nfail = 0
    t0 = clock()
    try:
        for k, x in enumerate(items):
            run.current = (base + k, clock())  # one reference: the reader never sees a torn pair
            try:
                app(fn(x))
            except BaseException as e:  # a helper thread: SystemExit must not end it unseen
                app(_chunk.capture(e, base + k, where))
                nfail += 1
                if stop:
                    break
    finally:
        run.current = None
        run.elapsed = clock() - t0
        run.nfail = nfail
        run.done.set()


def _until_failure(results: List[Any]) -> List[Any]:
    """The results before the first Failed record: what a ChunkBroken may keep as ``done``
    (the engine counts ``done`` as plain results; the items from the failure on run again)."""
    for k, r in enumerate(results):
        if isinstance(r, _chunk.Failed):
            return results[:k]
    return results


def _sendable(results: List[Any]) -> List[Any]:
    return [_chunk.sendable_failure(r) if isinstance(r, _chunk.Failed) else r for r in results]


def run_chunk(fn: Callable[[Any], Any], base: int, items: List[Any], stop: bool,
              timeout: Optional[float], where: str = "dask worker") -> TaskResult:
    """The Dask task: run a chunk; with a timeout, time each item from its own start.

    Returns ``("done", results, elapsed, nfail)``, or ``("timeout", index, the results
    before it, elapsed)`` when the item at ``index`` ran past ``timeout`` (it is left
    running in its helper thread; this thread, the worker's, is free again)."""
    if timeout is None:
        results, elapsed, nfail = _chunk.run_remote(fn, base, items, stop, where)
        return ("done", results, elapsed, nfail)
    run = _Running()
    helper = threading.Thread(target=_run_timed_items, args=(run, fn, base, items, stop, where),
                              name="threadwise-dask-items", daemon=True)
    t0 = clock()
    helper.start()
    tick = min(0.05, max(0.001, timeout / 10.0))
    while not run.done.wait(tick):
        current = run.current
        if current is not None and clock() - current[1] > timeout:
            index = current[0]
            return ("timeout", index, _sendable(run.results[:index - base]), clock() - t0)
    return ("done", _sendable(run.results), run.elapsed, run.nfail)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker process of our LocalCluster as it starts:
    Dask's INFO lines ("Start worker at...", "Batched Comm Closed" on a worker another one's
    crash left behind) off stderr, as ``silence_logs`` does in the parent (Dask applies it
    there and to the nanny's logger only).  Errors still show."""
    for handler in logging.getLogger("distributed").handlers:
        handler.setLevel(max(handler.level, logging.ERROR))
    logging.getLogger("distributed.diskutils").addFilter(_QuietScratch())


class _QuietScratch(logging.Filter):
    """Drops "Failed to remove <path>" about our own scratch directory: a worker purging
    what a killed worker left races with the others, and with the removal of the whole
    directory at shutdown (harmless: it is all removed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        return not ("Failed to remove" in msg and SCRATCH_PREFIX in msg)


def _keep_nannies(distributed: Any, cluster: Any) -> None:
    """Stop our LocalCluster from closing a nanny whose worker died.

    A SpecCluster closes, for good, a nanny whose worker is still missing
    ``distributed.deploy.lost-worker-timeout`` (15 s) after it died.  Our nannies
    restart their worker after every death; but when fn kills workers again and again
    (a map with several killer items, each bisected) the check can fall between a death
    and the restart, and a cluster with all its nannies closed runs nothing: the map
    would hang.  So our cluster only records the removal (the base class's handler);
    :meth:`DaskBackend._heal` scales it back should a nanny be closed anyway."""
    base = getattr(getattr(getattr(distributed, "deploy", None), "cluster", None), "Cluster", None)
    update = getattr(base, "_update_worker_status", None)
    if update is not None and hasattr(cluster, "_update_worker_status"):
        cluster._update_worker_status = types.MethodType(update, cluster)


# --------------------------------------------------------------------------
# the backend, on the host
# --------------------------------------------------------------------------
class _Chunk:
    __slots__ = ("fn", "base", "items", "stop", "timeout", "outer", "key", "dfut")

    def __init__(self, fn: Callable[[Any], Any], base: int, items: List[Any], stop: bool,
                 timeout: Optional[float], outer: "cf.Future[Any]") -> None:
        self.fn = fn
        self.base = base
        self.items = items
        self.stop = stop
        self.timeout = timeout
        self.outer = outer
        self.key = ""
        self.dfut: Any = None


class _Triaged:
    """A suspect's results so far, range by range, while it is bisected."""

    __slots__ = ("results", "elapsed", "nfail", "stopped")

    def __init__(self) -> None:
        self.results: List[Any] = []
        self.elapsed = 0.0
        self.nfail = 0
        self.stopped = False


class _QuietDeaths(logging.Filter):
    """Drops the scheduler's "Task ... marked as failed because 1 workers died" and
    "Couldn't gather keys" about our own tasks: the triage reruns them, and the map's
    Failure (or error) says what died."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        return not (self.prefix in msg and ("died" in msg or "gather" in msg))


#: a verdict on one Dask future: ("ok", TaskResult) | ("error", exception) | ("lost", why)
Verdict = Tuple[str, Any]
_ABORTED = object()


class DaskBackend(Backend):
    name = "dask"
    chunk_target_s = 0.2
    inflight_per_worker = 2

    def __init__(self, workers: Optional[int], address: Any = None) -> None:
        distributed = _import()
        self._cluster: Any = None
        self._own_client = False
        self._scratch: Optional[str] = None
        self._remove_scratch: Optional[Callable[[], Any]] = None
        self._local_workers = 0
        if address is None:
            self._client = self._start_local(distributed, workers)
        elif isinstance(address, str):
            check_address(address)
            self._client = distributed.Client(address, timeout="10s", set_as_default=False)
            self._own_client = True
        elif isinstance(address, distributed.Client):
            self._client = address
        elif hasattr(address, "scheduler_address"):
            self._client = distributed.Client(address, set_as_default=False)
            self._own_client = True
        else:
            raise UsageError(
                "address must be None, a 'tcp://host:port' string, a distributed.Client or a "
                "cluster object, got %r" % (address,), "an address of an unknown kind",
                "pass the scheduler's address as a string")
        nthreads = self._client.nthreads()
        super().__init__(max(1, sum(nthreads.values()) if nthreads else (workers or 1)))
        self._killed_worker: Any = getattr(distributed, "KilledWorker", None)
        if self._killed_worker is None:  # pragma: no cover - older releases
            from distributed.scheduler import KilledWorker
            self._killed_worker = KilledWorker
        self._prefix = "threadwise-%s" % uuid.uuid4().hex[:8]
        self._quiet = _QuietDeaths(self._prefix)
        logging.getLogger("distributed.scheduler").addFilter(self._quiet)
        self._quiet_scratch = _QuietScratch()
        logging.getLogger("distributed.diskutils").addFilter(self._quiet_scratch)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._live: Dict[str, _Chunk] = {}           # on the cluster, not triaged
        self._held: List[_Chunk] = []                 # submitted during a triage: sent after it
        self._suspects: Deque[_Chunk] = collections.deque()
        self._triage: Optional[threading.Thread] = None
        self._epoch = 0                               # abort() bumps it: a triage drops its suspect
        self._closed = False
        #: chunks re-run alone after a worker died (bystanders and culprits), for statistics
        self.triaged = 0

    def _start_local(self, distributed: Any, workers: Optional[int]) -> Any:
        """A LocalCluster on 127.0.0.1: no dashboard, its HTTP server on a free loopback port,
        scratch space in a temporary directory, one death enough to fail a task."""
        check_main_guard()
        scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        self._scratch = scratch
        self._remove_scratch = weakref.finalize(self, shutil.rmtree, scratch, True)
        try:
            self._cluster = distributed.LocalCluster(
                host="127.0.0.1", n_workers=workers or cpu_count(), threads_per_worker=1,
                processes=True, dashboard_address=None, silence_logs=logging.ERROR,
                local_directory=scratch, preload=[__name__],
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0",
                                  "allowed_failures": 0, "local_directory": scratch})
            client = distributed.Client(self._cluster, set_as_default=False)
        except BaseException:
            self._close_cluster(2)
            raise
        self._own_client = True
        self._local_workers = workers or cpu_count()
        _keep_nannies(distributed, self._cluster)
        return client

    def _heal(self) -> None:
        """Our LocalCluster back to its size, should a nanny have been closed after all."""
        cluster = self._cluster
        if cluster is None or self._closed:
            return
        try:
            if len(cluster.workers) < self._local_workers:
                cluster.scale(self._local_workers)
        except Exception:  # pragma: no cover - a cluster closing under us
            pass

    def _settle_workers(self) -> None:
        """Before closing our LocalCluster after crashes: let the nannies finish restarting
        their workers (a worker that registers while the cluster closes dies with a
        traceback on stderr, Dask's race)."""
        if self._cluster is not None and self.triaged:
            try:
                self._client.wait_for_workers(self._local_workers, timeout=5)
            except Exception:
                pass

    @property
    def client(self) -> Any:
        return self._client

    # -- sending chunks -------------------------------------------------------
    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        outer: "cf.Future[Any]" = cf.Future()
        outer.set_running_or_notify_cancel()
        c = _Chunk(fn, base, items, stop_on_error, timeout, outer)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._triage is not None:
                self._held.append(c)
                return outer
            self._go_live(c)
        self._send(c)
        return outer

    def _go_live(self, c: _Chunk) -> None:
        c.key = "%s-%d" % (self._prefix, next(self._ids))
        self._live[c.key] = c

    def _send(self, c: _Chunk) -> None:
        try:
            c.dfut = self._client.submit(run_chunk, c.fn, c.base, c.items, c.stop, c.timeout,
                                         "dask worker", pure=False, key=c.key)
        except Exception as e:  # a client closed under us
            with self._lock:
                self._live.pop(c.key, None)
                self._changed.notify_all()
            resolve(c.outer, exc=e)
            return
        c.dfut.add_done_callback(lambda f, c=c: self._finished(c, f))

    def _verdict(self, f: Any) -> Verdict:
        """What a finished Dask future says (runs in Dask's callback thread or the triage's)."""
        status = f.status
        if status == "finished":
            try:
                return "ok", f.result()
            except (cf.CancelledError, OSError, TimeoutError, self._killed_worker) as e:
                # its worker died before the result was fetched (Dask's CommClosedError is
                # an OSError; a recomputation that died again, KilledWorker); any other
                # error is the result's own (it can't be unpickled here)
                return "lost", "a Dask worker that died before its result was fetched (%s)" % (
                    type(e).__name__,)
            except Exception as e:
                return "error", e
        if status == "error":
            exc = f.exception()
            if isinstance(exc, self._killed_worker):
                worker = getattr(getattr(exc, "last_worker", None), "address", None)
                return "lost", "Dask worker %s" % (worker or "?")
            return "error", exc
        return "lost", "Dask dropped the task (%s)" % status

    def _finished(self, c: _Chunk, f: Any) -> None:
        """Dask's done callback of a chunk sent normally."""
        verdict = self._verdict(f)
        c.dfut = None
        with self._lock:
            self._live.pop(c.key, None)
            self._changed.notify_all()
            if verdict[0] == "lost" and not c.outer.done() and not self._closed:
                self._suspects.append(c)
                if self._triage is None:
                    self._triage = threading.Thread(target=self._run_triage, daemon=True,
                                                    name="threadwise-dask-triage")
                    self._triage.start()
                return
        self._settle(c.outer, verdict)

    @staticmethod
    def _settle(outer: "cf.Future[Any]", verdict: Verdict) -> None:
        kind, value = verdict
        if kind == "error":
            resolve(outer, exc=value)
        elif kind == "lost":
            resolve(outer, exc=cf.CancelledError())
        elif value[0] == "done":
            _, results, elapsed, nfail = value
            resolve(outer, ChunkDone(results, elapsed, nfail))
        else:
            _, index, before, _ = value
            resolve(outer, ChunkBroken("timeout", index, _until_failure(before), TIMEOUT_DETAIL,
                                       replaced=False))

    # -- the triage of chunks whose worker died --------------------------------
    def _run_triage(self) -> None:
        """Wait until no other chunk runs, run each suspect alone, then send the held chunks."""
        while True:
            with self._lock:
                while self._live and not self._closed:
                    self._changed.wait(0.5)
                    self._heal()
                if self._closed:
                    self._triage = None
                    return
                if not self._suspects:
                    held, self._held = self._held, []
                    for c in held:
                        self._go_live(c)
                    self._triage = None
                    break
                c = self._suspects.popleft()
                epoch = self._epoch
            self._triage_one(c, epoch)
        for c in held:
            self._send(c)

    def _triage_one(self, c: _Chunk, epoch: int) -> None:
        self.triaged += 1
        acc = _Triaged()
        try:
            out = self._probe(c, 0, len(c.items), acc, epoch)
        except Exception as e:  # the client failed under us: the chunk fails, the map goes on
            resolve(c.outer, exc=e)
            return
        if out is _ABORTED:
            resolve(c.outer, exc=cf.CancelledError())
        elif out is None:
            resolve(c.outer, ChunkDone(acc.results, acc.elapsed, acc.nfail))
        elif isinstance(out, BaseException):
            resolve(c.outer, exc=out)
        else:
            resolve(c.outer, out)

    def _probe(self, c: _Chunk, lo: int, hi: int, acc: _Triaged, epoch: int) -> Any:
        """Run ``items[lo:hi]`` alone; on a death, bisect.  Returns None when the range ran
        (results into ``acc``), else what ends the chunk: a ChunkBroken, an exception or
        _ABORTED."""
        kind, value = self._alone(c, lo, hi, epoch)
        if kind == "aborted":
            return _ABORTED
        if kind == "error":
            return value
        if kind == "ok":
            if value[0] == "timeout":
                _, index, before, _ = value
                return ChunkBroken("timeout", index, _until_failure(acc.results + list(before)),
                                   TIMEOUT_DETAIL, replaced=False)
            _, results, elapsed, nfail = value
            acc.results.extend(results)
            acc.elapsed += elapsed
            acc.nfail += nfail
            acc.stopped = bool(c.stop and nfail)
            return None
        if hi - lo == 1:
            return ChunkBroken(
                "crash", c.base + lo, _until_failure(acc.results),
                "%s, running this item alone (a worker died each time its chunk ran; the "
                "chunk's other items ran fine without it)" % value)
        mid = (lo + hi) // 2
        out = self._probe(c, lo, mid, acc, epoch)
        if out is not None or acc.stopped:
            return out
        return self._probe(c, mid, hi, acc, epoch)

    def _alone(self, c: _Chunk, lo: int, hi: int, epoch: int) -> Verdict:
        """Run ``items[lo:hi]`` of a suspect as the only chunk on the cluster, and wait."""
        key = "%s-%d-alone" % (self._prefix, next(self._ids))
        ended = threading.Event()
        dfut = self._client.submit(run_chunk, c.fn, c.base + lo, c.items[lo:hi], c.stop,
                                   c.timeout, "dask worker", pure=False, key=key)
        dfut.add_done_callback(lambda _: ended.set())
        while not ended.wait(0.5):
            if self._epoch != epoch or self._closed:
                self._cancel([dfut])
                return "aborted", None
            self._heal()
        kind, value = self._verdict(dfut)
        return ("killed" if kind == "lost" else kind), value

    # -- calls, stopping ---------------------------------------------------------
    #: times a submit() call is sent again after its worker died (Dask's own default)
    call_retries = 3

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        """``Executor.submit``: one Dask task; sent again (up to ``call_retries`` times) when
        its worker dies (our scheduler fails a task at the first death, bystanders too)."""
        outer: "cf.Future[Any]" = cf.Future()
        outer.set_running_or_notify_cancel()
        attempts = itertools.count()

        def send() -> None:
            dfut = self._client.submit(fn, *args, pure=False, **kwargs)
            dfut.add_done_callback(done)

        def done(f: Any) -> None:
            if f.status == "cancelled":
                resolve(outer, exc=cf.CancelledError())
                return
            kind, value = self._verdict(f)
            if kind == "ok":
                resolve(outer, value)
            elif kind == "lost" and next(attempts) < self.call_retries and not self._closed:
                try:
                    send()
                except Exception as e:  # a client closed under us
                    resolve(outer, exc=e)
            else:
                resolve(outer, exc=f.exception() if f.status == "error" else cf.CancelledError())

        send()
        return outer

    def _cancel(self, dfuts: List[Any]) -> None:
        try:
            self._client.cancel([f for f in dfuts if f is not None])
        except Exception:  # pragma: no cover - a client already closed
            pass

    def abort(self) -> None:
        """Cancel every chunk: held, suspect (a triage under way drops it) and running."""
        with self._lock:
            self._epoch += 1
            dropped = self._held + list(self._suspects) + list(self._live.values())
            self._held = []
            self._suspects.clear()
            self._changed.notify_all()
        for c in dropped:
            resolve(c.outer, exc=cf.CancelledError())
        self._cancel([c.dfut for c in dropped])

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self.abort()
        self._settle_workers()
        if self._own_client:
            try:
                self._client.close(timeout=2 if kill else 10)
            except Exception:  # pragma: no cover - a scheduler already gone
                pass
        self._close_cluster(2 if kill else 10)
        logging.getLogger("distributed.scheduler").removeFilter(self._quiet)
        logging.getLogger("distributed.diskutils").removeFilter(self._quiet_scratch)

    def _close_cluster(self, timeout: float) -> None:
        """Close our LocalCluster (its workers end with it) and remove its scratch directory."""
        if self._cluster is not None:
            try:
                self._cluster.close(timeout=timeout)
            except Exception:  # pragma: no cover
                pass
        if self._remove_scratch is not None:
            self._remove_scratch()
