"""How much of the time the GIL was held while real items ran: a sleeping thread's lateness.

``auto`` must learn whether threads can help without running the user's
function a second time (``gilcheck.gil_check`` calls it over and over on one
item: fine for ``advise``, which the user asks to measure, wrong for a map that
has side effects).  So while the first items run, a meter thread sleeps 1 ms,
wakes, and notes how late it got the GIL back:

* the GIL free (fn in C code that releases it, in I/O, or no GIL at all): the
  meter wakes on time (tens of microseconds late);
* the GIL held (pure Python, or C code that keeps it): it waits for the
  interpreter's forced switch, ``sys.getswitchinterval()`` (5 ms), or until the
  holding call returns or releases it for a moment (any system call does).

A wake later than half the switch interval counts as held: a call that drops
the GIL for a moment more often than that (tiny writes between bursts of
Python) looks freer than it is, which is why ``auto`` checks a "released"
reading on CPU-bound work with a short run of real items on two threads.

A late wake counts its whole interval (sleep + wait) as held, so long holds
weigh by their duration, not by their number of wakes.  The meter costs the
measured thread one forced switch every few milliseconds (well under 1%).
On a loaded machine a wake can also be late for want of a free core; on
Linux the meter reads its own run-queue wait (``/proc/thread-self/schedstat``,
2 µs a read) and does not count a wake that was late mostly for want of a
core as the GIL's.  Elsewhere the error
is toward "held", which steers ``auto`` to processes, never to threads that
would not scale.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional, Tuple


class GilMeter:
    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        # late by more than half the switch interval: something held the GIL (a free GIL
        # is back in ~0.1 ms; a GIL dropped and retaken at once by a busy thread, the
        # "convoy", can starve a waiter for up to a switch interval, so the bar is high)
        self.threshold = max(0.0005, 0.5 * sys.getswitchinterval())
        self.held = 0.0
        self.total = 0.0
        self.wakes = 0
        self._tally: Tuple[float, float, int] = (0.0, 0.0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="threadwise-gil-meter", daemon=True)

    def start(self) -> "GilMeter":
        self._thread.start()
        return self

    def _run(self) -> None:
        clock = time.perf_counter
        sleep = time.sleep
        period = self.period
        threshold = self.threshold
        stop = self._stop
        held = total = 0.0
        wakes = 0
        fd = _open_schedstat()
        rq = _read_runqueue(fd)
        while not stop.is_set():
            t0 = clock()
            sleep(period)
            dt = clock() - t0
            # time spent runnable without a CPU (a loaded machine) is not the GIL's doing
            rq1 = _read_runqueue(fd)
            waited = max(0.0, rq1 - rq) if rq is not None and rq1 is not None else 0.0
            rq = rq1
            total += dt
            wakes += 1
            late = dt - period
            # late mostly for want of a core: not the GIL; late mostly waiting: the GIL
            if late > threshold and waited < 0.5 * late:
                held += dt
            if not stop.is_set():
                self._tally = (held, total, wakes)  # one store: read whole by stop()
        if fd is not None:
            os.close(fd)

    def stop(self) -> Optional[float]:
        """Stop the meter; the share of the time the GIL was held (None: too few samples).

        Doesn't wait for the thread (it may be asleep, or waiting for the GIL): it ends on
        its own within a millisecond; the tallies it has published are what counts."""
        self._stop.set()
        self.held, self.total, self.wakes = self._tally
        if self.wakes < 3 or self.total <= 0:
            return None
        return max(0.0, min(1.0, self.held / self.total))


    def join(self, timeout: float = 0.1) -> None:
        """Wait for the stopped meter's thread to end (before forking worker processes:
        ``os.fork`` is only used while the process has a single thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def thread_sched() -> Optional[Tuple[float, float]]:
    """(seconds on a CPU, seconds runnable but waiting for a CPU) of the calling thread,
    from Linux's schedstat; None elsewhere.  On a loaded machine wall time minus CPU
    time is not I/O: part of it is waiting for a core, which the second number tells."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            fields = f.read().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


SCHEDSTAT = os.path.exists("/proc/thread-self/schedstat")


def _open_schedstat() -> Optional[int]:
    try:
        return os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None


def _read_runqueue(fd: Optional[int]) -> Optional[float]:
    if fd is None:
        return None
    try:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def gil_enabled() -> bool:
    """False on a free-threaded build running without the GIL."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())
