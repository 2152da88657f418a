"""The map engine: lazy input, chunks sized from measured time, bounded in-flight, ordered output.

::

    input iterator --islice(chunk size)--> Slot(base, items) --backend.submit_chunk--> Future
         ^ pulled only while fewer than W x 2 chunks are in flight (lazy: a generator of
         | a million items never sits in memory)
    done callback --> completion queue --> engine (caller's thread):
         ChunkDone   -> slot ready; per-item time feeds the Chunker
         ChunkBroken -> slot split: [results kept] [items to re-run] [Failure] [rest re-run]
    ready slots --> yielded as lists, in input order (ordered=True) or as they finish

:func:`run_chunks` is that loop (a :class:`ChunkMap`); :func:`run_serial` the
serial backend's, batches straight into the result list.  The engine runs every
item, ``auto``'s too: its probe asks for :func:`timed_batch` (in the caller's
thread) or :func:`backend_batch` (one chunk on the helper thread a timeout
needs), its check on threads for :func:`thread_batch`, and reads their timings.

Errors: ``errors="collect"`` puts a :class:`Failure` in each failed item's place
and goes on.  ``errors="raise"`` stops taking input at the first failure, lets
the chunks in flight finish (their results are not lost: they travel on the
exception), yields the results before the failing item, then raises
:class:`ItemError` (or :class:`WorkerCrashedError`, :class:`ItemTimeoutError`).

Ctrl-C (any BaseException from the wait) aborts the backend: queued chunks
are cancelled and running worker processes are killed, at once.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import operator
import queue
import sys
import textwrap
import threading
from itertools import chain, islice
from typing import (Any, Callable, Dict, Generator, Iterator, List, NoReturn, Optional,
                    Tuple)

from . import _chunk
from ..errors import UsageError
from ._base import (Backend, ChunkBroken, ChunkDone, Failure, ItemError, ItemTimeoutError,
                    WorkerCrashedError, _short_repr, fork_safe_enter, fork_safe_exit)

MAX_CHUNK = 100_000



def _nfailed(done: List[Any]) -> int:
    """How many items of a broken chunk's finished part raised (each becomes a Failure)."""
    return sum(1 for r in done if isinstance(r, _chunk.Failed))

class RemoteError(Exception):
    """Stands for an exception raised in a worker that could not be pickled back."""


class Counters:
    """Mutable tallies behind :class:`Statistics` (one per Executor)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items_done = 0
        self.items_failed = 0
        self.chunks = 0
        self.calls = 0


class Chunker:
    """Chunk sizes: fixed, or ``target_s`` of work from the measured time per item.

    Before any measurement a chunk holds one item (so the first results come
    back fast and carry a timing).  When the number of items left is known the
    chunks shrink toward the end (guided scheduling: at most ``left / 2W``) so
    no worker is handed the whole tail while the others idle, and no chunk
    holds more than ``1 / (SHARES W)`` of the map unless that share is less than
    ``MIN_CHUNK_S`` of work: a map of less than ``W`` target chunks of work (tiny
    items) is split evenly, like ``multiprocessing.Pool.map`` does, instead of
    landing on one worker, and a map of a few microseconds is not split at all.
    """

    #: chunks per worker, at least, in a map of known length
    SHARES = 2
    #: ... unless they would hold less work than this (a chunk's round trip is ~50 µs)
    MIN_CHUNK_S = 2e-4

    def __init__(self, fixed: Optional[int], target_s: float, workers: int,
                 remaining: Optional[int] = None, item_s: Optional[float] = None) -> None:
        self.fixed = fixed
        self.target_s = target_s
        self.workers = max(1, workers)
        self.remaining = remaining
        self.item_s = item_s
        self.sizes = 0
        self.share = (math.ceil(remaining / float(self.SHARES * self.workers))
                      if remaining else None)

    def next_size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.item_s is None:
            return 1
        size = self.target_s / max(self.item_s, 1e-9)
        if self.remaining is not None:
            floor = (self.target_s / 8.0) / max(self.item_s, 1e-9)
            size = min(size, max(floor, self.remaining / (2.0 * self.workers)))
            if self.share is not None:
                size = min(size, max(self.share, self.MIN_CHUNK_S / max(self.item_s, 1e-9)))
        return int(max(1, min(MAX_CHUNK, size)))

    def observe(self, n: int, elapsed: float) -> None:
        if n <= 0:
            return
        per = max(elapsed, 0.0) / n
        self.item_s = per if self.item_s is None else 0.5 * self.item_s + 0.5 * per

    def consumed(self, n: int) -> None:
        if self.remaining is not None:
            self.remaining = max(0, self.remaining - n)


class _Slot:
    __slots__ = ("base", "items", "future", "results", "first_failure")

    def __init__(self, base: int, items: List[Any], results: Optional[List[Any]] = None) -> None:
        self.base = base
        self.items = items
        self.future: Optional["cf.Future[Any]"] = None
        self.results = results              # None while running
        self.first_failure: Optional[int] = None


def item_repr(item: Any) -> str:
    return _short_repr(item, 60)


class MapRun:
    """One map's error policy, tallies and progress; turns raw chunk results into output."""

    def __init__(self, fn: Callable[[Any], Any], *, errors: str, ordered: bool,
                 timeout: Optional[float], counters: Counters, progress: Any = None,
                 deadline: Optional[float] = None) -> None:
        self.fn = fn
        self.errors = errors
        self.ordered = ordered
        self.timeout = timeout
        self.counters = counters
        self.progress = progress
        self.deadline = deadline
        self.backend_name = "?"
        self.failures: List[Failure] = []
        self.kept: Dict[int, Any] = {}      # raise mode: results that came back, not yet yielded

    # -- conversion -------------------------------------------------------
    def failure_of(self, f: _chunk.Failed, item: Any) -> Failure:
        exc = f.exc if f.exc is not None else RemoteError("%s: %s" % (f.exc_type, f.message))
        return Failure(f.index, "exception", exc, f.tb, item_repr(item))

    def convert(self, slot: _Slot, results: List[Any], nfail: int) -> None:
        """Fill ``slot.results`` (Failed -> Failure in collect mode) and the tallies."""
        if nfail:
            out = list(results)
            for k, r in enumerate(out):
                if isinstance(r, _chunk.Failed):
                    fail = self.failure_of(r, slot.items[r.index - slot.base]
                                           if 0 <= r.index - slot.base < len(slot.items) else None)
                    self.failures.append(fail)
                    if slot.first_failure is None:
                        slot.first_failure = r.index
                    out[k] = fail
            results = out
        slot.results = results
        with self.counters.lock:
            self.counters.items_done += len(results)
            self.counters.items_failed += nfail
        if self.progress is not None:
            self.progress.advance(len(results))

    def item_error(self, fail: Failure) -> ItemError:
        if fail.kind != "exception":
            err = fail.exception
            assert isinstance(err, ItemError)
            return err
        exc = fail.exception
        remote = exc.__traceback__ is None and bool(fail.traceback)
        text = str(exc)
        what = "item #%d (%s) raised %s: %s" % (fail.index, fail.item, type(exc).__name__,
                                                text if len(text) <= 200 else text[:197] + "...")
        if remote:
            why = "fn raised it on the %s backend; the worker's traceback:\n%s" % (
                self.backend_name, textwrap.indent(fail.traceback.rstrip(), "    "))
        else:
            why = "fn raised it on the %s backend (its traceback is shown above)" % self.backend_name
        fix = ("fix fn for this input, or pass errors='collect' to get a Failure in its place "
               "and every other result; the results that did come back are in .results")
        err = ItemError(what, why, fix, index=fail.index, item=fail.item, exception=exc,
                        remote_traceback=fail.traceback, backend=self.backend_name)
        return err

    def broken_failure(self, b: ChunkBroken, index: int, item: Any) -> Failure:
        rep = item_repr(item)
        if b.kind == "timeout":
            err: ItemError = ItemTimeoutError(
                "item #%d (%s) ran longer than timeout=%gs on the %s backend" % (
                    index, rep, self.timeout or 0, self.backend_name),
                "fn hung on this input, or is much slower on it than expected; %s" % b.detail,
                "raise timeout=, fix fn for this input, or pass errors='collect' to go on "
                "without it", index=index, item=rep, backend=self.backend_name)
        else:
            pid = " (pid %d)" % b.pid if b.pid else ""
            err = WorkerCrashedError(
                "the worker process%s running item #%d (%s) died: %s" % (pid, index, rep, b.detail),
                "fn crashed the process: a segmentation fault in a C extension, os._exit(), a "
                "signal (kill -9, or the out-of-memory killer when an item needs too much memory)",
                "the dead worker was replaced; run fn(%s) in a plain Python process to see the "
                "crash, or pass errors='collect' to go on with a Failure in its place" % rep,
                index=index, item=rep, backend=self.backend_name)
        err.__cause__ = None
        return Failure(index, b.kind, err, "", rep)

    def record_broken(self, b: ChunkBroken, index: int, item: Any) -> Failure:
        """The :class:`Failure` of the item that broke a chunk (it timed out, or its worker
        died), noted and counted."""
        fail = self.broken_failure(b, index, item)
        self.failures.append(fail)
        with self.counters.lock:
            self.counters.items_done += 1
            self.counters.items_failed += 1
        return fail

    def raise_error(self) -> ItemError:
        first = min(self.failures, key=lambda f: f.index)
        err = self.item_error(first)
        err.results = dict(self.kept)
        err.failures = sorted(self.failures, key=lambda f: f.index)
        return err


_NO_ITEM = object()


def _item_of(exc: BaseException, fn: Callable[[Any], Any]) -> Any:
    """The item fn was called with when it raised, read from fn's own frame (the item was
    consumed from the iterator, not kept); _NO_ITEM when fn is not a Python function."""
    code = getattr(fn, "__code__", None)
    if code is None or not code.co_varnames:
        return _NO_ITEM
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return tb.tb_frame.f_locals.get(code.co_varnames[0], _NO_ITEM)
        tb = tb.tb_next
    return _NO_ITEM


def serial_batch(run: MapRun, it: Iterator[Any], base: int, n: int, dest: List[Any],
                 items: Optional[List[Any]] = None) -> Tuple[int, bool]:
    """Run up to ``n`` items of ``it`` in this thread, appending results to ``dest``.

    The fastest serial loop there is: ``dest.extend(map(fn, islice(it, n)))``: no list
    of inputs, no copy of the outputs (``list.extend`` keeps what it appended before an
    exception, so ``len(dest)`` locates the failing item; its value is taken from
    ``items`` when ``it`` iterates that list, else read back from fn's frame).
    Returns (items consumed, input exhausted).  ``errors="raise"``: raises
    :class:`ItemError` with the results before the failure already in ``dest``.
    """
    fn = run.fn
    done = 0
    start = len(dest)
    # the whole rest of an iterator of known length (list, tuple, range): no islice (which
    # costs 7% on the tiniest items)
    whole = 0 <= operator.length_hint(it, -1) <= n
    while done < n:
        want = n - done
        mark = len(dest)
        try:
            dest.extend(map(fn, it if whole else islice(it, want)))
        except Exception as e:
            k = len(dest) - mark
            f = _chunk.capture(e, base + done + k, "the calling thread")
            item = items[done + k] if items is not None else _item_of(e, fn)
            fail = run.failure_of(f, item)
            if item is _NO_ITEM:
                fail = Failure(fail.index, fail.kind, fail.exception, fail.traceback, "?")
            run.failures.append(fail)
            with run.counters.lock:
                run.counters.items_done += k + 1
                run.counters.items_failed += 1
            if run.errors == "raise":
                err = run.raise_error()
                raise err from e
            dest.append(fail)
            done += k + 1
            continue
        got = len(dest) - mark
        done += got
        with run.counters.lock:
            run.counters.items_done += got
            run.counters.chunks += 1
        if got < want or whole:
            if run.progress is not None:
                run.progress.advance(len(dest) - start)
            return done, True
    if run.progress is not None:
        run.progress.advance(len(dest) - start)
    return done, False


def timed_batch(run: MapRun, it: Iterator[Any], base: int, n: int, dest: List[Any],
                keep: bool = False) -> Tuple[int, bool, float, Optional[List[Any]]]:
    """One :func:`serial_batch` of up to ``n`` items into ``dest``, timed.

    Returns (items consumed, input exhausted, seconds, the items or None).  ``keep``:
    the items are taken off ``it`` into a list first and returned, so that the caller
    can keep them beside their results (auto prices pickling them).  Raises like
    :func:`serial_batch`, with the results before the failure in ``dest``.
    """
    src = list(islice(it, n)) if keep else None
    t0 = _chunk.clock()
    got, exhausted = serial_batch(run, it if src is None else iter(src), base, n, dest, src)
    dt = _chunk.clock() - t0
    if src is not None:
        exhausted = len(src) < n
    return got, exhausted, dt, src


def run_serial(run: MapRun, it: Iterator[Any], base: int, sink: Optional[List[Any]],
               item_s: Optional[float] = None, target_s: float = 0.02
               ) -> Generator[List[Any], None, int]:
    """The serial backend without a timeout: batches straight from the iterator into
    ``sink`` (pmap's result list) or into lists yielded one by one.  A batch holds about
    ``target_s`` of work (one item until timed), so results stream out of imap.
    Returns the number of items it ran."""
    run.backend_name = "serial"
    if sink is not None and run.progress is None:
        # into pmap's list with no progress bar to feed, batches buy nothing: one batch
        return serial_batch(run, it, base, sys.maxsize, sink)[0]
    start = base
    while True:
        n = 1 if item_s is None else int(max(1, min(MAX_CHUNK, target_s / max(item_s, 1e-9))))
        dest = sink if sink is not None else []
        try:
            got, exhausted, dt, _ = timed_batch(run, it, base, n, dest)
        except ItemError:
            if sink is None and dest:
                yield dest  # the results before the failing item, then the error
            raise
        if sink is None and dest:
            yield dest
        if got:
            per = dt / got
            item_s = per if item_s is None else 0.5 * (item_s + per)
        base += got
        if exhausted:
            return base - start


def _stop_at_failure(run: MapRun, before: List[Any],
                    sink: Optional[List[Any]]) -> Generator[List[Any], None, None]:
    """Stop like a plain loop: hand over the results before the failing item, then raise."""
    if before:
        if sink is not None:
            sink.extend(before)
        else:
            yield before
    err = run.raise_error()
    raise err from min(run.failures, key=lambda f: f.index).exception


def _hand_over(run: MapRun, slot: _Slot, sink: Optional[List[Any]]
               ) -> Generator[List[Any], None, None]:
    """A finished slot's results, in order, into ``sink`` or yielded; in raise mode a
    failure in it stops the map there (:func:`_stop_at_failure`)."""
    assert slot.results is not None
    if slot.first_failure is not None and run.errors == "raise":
        yield from _stop_at_failure(run, slot.results[:slot.first_failure - slot.base], sink)
    if sink is not None:
        sink.extend(slot.results)
    else:
        yield slot.results


#: what :func:`backend_batch` returns (see there)
BatchRun = Tuple[int, bool, float, Iterator[Any], Optional[Tuple[List[Any], List[Any]]]]


def backend_batch(run: MapRun, backend: Backend, it: Iterator[Any], base: int, n: int,
                  sink: Optional[List[Any]]) -> Generator[List[Any], None, BatchRun]:
    """One batch of up to ``n`` items as one chunk on ``backend`` (auto's probe with a
    timeout: a helper thread that may be left behind on a hung item), its results into
    ``sink`` or yielded.  A chunk broken by a timeout is split as :func:`run_chunks`
    splits it; the items after the broken one go back in front of the input.

    Returns (items consumed, input exhausted, wall seconds, the input, (items,
    results) of a batch that ran whole, else None)."""
    items = list(islice(it, n))
    exhausted = len(items) < n
    if not items:
        return 0, True, 0.0, it, None
    t0 = _chunk.clock()
    out = backend.submit_chunk(run.fn, base, items, timeout=run.timeout,
                               stop_on_error=run.errors == "raise").result()
    dt = _chunk.clock() - t0
    slot = _Slot(base, items)
    if isinstance(out, ChunkBroken):
        j = out.index - base if out.index is not None else 0
        done = out.done[:j]
        run.convert(slot, done, _nfailed(done))
        fail = run.record_broken(out, base + j, items[j])
        if run.errors == "raise":
            if done:
                if sink is not None:
                    sink.extend(done)
                else:
                    yield list(done)
            raise run.raise_error()
        if sink is not None:
            sink.extend(done)
            sink.append(fail)
        else:
            yield list(done) + [fail]
        return j + 1, False, dt, chain(items[j + 1:], it), None
    run.convert(slot, out.results, out.nfail)
    assert slot.results is not None
    yield from _hand_over(run, slot, sink)
    return len(items), exhausted, dt, it, (items, slot.results)


def thread_batch(run: MapRun, items: List[Any], base: int, workers: int,
                 sink: Optional[List[Any]]) -> Generator[List[Any], None, float]:
    """Run ``items`` on ``workers`` fresh threads, one contiguous chunk each; their results,
    in order, into ``sink`` or yielded (stopping at a failure in raise mode).  Returns
    the wall seconds of the run (auto's check that threads scale)."""
    from .threads import ThreadBackend
    size = int(math.ceil(len(items) / float(workers)))
    pool = ThreadBackend(workers)
    try:
        t0 = _chunk.clock()
        futs = []
        for j in range(0, len(items), size):
            futs.append((base + j, items[j:j + size],
                         pool.submit_chunk(run.fn, base + j, items[j:j + size], timeout=None,
                                           stop_on_error=run.errors == "raise")))
        outs = [(b, part, f.result()) for b, part, f in futs]
        wall = _chunk.clock() - t0
    finally:
        pool.shutdown(wait=True)  # joined: a live thread would make a later pool spawn, not fork
    slots = []
    for b, part, out in outs:
        slot = _Slot(b, part)
        run.convert(slot, out.results, out.nfail)
        slots.append(slot)
    for slot in slots:
        yield from _hand_over(run, slot, sink)
    return wall


def run_chunks(run: MapRun, backend: Backend, it: Iterator[Any], base: int,
               chunker: Chunker) -> Iterator[List[Any]]:
    """Map ``run.fn`` over ``it`` on ``backend``; yield lists of results (see module doc)."""
    return ChunkMap(run, backend, it, base, chunker).results()


class ChunkMap:
    """One map on a backend's workers: chunks read lazily off the input, at most
    ``workers x inflight_per_worker`` in flight, broken chunks split, results handed
    over in order (or as they finish), a failure in raise mode stopping it cleanly.

    Every method runs in the caller's thread; the only thing the backends' threads do
    is put a finished slot on ``doneq`` (the Future's done callback).
    """

    #: seconds between looks at the map's deadline while waiting for a chunk
    TICK = 0.25

    def __init__(self, run: MapRun, backend: Backend, it: Iterator[Any], base: int,
                 chunker: Chunker) -> None:
        self.run = run
        self.backend = backend
        self.it = it
        self.base = base
        self.chunker = chunker
        self.collect = run.errors == "collect"
        self.doneq: "queue.SimpleQueue[_Slot]" = queue.SimpleQueue()
        self.slots: List[_Slot] = []        # in input order: running, or done and not handed over
        self.running = 0
        self.max_inflight = max(1, backend.workers * backend.inflight_per_worker)
        self.exhausted = False
        self.stopping = False               # raise mode saw a failure: take no more input
        self.next_index = base

    def results(self) -> Iterator[List[Any]]:
        """The generator :func:`run_chunks` returns."""
        self.run.backend_name = self.backend.name
        clean = False
        try:
            while True:
                self._fill()
                if not self.stopping:
                    for results in self._take_ready():
                        yield results
                if self.running == 0:
                    if self.stopping:
                        break
                    if self.exhausted and not self.slots:
                        clean = True
                        return
                    if self.exhausted or not self.slots:
                        continue
                self._wait()
            head = self._settle()
            if head:
                yield head
            clean = True
            self._raise()
        except GeneratorExit:
            clean = True
            for s in self.slots:
                if s.future is not None and s.results is None:
                    s.future.cancel()
            raise
        finally:
            if not clean:
                self.backend.abort()

    # -- input -> chunks in flight ------------------------------------------
    def _fill(self) -> None:
        """Read chunks off the input and submit them while there is room in flight."""
        while not self.exhausted and not self.stopping and self.running < self.max_inflight:
            size = self.chunker.next_size()
            items = list(islice(self.it, size))
            if len(items) < size:
                self.exhausted = True
            if not items:
                break
            slot = _Slot(self.next_index, items)
            self.next_index += len(items)
            self.chunker.consumed(len(items))
            self.slots.append(slot)
            self._submit(slot)

    def _submit(self, slot: _Slot) -> None:
        """Send a slot's chunk; in collect mode an item that can't be sent (it does not
        pickle) becomes a Failure in its place and the items around it go on."""
        while True:
            try:
                self._send(slot)
                return
            except UsageError as e:
                index = getattr(e, "index", None)
                if not (self.collect and isinstance(index, int)
                        and slot.base <= index < slot.base + len(slot.items)):
                    raise
                slot = self._unsendable(slot, index - slot.base, e)
                if not slot.items:
                    self.slots.remove(slot)
                    return

    def _unsendable(self, slot: _Slot, j: int, e: BaseException) -> _Slot:
        """Split ``slot`` around its item ``j`` that can't be sent: [head sent] [Failure]
        [tail, returned to be sent]."""
        run = self.run
        k = slot.base + j
        head = _Slot(slot.base, slot.items[:j])
        fslot = _Slot(k, [slot.items[j]])
        fail = Failure(k, "exception", e, "", item_repr(slot.items[j]))
        run.failures.append(fail)
        with run.counters.lock:
            run.counters.items_done += 1
            run.counters.items_failed += 1
        fslot.results = [fail]
        fslot.first_failure = k
        tail = _Slot(k + 1, slot.items[j + 1:])
        self._replace(slot, ([head] if head.items else []) + [fslot, tail])
        if head.items:
            self._send(head)
        return tail

    def _send(self, slot: _Slot) -> None:
        backend = self.backend
        if self.chunker.item_s:
            backend.item_s_hint = self.chunker.item_s
        fut = backend.submit_chunk(self.run.fn, slot.base, slot.items, timeout=self.run.timeout,
                                   stop_on_error=not self.collect)
        slot.future = fut
        self.running += 1
        with self.run.counters.lock:
            self.run.counters.chunks += 1
        doneq = self.doneq

        def done(_: "cf.Future[Any]", s: _Slot = slot) -> None:
            doneq.put(s)
        fut.add_done_callback(done)

    # -- finished chunks -> results ------------------------------------------
    def _take_ready(self) -> List[List[Any]]:
        """Finished slots off the list: the leading ones (ordered), or all of them."""
        slots = self.slots
        ready: List[List[Any]] = []
        if self.run.ordered:
            while slots and slots[0].results is not None:
                ready.append(slots.pop(0).results)  # type: ignore[arg-type]  # not None: checked
        else:
            for s in [s for s in slots if s.results is not None]:
                slots.remove(s)
                ready.append(s.results)  # type: ignore[arg-type]
        return ready

    def _wait(self) -> None:
        """Wait (up to TICK, and never past the deadline) for a chunk; handle every finished one."""
        wait = self.TICK
        if self.run.deadline is not None:
            remaining = self.run.deadline - _chunk.clock()
            if remaining <= 0:
                raise cf.TimeoutError()
            wait = min(wait, remaining)
        # parked here, this thread holds no lock a forked child could need: a process
        # pool's manager may fork a replacement worker meanwhile (_base.fork_is_safe)
        ident = fork_safe_enter()
        try:
            finished = self.doneq.get(timeout=wait)
        except queue.Empty:
            return
        finally:
            fork_safe_exit(ident)
        self._handle(finished)
        while True:
            try:
                finished = self.doneq.get_nowait()
            except queue.Empty:
                break
            self._handle(finished)

    def _handle(self, slot: _Slot) -> None:
        self.running -= 1
        fut = slot.future
        assert fut is not None
        if fut.cancelled():
            slot.results = []
            return
        exc = fut.exception()
        if exc is not None:  # the chunk as a whole failed (its results could not come back)
            failed = [_chunk.capture(exc, slot.base + k) for k in range(len(slot.items))]
            self.run.convert(slot, failed, len(failed))
            if not self.collect:
                self.stopping = True
            return
        out = fut.result()
        if isinstance(out, ChunkDone):
            self.chunker.observe(len(out.results), out.elapsed)
            self.run.convert(slot, out.results, out.nfail)
            if out.nfail and not self.collect:
                self.stopping = True
            return
        assert isinstance(out, ChunkBroken)
        if out.index is None and len(slot.items) > 1:
            self._one_by_one(slot)
        else:
            self._split(slot, out)

    def _replace(self, slot: _Slot, parts: List[_Slot]) -> None:
        i = self.slots.index(slot)
        self.slots[i:i + 1] = parts

    def _one_by_one(self, slot: _Slot) -> None:
        """Which item broke the chunk is unknown (Dask): run each one on its own."""
        parts = [_Slot(slot.base + j, [x]) for j, x in enumerate(slot.items)]
        self._replace(slot, parts)
        for p in parts:
            self._submit(p)

    def _split(self, slot: _Slot, out: ChunkBroken) -> None:
        """A chunk broken at one item: [results kept] [items to re-run] [Failure] [rest re-run]."""
        run = self.run
        k = out.index if out.index is not None else slot.base
        j = k - slot.base
        done = out.done[:j]
        parts = []
        if done:
            head = _Slot(slot.base, slot.items[:len(done)])
            run.convert(head, done, _nfailed(done))
            parts.append(head)
        rerun_head = None
        if len(done) < j:   # lost with the dead worker: run again
            rerun_head = _Slot(slot.base + len(done), slot.items[len(done):j])
            parts.append(rerun_head)
        fslot = _Slot(k, [slot.items[j]])
        fslot.results = [run.record_broken(out, k, slot.items[j])]
        fslot.first_failure = k
        parts.append(fslot)
        rest = None
        if j + 1 < len(slot.items) and self.collect:
            rest = _Slot(k + 1, slot.items[j + 1:])
            parts.append(rest)
        self._replace(slot, parts)
        if not self.collect:
            self.stopping = True
        for part in (rerun_head, rest):
            if part is not None:
                self._submit(part)

    # -- raise mode: stopped at a failure, nothing left running ----------------
    def _settle(self) -> List[Any]:
        """The results before the failing item when they follow on from what was handed
        over (returned, to be yielded); every other result kept on the exception."""
        run = self.run
        first = min(f.index for f in run.failures)
        head: List[Any] = []
        contiguous = run.ordered
        expected = self.slots[0].base if self.slots else self.base
        for s in sorted(self.slots, key=lambda s: s.base):
            if s.results is None or s.base != expected:
                contiguous = False
            for k, r in enumerate(s.results or ()):
                i = s.base + k
                if isinstance(r, Failure):
                    continue
                if contiguous and i < first:
                    head.append(r)
                else:
                    run.kept[i] = r
            if s.results is not None:
                expected = s.base + len(s.results)
                if len(s.results) < len(s.items):
                    contiguous = False
        return head

    def _raise(self) -> NoReturn:
        err = self.run.raise_error()
        fail = min(self.run.failures, key=lambda f: f.index)
        if fail.kind == "exception":
            raise err from fail.exception
        raise err
