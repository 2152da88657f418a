"""Does one call hold the GIL?  A pure-Python "ticker" thread tells.

Runs inside the target interpreter (stdlib only, Python 2.7 and 3.8+).

Method: a ticker thread counts loop iterations and records the longest gap
between two of them, first alone, then while the calling thread runs the call
over and over.  If the call releases the GIL, the ticker keeps (nearly) its
solo rate on another core and never stalls for long; if it holds the GIL, the
ticker only runs when the interpreter forces a switch, so its rate drops and
its longest gap grows to the call's length or the switch interval.

This needs a second core to tell "released" from "held" by rate; on one core
the longest stall is the remaining signal and the result says so.
"""
from __future__ import absolute_import, division

import sys
import threading
import time

_clock = getattr(time, "perf_counter", time.time)

#: ticker share below this means the call kept the ticker from running
HOLD_SHARE = 0.7


class _Ticker(threading.Thread):
    def __init__(self):
        threading.Thread.__init__(self)
        self.daemon = True
        self.stop = False
        self.count = 0
        self.max_gap = 0.0
        self.started_at = None
        self.ended_at = None

    def run(self):
        clock = _clock
        last = clock()
        self.started_at = last
        count = 0
        max_gap = 0.0
        while not self.stop:
            now = clock()
            gap = now - last
            if gap > max_gap:
                max_gap = gap
            last = now
            count += 1
        self.ended_at = clock()
        self.count = count
        self.max_gap = max_gap


def _tick_for(seconds, work=None):
    """Run the ticker for about ``seconds``; ``work`` (if any) runs meanwhile in this thread.
    Returns (ticks per second, longest gap, calls made, seconds per call)."""
    t = _Ticker()
    t.start()
    calls = 0
    per_call = []
    end = _clock() + seconds
    if work is None:
        time.sleep(seconds)
    else:
        while _clock() < end:
            c0 = _clock()
            work()
            per_call.append(_clock() - c0)
            calls += 1
    t.stop = True
    t.join()
    span = max(1e-9, t.ended_at - t.started_at)
    per_call.sort()
    median = per_call[len(per_call) // 2] if per_call else None
    return t.count / span, t.max_gap, calls, median


def gil_check(fn, args=(), kwargs=None, duration=0.3, cores=None, rounds=3):
    """Measure whether ``fn(*args, **kwargs)`` holds the GIL while it runs.

    Solo and busy windows alternate ``rounds`` times (so a change in machine
    load hits both alike) and the medians are compared.  Returns a dict:
    ``holds`` (bool, or None when undecidable), ``ticker_share`` (the ticker's
    rate during the calls over its solo rate), ``longest_stall_s``, ``call_s``
    (median seconds per call), ``calls``, ``switch_interval_s``, ``method``.
    """
    kwargs = kwargs or {}

    def work():
        fn(*args, **kwargs)

    work()  # warm-up (and a first error surfaces here, not in the ticker)
    solo, busy, gaps, solo_gaps, per_call, calls = [], [], [], [], [], 0
    for _ in range(rounds):
        rate, gap, _, _ = _tick_for(duration / (2.0 * rounds))
        solo.append(rate)
        solo_gaps.append(gap)
        rate, gap, n, call_s = _tick_for(duration / rounds, work)
        busy.append(rate)
        gaps.append(gap)
        calls += n
        if call_s is not None:
            per_call.append(call_s)
    solo_rate, rate = _median(solo), _median(busy)
    gap, solo_gap = max(gaps), _median(solo_gaps)
    call_s = _median(per_call) if per_call else None
    share = rate / solo_rate if solo_rate > 0 else None
    switch = sys.getswitchinterval() if hasattr(sys, "getswitchinterval") else None
    if call_s is not None and switch and call_s >= 2 * switch:
        # a long call: had it kept the GIL, the ticker would have stalled for all of it
        holds = bool(_median(gaps) >= 0.8 * call_s)
        method = "longest stall against call length (calls >= 2x switch interval)"
    elif cores is not None and cores < 2:
        # one core: the OS time-slices the two threads whatever the GIL does
        holds = None
        method = "undecidable on one core for calls shorter than the switch interval"
    else:
        holds = bool(share is not None and share < HOLD_SHARE)
        method = "ticker share (threshold %.2f)" % HOLD_SHARE
    return {
        "holds": holds,
        "ticker_share": share,
        "longest_stall_s": gap,
        "solo_longest_gap_s": solo_gap,
        "call_s": call_s,
        "calls": calls,
        "switch_interval_s": switch,
        "method": method,
    }


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0.0
