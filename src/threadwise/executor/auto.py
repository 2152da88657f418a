"""``backend="auto"``: measure the first items, then pick serial, threads or processes.

::

    items --> probe: the first items run serially in the caller, in batches of
              growing size, for about PROBE_S (their results are kept, not wasted),
              timed by wall clock and CPU clock, while a GilMeter thread notes how
              much of the time the GIL was held
          --> how much is left: len()/length_hint, or a bounded look-ahead buffer
              (at most LOOKAHEAD_S of estimated work or LOOKAHEAD_ITEMS items)
          --> cost model, seconds for the rest:
                serial     rem * t
                threads    rem * max(g*t, c*t/cpus, t/W)        (the GIL, the cores and the
                                                                 workers are each a bottleneck)
                processes  start-up + rem * (max(c*t'/cpus, t'/W) + x)
                           t' = t + pickling in the worker, x = pickling in the parent
          --> the cheapest, where a parallel backend must save >= 10% over serial
              and processes >= 10% over threads (never slower than serial by
              more than the probe's own small cost: tiny work stays serial)

auto remembers each function's measured seconds per item (weakly: the memory goes
with the function): a map of known length that the memory predicts under 2.5 ms
of work runs serially without a probe, timed, and the timing replaces the
memory (items that got heavier cost one serial map, then the probe is back).
It also remembers the CPU and GIL shares a full probe measured: the next
FACTS_REUSE maps of the function confirm them with one batch of ~CONFIRM_S of
items (the time per item within CONFIRM_RATIO of the memory) instead of a full
probe (~20 ms of serial items, with the other cores idle: ~6% of a warm 0.15 s
map on 2 cores); items that changed get the full probe.

Start-up: where processes would win once started but their workers start slowly
(a fresh interpreter each: the start method whenever another thread is alive)
and are not running yet, the caller does not wait for them: it starts them, has
each load fn (import its module) as soon as it is up, and keeps running items
itself until they have (:func:`_serial_while_starting`), then decides again with
the pool warm.  The start-up is measured on the way, never assumed twice.

A call that keeps several CPUs busy by itself (a native thread pool: BLAS,
OpenMP; the process's CPU time over the probe's wall time, ``par``) leaves less
to win: every backend's prediction is bounded by the cores (``c*t*par/cpus``).

``t`` is the seconds per item, ``c`` the CPU share (CPU time / wall time: I/O
waits have c << 1 and get many threads), ``g`` the GIL-held share.  The
sentence in :class:`Choice` gives the numbers that decided.

:func:`plan` reads as four steps, one job each, and never runs an item itself:
the engine does (``_engine.timed_batch``, ``backend_batch``, ``thread_batch``)::

    measure   plan(): asks the engine for the probe batches; _Probe reads their
              timings, the GIL meter, the CPU clocks, and says when it has seen
              enough; _check_threads(): the trial on threads; _transfer(): pickling
    predict   _predict(): seconds for the rest on each backend (:func:`predict`)
    decide    _decide(): the cheapest, by GAIN over the simpler ones
    explain   _explain(): the reason, written when it is first read

On a function's first map of tiny items the probe is two batches and the
decision is made at once (``_tiny``): that path is kept lean (no generator
layer besides :func:`plan` itself, no Future, nothing per item), because it is
most of what ``auto`` costs a map of a millisecond.
"""
from __future__ import annotations

import logging
import math
import operator
import pickle
import time
import weakref
from itertools import chain, islice
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple

from . import _chunk
from .._format import fmt_s, pct
from ._base import Backend, Choice, ItemError, default_start_method
from ._cpus import cpu_count
from ._engine import MapRun, backend_batch, thread_batch, timed_batch
from ._gilmeter import SCHEDSTAT, GilMeter, gil_enabled, thread_sched

FREE_THREADED_BUILD = bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))

PROBE_S = 0.03            # serial measuring time (at most)
PROBE_SHARE = 0.02        # ... and at most this share of the whole map, when its length is known
MIN_PROBE_S = 0.008
METER_AFTER_S = 0.002     # start the GIL meter only once the work proves longer than this,
METER_MIN_S = 0.01        # the meter watches at least this much work
METER_WORK_S = 0.02       # and, when the map's length is known, only for this much work or more
                          # (a second thread costs the first one ~1 ms of GIL hand-offs on a VM)
CPU_LATE_S = 1e-4         # a first item quicker than this: the CPU window opens after the second batch
SAMPLE_ITEMS = 64         # items kept to price pickling them for processes
LOOKAHEAD_S = 1.0         # estimated work to buffer when the input's length is unknown
LOOKAHEAD_ITEMS = 50_000
TINY_WORK_S = 0.005       # less work than this left: serial, whatever the rest says
GAIN = 0.9                # a backend must beat the next simpler one by 10%
PAR_MIN = 1.3             # fn keeps more CPUs than this busy by itself: a native thread pool
THREAD_ITEM_S = 2e-7      # per-item cost of the engine on threads (chunked)
# on a free-threaded build running without its GIL, pure-Python work should go to threads:
# the trial must be long enough to show it (6 items on 2 threads read 1.2x where a longer
# map ran 1.95x): at least FT_TRIAL_S of work per thread, up to FT_TRIAL_SHARE of the rest
#: start-up of one sub-interpreter in a pool (3.14: a fresh interpreter importing the
#: chunk runner and cloudpickle): an estimate (processes get a measured one: startup_estimate)
INTERPRETER_STARTUP_S = 0.02
_INTERP: List[bool] = []


def _interpreters_available() -> bool:
    """Whether this Python has sub-interpreter pools (3.14+), asked once."""
    if not _INTERP:
        from .subinterpreters import available
        _INTERP.append(available()[0])
    return _INTERP[0]


FT_TRIAL_S = 0.1
FT_TRIAL_SHARE = 0.3

#: auto's decisions and their reasons (INFO), for an application's logging configuration
_log = logging.getLogger("threadwise")


# -- what auto learned about a function on its previous maps ----------------------------
#: a map the memory predicts under this much serial work runs serially without a probe
MEMO_TINY_S = TINY_WORK_S / 2
#: a function's CPU and GIL shares measured by a full probe serve this many later maps
#: (each confirmed by a short batch, CONFIRM_S, of its own items) before a full probe again
FACTS_REUSE = 8
CONFIRM_S = 0.002
#: ... when that batch's seconds per item are within this factor of the remembered ones
CONFIRM_RATIO = 2.0
# id(fn) -> (a weak reference to fn, seconds per item, (CPU share, GIL-held share, CPUs
# busy, maps left that may reuse them) or None); the entry goes when fn does.  A plain dict, not a
# WeakKeyDictionary: on a function's first 1 ms map, reading and writing this memory is
# part of auto's cost (its Python-level methods and a lock cost ~3 µs); one dict
# operation is atomic, on free-threaded builds too
_MEMO: Dict[int, Tuple["weakref.ReferenceType[Any]", float,
                       Optional[Tuple[float, Optional[float], float, int]]]] = {}


def _forget(key: int) -> Callable[[Any], None]:
    def gone(ref: Any) -> None:
        entry = _MEMO.get(key)
        if entry is not None and entry[0] is ref:
            _MEMO.pop(key, None)
    return gone


_KEEP: Any = object()


def remember(fn: Any, item_s: float, shares: Any = _KEEP) -> None:
    """Note fn's measured seconds per item (its latest map: the probe's estimate, or the
    timed serial run of a tiny map) and, after a full probe, ``shares``: (CPU share,
    GIL-held share, CPUs busy, maps that may reuse them), or None to forget them.  Functions that
    can't be weakly referenced (builtins, bound methods, which are new objects at each
    access) are simply not remembered."""
    key = id(fn)
    entry = _MEMO.get(key)
    if entry is not None and entry[0]() is fn:
        _MEMO[key] = (entry[0], item_s, entry[2] if shares is _KEEP else shares)
        return
    try:
        _MEMO[key] = (weakref.ref(fn, _forget(key)), item_s, None if shares is _KEEP else shares)
    except TypeError:
        pass


def recall(fn: Any) -> Optional[float]:
    entry = _MEMO.get(id(fn))
    if entry is not None and entry[0]() is fn:
        return entry[1]
    return None


def recall_shares(fn: Any) -> Optional[Tuple[float, Optional[float], float, int]]:
    """(CPU share, GIL-held share, CPUs busy, maps left that may reuse them) from fn's last
    full probe."""
    entry = _MEMO.get(id(fn))
    if entry is not None and entry[0]() is fn:
        return entry[2]
    return None


class Plan:
    def __init__(self, choice: Choice, it: Iterator[Any], next_index: int,
                 remaining: Optional[int], item_s: Optional[float]) -> None:
        self.choice = choice
        self.it = it
        self.next_index = next_index
        self.remaining = remaining
        self.item_s = item_s
        if _log.isEnabledFor(logging.INFO):   # the reason is written only for a listener
            _log.info("auto: %s", choice.reason)


def plan(run: MapRun, it: Iterator[Any], *, workers: Optional[int], start_method: Optional[str],
         probe_backend: Optional[Backend] = None, allow_processes: bool = True,
         sink: Optional[List[Any]] = None,
         start_processes: Optional[Callable[[int], Any]] = None
         ) -> Generator[List[Any], None, Plan]:
    """Run the probe, then decide; returns a :class:`Plan`.  The probe's results are
    yielded as lists, or appended to ``sink`` (pmap's result list) when one is given.
    ``probe_backend``: the one-thread backend that runs the probe when a timeout is set
    (else the probe runs in this thread); ``start_method``: how processes would start;
    ``start_processes(W)``: the executor's process backend for W workers (its
    ``start_workers``/``ready_workers``), so that slow-starting workers (a fresh
    interpreter each) boot while items keep running here (:func:`_serial_while_starting`)."""
    run.backend_name = "serial"
    # a function whose previous map measured it tiny, on a map of known length still
    # predicted tiny: serial at once (the probe would cost more than the map; the run
    # is timed and the memory updated, so heavier items are caught on the next map)
    known_t = recall(run.fn) if run.timeout is None else None
    if known_t is not None:
        total = operator.length_hint(it, -1)
        if 0 <= total and total * known_t < MEMO_TINY_S:
            return _tiny(total, True, it, known_t, 0, 0, None, None, " (measured on this "
                         "function's previous map)")
    probe = _Probe(start_method, run.timeout is None and SCHEDSTAT)
    done = False
    shares = recall_shares(run.fn) if known_t is not None else None
    if known_t is not None and shares is not None and shares[3] > 0:
        # a function a full probe measured lately: one short batch of its items confirms
        # the time per item, and the CPU and GIL shares are the ones measured then (a
        # second full probe would cost a warm map of 1 ms items ~6% on 2 cores)
        k = max(2, min(SAMPLE_ITEMS, math.ceil(CONFIRM_S / max(known_t, 1e-9))))
        got, exhausted, dt, src, dest, _ = yield from _batch_here(run, it, 0, k, sink, True)
        if src is not None:
            probe.sample.append((src, dest, 0))
            probe.kept = got
        t = dt / got if got else known_t
        if exhausted or 1 / CONFIRM_RATIO <= t / known_t <= CONFIRM_RATIO:
            probe.n, probe.spent, probe.exhausted = got, dt, exhausted
            probe.c, probe.g, probe.par, probe.reused = shares
            if probe.start_method is None:
                probe.start_method = default_start_method()
            remember(run.fn, t, shares[:3] + (shares[3] - 1,))
            return (yield from _after_probe(run, it, probe, t, workers, allow_processes, sink,
                                            start_method, start_processes))
        # the items changed: this batch is the first of a full probe
        done = probe.enough(got, dt, exhausted, it)
    # measure: the first items in batches of growing size, run by the engine (in this
    # thread, or in the helper thread that a timeout needs), timed; on Linux the probe
    # also reads this thread's on-CPU and waiting-for-a-CPU times (not in a helper's)
    try:
        while not done:
            if run.timeout is None:
                # straight into the results through the serial loop (no Future, no
                # generator: on tiny items these batches are the whole probe); the first
                # SAMPLE_ITEMS items are kept, with their results, to price pickling them
                # (inline, not through _batch_here: on a tiny map a generator frame per
                # batch is a measurable share of what auto costs)
                dest = sink if sink is not None else []
                mark = len(dest)
                try:
                    got, exhausted, dt, src = timed_batch(run, it, probe.n, probe.batch, dest,
                                                          probe.kept < SAMPLE_ITEMS)
                except ItemError:
                    # stop like a plain loop: the results before the failure, then the error
                    if sink is None and dest:
                        yield dest
                    raise
                if src is not None:
                    probe.sample.append((src, dest, mark))
                    probe.kept += got
                if sink is None and dest:
                    yield dest
            else:
                assert probe_backend is not None
                got, exhausted, dt, it, whole = yield from backend_batch(
                    run, probe_backend, it, probe.n, probe.batch, sink)
                if whole is not None and probe.kept < SAMPLE_ITEMS:
                    probe.sample.append((whole[0], whole[1], 0))
                probe.kept += got
            done = probe.enough(got, dt, exhausted, it)
    finally:
        probe.stop()
    t = probe.item_s()
    if probe.n:
        remember(run.fn, t, (probe.c if probe.c is not None else 1.0, probe.g, probe.par,
                             FACTS_REUSE) if probe.n >= 2 and not probe.tiny else None)
    return (yield from _after_probe(run, it, probe, t, workers, allow_processes, sink,
                                    start_method, start_processes))


def _batch_here(run: MapRun, it: Iterator[Any], base: int, n: int, sink: Optional[List[Any]],
                keep: bool = False) -> Generator[List[Any], None, Tuple[
                    int, bool, float, Optional[List[Any]], List[Any], int]]:
    """One timed batch in this thread (``timed_batch``), its results appended to ``sink``
    (pmap's list) or yielded as a list; on a failure, like a plain loop: the results before
    it, then the error.  Returns (got, exhausted, seconds, the items when ``keep``, the list
    the results went to, where they start in it)."""
    dest = sink if sink is not None else []
    mark = len(dest)
    try:
        got, exhausted, dt, src = timed_batch(run, it, base, n, dest, keep)
    except ItemError:
        if sink is None and dest:
            yield dest
        raise
    if sink is None and dest:
        yield dest
    return got, exhausted, dt, src, dest, mark


def _after_probe(run: MapRun, it: Iterator[Any], probe: "_Probe", t: float,
                 workers: Optional[int], allow_processes: bool, sink: Optional[List[Any]],
                 start_method: Optional[str], start_processes: Optional[Callable[[int], Any]]
                 ) -> Generator[List[Any], None, Plan]:
    """What the probe (or a confirmed memory) leaves to decide."""
    n = probe.n
    if probe.exhausted:
        return Plan(Choice("serial", 1, "serial: all %d items ran while sampling (%s): nothing "
                           "left to spread over workers" % (n, fmt_s(probe.spent)),
                           item_s=t, cpu_share=probe.c, gil_held=probe.g, sampled=n, remaining=0),
                    iter(()), n, 0, t)
    # how much is left?  Tiny work is decided before anything else is looked at
    hint = operator.length_hint(it, -1)
    if 0 < hint and hint * t < TINY_WORK_S:
        return _tiny(hint, True, it, t, n, n, probe.c, probe.g)
    return (yield from _decide_rest(run, it, hint, probe, t, workers, allow_processes, sink,
                                    start_method, start_processes))


def _decide_rest(run: MapRun, it: Iterator[Any], hint: int, probe: "_Probe", t: float,
                 workers: Optional[int], allow_processes: bool, sink: Optional[List[Any]],
                 start_method: Optional[str] = None,
                 start_processes: Optional[Callable[[int], Any]] = None
                 ) -> Generator[List[Any], None, Plan]:
    """After a probe that did not settle it: how much is left, the trial on threads when
    the GIL looks free, then predict -> decide -> explain."""
    rest, rem, known = _remaining(it, hint, t)
    f = _Facts(t, probe.c, probe.g, probe.n, rem, known, workers)
    f.par = probe.par if probe.par >= PAR_MIN else 1.0
    if rem == 0:
        return Plan(Choice("serial", 1, "serial: all %d items ran while sampling (%s)" % (
            f.n, fmt_s(probe.spent)), item_s=t, cpu_share=f.c, gil_held=f.g_meas, sampled=f.n,
            remaining=0), rest, f.n, 0, t)
    if rem * t < TINY_WORK_S:  # decided before any modelling: tiny work pays for nothing else
        return _tiny(rem, known, rest, t, f.n, f.n, f.c, f.g_meas)
    # start-up as this program measured it (0 when the shared pool is warm), not a constant
    from .processes import startup_estimate
    f.startup_s, f.startup_how = startup_estimate(min(f.workers or f.cpus, max(1, f.rem)),
                                                  probe.start_method, run.fn, pool=start_method)
    yield from _check_threads(run, f, rest, probe.budget, sink)
    if f.rem <= 0:
        return Plan(Choice("threads", f.wtr, "threads x%d: ran the last items (%s)" % (
            f.wtr, f.trial), item_s=t, cpu_share=f.c, gil_held=f.g, sampled=f.n, remaining=0),
            rest, f.n, 0, t)
    transfer = _transfer(run, f, probe, allow_processes)
    preds = _predict(f, transfer[:2])
    best, w = _decide(preds)
    if probe.meter is not None and "processes" in preds:
        probe.meter.join()  # a live meter thread would make the pool spawn instead of fork
    if start_processes is not None and "processes" in preds and run.timeout is None:
        booted = yield from _serial_while_starting(run, f, rest, transfer, start_method,
                                                   start_processes, sink)
        if booted is not None:
            if booted[0]:   # the input ran out while they started
                return Plan(Choice("serial", 1, "serial: %s" % f.overlap, item_s=t,
                                   cpu_share=f.c, gil_held=f.g, sampled=f.n, remaining=0),
                            rest, f.n, 0, t)
            transfer = booted[1]
            preds = _predict(f, transfer[:2])
            best, w = _decide(preds)
    remaining = f.rem if f.known else None
    reused = probe.reused
    return Plan(Choice(best, w, lambda: _explain(best, f, preds, transfer) + (
                           "; CPU and GIL shares as this function's probe measured them %d "
                           "map%s ago, its time per item re-measured on %d item%s" % (
                               FACTS_REUSE - reused + 1, "" if FACTS_REUSE - reused == 0 else
                               "s", probe.n, "" if probe.n == 1 else "s") if reused else ""),
                       item_s=t, cpu_share=f.c, gil_held=f.g, sampled=f.n, remaining=remaining,
                       predicted_s={k: v[0] for k, v in preds.items()}),
                rest, f.n, remaining, t)


# -- measuring ---------------------------------------------------------------------------
class _Probe:
    """What the probe measured, batch by batch, and when it has seen enough (module doc).

    The wall time of each batch comes from the engine; the CPU share and the GIL-held
    share are read over windows that open once the work proves worth measuring and
    close at :meth:`stop`.  A plain object with slots, and nothing here runs per item:
    on a tiny map this bookkeeping is most of what auto costs.
    """

    __slots__ = ("start_method", "use_sched", "n", "spent", "batch", "first", "exhausted",
                 "tiny", "budget", "total_s", "meter", "meter_from", "sched_from", "cpu_from",
                 "sample", "kept", "c", "g", "reused", "par")

    def __init__(self, start_method: Optional[str], use_sched: bool) -> None:
        self.start_method = start_method   # decided when the meter starts, if not given
        self.use_sched = use_sched         # read the thread's scheduler times (Linux)
        self.n = 0                         # items run
        self.spent = 0.0                   # seconds in the batches
        self.batch = 1                     # size of the next batch
        self.first: Optional[Tuple[int, float]] = None  # the first batch: (items, seconds)
        self.exhausted = False
        self.tiny = False                  # decided tiny on the way (no CPU share needed)
        self.budget = PROBE_S
        self.total_s: Optional[float] = None  # estimated serial seconds for the whole map, when known
        self.meter: Optional[GilMeter] = None
        self.meter_from = 0.0
        # the thread's scheduler times, read once around the probe, not per batch: reading
        # a file releases the GIL, which would let the meter in and make the call look
        # freer than it is (from the moment the work proves long enough to be worth
        # measuring, like the meter): (scheduler times, wall clock, seconds spent) then
        self.sched_from: Optional[Tuple[Tuple[float, float], float, float]] = None
        # the CPU share: process CPU time from the end of the first (cold) batch, or of the
        # second when the first item was quick, to the end of the probe; read twice, not per
        # batch (on a VM each read is a ~1 µs system call, which tiny items would pay for), and
        # not at all when tiny work is decided on the way: (wall clock, CPU time, seconds
        # spent) when that window opened
        self.cpu_from: Optional[Tuple[float, float, float]] = None
        # the first SAMPLE_ITEMS items with their results, to price pickling them: kept as
        # (items, the list their results went to, where they start in it), copied only if needed
        self.sample: List[Tuple[List[Any], List[Any], int]] = []
        self.kept = 0
        self.c: Optional[float] = None     # CPU share, once stopped
        self.g: Optional[float] = None     # GIL-held share, once stopped (None: not metered)
        self.reused = 0                    # >0: c and g come from an earlier map's probe
        self.par = 1.0                     # CPUs the process kept busy while fn ran (>1: fn
                                           # runs a native thread pool: BLAS, OpenMP)

    def enough(self, got: int, dt: float, exhausted: bool, it: Iterator[Any]) -> bool:
        """Note a batch of ``got`` items that took ``dt`` s; True when the probe has seen
        enough, else the next batch's size is set."""
        self.exhausted = exhausted
        if got == 0:
            return True
        n = self.n = self.n + got
        spent = self.spent = self.spent + dt
        if self.first is None:
            self.first = (got, dt)
        total_s = self.total_s
        if n == got or total_s is not None:
            # after each batch (the first call runs cold, and on tiny items a small
            # batch's timing is mostly the clock's own cost: the latest, largest batch
            # tells best): a short map gets a short probe, and a map of a few
            # milliseconds of work is decided serial at once, so that the rest runs
            # in the cheapest loop there is
            hint = operator.length_hint(it, -1)
            if hint >= 0:
                total_s = self.total_s = (n + hint) * (dt / got if n > got else spent / n)
                self.budget = min(PROBE_S, max(MIN_PROBE_S, PROBE_SHARE * total_s))
                if total_s < TINY_WORK_S and n > got:
                    self.tiny = True
                    return True
        meter = self.meter
        if (meter is None and spent >= METER_AFTER_S and not exhausted
                and (total_s is None or total_s >= METER_WORK_S)):
            meter = self._start_meter()
        # (and the GIL meter gets two switch intervals of real items to watch)
        budget = self.budget
        if exhausted or (spent >= budget
                         and (meter is None or spent - self.meter_from >= METER_MIN_S)):
            return True
        # enough items to fill the budget at the latest batch's pace, no more: on 10 ms
        # items every item too many is one the other cores did not run
        # (after the lone first item, straight to 64: on tiny items a batch of 8 times
        # mostly the clock; the budget keeps long items to one or two)
        grow = 64 if n == got else self.batch * 8
        self.batch = max(1, min(grow, math.ceil((budget - spent) / max(dt / got, 1e-9))))
        if self.cpu_from is None and (n > got or dt >= CPU_LATE_S):
            # after the first batch, or, when that one item was quick, after the second
            # (a map it shows tiny needs no CPU share: no system call for it)
            self.cpu_from = (time.perf_counter(), time.process_time(), spent)
        return False

    def _start_meter(self) -> GilMeter:
        if self.start_method is None:
            # decided now, while the meter is not running: processes would start
            # after it stops, from a process with as many threads as now
            self.start_method = default_start_method()
        meter = self.meter = GilMeter().start()
        self.meter_from = self.spent
        if self.use_sched:
            sched0, wall0 = thread_sched(), time.perf_counter()
            if sched0 is not None:
                self.sched_from = (sched0, wall0, self.spent)
        return meter

    def stop(self) -> None:
        """Close the windows (also when fn raised: the meter thread stops): the CPU share
        ``c`` and the GIL-held share ``g``."""
        sched_from, cpu_from, meter = self.sched_from, self.cpu_from, self.meter
        if sched_from is None and cpu_from is None and meter is None:
            return  # no window opened (a tiny map): c and g stay None
        sched1 = thread_sched() if sched_from is not None else None
        wall1 = time.perf_counter()
        spent = self.spent
        c: Optional[float] = None
        if cpu_from is not None and not self.tiny and spent > cpu_from[2]:
            # the process's CPU time, scaled to the share of the window spent in fn; above
            # one CPU, fn keeps several busy by itself (the meter thread takes ~1%)
            wall_c0, cpu0, spent_c0 = cpu_from
            busy = ((time.process_time() - cpu0)
                    / max(wall1 - wall_c0, spent - spent_c0, 1e-9))
            c = min(1.0, busy)
            self.par = max(1.0, busy)
        self.g = meter.stop() if meter is not None else None
        if sched_from is not None and sched1 is not None and spent > sched_from[2]:
            # CPU share = on-CPU / (wall - waiting for a core), over the measured window (time
            # spent waiting for a free core on a loaded machine is neither CPU work nor I/O)
            sched0, wall0, _ = sched_from
            span = max(wall1 - wall0, 1e-9)
            cpu = sched1[0] - sched0[0]
            queued = min(max(0.0, sched1[1] - sched0[1]), span * 0.95)
            c = min(1.0, cpu / (span - queued))
        self.c = c

    def item_s(self) -> float:
        """Seconds per item, the first call left out when more ran: it runs cold (imports,
        caches, a JIT's first pass) and, on tiny items, times mostly the clock itself."""
        first = self.first
        if first is not None and self.n > first[0]:
            return (self.spent - first[1]) / (self.n - first[0])
        return self.spent / self.n if self.n else 0.0

    def sampled(self) -> Tuple[List[Any], List[Any]]:
        """The first SAMPLE_ITEMS items run and their results (to price pickling them)."""
        items: List[Any] = []
        results: List[Any] = []
        for src, dest, mark in self.sample:
            items.extend(src)
            results.extend(dest[mark:mark + len(src)])
        return items[:SAMPLE_ITEMS], results[:SAMPLE_ITEMS]


def _remaining(it: Iterator[Any], hint: int, t: float) -> Tuple[Iterator[Any], int, bool]:
    """How many items are left: (the rest of the input, the count, whether that is all
    of them).  Without a length hint, a bounded look-ahead buffer counts them (at most
    LOOKAHEAD_S of estimated work or LOOKAHEAD_ITEMS items)."""
    if hint >= 0:
        return it, hint, True
    buffered: List[Any] = []
    known = False
    step = 256
    while len(buffered) * t < LOOKAHEAD_S and len(buffered) < LOOKAHEAD_ITEMS:
        more = list(islice(it, step))
        buffered.extend(more)
        if len(more) < step:
            known = True
            break
        step = min(step * 2, 8192)
    return (chain(buffered, it) if buffered else it), len(buffered), known


class _Facts:
    """What auto knows about the rest of the map when it predicts, decides and explains."""

    __slots__ = ("t", "c", "g", "g_meas", "gil_on", "n", "rem", "known", "cpus", "workers",
                 "wtr", "startup_s", "startup_how", "trial", "s_thr", "overlap", "par")

    def __init__(self, t: float, c: Optional[float], g_meas: Optional[float], n: int, rem: int,
                 known: bool, workers: Optional[int]) -> None:
        self.t = t
        self.c = 1.0 if c is None else c  # not measured (a map of one or two items): CPU-bound
        self.g_meas = g_meas
        self.gil_on = gil_enabled()
        g = g_meas if g_meas is not None else (self.c if self.gil_on else 0.0)
        self.g = g if self.gil_on else min(g, 0.05)
        self.n = n                   # items run (the next one's index)
        self.rem = rem               # items left (at least, unless ``known``)
        self.known = known
        self.cpus = cpu_count()
        self.workers = workers       # as the caller asked (None: one per CPU)
        self.wtr = min(self.cpus, workers or self.cpus)  # threads in the trial
        self.startup_s = 0.0         # seconds to start the process pool
        self.startup_how = ""        # how that figure was obtained (warm, measured, assumed)
        self.trial = ""              # what the trial on threads showed, in words
        self.s_thr: Optional[float] = None  # its measured speed-up
        self.overlap = ""            # items that ran here while the workers started, in words
        self.par = 1.0               # CPUs fn keeps busy by itself (a native thread pool)

    def left(self) -> str:
        return "%d items left" % self.rem if self.known else "at least %d items left" % self.rem


#: a batch run here between two looks at the booting workers (seconds of work)
BOOT_BATCH_S = 0.005


def _serial_while_starting(run: MapRun, f: _Facts, rest: Iterator[Any],
                           transfer: Tuple[Optional[float], Optional[float], int, str],
                           start_method: Optional[str], start_processes: Callable[[int], Any],
                           sink: Optional[List[Any]]
                           ) -> Generator[List[Any], None, Optional[Tuple[bool, Any]]]:
    """Where processes would win once started but their workers are not running yet and
    start slowly (spawn: a fresh interpreter each, tens of milliseconds; the start method
    when any other thread is alive), don't wait for them and don't give up on them: start
    them, and run items here in batches of BOOT_BATCH_S until they are ready, so that
    their start-up costs the map (almost) nothing; then the rest is decided again, with
    the pool warm.  The start-up is measured on the way (:func:`processes.startup_estimate`
    knows it from then on).  None when this does not apply (fork is quick and parks the
    caller, the pool is warm, the work left is less than the start-up estimate, or
    processes would not win even warm); else (input exhausted, transfer for the
    decision: processes excluded when the workers failed)."""
    if f.startup_how.startswith("warm") or f.startup_s <= 0 or f.rem * f.t < f.startup_s:
        return None   # warm, or less work left than starting the workers would cost
    warm = predict(f.rem, f.t, f.c, f.g, f.cpus, f.workers, transfer[:2], 0.0, par=f.par)
    if f.s_thr is not None:
        warm["threads"] = _predict(f, transfer[:2])["threads"]
    if _decide(warm)[0] != "processes":
        return None
    from .processes import start_method_now
    if start_method_now(start_method) == "fork":
        return None
    wp = warm["processes"][1]
    backend = start_processes(wp)
    t0 = time.perf_counter()
    backend.start_workers(wp)
    backend.warm_fn(run.fn)   # each worker loads fn (imports its module) once it is up
    n0 = f.n
    batch = int(max(1, min(4096, BOOT_BATCH_S / max(f.t, 1e-9))))
    exhausted = False
    ready = backend.fn_ready(run.fn)
    while 0 <= ready < wp:
        got, exhausted, _, _, _, _ = yield from _batch_here(run, rest, f.n, batch, sink)
        f.n += got
        f.rem = max(0, f.rem - got)
        if exhausted or got == 0:
            exhausted = True
            break
        ready = backend.fn_ready(run.fn)
    boot = time.perf_counter() - t0
    ran = f.n - n0
    f.startup_s = 0.0
    if ready < 0:
        f.overlap = ("the worker processes could not start (%s); %d items ran here meanwhile"
                     % (fmt_s(boot), ran))
        return exhausted, (None, None, 0, f.overlap)
    if exhausted:
        f.overlap = ("all %d items left ran here while %d worker processes started (%s): "
                     "they stay warm for the next map" % (ran, wp, fmt_s(boot)))
        return True, transfer
    f.startup_how = ("overlapped: %d worker processes started and loaded fn in %s while %d "
                     "items ran here" % (wp, fmt_s(boot), ran))
    if not f.known and f.rem == 0:
        f.rem = 1  # the look-ahead ran dry, not the input: at least one more
    return False, transfer


def _check_threads(run: MapRun, f: _Facts, rest: Iterator[Any], budget: float,
                   sink: Optional[List[Any]]) -> Generator[List[Any], None, None]:
    """Measure threads on real items where the meter says "released" on CPU-bound work
    (or there is no GIL).

    Threads must be seen to scale, on at most 15% of the rest (if they don't, at ~0.65x,
    the trial costs the map ~5%).  A call that drops the GIL often but briefly looks
    freer than it is, and a library can serialize its callers itself (measured: numpy's
    150x150 matmul, GIL released, OpenBLAS: 2 threads 0.87x serial).  The trial's items
    are results, not a rehearsal: the engine runs them (``thread_batch``)."""
    wtr = f.wtr
    if f.gil_on:
        k = min(int(f.rem * 0.15), max(4 * wtr, int(budget * wtr / max(f.t, 1e-9))))
    else:   # no GIL: a trial long enough to see threads scale (FT_TRIAL_S per thread)
        k = min(int(f.rem * FT_TRIAL_SHARE), max(8 * wtr, int(FT_TRIAL_S * wtr / max(f.t, 1e-9))))
    if not (f.c >= 0.5 and f.g < 0.5 and wtr >= 2 and k >= 2 * wtr and not run.timeout
            and 2 * f.par <= f.cpus):   # (a call that fills the CPUs by itself can't gain)
        return
    take = list(islice(rest, k))
    if not take:
        return
    wall = yield from thread_batch(run, take, f.n, wtr, sink)
    f.n += len(take)
    f.rem -= len(take)
    f.s_thr = s_thr = len(take) * f.t / wall if wall > 0 else 1.0
    g_trial = max(0.0, min(1.0, (wtr / max(s_thr, 1e-9) - 1) / (wtr - 1)))
    f.trial = "%d threads ran %d items at %.1fx" % (wtr, len(take), s_thr)
    f.g = max(f.g, g_trial)


def _transfer(run: MapRun, f: _Facts, probe: _Probe, allow_processes: bool
              ) -> Tuple[Optional[float], Optional[float], int, str]:
    """Pickling's cost (see :func:`transfer_cost`), measured only when processes could win
    even with free transfer (pickling fn and a sample costs ~0.1 ms)."""
    if not allow_processes:
        return None, None, 0, ""
    free = _predict(f, (0.0, 0.0))
    if free["processes"][0] < GAIN * min(free["serial"][0], free["threads"][0]):
        return transfer_cost(run.fn, *probe.sampled())
    return 0.0, 0.0, 0, ""


def transfer_cost(fn: Callable[[Any], Any], items: List[Any], results: List[Any]) -> Tuple[Optional[float], Optional[float], int, str]:
    """Per item: (parent-side seconds, worker-side seconds, bytes, why-not) to send items to a
    worker process and results back, measured on a sample.  Seconds are None when fn, an
    item or a result can't be pickled (why-not says which)."""
    try:
        _chunk.dumps(fn)
    except Exception as e:
        return None, None, 0, "fn can't be pickled (%s: %s)" % (type(e).__name__, e)
    sample_items = items[:64]
    sample_results = [r for r in results[:64]]
    if not sample_items:
        return 0.0, 0.0, 0, ""
    try:
        t0 = time.perf_counter()
        bi = _chunk.dumps(sample_items)
        t1 = time.perf_counter()
        pickle.loads(bi)
        t2 = time.perf_counter()
        br = pickle.dumps(sample_results, _chunk.PROTOCOL)
        t3 = time.perf_counter()
        pickle.loads(br)
        t4 = time.perf_counter()
    except Exception as e:
        return None, None, 0, "items or results can't be pickled (%s: %s)" % (type(e).__name__, e)
    n = len(sample_items)
    parent = ((t1 - t0) + (t4 - t3)) / n
    worker = ((t2 - t1) + (t3 - t2)) / n
    return parent, worker, (len(bi) + len(br)) // n, ""


# -- predicting ----------------------------------------------------------------------------
def threads_for(c: float, cpus: int, workers: Optional[int]) -> int:
    """Threads worth running: one per CPU for CPU work, more when items mostly wait."""
    if workers is not None:
        return workers
    if c >= 0.5:
        return cpus
    return int(min(64, max(cpus, math.ceil(cpus / max(c, 1.0 / 64)))))


def predict(rem: int, t: float, c: float, g: float, cpus: int, workers: Optional[int],
            transfer: Tuple[Optional[float], Optional[float]], startup_s: float,
            interpreters_s: Optional[float] = None, par: float = 1.0
            ) -> Dict[str, Tuple[float, int]]:
    """Seconds for ``rem`` more items on each backend (and the worker count it assumes);
    ``interpreters_s``: start-up per sub-interpreter where a pool of them exists (3.14+);
    ``par``: CPUs one call keeps busy by itself (a native thread pool), so that W calls at
    once need W * par of them: the cores bound every backend by ``c * t * par / cpus``."""
    out: Dict[str, Tuple[float, int]] = {"serial": (rem * t, 1)}
    wt = max(1, min(threads_for(c, cpus, workers), rem))
    cores = c * t * par / cpus   # seconds per item with every core busy
    out["threads"] = (rem * max(g * t, c * t * par / min(wt * par, cpus), t / wt, cores)
                      + rem * THREAD_ITEM_S + 0.0002 * wt, wt)
    parent, worker = transfer
    if parent is not None and worker is not None:
        wp = max(1, min(workers or cpus, rem))
        tw = t + worker
        run_s = rem * (max(c * tw * par / min(wp * par, cpus), tw / wp,
                           c * tw * par / cpus) + parent)
        out["processes"] = (startup_s + 0.002 * wp + run_s, wp)
        if interpreters_s is not None:
            # sub-interpreters: each its own GIL, the same pickling, no process to start
            out["interpreters"] = (interpreters_s * wp + run_s, wp)
    return out


def _predict(f: _Facts, transfer: Tuple[Optional[float], Optional[float]]
             ) -> Dict[str, Tuple[float, int]]:
    """Seconds for the rest on each backend (and its workers): :func:`predict`, with the
    trial's measured threads in place of the modelled ones.  ``transfer``: pickling's
    (parent, worker) seconds per item, None where processes can't be used."""
    p = predict(f.rem, f.t, f.c, f.g, f.cpus, f.workers, transfer, f.startup_s,
                INTERPRETER_STARTUP_S if f.gil_on and _interpreters_available() else None,
                par=f.par)
    if f.s_thr is not None:  # measured beats modelled: threads ran real items at s_thr
        p["threads"] = (f.rem * f.t / max(f.s_thr, 1e-9) + 0.0002 * f.wtr, f.wtr)
    if 2 * f.par > f.cpus:
        # the call fills the CPUs by itself (a native thread pool): two at once can only
        # oversubscribe them (numpy's matmul on 2 threads, each with a 2-thread BLAS, ran
        # 0.63x serial here), and the model's bound is the best case, not a forecast
        for name in ("threads", "processes", "interpreters"):
            if name in p:
                p[name] = (max(p[name][0], p["serial"][0]), p[name][1])
    return p


# -- deciding ------------------------------------------------------------------------------
def _decide(preds: Dict[str, Tuple[float, int]]) -> Tuple[str, int]:
    """The cheapest backend and its workers: threads must beat serial by GAIN; sub-interpreters
    (3.14+) and processes must beat serial, threads, and each other when the other was chosen."""
    ts = preds["serial"][0]
    tt, wt = preds["threads"]
    best, w = "serial", 1
    if tt < GAIN * ts:
        best, w = "threads", wt
    for name in ("interpreters", "processes"):   # the lighter one first: it wins a tie
        if name in preds:
            tp, wp = preds[name]
            rivals = [ts, tt] + [preds[b][0] for b in ("interpreters", "processes")
                                 if b in preds and b != name and b == best]
            if tp < GAIN * min(rivals):
                best, w = name, wp
    return best, w


# -- explaining ----------------------------------------------------------------------------
def _explain(best: str, f: _Facts, preds: Dict[str, Tuple[float, int]],
             transfer: Tuple[Optional[float], Optional[float], int, str]) -> str:
    """The sentence in :class:`Choice`: the numbers that decided (written when first read)."""
    ts = preds["serial"][0]
    tt, wt = preds["threads"]
    tp = preds["processes"][0] if "processes" in preds else float("inf")
    parent, worker, _, why_not = transfer

    def x(sec: float) -> str:
        return "%.1fx" % (ts / sec) if sec > 0 else "-"

    left, t = f.left(), fmt_s(f.t)
    if best == "serial" and f.par > 1:
        return ("serial: %s at %s each; the call already keeps ~%.1f CPUs busy by itself (a "
                "native thread pool: BLAS, OpenMP), so threads would give ~%s and processes ~%s "
                "on %d CPUs" % (left, t, f.par, x(tt), x(tp), f.cpus))
    if best == "serial":
        if "processes" in preds:
            return ("serial: %s at %s each; the call %s, so threads would give ~%s, and "
                    "processes ~%s after start-up (%s) and transfer (%s per item)" % (
                        left, t, _holds(f), x(tt), x(tp), _startup(f),
                        fmt_s((parent or 0) + (worker or 0))))
        return ("serial: %s at %s each; the call %s, so threads would give ~%s, and "
                "processes can't be used: %s" % (left, t, _holds(f), x(tt), why_not))
    if best == "threads":
        tail = "no start-up or transfer cost"
        if "processes" in preds:
            tail += "; processes would give ~%s" % x(tp)
        return "threads x%d: %s: predicted %s over serial for %s of %s each, %s" % (
            wt, _why_threads(f, wt), x(tt), left, t, tail)
    if best == "interpreters":
        ti, wi = preds["interpreters"]
        return ("interpreters x%d: the call %s, so threads would give ~%s; sub-interpreters (each "
                "its own GIL, no process to start) predicted %s for %s of %s each, processes ~%s "
                "(start-up %s, transfer %s per item)" % (
                    wi, _holds(f), x(tt), x(ti), left, t, x(tp), _startup(f),
                    fmt_s((parent or 0) + (worker or 0))))
    return ("processes x%d: the call %s, so threads would give ~%s; processes predicted %s for "
            "%s of %s each (start-up %s, transfer %s per item)" % (
                preds["processes"][1], _holds(f), x(tt), x(tp), left, t, _startup(f),
                fmt_s((parent or 0) + (worker or 0))))


def _startup(f: _Facts) -> str:
    """``~38 ms, measured: ...`` / ``0 (warm: the shared pool has 2 workers started)``."""
    if f.startup_how.startswith("overlapped"):
        return f.startup_how
    how = f.startup_how.split(":")[0] if f.startup_how else "assumed"
    return "%s, %s" % ("~" + fmt_s(f.startup_s) if f.startup_s > 0 else "none", how)


def _holds(f: _Facts) -> str:
    """How the call treats the GIL, in words, with the trial's finding."""
    trial = f.trial
    g_seen = f.g_meas if f.g_meas is not None else f.c
    if f.gil_on and trial and g_seen < 0.5 and f.g >= 0.5:
        # the meter saw the GIL free, yet threads did not scale: something else
        # serializes the calls (a library's own lock, memory bandwidth)
        return ("releases the GIL (held %s of the time) but does not scale on threads (%s)"
                % (pct(g_seen), trial))
    if f.gil_on and FREE_THREADED_BUILD:
        return ("holds the GIL %s of the time: this free-threaded build runs WITH its GIL (%s), so "
                "threads can't scale%s" % (pct(f.g), _why_gil_on(), " (%s)" % trial if trial else ""))
    if f.gil_on:
        return "holds the GIL %s of the time%s" % (pct(f.g), " (%s)" % trial if trial else "")
    return "runs on a free-threaded build (no GIL)%s" % (
        " but does not scale on threads (%s)" % trial if trial else "")


def _why_gil_on() -> str:
    """Why a free-threaded build has its GIL on: PYTHON_GIL / -X gil, or an extension module
    without free-threading support (Python named it in a RuntimeWarning at its import)."""
    import os
    import sys
    if os.environ.get("PYTHON_GIL") == "1" or str(getattr(sys, "_xoptions", {}).get("gil")) == "1":
        return "PYTHON_GIL=1 or -X gil=1 turned it on"
    return ("an imported extension module not marked free-threading-safe turned it back on; "
            "Python's RuntimeWarning at that import names it")


def _why_threads(f: _Facts, wt: int) -> str:
    trial = f.trial
    if f.c < 0.5:
        return "it waits (CPU busy %s of the time), so %d threads overlap the waits" % (pct(f.c), wt)
    if not f.gil_on:
        return "no GIL on this free-threaded build%s" % ("; " + trial if trial else "")
    if f.g < 0.3:
        return "the call releases the GIL (held %s of the time%s)" % (
            pct(f.g), "; " + trial if trial else "")
    return "the call holds the GIL only %s of the time%s" % (pct(f.g), " (%s)" % trial if trial else "")


def _tiny(rem: int, known: bool, rest: Iterator[Any], t: float, base: int, n: int,
          c: Optional[float], g: Optional[float], source: str = "") -> Plan:
    """Serial, decided before any modelling: tiny work pays for nothing else."""
    return Plan(Choice("serial", 1, lambda: "serial: %s%d items left at %s each%s are %s of work, "
                       "less than starting workers would cost" % (
                           "" if known else "at least ", rem, fmt_s(t), source, fmt_s(rem * t)),
                       item_s=t, cpu_share=c, gil_held=g, sampled=n,
                       remaining=rem if known else None, predicted_s={"serial": rem * t}),
                rest, base, rem if known else None, t)
