"""Run a program under the probe: ``threadwise probe -- python script.py ARGS``.

::

    threadwise probe (this process)             the program (child process)
    ───────────────────────────────             ───────────────────────────
    Popen(CMD, PYTHONPATH=_boot, fd=W) ───────► site imports _boot/sitecustomize:
                                                  find the GIL, undo PYTHONPATH
    select(pipe, pidfd, random gap) ◄── ready ──  (address, main thread)
      sample /proc/PID/mem + task/*/syscall       runs the program, untouched
                                    ◄── thread ─  each new thread: tid, name
                                    ◄── end ────  atexit: the program is done
    pidfd readable: exited ───────────────────►  exit status, rusage
    report (stderr or --output), exit with the program's status

When the hook does not run (``python -I``/``-E``/``-S``, a chroot or container
that can't see ``_boot``, a wrapper that cleans the environment), no "ready"
comes: after HOOK_WAIT_S (at once for ``-I``/``-E``/``-S``) the probe finds the
GIL from outside (:mod:`threadwise.probe.target`, the same finder as
``--pid``), retrying while the program execs or initialises its runtime.  Child
processes are not followed; the report names them (the hook reports each
fork, and ``/proc/PID/task/*/children`` is polled for the others).

The program keeps its stdin, stdout, stderr, argv, ``__main__``, tracebacks and
exit status.  Everything is sampled from this process, so a program that
crashes, calls ``os._exit`` or is killed still leaves its figures (only the
"end" mark is missing).  Signals: a Ctrl-C typed at the terminal reaches the
program directly (same process group); SIGINT/SIGTERM/SIGHUP sent to this
process alone are passed on to the program; either way we keep sampling until
it exits and then report.
"""
from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ThreadwiseError, UsageError
from . import sampler as _sampler

if TYPE_CHECKING:  # imported when needed: the program starts first
    from .attach import TargetFeed
    from .stats import GilEnabledEvent, GilStats
    from .target import AttachError

__all__ = ["resolve_command", "run_program", "ProgramRun"]

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT_DIR = os.path.join(HERE, "_boot")
AGENT = os.path.join(HERE, "_agent.py")
HOUSEKEEPING_S = 0.02
#: how long to wait for the start-up hook's "ready" before finding the GIL from outside
HOOK_WAIT_S = 0.1
#: the mean gap between samples at the start (adaptive sampling: sparser later)
DEFAULT_INTERVAL_S = 0.001
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# Python's own single-letter options that take a value (python --help)
_PY_OPTS_WITH_ARG = set("WXQ")


def _looks_like_python(exe: str) -> bool:
    base = os.path.basename(exe).lower()
    return base.startswith("python") or base.startswith("pypy")


def resolve_command(cmd: Sequence[str]) -> Tuple[List[str], List[str]]:
    """The argv to run and notes about how it was read.  Raises :class:`UsageError`
    for a missing program or script."""
    cmd = list(cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    notes: List[str] = []
    if not cmd:
        raise UsageError("no program to run was given",
                         fix="put the command after --: threadwise probe -- python script.py ARGS")
    first = cmd[0]
    if first.startswith("-") or first.endswith(".py") or (
            os.path.isfile(first) and not os.access(first, os.X_OK)):
        cmd = [sys.executable] + cmd
    elif shutil.which(first) is None:
        if first in ("python", "python3"):
            notes.append("%r is not on PATH here; ran %s" % (first, sys.executable))
            cmd = [sys.executable] + cmd[1:]
        else:
            raise UsageError("the command %r was not found" % first,
                             "it is not a file and not on PATH",
                             "give the interpreter's full path, e.g. threadwise probe -- %s script.py"
                             % sys.executable)
    if _looks_like_python(cmd[0]):
        script = _script_of(cmd[1:])
        if script is not None and script != "-" and not os.path.exists(script):
            raise UsageError("the script %r does not exist" % script,
                             "no such file relative to %s" % os.getcwd(),
                             "check the path, or run a module with: threadwise probe -- python -m MODULE")
    return cmd, notes


def _script_of(args: Sequence[str]) -> Optional[str]:
    """The script path in a python command line, or None (-m, -c, stdin, none)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if not a.startswith("-") or a == "-":
            return a
        if a.startswith("--"):
            if a in ("--check-hash-based-pycs",):
                i += 2
                continue
            i += 1
            continue
        letters = a[1:]
        for j, ch in enumerate(letters):
            if ch in "mc":
                return None
            if ch in _PY_OPTS_WITH_ARG:
                if j == len(letters) - 1:
                    i += 1
                break
        i += 1
    return None


def _hook_skipped(argv: Sequence[str]) -> bool:
    """True when a python command line skips the start-up hook (-I, -E or -S)."""
    if not argv or not _looks_like_python(argv[0]):
        return False
    args = list(argv[1:])
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or a == "-" or not a.startswith("-"):
            return False  # the script and its arguments
        if a.startswith("--"):
            i += 1
            continue
        for j, ch in enumerate(a[1:]):
            if ch in "IES":
                return True
            if ch in "mc":
                return False
            if ch in _PY_OPTS_WITH_ARG:
                if j == len(a) - 2:
                    i += 1  # the value is the next argument
                break
        i += 1
    return False


def _can_read_child_memory() -> bool:
    """Yama ptrace_scope 0/1 lets a parent read its child's memory; 2 needs
    CAP_SYS_PTRACE; 3 forbids it."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read().strip())
    except (OSError, ValueError):
        return True
    if scope <= 1:
        return True
    if scope == 2:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("CapEff:"):
                        return bool(int(line.split()[1], 16) & (1 << 19))
        except (OSError, ValueError):
            return False
    return False


class ProgramRun:
    """One program under the probe: start it, sample it until it exits, summarise."""

    def __init__(self, argv: Sequence[str], interval: Optional[float] = None, every: Optional[float] = None,
                 on_every: Optional[Callable[["GilStats"], None]] = None,
                 notes: Sequence[str] = ()) -> None:
        self.argv = list(argv)
        self.adaptive = interval is None
        self.interval = DEFAULT_INTERVAL_S if interval is None else interval
        self.every = every
        self.on_every = on_every
        self.notes = list(notes)
        self.info: Optional[Dict[str, Any]] = None
        self.end: Optional[Dict[str, Any]] = None
        self.knock: Optional[Dict[str, Any]] = None
        self.enabled: List["GilEnabledEvent"] = []
        self.forwarded: List[int] = []
        self.sampler: Optional[_sampler.ProcSampler] = None
        self.proc: Optional[subprocess.Popen] = None
        self.t_launch = 0.0
        self.t_exit: Optional[float] = None
        self._buf = b""
        self.load0: Optional[float] = None
        # the hook-free finder (when the hook did not run)
        self.feed: Optional["TargetFeed"] = None
        self.outside_error: Optional["AttachError"] = None
        self._outside_next = 0.0
        self._outside_tries = 0
        self.children: List[int] = []  # PIDs of child processes seen (forks and others)

    # -- start ----------------------------------------------------------------
    def _env(self, fd: int) -> Dict[str, str]:
        env = dict(os.environ)
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = BOOT_DIR + (os.pathsep + old if old else "")
        env["THREADWISE_PROBE_PYTHONPATH"] = "-" if old is None else "+" + old
        env["THREADWISE_PROBE_FD"] = str(fd)
        env["THREADWISE_PROBE_BOOT"] = BOOT_DIR
        env["THREADWISE_PROBE_AGENT"] = AGENT
        env["THREADWISE_PROBE_INTERVAL"] = repr(self.interval)
        if os.environ.get("THREADWISE_PROBE_METHOD") == "knocker":  # a debugging aid
            env["THREADWISE_PROBE_KNOCK"] = "1"
            self.notes.append("THREADWISE_PROBE_METHOD=knocker: measured with a knocker thread")
        elif not _can_read_child_memory():
            env["THREADWISE_PROBE_KNOCK"] = "1"
            self.notes.append("this system forbids reading another process's memory "
                              "(kernel.yama.ptrace_scope): measured with a knocker thread instead")
        return env

    def run(self) -> "GilStats":
        rfd, wfd = os.pipe()
        os.set_inheritable(rfd, False)
        env = self._env(wfd)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            self.proc = subprocess.Popen(self.argv, env=env, pass_fds=(wfd,))
        except OSError as exc:
            os.close(rfd)
            os.close(wfd)
            raise UsageError("could not start %r: %s" % (self.argv[0], exc.strerror or exc),
                             "the interpreter or program is missing or not executable",
                             "check the command after --") from None
        finally:
            if self.proc is not None:
                os.close(wfd)
        self.t_launch = time.monotonic()
        self._outside_next = self.t_launch + (0.0 if _hook_skipped(self.argv) else HOOK_WAIT_S)
        # after the fork: the program keeps its own scheduling priority
        prio = _sampler.boost_priority()
        from . import stats  # loads while the program starts up
        self.load0 = stats.machine_load()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        try:
            self.sampler = _sampler.ProcSampler(self.proc.pid, None, self.interval,
                                                count_cpu_from_now=False, adaptive=self.adaptive)
            self._loop(rfd)
        finally:
            self._drain_signals()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            _sampler.unboost_priority(prio)
        self._read_messages(rfd, final=True)
        os.close(rfd)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return self._stats(final=True, cpu=cpu)

    # -- the loop -------------------------------------------------------------
    def _loop(self, rfd: int) -> None:
        proc = self.proc
        assert proc is not None and self.sampler is not None
        sampler = self.sampler
        pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pidfd = None
        watch = [rfd] + ([pidfd] if pidfd is not None else [])
        now = time.monotonic()
        next_house = now + HOUSEKEEPING_S
        self._next_refresh = now + _sampler.REFRESH_S
        self._next_every = now + self.every if self.every else None
        clock = time.monotonic
        try:
            while True:
                sampling = sampler.usable() and self.end is None
                gap = sampler.next_delay() if sampling else HOUSEKEEPING_S
                now = clock()
                gap = max(0.0, min(gap, next_house - now))
                ready, _, _ = select.select(watch, [], [], gap)
                if ready:
                    if rfd in ready and not self._read_messages(rfd):
                        watch.remove(rfd)
                    if pidfd is not None and pidfd in ready:
                        break
                elif sampling:
                    sampler.sample()
                now = clock()
                if now >= next_house:
                    next_house = now + HOUSEKEEPING_S
                    if not self._housekeeping(now, pidfd is None):
                        break
        finally:
            if pidfd is not None:
                os.close(pidfd)
            proc.wait()
            self.t_exit = clock()
            sampler.close()

    def _housekeeping(self, now: float, poll: bool) -> bool:
        """Signals, the hook-free finder, thread refreshes, --every; False once the program exited."""
        assert self.proc is not None and self.sampler is not None
        self._forward_signals()
        if poll and self.proc.poll() is not None:
            return False
        if self.info is None and self.feed is None and self.outside_error is None \
                and now >= self._outside_next:
            self._find_outside(now)
        if now >= self._next_refresh:
            self.sampler.refresh()
            if self.feed is not None:
                self.feed.refresh()
            self._note_children()
            self._next_refresh = now + _sampler.REFRESH_S
        if self._next_every is not None and now >= self._next_every and self.on_every is not None:
            self._next_every = now + (self.every or 0)
            self.on_every(self._stats(final=False))
        return True

    def _find_outside(self, now: float) -> None:
        """The hook has not reported: find the GIL from outside (retried while the
        program execs into Python or initialises its runtime)."""
        from .target import AttachError, open_target
        assert self.proc is not None and self.sampler is not None
        self._outside_tries += 1
        try:
            target = open_target(self.proc.pid, retries=0)
        except AttachError as exc:
            limit = {"not-ready": 10 ** 6, "not-cpython": 50, "layout": 20}.get(exc.kind, 0)
            if self._outside_tries >= limit:
                self.outside_error = exc
            else:
                self._outside_next = now + min(0.1, 0.01 * 2 ** min(self._outside_tries, 4))
            return
        from .attach import TargetFeed
        self.sampler.refresh()  # the threads there now, before their states are mapped
        self.feed = TargetFeed(target, self.sampler, self.t_launch)

    def _note_children(self) -> None:
        from .target import children_of
        assert self.proc is not None
        for c in children_of(self.proc.pid):
            if c not in self.children:
                self.children.append(c)

    def _read_messages(self, rfd: int, final: bool = False) -> bool:
        """Handle what the program's start-up hook sent; False at EOF."""
        while True:
            try:
                if final:
                    r, _, _ = select.select([rfd], [], [], 0)
                    if not r:
                        return True
                chunk = os.read(rfd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            self._buf += chunk
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                try:
                    msg = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    continue
                self._handle(msg)
            if not final:
                return True

    def _handle(self, msg: Dict[str, Any]) -> None:
        ev = msg.get("ev")
        sampler = self.sampler
        if ev == "ready":
            self.info = msg
            if sampler is not None:
                sampler.name_thread(msg.get("tid"), msg.get("name"), msg.get("tstate"))
                if msg.get("gil"):
                    sampler.attach_gil(msg["gil"])
                    sampler.refresh()
            if msg.get("reason") and not msg.get("gil"):
                self.notes.append(msg["reason"])
        elif ev == "thread" and sampler is not None:
            sampler.name_thread(msg.get("tid"), msg.get("name"), msg.get("tstate"))
            sampler.refresh()
        elif ev == "exclude" and sampler is not None and msg.get("tid") is not None:
            sampler.exclude.add(int(msg["tid"]))
            sampler.refresh()
        elif ev == "gil_enabled":
            from .stats import GilEnabledEvent
            t0 = self.info.get("t") if self.info else None
            at = None if t0 is None or msg.get("t") is None else round(msg["t"] - t0, 6)
            self.enabled.append(GilEnabledEvent(module=msg.get("module"), at_s=at))
            if sampler is not None and msg.get("gil"):
                sampler.attach_gil(msg["gil"])
                sampler.refresh()
        elif ev == "fork":
            if msg.get("pid") is not None and int(msg["pid"]) not in self.children:
                self.children.append(int(msg["pid"]))
        elif ev == "knock":
            self.knock = msg
        elif ev == "end":
            self.end = msg
            if msg.get("knock"):
                self.knock = msg["knock"]
            if sampler is not None:
                sampler.refresh()

    # -- signals ----------------------------------------------------------------
    def _forward_signals(self) -> None:
        """Pass on signals sent to this process alone; a terminal's Ctrl-C
        (si_code SI_KERNEL > 0) already reached the whole process group."""
        while True:
            try:
                info = signal.sigtimedwait(FORWARDED, 0)
            except OSError:
                return
            if info is None:
                return
            if info.si_code <= 0 and self.proc is not None and self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, info.si_signo)
                    self.forwarded.append(info.si_signo)
                except OSError:
                    pass

    def _drain_signals(self) -> None:
        while True:
            try:
                if signal.sigtimedwait(FORWARDED, 0) is None:
                    return
            except OSError:
                return

    # -- results --------------------------------------------------------------
    def _stats(self, final: bool, cpu: Optional[float] = None) -> "GilStats":
        from .stats import from_raw, machine_load, overload_note
        sampler = self.sampler
        raw = sampler.result(t_end=None) if sampler is not None else None
        if raw is not None and self.end is not None and raw.get("t_last") is not None:
            raw["t_last"] = min(raw["t_last"], self.end["t"]) if raw["t_last"] else self.end["t"]
        notes = list(self.notes)
        label, gil = self._interpreter(notes)
        busy = overload_note(self.load0, machine_load()) if gil else None
        if busy:
            notes.append(busy)
        code = self._exit_code(notes) if final else None
        wall = (self.t_exit or time.monotonic()) - self.t_launch
        if raw is not None and cpu is None:
            cpu = sum(t["cpu_s"] for t in raw["threads"])
        if raw is not None and not raw["samples"] and gil and sampler is not None and not sampler.usable():
            raw = dict(raw, method="knocker" if self.knock else "threads-only")
        if self.children:
            from .attach import children_note
            notes.append(children_note(self.children, cpu_included=True))
        found_by = "hook" if self.info is not None and self.info.get("gil") else (
            self.feed.target.found_by if self.feed is not None else "")
        return from_raw(raw, gil=gil, wall_s=wall, cpu_s=cpu, interval_s=self.interval,
                        interpreter=label, enabled_by=tuple(self.enabled), notes=tuple(notes),
                        knock=self.knock, exit_code=code, pid=self.proc.pid if self.proc else None,
                        children=tuple(self.children), gil_found_by=found_by)

    def _interpreter(self, notes: List[str]) -> Tuple[str, Optional[bool]]:
        """The interpreter's label and whether a GIL ran (None: unknown); adds notes."""
        from .stats import GilEnabledEvent
        info = self.info
        gil: Optional[bool]
        if info is not None:
            impl_name = str(info.get("impl") or "?")
            impl = {"cpython": "CPython", "pypy": "PyPy"}.get(impl_name, impl_name)
            label = "%s %s%s" % (impl, info.get("version", ""),
                                 " (free-threaded build)" if info.get("ft_build") else "")
            gil = info.get("gil_enabled")
            if gil is False and (self.enabled or (self.end is not None and self.end.get("gil_enabled"))):
                gil = True
                if not self.enabled:
                    self.enabled.append(GilEnabledEvent(module=None, at_s=None))
                    notes.append("the GIL was turned on during the run; its warning was filtered out, "
                                 "so the module is unknown")
            return label, gil
        if self.feed is not None:
            feed = self.feed
            notes.append("the probe's start-up hook did not run in the program (python -I, -E or -S, a "
                         "chroot or container, or a cleaned environment): the GIL was found from outside "
                         "(%s); threads are named by the OS" % feed.target.found_by)
            notes.extend(feed.notes())
            for e in feed.enabled:
                if e not in self.enabled:
                    self.enabled.append(e)
            return feed.target.label(), feed.gil or bool(feed.enabled)
        if "jython" in os.path.basename(self.argv[0]).lower():
            notes.append("Jython has no GIL: only parallelism is measured")
            return "Jython", False
        why = ("python -I, -E or -S, or not a Python program" if self.outside_error is None
               else "and the GIL was not found from outside either: " + self.outside_error.what.rstrip("."))
        notes.append("the probe's start-up hook did not run in the program (%s): only CPU and threads "
                     "are measured" % why)
        return "", None

    def _exit_code(self, notes: List[str]) -> Optional[int]:
        """The program's exit status as a shell reports it (128+N for signal N); adds notes."""
        if self.proc is None:
            return None
        rc = self.proc.returncode
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = "signal %d" % -rc
            notes.append("the program was ended by %s: the figures cover its run until then" % name)
            return 128 - rc
        if self.info is not None and self.end is None and rc is not None and rc >= 0:
            notes.append("the program exited without running its exit handlers (os._exit or a crash)")
        return rc


def run_program(cmd: Sequence[str], interval: Optional[float] = None, every: Optional[float] = None,
                on_every: Optional[Callable[["GilStats"], None]] = None) -> "GilStats":
    """Run ``cmd`` under the probe and return its :class:`GilStats` (``exit_code`` set)."""
    argv, notes = resolve_command(cmd)
    if not sys.platform.startswith("linux"):
        raise ThreadwiseError("threadwise probe can wrap a program only on Linux (this is %s)" % sys.platform,
                              "it reads the program's GIL through /proc",
                              "use `with threadwise.gil_monitor():` inside the program instead")
    return ProgramRun(argv, interval=interval, every=every, on_every=on_every, notes=notes).run()
