"""What the probe measured: frozen dataclasses, their JSON form and their text report.

Definitions (the same in the library, the CLI and the benchmarks):

``held``
    share of the measured wall time during which some thread held the GIL
    (CPython's ``gil->locked == 1``), estimated from samples taken at random
    (Poisson) times by a reader outside the process.
``wait``
    share of the measured wall time during which at least one thread was
    blocked waiting to take the GIL (a futex on the GIL's condition variable or
    mutex).  ``waiting`` is the mean number of such threads.  A thread waits
    only while another holds the GIL, so ``wait <= held`` always.
``parallelism``
    process CPU time / wall time: 1.0 is one core busy all the time.
``longest_stall_s``
    the longest run of consecutive samples in which one thread kept waiting
    for the GIL, widened by one sampling gap (resolution: about ``interval_s``).

A confidence interval is the 95 % Wilson interval of the sample count: given
the run's actual timeline, random sampling times make each sample an
independent draw of "held" (or "some thread waits").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["GilStats", "ThreadStats", "GilEnabledEvent", "wilson"]

Z95 = 1.959963984540054


def wilson(successes: float, n: float, z: float = Z95) -> Optional[Tuple[float, float]]:
    """The Wilson score interval for ``successes`` out of ``n`` (None when n == 0)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if successes >= n else min(1.0, max(p, centre + half))
    return (lo, hi)


@dataclass(frozen=True)
class ThreadStats:
    """One thread of the measured process."""

    tid: int
    name: Optional[str]
    cpu_s: float
    #: share of the measured wall time this thread held the GIL (None: not attributable)
    gil_held: Optional[float] = None
    #: share of the measured wall time this thread waited for the GIL
    gil_wait: Optional[float] = None


@dataclass(frozen=True)
class GilEnabledEvent:
    """A free-threaded build turned its GIL on, to load ``module``, ``at_s`` into the run."""

    module: Optional[str]
    at_s: Optional[float]


@dataclass(frozen=True)
class GilStats:
    """What a GIL monitor measured.  Fractions are 0..1; None means "not applicable here"."""

    #: True: a GIL serialised Python code; False: none (free-threaded, Jython); None: unknown
    gil: Optional[bool]
    gil_held: Optional[float]
    gil_wait: Optional[float]
    waiting: Optional[float]
    parallelism: Optional[float]
    wall_s: float
    cpu_s: Optional[float]
    longest_stall_s: Optional[float]
    samples: int
    interval_s: float
    gil_held_ci: Optional[Tuple[float, float]] = None
    gil_wait_ci: Optional[Tuple[float, float]] = None
    switches_per_s: Optional[float] = None
    threads: Tuple[ThreadStats, ...] = ()
    gil_enabled_by: Tuple[GilEnabledEvent, ...] = ()
    method: str = "gil-state"
    interpreter: str = ""
    window_s: Optional[float] = None
    #: the sampled window on the system's monotonic clock (``time.monotonic()``)
    window_start: Optional[float] = None
    window_end: Optional[float] = None
    notes: Tuple[str, ...] = ()
    exit_code: Optional[int] = None
    #: the measured process (``threadwise probe``, ``--pid``); None for ``gil_monitor()``
    pid: Optional[int] = None
    #: child processes the program started that the probe did not follow (their PIDs)
    children: Tuple[int, ...] = ()
    #: how the GIL was found: "hook" (from inside, the start-up hook or gil_monitor()),
    #: "debug-offsets" (3.13+), "known-layout" or "layout-scan" (from outside); "" if not
    gil_found_by: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form (``threadwise probe --json``)."""
        d = asdict(self)
        d["threads"] = [asdict(t) for t in self.threads]
        d["gil_enabled_by"] = [asdict(e) for e in self.gil_enabled_by]
        for k in ("gil_held_ci", "gil_wait_ci"):
            if d[k] is not None:
                d[k] = list(d[k])
        d["notes"] = list(self.notes)
        d["children"] = list(self.children)
        return d

    def report(self) -> str:
        """A short text summary for people."""
        return format_report(self)


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else "%.1f%%" % (100 * x)


def _ci(ci: Optional[Tuple[float, float]]) -> str:
    return "" if ci is None else " (95%% CI %.1f-%.1f%%)" % (100 * ci[0], 100 * ci[1])


def machine_load() -> Optional[float]:
    """The 1-minute load average (Linux), or None."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def overload_note(*loads: Optional[float]) -> Optional[str]:
    """A note when the machine had more runnable work than CPUs."""
    import os
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    known = [x for x in loads if x is not None]
    if not known or max(known) <= cpus:
        return None
    return ("the machine was busy (load average %.1f on %d CPUs): threads that wanted the GIL but "
            "had no CPU yet are partly missed, so the wait share may read low (held is unaffected)"
            % (max(known), cpus))


def format_report(s: GilStats, title: str = "threadwise probe") -> str:
    lines: List[str] = []
    head = title
    if s.interpreter:
        head += " - " + s.interpreter
    if s.pid is not None:
        head += " (pid %d)" % s.pid
    lines.append(head)
    if s.gil is False:
        lines.append("  GIL            none: Python threads run in parallel here")
    elif s.gil is None:
        lines.append("  GIL            unknown (see notes)")
    if s.gil and s.gil_held is None:
        lines.append("  GIL held       n/a (no samples: the program ended within a sampling gap)")
    if s.gil_held is not None:
        lines.append("  GIL held       %s of wall time%s" % (_pct(s.gil_held), _ci(s.gil_held_ci)))
    if s.gil_wait is not None:
        extra = ""
        if s.waiting is not None:
            extra = ", %.2f threads waiting on average" % s.waiting
        lines.append("  GIL waited on  %s of wall time%s%s" % (_pct(s.gil_wait), _ci(s.gil_wait_ci), extra))
    if s.longest_stall_s and s.gil:
        lines.append("  longest stall  %.1f ms (a thread waiting for the GIL)" % (1000 * s.longest_stall_s))
    if s.parallelism is not None:
        lines.append("  parallelism    %.2f (CPU %.2f s / wall %.2f s)" % (s.parallelism, s.cpu_s or 0.0, s.wall_s))
    else:
        lines.append("  wall           %.2f s" % s.wall_s)
    if s.switches_per_s is not None and s.gil:
        lines.append("  GIL switches   %.0f/s" % s.switches_per_s)
    if s.gil is False and not s.samples:
        lines.append("  samples        none: there is no GIL to sample")
    else:
        lines.append("  samples        %d every %.2f ms on average (%s)" % (s.samples, 1000 * s.interval_s, s.method))
    for e in s.gil_enabled_by:
        at = "" if e.at_s is None else " at %.3f s" % e.at_s
        lines.append("  GIL enabled    by importing %s%s" % (e.module or "an unknown module", at))
    if s.threads:
        lines.append("  threads        %-6s %-24s %9s %8s %8s" % ("tid", "name", "CPU s", "held", "waited"))
        shown = sorted(s.threads, key=lambda t: -t.cpu_s)[:12]
        for t in shown:
            lines.append("                 %-6d %-24s %9.3f %8s %8s" % (
                t.tid, (t.name or "?")[:24], t.cpu_s,
                "" if t.gil_held is None else _pct(t.gil_held),
                "" if t.gil_wait is None else _pct(t.gil_wait)))
        if len(s.threads) > len(shown):
            lines.append("                 ... and %d more" % (len(s.threads) - len(shown)))
    if s.exit_code is not None:
        lines.append("  exit code      %d" % s.exit_code)
    for n in s.notes:
        lines.append("  note: " + n)
    return "\n".join(lines)


def from_raw(raw: Optional[Dict[str, Any]], *, gil: Optional[bool], wall_s: float,
             cpu_s: Optional[float], interval_s: float, interpreter: str = "",
             enabled_by: Tuple[GilEnabledEvent, ...] = (), notes: Tuple[str, ...] = (),
             knock: Optional[Dict[str, Any]] = None, exit_code: Optional[int] = None,
             exclude_tids: Tuple[int, ...] = (), pid: Optional[int] = None,
             children: Tuple[int, ...] = (), gil_found_by: str = "") -> GilStats:
    """Build :class:`GilStats` from a sampler's raw counts (``ProcSampler.result()``)
    and/or a knocker's snapshot."""
    notes_l = list(notes)
    held = wait = waiting = stall = switches_ps = None
    held_ci = wait_ci = None
    samples = 0
    method = "none"
    window = w_start = w_end = None
    threads: List[ThreadStats] = []
    if raw is not None:
        samples = int(raw.get("samples") or 0)
        if raw.get("t_first") is not None and raw.get("t_last") is not None:
            window = max(0.0, raw["t_last"] - raw["t_first"])
            w_start, w_end = raw["t_first"], raw["t_last"]
        method = raw.get("method", "gil-state")
        if raw.get("error"):
            notes_l.append(raw["error"])
    weight = float(raw.get("w_total") or samples) if raw is not None else 0.0
    if gil and raw is not None and samples > 0 and weight > 0:
        # samples carry weights when the sampling rate changed during the run
        # (adaptive sampling); the effective sample size sets the interval
        n_eff = weight * weight / float(raw.get("w2_total") or weight)
        held = raw["held"] / weight
        wait = raw["wait_any"] / weight
        waiting = raw["waiters"] / weight
        held_ci = wilson(held * n_eff, n_eff)
        wait_ci = wilson(wait * n_eff, n_eff)
        stall = raw.get("longest_stall_s") or 0.0
        if raw.get("switches") is not None and window:
            switches_ps = raw["switches"] / window
        if samples < 100:
            notes_l.append("only %d samples: the figures are rough; run longer or lower --interval" % samples)
    elif gil and knock is not None and knock.get("samples"):
        n = int(knock["samples"])
        samples = n
        method = "knocker"
        held = knock["held"] / n
        held_ci = wilson(knock["held"], n)
        stall = knock.get("longest_wait_s")
        interval_s = knock.get("interval_s") or interval_s
        notes_l.append("measured from inside by a knocker thread (no outside reader here): "
                       "held is approximate and waits by other threads are not seen")
    elif gil:
        notes_l.append("no GIL samples were taken")
    if raw is not None:
        for t in raw.get("threads", ()):
            if t["tid"] in exclude_tids:
                continue
            th_held = th_wait = None
            if gil and samples and method == "gil-state":
                th_wait = t["wait_samples"] / weight
                if t.get("held_samples") is not None:
                    th_held = t["held_samples"] / weight
            threads.append(ThreadStats(tid=t["tid"], name=t.get("name"), cpu_s=round(t["cpu_s"], 6),
                                       gil_held=th_held, gil_wait=th_wait))
    if method == "gil-state" and samples > 1 and window:
        interval_s = window / (samples - 1)  # the mean gap achieved
    parallelism = None
    if cpu_s is not None and wall_s > 0:
        parallelism = cpu_s / wall_s
    return GilStats(
        gil=gil, gil_held=held, gil_wait=wait, waiting=waiting, parallelism=parallelism,
        wall_s=wall_s, cpu_s=cpu_s, longest_stall_s=stall, samples=samples, interval_s=interval_s,
        gil_held_ci=held_ci, gil_wait_ci=wait_ci, switches_per_s=switches_ps, threads=tuple(threads),
        gil_enabled_by=tuple(enabled_by), method=method, interpreter=interpreter, window_s=window,
        window_start=w_start, window_end=w_end,
        notes=tuple(notes_l), exit_code=exit_code, pid=pid, children=tuple(children),
        gil_found_by=gil_found_by if method == "gil-state" else "",
    )

