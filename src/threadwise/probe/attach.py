"""``threadwise probe --pid PID``: measure a CPython that is already running.

::

    threadwise probe --pid PID                  the running program (any CPython 3.7+)
    ──────────────────────────                  ───────────────────────────────────────
    target.open_target(PID): maps, ELF,  ◄────  nothing: no hook, no signal, no stop
      _PyRuntime -> main interpreter -> GIL
    ProcSampler(PID, gil) ─ pread at random gaps ─► /proc/PID/mem, task/*/syscall
    every 50 ms: thread states -> OS threads (TargetFeed.refresh)
    until --duration, Ctrl-C (SIGINT/SIGTERM/SIGHUP) or the program's exit
    report: the same GilStats, text and --json, as ``threadwise probe -- CMD``

The program is never paused and never takes part: the sampler reads its memory
through ``/proc/PID/mem``, which needs the right to ptrace it (same user, and
Yama ``ptrace_scope`` 0, or root / CAP_SYS_PTRACE); :class:`target.AttachError`
says what to do when that is refused, when the process is not a CPython, or
when its version's layout is unknown.

:class:`TargetFeed` is shared with :mod:`threadwise.probe.wrap`, which falls
back on it when the wrapped program's start-up hook did not run.
"""
from __future__ import annotations

import signal
import sys
import time
from typing import Callable, List, Optional

from ..errors import ThreadwiseError, UsageError
from . import sampler as _sampler
from .stats import GilEnabledEvent, GilStats, from_raw, machine_load, overload_note
from .target import Target, children_of, open_target

__all__ = ["TargetFeed", "attach", "PidRun"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: the mean gap between samples at the start, as for a wrapped program (then sparser)
DEFAULT_INTERVAL_S = 0.001


class TargetFeed:
    """Keeps a :class:`sampler.ProcSampler` informed from a :class:`target.Target`:
    the GIL's address, which thread state is which OS thread, and (free-threaded
    builds) the moment the GIL is turned on."""

    def __init__(self, target: Target, sampler: _sampler.ProcSampler, t0: float) -> None:
        self.target = target
        self.sampler = sampler
        self.t0 = t0
        self.gil = target.gil_enabled()
        self.enabled: List[GilEnabledEvent] = []
        if self.gil:
            sampler.attach_gil(target.gil_location())
        self.refresh()

    def refresh(self) -> None:
        target = self.target
        if not self.gil and target.free_threaded and target.gil_enabled():
            self.gil = True
            self.enabled.append(GilEnabledEvent(module=None, at_s=round(time.monotonic() - self.t0, 6)))
            self.sampler.attach_gil(target.gil_location())
        # only threads the sampler sees alive: a thread state read while its
        # thread was ending may hold garbage
        threads = self.sampler.threads
        self.sampler.map_tstates({ts: tid for ts, tid in target.thread_states().items()
                                  if tid in threads and threads[tid].alive})

    def notes(self) -> List[str]:
        out = list(self.target.notes)
        if self.enabled:
            out.append("the GIL was turned on while the probe watched (seen from outside: the module "
                       "that turned it on is unknown)")
        return out


class PidRun:
    """Sample process ``pid`` until ``duration`` seconds pass, a stop signal comes,
    or the process ends."""

    def __init__(self, pid: int, duration: Optional[float] = None, interval: Optional[float] = None,
                 every: Optional[float] = None,
                 on_every: Optional[Callable[[GilStats], None]] = None) -> None:
        self.pid = pid
        self.duration = duration
        self.adaptive = interval is None
        self.interval = DEFAULT_INTERVAL_S if interval is None else interval
        self.every = every
        self.on_every = on_every
        self.stop_reason = ""
        self.children: List[int] = []
        self._stop = False
        self.t0 = 0.0
        self.t_end: Optional[float] = None
        self.load0: Optional[float] = None

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stop = True
        self.stop_reason = signal.Signals(signum).name

    def run(self) -> GilStats:
        target = open_target(self.pid)
        old = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        prio = _sampler.boost_priority()
        try:
            self.load0 = machine_load()
            self.t0 = time.monotonic()
            sampler = _sampler.ProcSampler(self.pid, None, self.interval, count_cpu_from_now=True,
                                           adaptive=self.adaptive)
            feed = TargetFeed(target, sampler, self.t0)
            try:
                self._loop(sampler, feed)
            finally:
                self.t_end = time.monotonic()
                sampler.close()
        finally:
            _sampler.unboost_priority(prio)
            for s, handler in old.items():
                signal.signal(s, handler)
            target.close()
        return self._stats(sampler, feed, final=True)

    def _loop(self, sampler: _sampler.ProcSampler, feed: TargetFeed) -> None:
        """Samples at Poisson times (each gap drawn afresh, never cut short by
        housekeeping), thread and CPU refreshes every REFRESH_S."""
        clock = time.monotonic
        end = self.t0 + self.duration if self.duration else float("inf")
        next_refresh = self.t0 + _sampler.REFRESH_S
        next_every = self.t0 + self.every if self.every else float("inf")
        next_sample = self.t0 + sampler.next_delay() if sampler.usable() else None
        while not self._stop:
            now = clock()
            if now >= end:
                self.stop_reason = "duration"
                return
            wake = min(next_refresh, end, next_sample if next_sample is not None else end)
            if wake > now:
                time.sleep(wake - now)
                now = clock()
            if next_sample is not None and now >= next_sample and not self._stop:
                if not sampler.sample():
                    self.stop_reason = "exit"
                    return
                next_sample = now + sampler.next_delay()
            if now >= next_refresh:
                next_refresh = now + _sampler.REFRESH_S
                if not sampler.refresh():
                    self.stop_reason = "exit"
                    return
                feed.refresh()
                if next_sample is None and sampler.usable():  # a free-threaded build turned its GIL on
                    next_sample = now + sampler.next_delay()
                self._note_children()
                if now >= next_every and self.on_every is not None:
                    next_every = now + (self.every or 0)
                    self.on_every(self._stats(sampler, feed, final=False))

    def _note_children(self) -> None:
        for c in children_of(self.pid):
            if c not in self.children:
                self.children.append(c)

    def _stats(self, sampler: _sampler.ProcSampler, feed: TargetFeed, final: bool) -> GilStats:
        raw = sampler.result()
        wall = (self.t_end if final and self.t_end is not None else time.monotonic()) - self.t0
        cpu = sum(t["cpu_s"] for t in raw["threads"])
        gil = feed.gil or bool(feed.enabled)
        notes = feed.notes()
        if self.stop_reason == "exit":
            notes.append("the process ended %.2f s into the measurement" % wall)
        busy = overload_note(self.load0, machine_load()) if gil else None
        if busy:
            notes.append(busy)
        if self.children:
            notes.append(children_note(self.children, cpu_included=False))
        return from_raw(raw, gil=gil, wall_s=wall, cpu_s=cpu, interval_s=self.interval,
                        interpreter=feed.target.label(), enabled_by=tuple(feed.enabled),
                        notes=tuple(notes), pid=self.pid, children=tuple(self.children),
                        gil_found_by=feed.target.found_by)


def children_note(children: List[int], cpu_included: bool) -> str:
    shown = ", ".join(str(c) for c in children[:8]) + (", ..." if len(children) > 8 else "")
    return ("the program started %d child process%s (PID %s) that the probe did not follow: their GIL "
            "is not in these figures%s; probe one with threadwise probe --pid PID while it runs"
            % (len(children), "" if len(children) == 1 else "es", shown,
               " (their CPU is, where the program waited for them)" if cpu_included else ""))


def attach(pid: int, duration: Optional[float] = None, interval: Optional[float] = None,
           every: Optional[float] = None,
           on_every: Optional[Callable[[GilStats], None]] = None) -> GilStats:
    """Measure the running CPython process ``pid`` (see :class:`PidRun`)."""
    if not sys.platform.startswith("linux"):
        raise ThreadwiseError("threadwise probe --pid works only on Linux (this is %s)" % sys.platform,
                              "it reads the process's memory through /proc",
                              "use `with threadwise.gil_monitor():` inside the program instead")
    if pid <= 0:
        raise UsageError("--pid must be a process ID (a positive number), got %d" % pid,
                         fix="find it with: ps -ef | grep python")
    return PidRun(pid, duration=duration, interval=interval, every=every, on_every=on_every).run()
