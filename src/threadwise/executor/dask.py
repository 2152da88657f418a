"""The Dask backend: the same map, on a Dask cluster, for work that outgrows one machine.

::

    engine --submit_chunk--> client.submit(_chunk.run_remote, fn, base, items)  (one task per chunk)
                             Dask scheduler --> worker (any machine) --> (results, elapsed, nfail)
           <-- done callback: ChunkDone | ChunkBroken (KilledWorker, timeout)

Dask costs milliseconds per task (``Client.map`` on tiny items: ~2.8 ms per
item), so items travel in chunks of about ``chunk_target_s`` = 0.2 s of work,
sized from the measured time per item: the per-item overhead drops to
microseconds.

``address=None`` starts a ``LocalCluster`` on 127.0.0.1 (one single-threaded
worker process per CPU, no dashboard) and closes it at shutdown; ``address=``
a scheduler (``"tcp://10.0.0.5:8786"``), a ``distributed.Client`` or a cluster
object uses that instead: the step from a laptop to a cluster is that one
argument.  An optional extra: ``pip install 'threadwise[dask]'``.

Dask retries a task whose worker died on another worker, then raises
``KilledWorker``; it can't say which item of the chunk killed them, so the
engine re-runs that chunk one item at a time to name it.  A hung item can't
be stopped inside a Dask worker: past its deadline the task is cancelled
(released) and reported.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import socket
import time
import uuid
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from ..errors import UsageError
from . import _chunk
from ._base import Backend, BackendUnavailableError, ChunkBroken, ChunkDone, Watchdog, resolve
from ._cpus import cpu_count


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


class DaskBackend(Backend):
    name = "dask"
    chunk_target_s = 0.2
    inflight_per_worker = 2

    def __init__(self, workers: Optional[int], address: Any = None) -> None:
        distributed = _import()
        self._cluster = None
        self._own_client = False
        if address is None:
            n = workers or cpu_count()
            self._cluster = distributed.LocalCluster(
                host="127.0.0.1", n_workers=n, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR)
            self._client = distributed.Client(self._cluster, set_as_default=False)
            self._own_client = True
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
        self._killed_worker = getattr(distributed, "KilledWorker", None)
        if self._killed_worker is None:  # pragma: no cover - older releases
            from distributed.scheduler import KilledWorker
            self._killed_worker = KilledWorker
        self._prefix = "threadwise-%s" % uuid.uuid4().hex[:8]
        self._ids = itertools.count()
        # the chunks with a timeout, until they finish
        self._watchdog = Watchdog("threadwise-dask-watchdog", self._cancel)
        #: per-item seconds the engine measured (sets the timeout deadlines of chunks)
        self.item_s_hint = 0.0

    @property
    def client(self) -> Any:
        return self._client

    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        key = "%s-%d" % (self._prefix, next(self._ids))
        dfut = self._client.submit(_chunk.run_remote, fn, base, items, stop_on_error, "dask worker",
                                   pure=False, key=key)
        outer: "cf.Future[Any]" = cf.Future()
        outer.set_running_or_notify_cancel()
        n = len(items)
        killed = self._killed_worker

        def done(f: Any) -> None:
            self._watchdog.forget(key)
            status = f.status
            if status == "finished":
                try:
                    results, elapsed, nfail = f.result()
                except BaseException as e:  # pragma: no cover - deserialisation
                    resolve(outer, exc=e)
                    return
                resolve(outer, ChunkDone(results, elapsed, nfail))
            elif status == "error":
                exc = f.exception()
                if killed is not None and isinstance(exc, killed):
                    resolve(outer, ChunkBroken("crash", base if n == 1 else None, [],
                                               "Dask workers died running it (%s)" % exc))
                else:
                    resolve(outer, exc=exc)
            else:
                resolve(outer, exc=cf.CancelledError())

        if timeout is not None:
            # the chunk may queue behind one other chunk, then run n items
            self._watchdog.watch(key, time.monotonic() + timeout + 3 * n * self.item_s_hint,
                                 (dfut, outer, base, n))
        dfut.add_done_callback(done)
        return outer

    def _cancel(self, late: Tuple[Any, "cf.Future[Any]", int, int]) -> None:
        """The watchdog's verdict on a chunk past its deadline: timed out, its task cancelled."""
        dfut, outer, base, n = late
        if resolve(outer, ChunkBroken("timeout", base if n == 1 else None, [],
                                      "the Dask task was cancelled; the worker thread "
                                      "running it can't be stopped and runs on")):
            try:
                dfut.cancel()
            except Exception:  # pragma: no cover
                pass

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        dfut = self._client.submit(fn, *args, pure=False, **kwargs)
        outer: "cf.Future[Any]" = cf.Future()
        outer.set_running_or_notify_cancel()

        def done(f: Any) -> None:
            if f.status == "finished":
                resolve(outer, f.result())
            elif f.status == "error":
                resolve(outer, exc=f.exception())
            else:
                resolve(outer, exc=cf.CancelledError())

        dfut.add_done_callback(done)
        return outer

    def abort(self) -> None:
        running = self._watchdog.drain()
        try:
            self._client.cancel([v[0] for v in running])
        except Exception:  # pragma: no cover
            pass

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, kill: bool = False) -> None:
        self._watchdog.close()
        if self._own_client:
            try:
                self._client.close(timeout=2 if kill else 10)
            except Exception:  # pragma: no cover - a scheduler already gone
                pass
        if self._cluster is not None:
            try:
                self._cluster.close(timeout=2 if kill else 10)
            except Exception:  # pragma: no cover
                pass
