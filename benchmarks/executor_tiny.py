"""auto on tiny items against the plain serial loop, over many fresh processes.

    python benchmarks/executor_tiny.py [--processes 12] [--seconds 5] [--items 20000]

A 20,000-item map of ``x + 1`` takes under a millisecond; at that size a run's time
moves by several percent with where the allocator puts the result list and what the
caches hold, and that state is fixed for a process's lifetime (measured here: the
same script gave ``list(map)`` 0.998x and 1.044x the comprehension in two
processes a minute apart).  So, like pyperf, this runs the comparison in several
fresh processes (``--worker``), each doing shuffled rounds of every variant; a
process's figure is the median of its per-round ratios to the comprehension of the
same round; the table gives the median over processes and their range.

Variants: the comprehension ``[f(x) for x in items]``, ``list(map(f, items))``,
``pmap(f, items, backend="serial")``, ``pmap(f, items)`` (auto; the same function
each map, so from the second map on auto's memory skips the probe) and
``pmap(g, items)`` with ``g`` a new function object each map (auto probes every map:
a function's first map).  The issue's goal: auto on tiny items <= 1.1x serial.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from executor_overhead import inc, new_inc  # noqa: E402  (the same items and functions)
from threadwise import pmap  # noqa: E402

NAMES = ["comprehension", "list(map)", "pmap serial", "pmap auto", "pmap auto, new function each map"]
GOAL = 1.10


def worker(n: int, seconds: float, seed: int) -> Dict[str, object]:
    items = list(range(n))
    fns: List[Callable[[], object]] = [
        lambda: [inc(x) for x in items],
        lambda: list(map(inc, items)),
        lambda: pmap(inc, items, backend="serial"),
        lambda: pmap(inc, items),
        lambda: pmap(new_inc(), items),
    ]
    expect = [x + 1 for x in items]
    for f in fns:  # correct results, and warm
        for _ in range(20):
            if list(f()) != expect:  # type: ignore[call-overload]
                raise SystemExit("wrong results")
    times: List[List[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    rng = random.Random(seed)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        rng.shuffle(order)
        for k in order:
            f = fns[k]
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    base = times[0]
    return {"rounds": len(base),
            "us": [statistics.median(t) * 1e6 for t in times],
            "ratio": [statistics.median(a / b for a, b in zip(t, base)) for t in times],
            "auto_new_vs_serial": statistics.median(a / b for a, b in zip(times[4], times[2]))}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.items, args.seconds, args.worker)))
        return 0
    load0 = os.getloadavg()
    runs = []
    for p in range(args.processes):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", str(p),
                              "--seconds", str(args.seconds), "--items", str(args.items)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out)
        runs.append(r)
        print("  process %2d: %s" % (p, ", ".join("%.3f" % x for x in r["ratio"][1:])), file=sys.stderr)
    load1 = os.getloadavg()
    print("%s %s, %d items of x + 1, %d fresh processes x %g s of shuffled rounds (%d-%d rounds "
          "each); load average %.2f %.2f %.2f before, %.2f %.2f %.2f after.\n" % (
              platform.python_implementation(), platform.python_version(), args.items,
              args.processes, args.seconds, min(r["rounds"] for r in runs),
              max(r["rounds"] for r in runs), *load0, *load1))
    print("| variant | µs per map (median of processes) | ratio to the comprehension: median of processes | range over processes | goal | met |")
    print("|---|---:|---:|---:|---:|:-:|")
    for k, name in enumerate(NAMES):
        us = statistics.median(r["us"][k] for r in runs)
        ratios = [r["ratio"][k] for r in runs]
        med = statistics.median(ratios)
        goal = "<= %.2fx" % GOAL if name.startswith("pmap auto") else ""
        met = ("yes" if med <= GOAL else "no") if goal else ""
        print("| %s | %.1f | %.3fx | %.3f-%.3f | %s | %s |" % (name, us, med, min(ratios), max(ratios), goal, met))
    avs = [r["auto_new_vs_serial"] for r in runs]
    print("\npmap auto with a new function each map / pmap serial, paired: median %.3fx (range %.3f-%.3f)."
          % (statistics.median(avs), min(avs), max(avs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
