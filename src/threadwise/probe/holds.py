"""``holds_gil(fn, *args, **kwargs)``: does this call keep the GIL while it runs?

Two measurements, each over a short stretch of repeated calls (claim C6 and the
executor use the answer):

1. **Who holds the GIL during the calls** -- the outside sampler of
   :mod:`.monitor` reads the GIL's ``locked`` and ``last_holder`` words
   thousands of times while this thread calls ``fn`` in a loop, with no other
   thread of ours running.  ``held_share`` is the share of samples in which
   *this* thread held it.  A call that releases the GIL (hashlib on big
   buffers, zlib, ``time.sleep``, I/O) leaves it free most of the time; one
   that keeps it (``json.dumps``, ``re``, ``sorted``, pure Python) shows ~100 %.
   This is the verdict where available (CPython on Linux): it needs neither a
   second core nor a quiet machine.
2. **The stall it causes** -- a pure-Python ticker thread counts while the calls
   run (:func:`threadwise.bench.inside.gilcheck.gil_check`): the longest gap between
   two of its ticks is the longest time the call kept another thread from
   running Python, and its rate relative to running alone is the fallback
   verdict where the sampler can't run (PyPy, not Linux).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import UsageError
from . import _agent

__all__ = ["holds_gil", "check_call", "GilHoldResult"]

#: a call whose thread holds the GIL in more than this share of the samples "holds" it
HOLD_SHARE = 0.5


@dataclass(frozen=True)
class GilHoldResult:
    """Whether one call holds the GIL.  Truthy when it does."""

    #: True: the call keeps the GIL; False: it releases it; None: can't tell here
    holds: Optional[bool]
    #: share of the calls' wall time the calling thread held the GIL (sampler), or None
    held_share: Optional[float]
    #: longest time a pure-Python thread could not run during the calls (seconds)
    longest_stall_s: Optional[float]
    #: median duration of one call (seconds)
    call_s: Optional[float]
    calls: int
    #: the ticker thread's rate during the calls over its rate alone (1.0: not slowed)
    ticker_share: Optional[float]
    samples: int
    method: str
    note: str = ""

    def __bool__(self) -> bool:
        return bool(self.holds)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _repeat(fn: Callable[..., Any], args: tuple, kwargs: dict, seconds: float):
    per_call = []
    end = time.perf_counter() + seconds
    while True:
        c0 = time.perf_counter()
        fn(*args, **kwargs)
        c1 = time.perf_counter()
        per_call.append(c1 - c0)
        if c1 >= end:
            break
    return per_call


def _sampled_share(fn: Callable[..., Any], args: tuple, kwargs: dict, seconds: float):
    """(share of samples this thread held the GIL, samples, per-call times) or None."""
    from .monitor import _Helper

    loc = _agent.find_gil()
    if not loc.address or not sys.platform.startswith("linux"):
        return None, loc.reason or "no outside sampler on this platform"
    tid, name, tstate = _agent.thread_identity()
    helper = _Helper({"pid": os.getpid(), "interval": 0.0002, "gil": loc.as_dict()})
    try:
        if not helper.usable:
            return None, helper.error or "the sampler can't read this process"
        helper.send({"ev": "thread", "tid": tid, "name": name, "tstate": tstate})
        # let the sampler see the registration before the calls start
        helper.send({"ev": "snapshot"})
        helper.read_line()
        per_call = _repeat(fn, args, kwargs, seconds)
        raw = helper.finish()
    except BaseException:
        helper.kill()
        raise
    if not raw or not raw.get("samples"):
        return None, "the sampler took no samples"
    mine = 0
    for t in raw.get("threads", ()):
        if t.get("tid") == tid and t.get("held_samples") is not None:
            mine = t["held_samples"]
    return (mine / raw["samples"], raw["samples"], per_call), ""


def check_call(fn: Callable[..., Any], args: tuple = (), kwargs: Optional[dict] = None,
               duration: float = 0.3) -> GilHoldResult:
    """:func:`holds_gil` with explicit ``args``, ``kwargs`` and ``duration`` (seconds per phase)."""
    if not callable(fn):
        raise UsageError("holds_gil needs a callable, got %r" % (fn,),
                         fix="pass the function and its arguments: holds_gil(json.dumps, data)")
    if not duration > 0:
        raise UsageError("duration must be > 0 seconds, got %r" % (duration,))
    kwargs = dict(kwargs or {})
    fn(*args, **kwargs)  # warm-up; the call's own errors surface here, unchanged
    if _agent.gil_enabled() is False:
        per_call = sorted(_repeat(fn, args, kwargs, min(duration, 0.1)))
        return GilHoldResult(holds=False, held_share=None, longest_stall_s=None,
                             call_s=per_call[len(per_call) // 2], calls=len(per_call),
                             ticker_share=None, samples=0, method="no GIL",
                             note="this interpreter runs without a GIL: no call can hold it")
    from ..bench.inside.gilcheck import gil_check

    tick = gil_check(fn, args, kwargs, duration=duration, cores=_cores())
    sampled, why = _sampled_share(fn, args, kwargs, duration)
    if sampled is not None:
        share, samples, per_call = sampled
        per_call.sort()
        return GilHoldResult(
            holds=share > HOLD_SHARE, held_share=share, longest_stall_s=tick["longest_stall_s"],
            call_s=per_call[len(per_call) // 2], calls=len(per_call) + int(tick["calls"] or 0),
            ticker_share=tick["ticker_share"], samples=samples, method="gil-state sampling",
            note="the call's thread held the GIL in %.0f%% of %d samples" % (100 * share, samples))
    return GilHoldResult(
        holds=tick["holds"], held_share=None, longest_stall_s=tick["longest_stall_s"],
        call_s=tick["call_s"], calls=int(tick["calls"] or 0), ticker_share=tick["ticker_share"],
        samples=0, method="ticker: " + tick["method"], note=why)


def holds_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GilHoldResult:
    """Does ``fn(*args, **kwargs)`` hold the GIL while it runs?

    Calls it repeatedly for about 0.6 s in all.  The result is truthy when it
    holds the GIL and carries ``held_share``, ``longest_stall_s`` (the longest
    time it kept another thread from running Python) and ``call_s`` (median
    seconds per call).  Exceptions from ``fn`` propagate unchanged.
    """
    return check_call(fn, args, kwargs)
