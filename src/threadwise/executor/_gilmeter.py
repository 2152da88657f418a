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
  holding call returns.

A late wake counts its whole interval (sleep + wait) as held, so long holds
weigh by their duration, not by their number of wakes.  The meter costs the
measured thread one forced switch every few milliseconds (well under 1%).
On a loaded machine a wake can also be late for want of a free core: the
error is toward "held", which steers ``auto`` to processes, never to threads
that would not scale.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Optional


class GilMeter:
    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.threshold = max(0.0005, 0.5 * sys.getswitchinterval())
        self.held = 0.0
        self.total = 0.0
        self.wakes = 0
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
        while not stop.is_set():
            t0 = clock()
            sleep(period)
            dt = clock() - t0
            total += dt
            wakes += 1
            if dt - period > threshold:
                held += dt
            self.held, self.total, self.wakes = held, total, wakes

    def stop(self) -> Optional[float]:
        """Stop the meter; the share of the time the GIL was held (None: too few samples)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.wakes < 3 or self.total <= 0:
            return None
        return min(1.0, self.held / self.total)


def gil_enabled() -> bool:
    """False on a free-threaded build running without the GIL."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())
