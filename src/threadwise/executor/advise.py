"""``advise(fn, items)``: run a sample on every backend, measure, recommend one, say why.

::

    items --> sample: items run serially until ~sample_s (>= 4 per worker when there are
              that many), timed; a GilMeter notes the GIL-held share; then
              threadwise.probe.holds_gil (the GIL's own state, read from outside) on
              the first item gives the figure reported (gil_check's ticker where the
              probe can't run)
          --> the same sample on threads, processes, interpreters (3.14+), and threads
              again as "free threads" on a build without the GIL: start-up timed apart
              from the run; pickled bytes and pickling time per item for processes
          --> predicted time for all the items (start-up + items x measured cost)
          --> Advice: the fastest (a parallel backend must beat the simpler ones by
              10%), one sentence with the numbers, e.g.
              "processes x2: 1.9x; threads: 1.0x because the call holds the GIL 98% of the time"

Unlike ``pmap(backend="auto")``, advise runs fn on the sample several times
(once per backend, plus gil_check's repeated calls): it is for functions
that can be run again, and it is what to use to see the numbers.
"""
from __future__ import annotations

import logging
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import UsageError
from . import _chunk
from ._base import Failure, ItemError, check_fn, check_workers
from ._cpus import cpu_count_explained
from ._gilmeter import GilMeter, gil_enabled, thread_sched
from .._format import fmt_s, pct
from .auto import GAIN, threads_for, transfer_cost

LOCAL_BACKENDS = ("threads", "processes", "interpreters")
#: threads that ran below this over serial did not scale (then "holds the GIL" explains it)
NO_GAIN = 1.2
log = logging.getLogger("threadwise")


@dataclass(frozen=True)
class BackendResult:
    """One row of :class:`Advice`: a backend measured on the sample."""

    backend: str                      # "serial", "threads", "processes", "interpreters", "free threads"
    workers: int
    available: bool = True
    note: str = ""                    # why not available, or what went wrong
    wall_s: Optional[float] = None    # seconds for the sample, start-up excluded
    per_item_s: Optional[float] = None
    speedup: Optional[float] = None   # serial wall / this wall, on the sample
    startup_s: Optional[float] = None
    transfer_s: Optional[float] = None      # pickling per item (both ways), processes only
    transfer_bytes: Optional[int] = None
    gil_held: Optional[float] = None  # share of the run the GIL was held (serial, threads)
    predicted_s: Optional[float] = None     # for every item, start-up included

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Advice:
    """What :func:`advise` measured and recommends (``str(advice)`` is the sentence)."""

    backend: str
    workers: int
    sentence: str
    results: Tuple[BackendResult, ...]
    sampled: int
    total: Optional[int]
    item_s: float
    cpu_share: float
    gil_held: Optional[float]
    gil_check: Dict[str, Any] = field(default_factory=dict)
    environment: Dict[str, Any] = field(default_factory=dict)
    #: the share of all CPUs other processes used while advise measured (environment.CpuWatch)
    others_share: Optional[float] = None
    #: "recommended", or "inconclusive" (the machine stayed busy through a re-measure)
    verdict: str = "recommended"

    def __str__(self) -> str:
        return self.sentence

    def to_dict(self) -> Dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers, "sentence": self.sentence,
                "verdict": self.verdict, "others_share": self.others_share,
                "sampled": self.sampled, "total": self.total, "item_s": self.item_s,
                "cpu_share": self.cpu_share, "gil_held": self.gil_held,
                "gil_check": self.gil_check, "environment": self.environment,
                "results": [r.to_dict() for r in self.results]}


def _environment() -> Dict[str, Any]:
    cpus, how = cpu_count_explained()
    env: Dict[str, Any] = {
        "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "executable": sys.executable, "gil_enabled": gil_enabled(), "cpus": cpus, "cpus_how": how,
        "switch_interval_s": sys.getswitchinterval(), "platform": platform.platform(),
    }
    try:
        env["loadavg"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        env["loadavg"] = None
    return env


def _run_serial(fn: Callable[[Any], Any], it: Iterable[Any], sample_s: float, min_items: int,
                max_items: Optional[int]) -> Tuple[List[Any], List[Any], float, float, Optional[float]]:
    """Run items serially, in growing batches, until ``sample_s`` (and ``min_items``).

    Returns (items, results, wall, CPU share, GIL-held share).  Nothing is measured
    per item: the batches run like the serial backend runs them, so the baseline
    carries no overhead the other backends don't."""
    items: List[Any] = []
    results: List[Any] = []
    wall = 0.0
    batch = 1
    iterator = iter(it)
    meter = GilMeter().start()
    s0 = thread_sched()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        while True:
            want = batch if max_items is None else min(batch, max_items - len(items))
            chunk = list(islice(iterator, want))
            if not chunk:
                break
            t0 = time.perf_counter()
            out, _, nfail = _chunk.run_items(fn, chunk, len(items), True, Exception)
            wall += time.perf_counter() - t0
            if nfail:
                f = out[-1]
                x = chunk[len(out) - 1]
                raise ItemError(
                    "advise: fn raised %s on item #%d (%r) while sampling: %s" % (
                        f.exc_type, f.index, x, f.message),
                    "fn fails on this input; advise needs items fn runs on:\n" + f.tb,
                    "fix fn or the items, then run advise again", index=f.index,
                    item=repr(x)[:60], exception=f.exc, remote_traceback=f.tb) from f.exc
            items.extend(chunk)
            results.extend(out)
            n = len(items)
            if len(chunk) < want or (max_items is not None and n >= max_items):
                break
            if (wall >= sample_s and n >= min_items) or wall >= 4 * sample_s:
                break
            per = wall / n
            batch = max(1, min(batch * 4, int((sample_s - wall) / max(per, 1e-9)) + 1,
                               max(1, min_items - n) if wall >= sample_s else 1 << 30))
    finally:
        s1 = thread_sched()
        span = time.perf_counter() - w0
        cpu_s = time.process_time() - c0
        g = meter.stop()
        meter.join()  # so that the processes measured next are forked, as pmap's would be
    if s0 is not None and s1 is not None:
        cpu_s = s1[0] - s0[0]
        span -= min(max(0.0, s1[1] - s0[1]), 0.95 * span)  # waiting for a core is not I/O
    # under 5 ms the split between CPU and waiting is noise (thread start-up, the GIL
    # handed to other threads): call it CPU-bound, the choice that adds no threads
    share = min(1.0, cpu_s / span) if span > 0.005 else 1.0
    return items, results, wall, share, g


def _gil_check(fn: Callable[[Any], Any], item: Any, duration: float, cores: int) -> Dict[str, Any]:
    """Does one call hold the GIL?  ``threadwise.probe.holds_gil`` (it reads the GIL's own
    state from outside: ``held_share``) where it exists, else ``gil_check``'s ticker."""
    probe: Optional[Callable[..., Any]]
    try:
        from ..probe import holds_gil as probe
    except ImportError:  # pragma: no cover - a build without the probe
        probe = None
    if probe is not None:
        try:
            h = probe(fn, item)
        except Exception as e:  # fn fails when called again: advise goes on without it
            return {"error": "%s: %s" % (type(e).__name__, e)}
        return {"holds": h.holds, "held_share": h.held_share, "ticker_share": h.ticker_share,
                "longest_stall_s": h.longest_stall_s, "call_s": h.call_s, "calls": h.calls,
                "method": "probe.holds_gil (%s)" % h.method, "note": h.note}
    try:
        from ..bench.inside.gilcheck import gil_check
    except ImportError:  # pragma: no cover
        return {}
    try:
        r = gil_check(fn, (item,), None, duration=duration, cores=cores)
    except Exception as e:  # fn fails when called again: advise goes on without it
        return {"error": "%s: %s" % (type(e).__name__, e)}
    return {k: r.get(k) for k in ("holds", "ticker_share", "longest_stall_s", "call_s", "calls",
                                  "method")}


def _measure(name: str, label: str, workers: int, fn: Callable[[Any], Any], items: List[Any],
             serial_wall: float, chunksize: int, meter: bool) -> BackendResult:
    from ._executor import Executor, shared_executor
    try:
        t0 = time.perf_counter()
        # processes: the shared warm pool pmap runs on, so the start-up advise reports is what
        # pmap will pay in this program (none once the pool is warm)
        ex = (shared_executor if name == "processes" else Executor)(name, workers, chunksize=chunksize)
    except UsageError as e:
        return BackendResult(label, workers, False, e.what)
    try:
        if name == "processes":
            ex._get("processes", workers).start_workers(wait_ready=True)  # type: ignore[attr-defined]
        ex.submit(_noop).result()
        startup = time.perf_counter() - t0
        m = GilMeter().start() if meter else None
        t1 = time.perf_counter()
        try:
            out = [r for chunk in ex.map_chunks(fn, items, errors="collect") for r in chunk]
        finally:
            g = m.stop() if m is not None else None
        wall = time.perf_counter() - t1
    except Exception as e:
        return BackendResult(label, workers, False, "%s: %s" % (type(e).__name__, str(e).split("\n")[0]))
    finally:
        # threads are joined: a live thread would make the next pool spawn instead of fork
        ex.shutdown(wait=name == "threads", kill=name != "threads")
    fails = [r for r in out if isinstance(r, Failure)]
    note = ""
    if fails:
        f = fails[0]
        note = "%d items failed here, first #%d: %s: %s" % (
            len(fails), f.index, type(f.exception).__name__, str(f.exception).split("\n")[0][:80])
    n = len(items)
    return BackendResult(label, workers, not fails, note, wall, wall / n if n else None,
                         serial_wall / wall if wall > 0 else None, startup, gil_held=g)


def _noop() -> None:
    return None


def advise(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: Optional[int] = None,
           sample_s: float = 1.0, max_items: Optional[int] = None,
           backends: Optional[Sequence[str]] = None, gil_duration: float = 0.3) -> Advice:
    """Measure ``fn`` on a sample of ``items`` on each backend and recommend one.

    ``sample_s``: seconds of serial work to sample (the sample then runs once per
    backend); ``max_items`` caps the sample; ``workers``: None for one per CPU;
    ``backends``: a subset of ("threads", "processes", "interpreters").
    Returns an :class:`Advice`; ``str(advice)`` is the one-sentence recommendation.

    While it measures, advise watches how much of the CPUs other processes take
    (``environment.CpuWatch``): above ``BUSY_SHARE`` it measures once more, and if the
    machine stays busy the advice says "inconclusive" with the share, instead of
    recommending a backend that a busy machine chose.
    """
    from ..bench.model import BUSY_SHARE
    from ..environment import CpuWatch
    # a re-iterable input can be measured again; an iterator is measured once
    attempts = (1, 2) if hasattr(items, "__len__") and hasattr(items, "__getitem__") else (1,)
    for attempt in attempts:
        watch = CpuWatch()
        advice = _advise(fn, items, workers=workers, sample_s=sample_s, max_items=max_items,
                         backends=backends, gil_duration=gil_duration)
        busy = watch.stop()
        share = round(busy.others + busy.steal, 3)
        if share <= BUSY_SHARE:
            return replace(advice, others_share=share)
        log.info("advise: other processes used %.0f%% of the CPUs while it measured (attempt %d)",
                 100 * share, attempt)
    return replace(advice, others_share=share, verdict="inconclusive", sentence=(
        "inconclusive: other processes used %.0f%% of the CPUs while advise measured; "
        "rerun on a quiet machine (this run read: %s)" % (100 * share, advice.sentence)))


def _advise(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: Optional[int],
            sample_s: float, max_items: Optional[int], backends: Optional[Sequence[str]],
            gil_duration: float) -> Advice:
    check_fn(fn)
    workers = check_workers(workers)
    if not (isinstance(sample_s, (int, float)) and sample_s > 0):
        raise UsageError("sample_s must be a number of seconds > 0, got %r" % (sample_s,),
                         "a zero or negative sampling time", "pass sample_s=1.0 (the default)")
    max_items = check_workers(max_items, "max_items")
    chosen = tuple(backends) if backends is not None else LOCAL_BACKENDS
    for b in chosen:
        if b not in LOCAL_BACKENDS:
            raise UsageError("backends must name some of %s, got %r" % (", ".join(LOCAL_BACKENDS), b),
                             "advise measures the backends of this machine (Dask scales out, "
                             "it has nothing to measure here)",
                             "pass backends=('threads', 'processes') or leave it out")
    try:
        total: Optional[int] = len(items)  # type: ignore[arg-type]
    except TypeError:
        total = None
    env = _environment()
    cpus = env["cpus"]
    w = workers or cpus
    sample, results, wall, c, g = _run_serial(fn, items, sample_s, 4 * w, max_items)
    n = len(sample)
    if n == 0:
        raise UsageError("advise got no items", "the items are empty",
                         "pass at least one item (advise runs a sample of them)")
    t = wall / n
    N = total if total is not None else n
    chunk = max(1, min(int(math.ceil(n / (4.0 * w))), int(0.01 / max(t, 1e-9)) + 1))
    free = not gil_enabled()
    measured: Dict[str, List[BackendResult]] = {}
    # processes first, while this process has a single thread (so they fork, as they would
    # in a pmap), then the threads, the sub-interpreters, and the GIL check last
    for b in sorted(chosen, key=lambda b: b != "processes"):
        rows = measured.setdefault(b, [])
        if b == "threads":
            label = "free threads" if free else "threads"
            tw = threads_for(c, cpus, workers)
            rows.append(_measure("threads", label, w, fn, sample, wall, chunk, True))
            if tw > w:
                rows.append(_measure("threads", label, tw, fn, sample, wall,
                                     max(1, int(math.ceil(n / (4.0 * tw)))), True))
        elif b == "processes":
            r = _measure("processes", "processes", w, fn, sample, wall, chunk, False)
            parent, worker, nbytes, why = transfer_cost(fn, sample, results)
            if r.available and parent is not None:
                r = BackendResult(**{**r.to_dict(), "transfer_s": parent + (worker or 0.0),
                                     "transfer_bytes": nbytes})
            elif parent is None and why:
                r = BackendResult("processes", w, False, why)
            rows.append(r)
        elif b == "interpreters":
            from .subinterpreters import available
            ok, why = available()
            if ok:
                rows.append(_measure("interpreters", "interpreters", w, fn, sample, wall, chunk, False))
            else:
                rows.append(BackendResult("interpreters", w, False, why + " (needs 3.14)"))
    check = _gil_check(fn, sample[0], gil_duration, cpus)
    if check.get("held_share") is not None:  # measured on the GIL itself: better than the meter
        g = float(check["held_share"])
    rows = [BackendResult("serial", 1, True, "", wall, t, 1.0, 0.0, gil_held=g, predicted_s=N * t)]
    for b in chosen:
        rows.extend(measured.get(b, []))
    final: List[BackendResult] = []
    for r in rows:
        if r.available and r.per_item_s is not None and r.backend != "serial":
            r = BackendResult(**{**r.to_dict(), "predicted_s": (r.startup_s or 0.0) + N * r.per_item_s})
        final.append(r)
    best = _pick(final)
    sentence = _sentence(best, final, g, c, N, free)
    return Advice(best.backend.replace("free threads", "threads"), best.workers, sentence,
                  tuple(final), n, total, t, c, g, check, env)


def _pick(rows: List[BackendResult]) -> BackendResult:
    """The fastest predicted; a more complex backend must beat a simpler one by 10%."""
    order = {"serial": 0, "threads": 1, "free threads": 1, "interpreters": 2, "processes": 3}
    best = rows[0]
    for r in sorted((r for r in rows if r.available and r.predicted_s is not None),
                    key=lambda r: order.get(r.backend, 9)):
        if r is rows[0]:
            continue
        if r.predicted_s is None or best.predicted_s is None:
            continue
        rp, bp = r.predicted_s, best.predicted_s
        if order.get(r.backend, 9) > order.get(best.backend, 9):
            if rp < GAIN * bp:
                best = r
        elif rp < bp:
            best = r
    return best


def _why(r: BackendResult, g: Optional[float], c: float, serial: BackendResult, N: int,
         free: bool) -> str:
    if not r.available:
        return "unavailable: %s" % (r.note or "?")
    x = (serial.predicted_s or 0) / r.predicted_s if r.predicted_s else 0.0
    # a "because" only where the numbers support it: holding the GIL explains threads that
    # did not scale, not threads that did; start-up explains processes only when it is a
    # large part of their predicted time
    if r.backend in ("threads", "free threads"):
        if free:
            return "%.1fx on a free-threaded build" % x
        if c < 0.5:
            return "%.1fx: it waits (CPU busy %s of the time)" % (x, pct(c))
        if g is not None and g >= 0.5 and x < NO_GAIN:
            return "%.1fx because the call holds the GIL %s of the time" % (x, pct(g))
        return "%.1fx (the GIL was held %s of the time)" % (x, pct(g))
    if r.backend in ("processes", "interpreters"):
        overhead = (r.startup_s or 0.0) + N * (r.transfer_s or 0.0)
        if x < 1.0 and r.predicted_s and overhead > 0.5 * r.predicted_s:
            extra = ""
            if r.transfer_s is not None:
                extra = " and transfer (%s per item)" % fmt_s(r.transfer_s)
            return "%.1fx because start-up (%s)%s outweigh %d items of %s" % (
                x, fmt_s(r.startup_s), extra, N, fmt_s(serial.per_item_s))
        return "%.1fx" % x
    return "%.1fx" % x


def _sentence(best: BackendResult, rows: List[BackendResult], g: Optional[float], c: float,
              N: int, free: bool) -> str:
    serial = rows[0]
    x = (serial.predicted_s or 0) / best.predicted_s if best.predicted_s else 1.0
    head = "%s x%d: %.1fx" % (best.backend, best.workers, x) if best.backend != "serial" else \
        "serial: %s per item" % fmt_s(serial.per_item_s)
    others = []
    seen = set()
    for r in rows[1:]:
        if r is best or r.backend in seen:
            continue
        seen.add(r.backend)
        others.append("%s: %s" % (r.backend, _why(r, g, c, serial, N, free)))
    return "; ".join([head] + others)
