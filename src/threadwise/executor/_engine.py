"""The map engine: lazy input, chunks sized from measured time, bounded in-flight, ordered output.

::

    input iterator --islice(chunk size)--> Slot(base, items) --backend.submit_chunk--> Future
         ^ pulled only while fewer than W x 2 chunks are in flight (lazy: a generator of
         | a million items never sits in memory)
    done callback --> completion queue --> engine (caller's thread):
         ChunkDone   -> slot ready; per-item time feeds the Chunker
         ChunkBroken -> slot split: [results kept] [items to re-run] [Failure] [rest re-run]
    ready slots --> yielded as lists, in input order (ordered=True) or as they finish

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
import operator
import queue
import sys
import textwrap
import threading
from itertools import islice
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple

from . import _chunk
from ._base import (Backend, ChunkBroken, ChunkDone, Failure, ItemError, ItemTimeoutError,
                    WorkerCrashedError, _short_repr)

MAX_CHUNK = 100_000


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
    no worker is handed the whole tail while the others idle.
    """

    def __init__(self, fixed: Optional[int], target_s: float, workers: int,
                 remaining: Optional[int] = None, item_s: Optional[float] = None) -> None:
        self.fixed = fixed
        self.target_s = target_s
        self.workers = max(1, workers)
        self.remaining = remaining
        self.item_s = item_s
        self.sizes = 0

    def next_size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.item_s is None:
            return 1
        size = self.target_s / max(self.item_s, 1e-9)
        if self.remaining is not None:
            floor = (self.target_s / 8.0) / max(self.item_s, 1e-9)
            size = min(size, max(floor, self.remaining / (2.0 * self.workers)))
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
        t0 = _chunk.clock()
        try:
            got, exhausted = serial_batch(run, it, base, n, dest)
        except ItemError:
            if sink is None and dest:
                yield dest  # the results before the failing item, then the error
            raise
        dt = _chunk.clock() - t0
        if sink is None and dest:
            yield dest
        if got:
            per = dt / got
            item_s = per if item_s is None else 0.5 * (item_s + per)
        base += got
        if exhausted:
            return base - start


def run_chunks(run: MapRun, backend: Backend, it: Iterator[Any], base: int,
               chunker: Chunker) -> Iterator[List[Any]]:
    """Map ``run.fn`` over ``it`` on ``backend``; yield lists of results (see module doc)."""
    run.backend_name = backend.name
    collect = run.errors == "collect"
    doneq: "queue.SimpleQueue[_Slot]" = queue.SimpleQueue()
    slots: List[_Slot] = []
    state = {"running": 0}
    max_inflight = max(1, backend.workers * backend.inflight_per_worker)
    exhausted = False
    stopping = False
    next_index = base
    tick = 0.25

    def submit(slot: _Slot) -> None:
        if chunker.item_s:
            backend.item_s_hint = chunker.item_s
        fut = backend.submit_chunk(run.fn, slot.base, slot.items, timeout=run.timeout,
                                   stop_on_error=not collect)
        slot.future = fut
        state["running"] += 1
        with run.counters.lock:
            run.counters.chunks += 1
        def done(_: "cf.Future[Any]", s: _Slot = slot) -> None:
            doneq.put(s)
        fut.add_done_callback(done)

    def replace(slot: _Slot, parts: List[_Slot]) -> None:
        i = slots.index(slot)
        slots[i:i + 1] = parts

    def handle(slot: _Slot) -> None:
        nonlocal stopping
        state["running"] -= 1
        fut = slot.future
        assert fut is not None
        if fut.cancelled():
            slot.results = []
            return
        exc = fut.exception()
        if exc is not None:  # the chunk as a whole failed (its results could not come back)
            failed = [_chunk.capture(exc, slot.base + k) for k in range(len(slot.items))]
            run.convert(slot, failed, len(failed))
            if not collect:
                stopping = True
            return
        out = fut.result()
        if isinstance(out, ChunkDone):
            chunker.observe(len(out.results), out.elapsed)
            run.convert(slot, out.results, out.nfail)
            if out.nfail and not collect:
                stopping = True
            return
        assert isinstance(out, ChunkBroken)
        k = out.index
        n = len(slot.items)
        if k is None and n > 1:
            # which item broke it is unknown (Dask): run each one on its own
            parts = []
            for j, x in enumerate(slot.items):
                p = _Slot(slot.base + j, [x])
                parts.append(p)
            replace(slot, parts)
            for p in parts:
                submit(p)
            return
        if k is None:
            k = slot.base
        j = k - slot.base
        done = out.done[:j]
        parts = []
        if done:
            head = _Slot(slot.base, slot.items[:len(done)])
            run.convert(head, done, 0)
            parts.append(head)
        rerun_head = None
        if len(done) < j:   # lost with the dead worker: run again
            rerun_head = _Slot(slot.base + len(done), slot.items[len(done):j])
            parts.append(rerun_head)
        fail = run.broken_failure(out, k, slot.items[j])
        fslot = _Slot(k, [slot.items[j]])
        run.failures.append(fail)
        fslot.first_failure = k
        fslot.results = [fail]
        with run.counters.lock:
            run.counters.items_done += 1
            run.counters.items_failed += 1
        parts.append(fslot)
        rest = None
        if j + 1 < n and collect:
            rest = _Slot(k + 1, slot.items[j + 1:])
            parts.append(rest)
        replace(slot, parts)
        if not collect:
            stopping = True
        for part in (rerun_head, rest):
            if part is not None:
                submit(part)

    clean = False
    try:
        while True:
            while not exhausted and not stopping and state["running"] < max_inflight:
                size = chunker.next_size()
                items = list(islice(it, size))
                if len(items) < size:
                    exhausted = True
                if not items:
                    break
                slot = _Slot(next_index, items)
                next_index += len(items)
                chunker.consumed(len(items))
                slots.append(slot)
                submit(slot)
            if not stopping:
                if run.ordered:
                    while slots and slots[0].results is not None:
                        first_slot = slots.pop(0)
                        yield first_slot.results  # type: ignore[misc]  # not None: checked above
                else:
                    ready = [s for s in slots if s.results is not None]
                    for r in ready:
                        slots.remove(r)
                        yield r.results  # type: ignore[misc]
            if state["running"] == 0:
                if stopping:
                    break
                if exhausted and not slots:
                    clean = True
                    return
                if exhausted or not slots:
                    continue
            wait = tick
            if run.deadline is not None:
                remaining = run.deadline - _chunk.clock()
                if remaining <= 0:
                    raise cf.TimeoutError()
                wait = min(wait, remaining)
            try:
                finished = doneq.get(timeout=wait)
            except queue.Empty:
                continue
            handle(finished)
            while True:
                try:
                    finished = doneq.get_nowait()
                except queue.Empty:
                    break
                handle(finished)
        # raise mode, stopped at a failure, nothing left running: yield the results
        # before the failing item (when they follow on from what was yielded), keep
        # every other result on the exception
        first = min(f.index for f in run.failures)
        head: List[Any] = []
        contiguous = run.ordered
        expected = slots[0].base if slots else base
        for s in sorted(slots, key=lambda s: s.base):
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
        if head:
            yield head
        clean = True
        err = run.raise_error()
        fail = min(run.failures, key=lambda f: f.index)
        if fail.kind == "exception":
            raise err from fail.exception
        raise err
    except GeneratorExit:
        clean = True
        for s in slots:
            if s.future is not None and s.results is None:
                s.future.cancel()
        raise
    finally:
        if not clean:
            backend.abort()

