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

``t`` is the seconds per item, ``c`` the CPU share (CPU time / wall time: I/O
waits have c << 1 and get many threads), ``g`` the GIL-held share.  The
sentence in :class:`Choice` gives the numbers that decided.
"""
from __future__ import annotations

import math
import operator
import pickle
import time
import weakref
from itertools import chain, islice
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Tuple

from . import _chunk
from .._format import fmt_s, pct
from ._base import STARTUP_S, Backend, ChunkBroken, Choice, ItemError, default_start_method
from ._cpus import cpu_count
from ._engine import MapRun, _Slot, serial_batch
from ._gilmeter import SCHEDSTAT, GilMeter, gil_enabled, thread_sched

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
THREAD_ITEM_S = 2e-7      # per-item cost of the engine on threads (chunked)


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


def threads_for(c: float, cpus: int, workers: Optional[int]) -> int:
    """Threads worth running: one per CPU for CPU work, more when items mostly wait."""
    if workers is not None:
        return workers
    if c >= 0.5:
        return cpus
    return int(min(64, max(cpus, math.ceil(cpus / max(c, 1.0 / 64)))))


def predict(rem: int, t: float, c: float, g: float, cpus: int, workers: Optional[int],
            transfer: Tuple[Optional[float], Optional[float]], startup_s: float) -> Dict[str, Tuple[float, int]]:
    """Seconds for ``rem`` more items on each backend (and the worker count it assumes)."""
    out: Dict[str, Tuple[float, int]] = {"serial": (rem * t, 1)}
    wt = max(1, min(threads_for(c, cpus, workers), rem))
    out["threads"] = (rem * max(g * t, c * t / min(wt, cpus), t / wt)
                      + rem * THREAD_ITEM_S + 0.0002 * wt, wt)
    parent, worker = transfer
    if parent is not None and worker is not None:
        wp = max(1, min(workers or cpus, rem))
        tw = t + worker
        out["processes"] = (startup_s + 0.002 * wp
                            + rem * (max(c * tw / min(wp, cpus), tw / wp) + parent), wp)
    return out


# -- what auto learned about a function on its previous maps ----------------------------
#: a map the memory predicts under this much serial work runs serially without a probe
MEMO_TINY_S = TINY_WORK_S / 2
# id(fn) -> (a weak reference to fn, seconds per item); the entry goes when fn does.  A
# plain dict, not a WeakKeyDictionary: on a function's first 1 ms map, reading and writing
# this memory is part of auto's cost (its Python-level methods and a lock cost ~3 µs);
# one dict operation is atomic, on free-threaded builds too
_MEMO: Dict[int, Tuple["weakref.ReferenceType[Any]", float]] = {}


def _forget(key: int) -> Callable[[Any], None]:
    def gone(ref: Any) -> None:
        entry = _MEMO.get(key)
        if entry is not None and entry[0] is ref:
            _MEMO.pop(key, None)
    return gone


def remember(fn: Any, item_s: float) -> None:
    """Note fn's measured seconds per item (its latest map: the probe's estimate, or the
    timed serial run of a tiny map).  Functions that can't be weakly referenced (builtins,
    bound methods, which are new objects at each access) are simply not remembered."""
    key = id(fn)
    entry = _MEMO.get(key)
    if entry is not None and entry[0]() is fn:
        _MEMO[key] = (entry[0], item_s)
        return
    try:
        _MEMO[key] = (weakref.ref(fn, _forget(key)), item_s)
    except TypeError:
        pass


def recall(fn: Any) -> Optional[float]:
    entry = _MEMO.get(id(fn))
    if entry is not None and entry[0]() is fn:
        return entry[1]
    return None


class Plan:
    def __init__(self, choice: Choice, it: Iterator[Any], next_index: int,
                 remaining: Optional[int], item_s: Optional[float]) -> None:
        self.choice = choice
        self.it = it
        self.next_index = next_index
        self.remaining = remaining
        self.item_s = item_s


def plan(run: MapRun, it: Iterator[Any], *, workers: Optional[int], start_method: Optional[str],
         probe_backend: Optional[Backend] = None, allow_processes: bool = True,
         sink: Optional[List[Any]] = None) -> Generator[List[Any], None, Plan]:
    """Run the probe, then decide; returns a :class:`Plan`.  The probe's results are
    yielded as lists, or appended to ``sink`` (pmap's result list) when one is given.
    ``probe_backend``: the one-thread backend that runs the probe when a timeout is set
    (else the probe runs in this thread); ``start_method``: how processes would start."""
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
    cpus = cpu_count()
    clock = time.perf_counter
    cpu_clock = time.process_time
    # on Linux, the thread's own on-CPU and waiting-for-a-CPU times (the probe runs fn in
    # this thread unless a timeout moved it to a helper thread)
    use_sched = run.timeout is None and SCHEDSTAT
    spent = 0.0
    n = 0
    base = 0
    batch = 1
    meter: Optional[GilMeter] = None
    # the first SAMPLE_ITEMS items with their results, to price pickling them: kept as
    # (items, the list their results went to, where they start in it), copied only if needed
    sample: List[Tuple[List[Any], List[Any], int]] = []
    kept = 0
    exhausted = False
    tiny = False
    budget = PROBE_S
    total_s: Optional[float] = None   # estimated serial seconds for the whole map, when known
    first: Optional[Tuple[int, float]] = None  # the first batch: (items, seconds)
    # read once around the probe, not per batch: reading a file releases the GIL, which
    # would let the meter in and make the call look freer than it is
    # (from the moment the work proves long enough to be worth measuring, like the meter)
    sched0: Optional[Tuple[float, float]] = None
    wall0 = spent0 = meter_from = 0.0
    # the CPU share: process CPU time from the end of the first (cold) batch, or of the
    # second when the first item was quick, to the end of the probe; read twice, not per
    # batch (on a VM each read is a ~1 µs system call, which tiny items would pay for), and
    # not at all when tiny work is decided on the way
    cpu0: Optional[float] = None
    wall_c0 = spent_c0 = 0.0
    try:
        while True:
            if run.timeout is None:
                # in this thread, straight into the results through the serial loop (no
                # Future, no generator: on tiny items these batches are the whole probe);
                # the first SAMPLE_ITEMS items are kept, with their results, to price
                # pickling them
                dest = sink if sink is not None else []
                mark = len(dest)
                src = list(islice(it, batch)) if kept < SAMPLE_ITEMS else None
                t0 = clock()
                try:
                    got, exhausted = serial_batch(run, it if src is None else iter(src), base,
                                                  batch, dest, src)
                except ItemError:
                    # stop like a plain loop: the results before the failure, then the error
                    if sink is None and dest:
                        yield dest
                    raise
                dt = clock() - t0
                if src is not None:
                    exhausted = len(src) < batch
                    sample.append((src, dest, mark))
                    kept += got
                if sink is None and dest:
                    yield dest
            else:
                got, exhausted, dt, it = yield from _probe_batch(
                    run, probe_backend, it, base, batch, sink,  # type: ignore[arg-type]
                    sample if kept < SAMPLE_ITEMS else None)
                kept += got
            if got == 0:
                break
            n += got
            base += got
            spent += dt
            if first is None:
                first = (got, dt)
            per = spent / n
            if n == got or total_s is not None:
                # after each batch (the first call runs cold, and on tiny items a small
                # batch's timing is mostly the clock's own cost: the latest, largest batch
                # tells best): a short map gets a short probe, and a map of a few
                # milliseconds of work is decided serial at once, so that the rest runs
                # in the cheapest loop there is
                hint0 = operator.length_hint(it, -1)
                if hint0 >= 0:
                    latest = dt / got if n > got else per
                    total_s = (n + hint0) * latest
                    budget = min(PROBE_S, max(MIN_PROBE_S, PROBE_SHARE * total_s))
                    if total_s < TINY_WORK_S and n > got:
                        tiny = True
                        break
            if (meter is None and spent >= METER_AFTER_S and not exhausted
                    and (total_s is None or total_s >= METER_WORK_S)):
                if start_method is None:
                    # decided now, while the meter is not running: processes would start
                    # after it stops, from a process with as many threads as now
                    start_method = default_start_method()
                meter = GilMeter().start()
                meter_from = spent
                if use_sched:
                    sched0, wall0, spent0 = thread_sched(), clock(), spent
            # (and the GIL meter gets two switch intervals of real items to watch)
            if exhausted or (spent >= budget and (meter is None or spent - meter_from >= METER_MIN_S)):
                break
            # enough items to fill the budget at the latest batch's pace, no more: on 10 ms
            # items every item too many is one the other cores did not run
            # (after the lone first item, straight to 64: on tiny items a batch of 8 times
            # mostly the clock; the budget keeps long items to one or two)
            grow = 64 if n == got else batch * 8
            batch = max(1, min(grow, math.ceil((budget - spent) / max(dt / got, 1e-9))))
            if cpu0 is None and (n > got or dt >= CPU_LATE_S):
                # after the first batch, or, when that one item was quick, after the second
                # (a map it shows tiny needs no CPU share: no system call for it)
                wall_c0, cpu0, spent_c0 = clock(), cpu_clock(), spent
    finally:
        sched1 = thread_sched() if sched0 is not None else None
        wall1 = clock()
        c: Optional[float] = None
        if cpu0 is not None and not tiny and spent > spent_c0:
            # the process's CPU time, scaled to the share of the window spent in fn
            c = min(1.0, (cpu_clock() - cpu0) / max(wall1 - wall_c0, spent - spent_c0, 1e-9))
        g_meas = meter.stop() if meter is not None else None
    if sched0 is not None and sched1 is not None and spent > spent0:
        # CPU share = on-CPU / (wall - waiting for a core), over the measured window (time
        # spent waiting for a free core on a loaded machine is neither CPU work nor I/O)
        span = max(wall1 - wall0, 1e-9)
        cpu = sched1[0] - sched0[0]
        queued = min(max(0.0, sched1[1] - sched0[1]), span * 0.95)
        c = min(1.0, cpu / (span - queued))

    # seconds per item, the first call left out when more ran: it runs cold (imports,
    # caches, a JIT's first pass) and, on tiny items, times mostly the clock itself
    if first is not None and n > first[0]:
        t = (spent - first[1]) / (n - first[0])
    else:
        t = spent / n if n else 0.0
    if n:
        remember(run.fn, t)
    if exhausted:
        return Plan(Choice("serial", 1, "serial: all %d items ran while sampling (%s): nothing "
                           "left to spread over workers" % (n, fmt_s(spent)),
                           item_s=t, cpu_share=c, gil_held=g_meas, sampled=n, remaining=0),
                    iter(()), base, 0, t)

    # how much is left?  Tiny work is decided before anything else is looked at
    hint = operator.length_hint(it, -1)
    if 0 < hint and hint * t < TINY_WORK_S:
        return _tiny(hint, True, it, t, base, n, c, g_meas)
    if c is None:
        c = 1.0  # not measured (a map of one or two items): taken as CPU-bound
    gil_on = gil_enabled()
    g = g_meas if g_meas is not None else (c if gil_on else 0.0)
    if not gil_on:
        g = min(g, 0.05)
    buffered: List[Any] = []
    if hint >= 0:
        rem: Optional[int] = hint
        known = True
    else:
        known = False
        step = 256
        while len(buffered) * t < LOOKAHEAD_S and len(buffered) < LOOKAHEAD_ITEMS:
            more = list(islice(it, step))
            buffered.extend(more)
            if len(more) < step:
                known = True
                break
            step = min(step * 2, 8192)
        rem = len(buffered)
    rest: Iterator[Any] = chain(buffered, it) if buffered else it
    assert rem is not None
    left = "%d items left" % rem if known else "at least %d items left" % rem
    if rem == 0:
        return Plan(Choice("serial", 1, "serial: all %d items ran while sampling (%s)" % (
            n, fmt_s(spent)), item_s=t, cpu_share=c, gil_held=g_meas, sampled=n, remaining=0),
            rest, base, 0, t)
    if rem * t < TINY_WORK_S:  # decided before any modelling: tiny work pays for nothing else
        return _tiny(rem, known, rest, t, base, n, c, g_meas)
    startup_s = STARTUP_S[start_method or default_start_method()]

    # The meter says "released" on CPU-bound work (or there is no GIL): check that threads
    # scale on at most 15% of the rest, with real items (if they don't, at ~0.65x, the
    # trial costs the map ~5%).  A call that drops the GIL
    # often but briefly looks freer than it is, and a library can serialize its callers
    # itself (measured: numpy's 150x150 matmul, GIL released, OpenBLAS: 2 threads 0.87x
    # serial).  The trial's items are results, not a rehearsal.
    trial = ""
    s_thr: Optional[float] = None
    wtr = min(cpus, workers or cpus)
    k = min(int(rem * 0.15), max(4 * wtr, int(budget * wtr / max(t, 1e-9))))
    if c >= 0.5 and g < 0.5 and wtr >= 2 and k >= 2 * wtr and not run.timeout:
        take = list(islice(rest, k))
        if take:
            outs, wall = _thread_trial(run, take, base, wtr)
            for slot in outs:
                assert slot.results is not None
                if slot.first_failure is not None and run.errors == "raise":
                    yield from _stop_at_failure(run, slot.results[:slot.first_failure - slot.base], sink)
                if sink is not None:
                    sink.extend(slot.results)
                else:
                    yield slot.results
            base += len(take)
            rem -= len(take)
            n += len(take)
            s_thr = len(take) * t / wall if wall > 0 else 1.0
            g_trial = max(0.0, min(1.0, (wtr / max(s_thr, 1e-9) - 1) / (wtr - 1)))
            trial = "%d threads ran %d items at %.1fx" % (wtr, len(take), s_thr)
            g = max(g, g_trial)
            if rem <= 0:
                return Plan(Choice("threads", wtr, "threads x%d: ran the last items (%s)" % (wtr, trial),
                                   item_s=t, cpu_share=c, gil_held=g, sampled=n, remaining=0),
                            rest, base, 0, t)
            left = "%d items left" % rem if known else "at least %d items left" % rem

    def estimate(transfer_s: Tuple[Optional[float], Optional[float]]) -> Dict[str, Tuple[float, int]]:
        p = predict(rem, t, c, g, cpus, workers, transfer_s, startup_s)
        if s_thr is not None:  # measured beats modelled: threads ran real items at s_thr
            p["threads"] = (rem * t / max(s_thr, 1e-9) + 0.0002 * wtr, wtr)
        return p

    # pickling fn and a sample costs ~0.1 ms: only when processes could win even with free transfer
    free = estimate((0.0, 0.0))
    could_win = free["processes"][0] < GAIN * min(free["serial"][0], free["threads"][0])
    if allow_processes and could_win:
        sample_items: List[Any] = []
        sample_results: List[Any] = []
        for src, dest, mark in sample:
            sample_items.extend(src)
            sample_results.extend(dest[mark:mark + len(src)])
        transfer = transfer_cost(run.fn, sample_items[:SAMPLE_ITEMS], sample_results[:SAMPLE_ITEMS])
    else:
        transfer = (0.0, 0.0, 0, "") if allow_processes else (None, None, 0, "")
    parent, worker, nbytes, why_not = transfer
    preds = estimate((parent, worker))
    predicted = {k: v[0] for k, v in preds.items()}
    ts = predicted["serial"]
    tt, wt = preds["threads"]
    common: Dict[str, Any] = dict(item_s=t, cpu_share=c, gil_held=g, sampled=n,
                                  remaining=rem if known else None, predicted_s=predicted)
    g_seen = g_meas if g_meas is not None else c
    if gil_on and trial and g_seen < 0.5 and g >= 0.5:
        # the meter saw the GIL free, yet threads did not scale: something else
        # serializes the calls (a library's own lock, memory bandwidth)
        holds = ("releases the GIL (held %s of the time) but does not scale on threads (%s)"
                 % (pct(g_seen), trial))
    elif gil_on:
        holds = "holds the GIL %s of the time%s" % (pct(g), " (%s)" % trial if trial else "")
    else:
        holds = "runs on a free-threaded build (no GIL)%s" % (
            " but does not scale on threads (%s)" % trial if trial else "")

    def x(sec: float) -> str:
        return "%.1fx" % (ts / sec) if sec > 0 else "-"

    best = "serial"
    if tt < GAIN * ts:
        best = "threads"
    if "processes" in preds:
        tp, wp = preds["processes"]
        if tp < GAIN * min(ts, tt):
            best = "processes"
    else:
        tp, wp = float("inf"), workers or cpus
    io = c < 0.5
    if best == "serial":
        if "processes" in preds:
            reason = ("serial: %s at %s each; the call %s, so threads would give ~%s, and "
                      "processes ~%s after start-up (~%s) and transfer (%s per item)" % (
                          left, fmt_s(t), holds, x(tt), x(tp), fmt_s(startup_s),
                          fmt_s((parent or 0) + (worker or 0))))
        else:
            reason = ("serial: %s at %s each; the call %s, so threads would give ~%s, and "
                      "processes can't be used: %s" % (left, fmt_s(t), holds, x(tt), why_not))
        return Plan(Choice("serial", 1, reason, **common), rest, base, rem if known else None, t)
    if best == "threads":
        if io:
            why = "it waits (CPU busy %s of the time), so %d threads overlap the waits" % (pct(c), wt)
        elif not gil_on:
            why = "no GIL on this free-threaded build%s" % ("; " + trial if trial else "")
        else:
            if g < 0.3:
                why = "the call releases the GIL (held %s of the time%s)" % (
                    pct(g), "; " + trial if trial else "")
            else:
                why = "the call holds the GIL only %s of the time%s" % (
                    pct(g), " (%s)" % trial if trial else "")
        tail = "no start-up or transfer cost"
        if "processes" in preds:
            tail += "; processes would give ~%s" % x(tp)
        reason = "threads x%d: %s: predicted %s over serial for %s of %s each, %s" % (
            wt, why, x(tt), left, fmt_s(t), tail)
        return Plan(Choice("threads", wt, reason, **common), rest, base, rem if known else None, t)
    if meter is not None:
        meter.join()  # a live meter thread would make the pool spawn instead of fork
    reason = ("processes x%d: the call %s, so threads would give ~%s; processes predicted %s for "
              "%s of %s each (start-up ~%s, transfer %s per item)" % (
                  wp, holds, x(tt), x(tp), left, fmt_s(t), fmt_s(startup_s),
                  fmt_s((parent or 0) + (worker or 0))))
    return Plan(Choice("processes", wp, reason, **common), rest, base, rem if known else None, t)


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


def _thread_trial(run: MapRun, items: List[Any], base: int, workers: int) -> Tuple[List[_Slot], float]:
    """Run ``items`` on ``workers`` threads, one contiguous chunk each; (slots in order, wall)."""
    from .threads import ThreadBackend
    size = int(math.ceil(len(items) / float(workers)))
    pool = ThreadBackend(workers)
    try:
        t0 = time.perf_counter()
        futs = []
        for j in range(0, len(items), size):
            futs.append((base + j, items[j:j + size],
                         pool.submit_chunk(run.fn, base + j, items[j:j + size], timeout=None,
                                           stop_on_error=run.errors == "raise")))
        outs = [(b, part, f.result()) for b, part, f in futs]
        wall = time.perf_counter() - t0
    finally:
        pool.shutdown(wait=True)  # joined: a live thread would make a later pool spawn, not fork
    slots = []
    for b, part, out in outs:
        slot = _Slot(b, part)
        run.convert(slot, out.results, out.nfail)
        slots.append(slot)
    return slots, wall


def _tiny(rem: int, known: bool, rest: Iterator[Any], t: float, base: int, n: int,
          c: Optional[float], g: Optional[float], source: str = "") -> Plan:
    """Serial, decided before any modelling: tiny work pays for nothing else."""
    return Plan(Choice("serial", 1, lambda: "serial: %s%d items left at %s each%s are %s of work, "
                       "less than starting workers would cost" % (
                           "" if known else "at least ", rem, fmt_s(t), source, fmt_s(rem * t)),
                       item_s=t, cpu_share=c, gil_held=g, sampled=n,
                       remaining=rem if known else None, predicted_s={"serial": rem * t}),
                rest, base, rem if known else None, t)


def _probe_batch(run: MapRun, probe_backend: Backend, it: Iterator[Any], base: int, batch: int,
                 sink: Optional[List[Any]], sample: Optional[List[Tuple[List[Any], List[Any], int]]]
                 ) -> Generator[List[Any], None, Tuple[int, bool, float, Iterator[Any]]]:
    """One probe batch in the helper thread that a timeout needs, its items kept (the
    thread may be left behind on a hung item, so the rest must be re-queued).
    Returns (items consumed, input exhausted, wall seconds, the iterator)."""
    items = list(islice(it, batch))
    exhausted = len(items) < batch
    if not items:
        return 0, True, 0.0, it
    t0 = time.perf_counter()
    out = probe_backend.submit_chunk(run.fn, base, items, timeout=run.timeout,
                                     stop_on_error=run.errors == "raise").result()
    dt = time.perf_counter() - t0
    slot = _Slot(base, items)
    if isinstance(out, ChunkBroken):
        # an item ran past the timeout in the helper thread: what the engine does
        j = out.index - base if out.index is not None else 0
        done = out.done[:j]
        run.convert(slot, done, 0)
        fail = run.broken_failure(out, base + j, items[j])
        run.failures.append(fail)
        with run.counters.lock:
            run.counters.items_done += 1
            run.counters.items_failed += 1
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
        return j + 1, False, dt, chain(items[j + 1:], it)
    run.convert(slot, out.results, out.nfail)
    assert slot.results is not None
    if out.nfail and run.errors == "raise":
        # stop like a plain loop: the results before the failure, then the error
        assert slot.first_failure is not None
        yield from _stop_at_failure(run, slot.results[:slot.first_failure - base], sink)
    if sample is not None:  # keep this batch's items for the sample
        sample.append((items, slot.results, 0))
    if sink is not None:
        sink.extend(slot.results)
    else:
        yield slot.results
    return len(items), exhausted, dt, it
