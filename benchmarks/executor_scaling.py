"""Speedup over the ideal: pure-Python items of 1 to 10 ms, and GIL-releasing items.

    python benchmarks/executor_scaling.py [--seconds 1.0] [--repeats 3]

Each workload from the catalog is calibrated so one item takes the stated
time, and gets enough items for about ``--seconds`` of serial work.  Serial,
``pmap(backend="processes")``, ``pmap(backend="threads")`` and ``pmap(backend="auto")``
run in turn, repeat after repeat (so they share the machine's noise), each
``pmap`` starting and stopping its own pool as a user's call would.  The
figure is the speedup over serial divided by the ideal (the worker count,
here the CPUs): the goal is >= 0.9 on 1-10 ms CPU-bound items.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from typing import Callable, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from threadwise.executor import cpu_count, pmap  # noqa: E402
from threadwise.target.workloads import CATALOG  # noqa: E402


def calibrate(fn: Callable[..., int], size: int, target_s: float) -> int:
    """The size at which one call takes about ``target_s``."""
    fn(size, 0)
    for _ in range(3):
        t0 = time.perf_counter()
        fn(size, 1)
        dt = time.perf_counter() - t0
        size = max(1, int(round(size * target_s / max(dt, 1e-6))))
    return size


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="serial seconds per workload")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    w = cpu_count()
    cases = [("cpu-python", 0.001), ("cpu-python", 0.003), ("cpu-python", 0.010),
             ("nbody", 0.003), ("zlib", 0.005), ("hashlib", 0.002)]
    load0 = os.getloadavg()
    table = []
    for name, target in cases:
        wl = CATALOG[name]
        size = calibrate(wl.fn, wl.size, target)
        fn = functools.partial(wl.fn, size)
        n = max(4 * w, int(args.seconds / target))
        items = list(range(n))
        for i in items[: 4 * w]:  # warm the workload's per-index caches (buffers) everywhere
            fn(i)
        expect = [fn(i) for i in items]
        times = {"serial": [], "processes": [], "threads": [], "auto": []}
        choice = ""
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            [fn(i) for i in items]
            times["serial"].append(time.perf_counter() - t0)
            for b in ("processes", "threads", "auto"):
                t0 = time.perf_counter()
                out = pmap(fn, items, backend=b, workers=w if b != "auto" else None)
                times[b].append(time.perf_counter() - t0)
                assert out == expect, (name, b)
                if b == "auto":
                    choice = "%s x%d" % (out.choice.backend, out.choice.workers)
        ts = statistics.median(times["serial"])
        row = [name, target, n, ts]
        for b in ("processes", "threads", "auto"):
            med = statistics.median(times[b])
            spread = (max(times[b]) - min(times[b])) / med
            row += [ts / med / w, spread]
        row.append(choice)
        table.append(row)
        print("  %-12s %5.1f ms x %4d: processes %.2f, threads %.2f, auto %.2f of ideal (%s)" % (
            name, target * 1e3, n, row[4], row[6], row[8], choice), file=sys.stderr)
    load1 = os.getloadavg()
    print("## Speedup over ideal (%d workers = %d CPUs)\n" % (w, w))
    print("%s %s, %d repeats (medians; spread = (max - min) / median); load average %s before, "
          "%s after.  1.00 = %dx faster than serial.\n" % (
              platform.python_implementation(), platform.python_version(), args.repeats,
              " ".join("%.2f" % x for x in load0), " ".join("%.2f" % x for x in load1), w))
    print("| workload | item | items | serial s | processes / ideal | threads / ideal | "
          "auto / ideal | auto chose | goal >= 0.9 (CPU-bound: best of processes, auto) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|:-:|")
    for name, target, n, ts, p, ps, t, tsp, a, asp, choice in table:
        goal = ""
        if name in ("cpu-python", "nbody"):
            goal = "yes" if min(p, a) >= 0.9 else "no"
        print("| %s | %.0f ms | %d | %.2f | %.2f (±%.0f%%) | %.2f (±%.0f%%) | %.2f (±%.0f%%) | %s | %s |" % (
            name, target * 1e3, n, ts, p, 50 * ps, t, 50 * tsp, a, 50 * asp, choice, goal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
