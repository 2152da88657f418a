"""The outside sampler: reads another process's GIL through /proc, at random times.

Stdlib only, and no package-relative imports: the library mode runs this file
as a script in a helper process (``python -I -S sampler.py``), the CLI imports
it and samples the wrapped program from its own main thread.

Data flow::

    target process                          this sampler (another process)
    ─────────────────                       ──────────────────────────────
    _agent.find_gil() ── GIL address ──►    open /proc/PID/mem, task/*/syscall
    threads start     ── tid, tstate ──►    name them; map tstate -> tid
    (no hook: target.Target finds both from outside -> attach_gil, map_tstates)
                                            every ~interval (exponential gaps):
                                              read locked, last_holder, switch#
                                              if locked and >1 thread: which
                                              threads sit in a futex on the GIL
                                            every ~50 ms: per-thread CPU
                                              (schedstat, nanoseconds)

Why from outside: a Python thread that checks the GIL must hold it to run, so
it always sees "held", and each check is itself a switch request that perturbs
what it measures (the knocker problem).  Reading ``locked`` from another
process costs the target nothing: no GIL request, no signal, no stop.

Samples are taken at exponentially distributed gaps (a Poisson process, as
gil_load does), so they can't lock onto a periodic workload; given the run's
actual timeline each sample is then an independent Bernoulli draw of "held",
and the Wilson interval on the count is a fair confidence interval.  The
sampler asks for real-time priority (:func:`boost_priority`): a sampler that
must wait for a CPU wakes late preferentially while the program is busy, and
under-samples busy phases.

A waiting thread is one blocked in ``futex()`` on the GIL, plus three states
that /proc shows only as "running": a waiter woken (by the hand-off or its
timeout) that has not yet taken the GIL; a holder forced to hand over (it
blocked, on ``switch_cond``, since it was last seen holding) that has not yet
blocked again; and a thread last seen blocked elsewhere (``sleep``, I/O, a
lock: calls made with the GIL released) that is runnable but has not been on a
CPU since (its scheduler run count, schedstat's third field, has not moved):
the first thing it does on a CPU is take the GIL back.  On a busy machine a
woken sleeper waits for a core for milliseconds; before this third rule the
wait share of 3 threads at duty 0.5 read 6-11 points low.  The one thread it
can misjudge is one that, woken from I/O, would go on in native code without
the GIL (a sqlite query between reads), and only while it has no CPU.

Invariants relied on: ``locked`` and ``last_holder`` are plain aligned words
(reads are atomic); a waiter blocks in ``futex()`` on a word inside the GIL's
``cond``/``mutex``/``switch_cond``/``switch_mutex`` (glibc and musl alike), so
the first syscall argument names the lock it waits for.
"""
from __future__ import annotations  # annotations are for mypy only: never evaluated here

import os
import random
import struct
import sys
import time

_clock = time.monotonic

#: how often thread lists and per-thread CPU are refreshed (seconds)
REFRESH_S = 0.05
#: adaptive sampling: the base interval holds for this long, then the gap grows
RAMP_S = 1.0
#: ... up to this mean gap
MAX_GAP_S = 0.02


class _Thread(object):
    __slots__ = ("tid", "name", "tstate", "fd_sys", "fd_cpu", "cpu_ns", "cpu0_ns", "wait",
                 "wait_first", "wait_last", "alive", "started_t", "gil_sw", "held_sw",
                 "held_vcsw", "fd_status", "sys_runs")

    def __init__(self, tid):
        self.tid = tid
        self.name = None
        self.tstate = None
        self.fd_sys = None
        self.fd_cpu = None
        self.cpu_ns = 0
        self.cpu0_ns = None
        self.wait = 0
        self.wait_first = None
        self.wait_last = None
        self.alive = True
        self.started_t = None
        self.gil_sw = None  # switch number when last seen blocked on the GIL
        self.held_sw = None  # switch number when last seen holding it
        self.held_vcsw = None  # its voluntary context switches then
        self.fd_status = None
        # times it had been put on a CPU when last seen blocked elsewhere than on
        # the GIL (sleep, I/O, a lock), else None
        self.sys_runs = None


def boost_priority():
    """Ask the OS to run this sampler promptly when its timer fires.

    A sampler that waits for a CPU wakes late preferentially while the
    program keeps the cores busy, and so samples busy phases less often than
    idle ones (a bias of several points on an overloaded machine).  A real-time
    (SCHED_FIFO, lowest priority) or a higher nice priority removes most of
    it.  The sampler sleeps >95% of the time, so this takes little from anyone.
    Returns what was obtained ("fifo", "nice", or "" when not permitted).
    """
    if os.environ.get("THREADWISE_PROBE_NO_BOOST"):
        return ""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return "fifo"
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice"
    except (AttributeError, OSError):
        return ""


def unboost_priority(how):
    """Undo :func:`boost_priority` (the CLI reports at normal priority)."""
    try:
        if how == "fifo":
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        elif how == "nice":
            os.setpriority(os.PRIO_PROCESS, 0, 0)
    except (AttributeError, OSError):
        pass


def _open(path):
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _comm(base):
    """The OS thread name, in brackets (a fallback for threads Python did not name)."""
    try:
        with open(base + "comm", "rb") as f:
            return "[%s]" % f.read().strip().decode("utf-8", "replace")
    except OSError:
        return None


def _close(fd):
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


class ProcSampler(object):
    """Samples the GIL of process ``pid`` whose struct ``gil`` (a dict from
    ``GilLocation.as_dict()``) was found by the agent or from outside
    (``target.Target.gil_location()``); ``gil=None`` samples only threads and
    CPU (no GIL, or not found yet: :meth:`attach_gil` later).

    Call :meth:`sample` at the times you choose (see :meth:`next_delay`) and
    :meth:`refresh` now and then; :meth:`result` gives the raw counts.
    """

    def __init__(self, pid, gil=None, interval=0.001, exclude_tids=(), seed=None,
                 count_cpu_from_now=True, adaptive=False):
        self.pid = int(pid)
        self.interval = float(interval)
        self.rng = random.Random(seed)
        self.exclude = set(exclude_tids)
        self.task_dir = "/proc/%d/task" % self.pid
        self.threads = {}
        self.active = []  # threads to check for waits (alive, not excluded)
        self.names = {}  # tid -> name, from the agent
        self.tstates = {}  # tstate -> tid, from the agent
        self.held_by = {}  # tid (None: unknown) -> samples where it held the GIL
        self.adaptive = bool(adaptive)
        self.t_start = _clock()
        self.samples = 0
        self.w_total = 0.0  # sum of sample weights (1 each when not adaptive)
        self.w2_total = 0.0
        self.held: float = 0  # weighted sample counts (ints unless adaptive)
        self.wait_any: float = 0
        self.waiters: float = 0
        self.wait_checked = 0
        self.switch_first = None
        self.switch_last = None
        self.longest_stall = 0.0
        self.longest_stall_tid = None
        self.t_first = None
        self.t_last = None
        self.errors = 0
        self.error = None
        self.gone = False
        self.kind = "cpython"
        self._pypy_holder = None
        self._pypy_switch = 0
        self.gil = None
        self.memfd: int | None = None
        self.addr: int | None = None
        self.attach_gil(gil)
        self._initial = bool(count_cpu_from_now)
        self.refresh()
        self._initial = False
        self.t_start = _clock()

    def attach_gil(self, gil):
        """Start reading the GIL struct described by ``gil`` (a ``GilLocation.as_dict()``)."""
        if not gil or not gil.get("gil_address") or self.memfd is not None:
            return self.memfd is not None
        self.gil = gil
        self.addr = int(gil["gil_address"])
        self.memfd = _open("/proc/%d/mem" % self.pid)
        if self.memfd is None:
            self.error = ("can't read /proc/%d/mem (ptrace is restricted here: "
                          "kernel.yama.ptrace_scope or a container policy)" % self.pid)
            return False
        self.kind = gil.get("kind", "cpython")
        self.fmt = struct.Struct(str(gil.get("read_format", "@LPiL")))
        lo = self.addr + int(gil["off_cond"])
        hi = lo + int(gil["span_wait"])
        # futex words are 4-byte aligned; /proc prints arguments as 0x%lx
        self.waitset = frozenset(("0x%x" % a).encode() for a in range(lo, hi, 4))
        # threads seen so far get a syscall reader now
        for th in self.threads.values():
            if th.alive and th.fd_sys is None and th.tid not in self.exclude:
                th.fd_sys = _open("%s/%d/syscall" % (self.task_dir, th.tid))
        self.active = [th for th in self.threads.values()
                       if th.alive and th.fd_sys is not None and th.tid not in self.exclude]
        return True

    # -- the program tells us about its threads ---------------------------------
    def name_thread(self, tid, name, tstate=None):
        if tid is None:
            return
        tid = int(tid)
        self.names[tid] = name
        if tstate:
            tstate = int(tstate)
            self.tstates[tstate] = tid
        th = self.threads.get(tid)
        if th is not None and th.alive:
            th.name = name
            th.tstate = tstate or None

    def map_tstates(self, states):
        """Thread states found from outside (``{tstate address: tid}``, see
        ``target.Target.thread_states``): like :meth:`name_thread` without names."""
        for tstate, tid in states.items():
            tstate, tid = int(tstate), int(tid)
            if self.tstates.get(tstate) == tid:
                continue
            for old in [ts for ts, t in self.tstates.items() if t == tid]:
                del self.tstates[old]  # the thread's earlier state (a reused thread id)
            self.tstates[tstate] = tid
            th = self.threads.get(tid)
            if th is not None and th.alive:
                th.tstate = tstate

    # -- the work -------------------------------------------------------------
    def current_gap(self, now=None):
        """Mean gap between samples now.  Adaptive: ``interval`` for the first
        RAMP_S seconds, then growing with the elapsed time (up to MAX_GAP_S), so
        that a long run costs little; each sample is weighted by the gap in
        force when it was taken (the inverse of the sampling rate), which keeps
        the time averages unbiased."""
        if not self.adaptive:
            return self.interval
        t0 = self.t_first if self.t_first is not None else self.t_start
        elapsed = (_clock() if now is None else now) - t0
        if elapsed <= RAMP_S:
            return self.interval
        return min(self.interval * elapsed / RAMP_S, max(self.interval, MAX_GAP_S))

    def next_delay(self):
        return self.rng.expovariate(1.0 / self.current_gap())

    def usable(self):
        return self.memfd is not None and not self.gone

    def sample(self):
        """Take one sample now; returns False once the process is gone."""
        t = _clock()
        state = self._read_gil()
        if state is None:
            return not self.gone
        holder, locked, switch = state
        if self.t_first is None:
            self.t_first = t
            self.switch_first = switch
        self.t_last = t
        self.switch_last = switch
        self.samples += 1
        w = self.current_gap(t) if self.adaptive else 1.0
        self.w_total += w
        self.w2_total += w * w
        if not locked:
            for th in self.active:
                if th.wait_first is not None:
                    self._end_wait(th)
            return True
        self.held += w
        owner = self.tstates.get(holder)
        self.held_by[owner] = self.held_by.get(owner, 0) + w
        if len(self.active) >= 2:
            self._count_waiters(t, w, holder, switch)
        return True

    def _read_gil(self):
        """(holder, locked, switch number) now, or None when the read failed
        (``gone`` set once the process has ended or reads keep failing)."""
        memfd, addr = self.memfd, self.addr
        assert memfd is not None and addr is not None, "sample() needs usable()"
        failure: OSError | None = None
        try:
            data = os.pread(memfd, self.fmt.size, addr)
        except OSError as exc:
            data, failure = b"", exc
        if failure is not None or len(data) != self.fmt.size:
            # an exiting process has no memory left to read
            if not os.path.exists(self.task_dir):
                self.gone = True
                return None
            self.errors += 1
            if self.errors > 3:
                self.error = "reading the GIL failed: %s" % (failure if failure is not None else "short read")
                self.gone = True
            return None
        if self.kind == "pypy":
            # one word: the holder's thread ident, 0 when free; count hand-overs
            holder = self.fmt.unpack(data)[0]
            locked = holder != 0
            if locked and holder != self._pypy_holder:
                self._pypy_switch += 1
                self._pypy_holder = holder
            return holder, locked, self._pypy_switch
        _, holder, locked, switch = self.fmt.unpack(data)
        return holder, locked, switch

    def _count_waiters(self, t, w, holder, switch):
        """The GIL is held: which of the other threads wait for it?"""
        n = 0
        waitset = self.waitset
        pread = os.pread
        for th in self.active:
            if th.tstate is not None and th.tstate == holder:
                # the holder.  Remember its count of voluntary context switches:
                # if it later shows up running without the GIL, a forced
                # hand-off made it block (on switch_cond, until the next holder
                # took over) and it is on its way back to the GIL, while a
                # release for native work (hashlib, zlib, ...) blocks nothing.
                th.gil_sw = th.sys_runs = None
                th.held_sw = switch
                th.held_vcsw = self._vcsw(th)
                if th.wait_first is not None:
                    self._end_wait(th)
                continue
            try:
                s = pread(th.fd_sys, 48, 0)
            except (OSError, TypeError):
                continue
            if s[:1] == b"r":
                waiting = self._running_wants_gil(th, holder, switch)
            else:
                th.held_sw = None
                parts = s.split(b" ", 2)
                waiting = len(parts) > 1 and parts[1] in waitset
                if waiting:
                    th.gil_sw = switch
                    th.sys_runs = None
                else:
                    th.gil_sw = None
                    if th.sys_runs is None:  # blocked since the last look: note its run count
                        th.sys_runs = self._runs(th)
            if waiting:
                n += 1
                th.wait += w
                if th.wait_first is None:
                    th.wait_first = t
                th.wait_last = t
            elif th.wait_first is not None:
                self._end_wait(th)
        if n:
            self.wait_any += w
            self.waiters += n * w

    def _running_wants_gil(self, th, holder, switch):
        """A thread /proc shows running (or runnable without a CPU yet, on an
        overloaded machine) while another holds the GIL: is it on its way to it?"""
        sw0 = th.gil_sw
        if sw0 is not None:
            # last seen blocked on the GIL and not had it since (a waiter woken by
            # the hand-off or by its timeout): it can't have had it if no switch
            # happened since, or if the one switch went to another thread
            delta = switch - sw0
            if delta == 0 or (delta == 1 and th.tstate and holder != th.tstate):
                return True
            th.gil_sw = None
            return False
        if th.held_sw is not None:
            # it held the GIL at the last sample and the one switch since went to
            # the current holder: a forced hand-off if it blocked
            waiting = False
            if switch - th.held_sw == 1 and th.held_vcsw is not None:
                v = self._vcsw(th)
                if v is not None and v > th.held_vcsw:
                    waiting = True
                    th.gil_sw = switch
            th.held_sw = None
            return waiting
        if th.sys_runs is not None and th.tstate:
            # last seen blocked in a system call (sleep, I/O, a lock), made with
            # the GIL released; now runnable.  If it has not been on a CPU since
            # (the scheduler's run count has not moved), it is queued for a core
            # and the first thing it will do there is take the GIL back: it
            # wants the GIL while another thread holds it.  On a busy machine
            # that lasts milliseconds (measured: median 0.8 ms on this 2-core VM
            # with 3 threads), and /proc shows it only as "running".
            runs = self._runs(th)
            if runs is not None and runs == th.sys_runs:
                return True
            th.sys_runs = None
        return False

    def _runs(self, th):
        """How many times the thread has been put on a CPU (schedstat's third field,
        counted at each switch, unlike its CPU time, which moves at ticks)."""
        if th.fd_cpu is None:
            return None
        try:
            runs = int(os.pread(th.fd_cpu, 64, 0).split()[2])
        except (OSError, ValueError, IndexError):
            return None
        return runs or None  # 0: the kernel keeps no run counts (no sched_info)

    def _vcsw(self, th):
        """The thread's voluntary context switches so far (None if unreadable)."""
        if th.fd_status is None:
            th.fd_status = _open("%s/%d/status" % (self.task_dir, th.tid))
            if th.fd_status is None:
                return None
        try:
            s = os.pread(th.fd_status, 4096, 0)
        except OSError:
            return None
        i = s.find(b"\nvoluntary_ctxt_switches:")
        if i < 0:
            return None
        try:
            return int(s[i + 25:s.index(b"\n", i + 25)])
        except ValueError:
            return None

    def _end_wait(self, th):
        # a run of consecutive waiting samples; each stands for about one gap
        stall = th.wait_last - th.wait_first + self.interval
        if stall > self.longest_stall:
            self.longest_stall = stall
            self.longest_stall_tid = th.tid
        th.wait_first = th.wait_last = None

    def refresh(self):
        """Find new and ended threads; read per-thread CPU.  False once the process is gone."""
        try:
            tids = os.listdir(self.task_dir)
        except OSError:
            for th in self.threads.values():
                th.alive = False
            self.active = []
            return False
        now = set()
        for name in tids:
            try:
                tid = int(name)
            except ValueError:
                continue
            now.add(tid)
            th = self.threads.get(tid)
            if th is None or not th.alive:
                th = _Thread(tid)
                th.started_t = _clock()
                th.name = self.names.get(tid)
                for ts, t in self.tstates.items():
                    if t == tid:
                        th.tstate = ts
                base = "%s/%d/" % (self.task_dir, tid)
                th.fd_cpu = _open(base + "schedstat")
                if th.name is None:
                    th.name = _comm(base)
                if self.memfd is not None and tid not in self.exclude:
                    th.fd_sys = _open(base + "syscall")
                self.threads[tid] = th
        for tid, th in self.threads.items():
            if th.alive and tid not in now:
                th.alive = False
                if th.wait_first is not None:
                    self._end_wait(th)
                _close(th.fd_sys)
                _close(th.fd_cpu)
                _close(th.fd_status)
                th.fd_sys = th.fd_cpu = th.fd_status = None
        self._read_cpu()
        self.active = [th for th in self.threads.values()
                       if th.alive and th.fd_sys is not None and th.tid not in self.exclude]
        return True

    def _read_cpu(self):
        for th in self.threads.values():
            if th.alive and th.fd_cpu is not None:
                try:
                    ns = int(os.pread(th.fd_cpu, 64, 0).split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                if th.cpu0_ns is None:
                    # threads already there when sampling began count from now;
                    # threads born later count from their start
                    th.cpu0_ns = ns if self._initial else 0
                th.cpu_ns = ns

    def close(self):
        for th in self.threads.values():
            if th.wait_first is not None:
                self._end_wait(th)
            _close(th.fd_sys)
            _close(th.fd_cpu)
            _close(th.fd_status)
            th.fd_sys = th.fd_cpu = th.fd_status = None
        _close(self.memfd)
        self.memfd = None

    def result(self, t_end=None):
        """The raw counts, as a JSON-able dict."""
        threads = []
        held_known = 0
        for tid in sorted(self.threads):
            th = self.threads[tid]
            if tid in self.exclude:
                continue
            known = tid in self.tstates.values()
            held = self.held_by.get(tid, 0) if known else None
            if held:
                held_known += held
            base = th.cpu0_ns or 0
            threads.append({
                "tid": tid,
                "name": self.names.get(tid) or th.name,
                "cpu_s": max(0, th.cpu_ns - base) / 1e9,
                "held_samples": held,
                "wait_samples": th.wait,
                "alive": th.alive,
            })
        switches = None
        if self.switch_first is not None:
            switches = self.switch_last - self.switch_first
        return {
            "method": "gil-state" if self.memfd is not None or self.samples else "threads-only",
            "pid": self.pid,
            "interval_s": self.interval,
            "adaptive": self.adaptive,
            "w_total": self.w_total,
            "w2_total": self.w2_total,
            "t_first": self.t_first,
            "t_last": self.t_last if t_end is None else t_end,
            "samples": self.samples,
            "held": self.held,
            "wait_any": self.wait_any,
            "waiters": self.waiters,
            "wait_checked": self.wait_checked,
            "switches": switches,
            "longest_stall_s": self.longest_stall if self.wait_any else 0.0,
            "longest_stall_tid": self.longest_stall_tid,
            "held_unattributed": self.held - held_known,
            "threads": threads,
            "error": self.error,
        }


def _subprocess_main():
    """Library mode: ``python sampler.py``, driven by JSON lines on stdin.

    First line: the config (pid, gil, interval, seed).  Then any of
    ``{"ev": "thread", tid, name, tstate}``, ``{"ev": "gil", gil}``,
    ``{"ev": "exclude", tid}``, ``{"ev": "snapshot"}`` (answered with the raw
    counts so far) and ``{"ev": "stop"}``.  At stop or EOF it prints the final
    raw counts as one JSON line and exits.
    """
    import json
    import select
    fd = sys.stdin.fileno()
    out = sys.stdout

    def lines():
        buf = b""
        while True:
            while b"\n" not in buf:
                r, _, _ = select.select([fd], [], [], wait[0])
                if not r:
                    yield None
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    if buf:
                        yield buf
                    return
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            yield line

    wait: list[float | None] = [None]  # select()'s timeout for the next line
    feed = lines()
    boost_priority()
    cfg = json.loads(next(feed).decode("utf-8"))
    sampler = ProcSampler(cfg["pid"], cfg.get("gil"), cfg.get("interval", 0.001),
                          exclude_tids=cfg.get("exclude", ()), seed=cfg.get("seed"),
                          adaptive=cfg.get("adaptive", False))
    out.write(json.dumps({"ready": True, "usable": sampler.usable(), "error": sampler.error,
                          "t": _clock()}) + "\n")
    out.flush()
    next_refresh = _clock() + REFRESH_S
    while True:
        wait[0] = sampler.next_delay() if sampler.usable() else REFRESH_S
        line = next(feed, b"")
        if line is None:  # timed out: time for a sample
            if sampler.usable() and not sampler.sample():
                break
            if _clock() >= next_refresh:
                if not sampler.refresh():
                    break
                next_refresh = _clock() + REFRESH_S
            continue
        if not line:
            break
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        ev = msg.get("ev")
        if ev == "thread":
            sampler.name_thread(msg.get("tid"), msg.get("name"), msg.get("tstate"))
            sampler.refresh()
        elif ev == "gil":
            sampler.attach_gil(msg.get("gil"))
        elif ev == "exclude":
            sampler.exclude.add(int(msg["tid"]))
            sampler.refresh()
        elif ev == "snapshot":
            sampler.refresh()
            out.write(json.dumps(sampler.result()) + "\n")
            out.flush()
        elif ev == "stop":
            break
    sampler.refresh()
    sampler.close()
    out.write(json.dumps(sampler.result()) + "\n")
    out.flush()


if __name__ == "__main__":
    _subprocess_main()
