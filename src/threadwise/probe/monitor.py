"""``gil_monitor()``: measure the GIL of the current process while a block runs.

::

    this process                               helper process (sampler.py)
    ────────────                               ───────────────────────────
    start(): find the GIL (_agent.find_gil)
             spawn helper ── config line ────► open /proc/PID/mem
                          ◄── ready ─────────
             watch threads ── tid/name/tstate ► (names, per-thread holds)
    ... the user's block runs, untouched ...   sample at random gaps
    stop():  ── stop ────────────────────────► final counts
                          ◄── raw counts ────
             GilStats (+ process CPU / wall)

The helper never takes this process's GIL, so it neither waits for it nor
forces a switch; its cost here is nil (its own CPU runs on another core when
there is one).  Where it can't work -- not Linux, PyPy (no GIL struct to read),
ptrace forbidden -- a knocker thread inside the process takes its place and
the result says so.  On a free-threaded build running without the GIL there is
nothing to sample: the result says "no GIL", reports parallelism and per-thread
CPU, and names the module and time if an import turns the GIL on.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ThreadwiseError, UsageError
from . import _agent
from .stats import GilEnabledEvent, GilStats, from_raw, machine_load, overload_note

__all__ = ["GilMonitor", "gil_monitor", "DEFAULT_INTERVAL_S"]

#: mean gap between two samples (seconds); see benchmarks/PROBE.md for its cost
DEFAULT_INTERVAL_S = 0.001
_SAMPLER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sampler.py")
_KNOCK_MIN_S = 0.005
PR_SET_PTRACER = 0x59616D61


def check_interval(interval: float) -> float:
    try:
        value = float(interval)
    except (TypeError, ValueError):
        raise UsageError("interval must be a number of seconds, got %r" % (interval,)) from None
    if not (value == value) or value <= 0 or value > 10:
        raise UsageError("interval must be > 0 and <= 10 seconds, got %r" % (interval,),
                         fix="pass a mean sampling gap such as 0.001 (1 ms, the default)")
    return value


def interpreter_label() -> str:
    impl = _agent.implementation()
    v = sys.version_info
    label = "%s %d.%d.%d" % ({"cpython": "CPython", "pypy": "PyPy"}.get(impl, impl), v[0], v[1], v[2])
    if _agent.free_threaded_build():
        label += " (free-threaded build)"
    return label


def allow_tracer(pid: int) -> None:
    """Under Yama ptrace_scope 1 only ancestors may read our memory: allow ``pid`` too."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            if f.read().strip() != "1":
                return
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0)
    except Exception:
        pass


class _Helper:
    """The sampler process and its two pipes."""

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self._buf = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", _SAMPLER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout = self.proc.stdout
        allow_tracer(self.proc.pid)
        self.send(cfg)
        ready = self.read_line(timeout=20.0)
        if ready is None:
            self.kill()
            raise ThreadwiseError("the probe's sampler process did not start",
                                  "%s could not run %s" % (sys.executable, _SAMPLER),
                                  "check that this interpreter can start a subprocess")
        self.usable = bool(ready.get("usable"))
        self.error = ready.get("error")

    def send(self, msg: Dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with self.lock:
            try:
                os.write(self.stdin.fileno(), data)
            except (OSError, ValueError):
                pass

    def read_line(self, timeout: float = 20.0) -> Optional[Dict[str, Any]]:
        fd = self.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line.decode())
        except ValueError:
            return None

    def finish(self) -> Optional[Dict[str, Any]]:
        self.send({"ev": "stop", "t": time.monotonic()})
        raw = self.read_line(timeout=20.0)
        try:
            self.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
        self.stdout.close()
        return raw

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:
            pass


class GilMonitor:
    """Measures how much this process holds and waits for the GIL.

    Use as a context manager (``with gil_monitor() as m: ...``) or call
    :meth:`start` and :meth:`stop`.  :meth:`stats` returns a frozen
    :class:`GilStats` (live figures while running), :meth:`report` text.
    """

    def __init__(self, interval: Optional[float] = None) -> None:
        # None: adaptive sampling, DEFAULT_INTERVAL_S for the first second and
        # sparser later (see sampler.RAMP_S); a number: that mean gap throughout
        self.adaptive = interval is None
        self.interval = DEFAULT_INTERVAL_S if interval is None else check_interval(interval)
        self._helper: Optional[_Helper] = None
        self._knocker: Optional[_agent.Knocker] = None
        self._watcher: Optional[_agent.ThreadWatcher] = None
        self._enabled: List[GilEnabledEvent] = []
        self._showwarning = None
        self._notes: List[str] = []
        self._final: Optional[GilStats] = None
        self._running = False
        self._gil: Optional[bool] = None
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._load0: Optional[float] = None

    # -- lifecycle ------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> "GilMonitor":
        if self._running:
            raise UsageError("this GIL monitor is already running",
                             fix="use one monitor per block, or call stop() first")
        self._final = None
        self._notes = []
        self._enabled = []
        self._gil = _agent.gil_enabled()
        loc = _agent.find_gil() if self._gil else None
        can_read_proc = sys.platform.startswith("linux") and os.path.isdir("/proc/self/task")
        if can_read_proc:
            cfg = {"pid": os.getpid(), "interval": self.interval, "adaptive": self.adaptive,
                   "gil": loc.as_dict() if loc is not None and loc.address else None}
            self._helper = _Helper(cfg)
            if self._helper.error:
                self._notes.append(self._helper.error)
        if self._gil and (self._helper is None or not self._helper.usable):
            if loc is not None and loc.reason:
                self._notes.append(loc.reason)
            self._knocker = _agent.Knocker(interval=max(self.interval, _KNOCK_MIN_S)).start()
            while self._knocker.native_id is None and self._knocker.thread.is_alive():
                time.sleep(0.0005)
            if self._helper is not None and self._knocker.native_id is not None:
                self._helper.send({"ev": "exclude", "tid": self._knocker.native_id})
        helper = self._helper
        if helper is not None:
            tid, name, tstate = _agent.thread_identity()
            helper.send({"ev": "thread", "tid": tid, "name": name, "tstate": tstate})
            pid = os.getpid()

            def on_thread(tid: Any, name: Any, tstate: Any) -> None:
                if os.getpid() == pid:  # not from a fork of this process
                    helper.send({"ev": "thread", "tid": tid, "name": name, "tstate": tstate})

            self._watcher = _agent.ThreadWatcher(on_thread)
            self._watcher.start()
        if self._gil is False and hasattr(sys, "_is_gil_enabled"):
            self._showwarning = _agent.watch_gil_enabling(self._on_gil_enabled)
        self._load0 = machine_load()
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._running = True
        return self

    def _on_gil_enabled(self, module: str, t: float) -> None:
        self._enabled.append(GilEnabledEvent(module=module, at_s=round(t - self._t0, 6)))
        loc = _agent.find_gil()
        if self._helper is not None and loc.address:
            self._helper.send({"ev": "gil", "gil": loc.as_dict()})

    def stop(self) -> GilStats:
        if not self._running:
            if self._final is not None:
                return self._final
            raise UsageError("this GIL monitor was never started",
                             fix="use `with gil_monitor() as m:` or call start() first")
        wall = time.monotonic() - self._t0
        cpu = time.process_time() - self._cpu0
        self._running = False
        if self._watcher is not None:
            self._watcher.stop()
        if self._showwarning is not None:
            import warnings
            warnings.showwarning = self._showwarning
            self._showwarning = None
        knock = None
        if self._knocker is not None:
            self._knocker.stop()
            knock = self._knocker.snapshot()
        raw = self._helper.finish() if self._helper is not None else None
        if self._helper is not None and raw is None:
            self._notes.append("the sampler process gave no result")
        self._helper = None
        self._final = self._build(raw, knock, wall, cpu)
        return self._final

    def _build(self, raw: Optional[Dict[str, Any]], knock: Optional[Dict[str, Any]],
               wall: float, cpu: float) -> GilStats:
        gil = self._gil
        notes = list(self._notes)
        busy = overload_note(self._load0, machine_load()) if gil else None
        if busy:
            notes.append(busy)
        if gil is False and _agent.gil_enabled():
            gil = True
            if not self._enabled:
                self._enabled.append(GilEnabledEvent(module=None, at_s=None))
                notes.append("the GIL was turned on during the run (its warning was filtered out)")
        exclude: Tuple[int, ...] = ()
        if self._knocker is not None and self._knocker.native_id is not None:
            exclude = (self._knocker.native_id,)
        return from_raw(raw, gil=gil, wall_s=wall, cpu_s=cpu, interval_s=self.interval,
                        interpreter=interpreter_label(), enabled_by=tuple(self._enabled),
                        notes=tuple(notes), knock=knock, exclude_tids=exclude, gil_found_by="hook")

    def stats(self) -> GilStats:
        """The figures: final after :meth:`stop`, so far while running."""
        if self._final is not None and not self._running:
            return self._final
        if not self._running:
            raise UsageError("this GIL monitor was never started",
                             fix="use `with gil_monitor() as m:` or call start() first")
        raw = None
        if self._helper is not None:
            self._helper.send({"ev": "snapshot"})
            raw = self._helper.read_line()
        knock = self._knocker.snapshot() if self._knocker is not None else None
        return self._build(raw, knock, time.monotonic() - self._t0, time.process_time() - self._cpu0)

    def report(self) -> str:
        return self.stats().report()

    # -- context manager --------------------------------------------------------
    def __enter__(self) -> "GilMonitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self._running:
            self.stop()

    def __del__(self) -> None:  # a monitor dropped without stop(): don't leak the helper
        helper = getattr(self, "_helper", None)
        if helper is not None:
            helper.kill()


def gil_monitor(interval: Optional[float] = None) -> GilMonitor:
    """A :class:`GilMonitor` to use as ``with threadwise.gil_monitor() as m:``.

    ``interval`` is the mean gap between samples in seconds.  The default
    (None) samples every 1 ms on average for the first second, then ever more
    sparsely (the gap grows with the elapsed time, up to 20 ms), weighting each
    sample by its gap, so that long runs stay cheap and the shares unbiased.
    """
    return GilMonitor(interval=interval)
