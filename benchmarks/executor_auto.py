"""``auto`` against the best hand-picked backend on every workload of the catalog.

    python benchmarks/executor_auto.py [--seconds 0.6] [--repeats 3] [--only NAME ...]

For each workload (calibrated ones sized to about 2 ms an item, sleep 5 ms,
one 10 ms duty cycle, the others as the catalog sizes them) and enough items
for ``--seconds`` of serial work, ``pmap`` runs on
serial, threads (default workers), processes (one per CPU) and auto, in a
shuffled order each repeat, as a program would call it: processes (hand-picked
or chosen by auto) run on pmap's shared warm pool, restarted for each workload
once this process has built the workload's per-process input caches, so that
forked workers inherit them (with a thread alive, for the workloads after
``socket``'s echo server started, workers start fresh and build them on first
use: sqlite3's tables make its processes column slow for that reason).
The best of the three hand-picked backends (by median) is the yardstick: the
goal is auto within 10% of it (ratio <= 1.10) on every workload, and never more
than 10% slower than serial.  Two ratios are printed: of the medians, and the
median of the per-repeat ratios (auto against the best backend's run in the same
repeat), which cancels the drift of a noisy workload (file-io's disk) between
repeats; the verdict uses the per-repeat one.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from threadwise.executor import _pool, cpu_count, pmap  # noqa: E402
from threadwise.bench.inside import workloads  # noqa: E402
from threadwise.bench.inside.workloads import CATALOG  # noqa: E402

ITEM_S = 0.002


class Task:
    """One catalog workload as fn(index); sets the workload's context in whatever process runs it."""

    def __init__(self, name: str, size: int, params: Dict[str, Any], context: Dict[str, Any]) -> None:
        self.name, self.size, self.params, self.context = name, size, params, context

    def __call__(self, index: int) -> int:
        if self.context and workloads.CONTEXT.get("_tw_bench") != id(self.context):
            workloads.CONTEXT.update(self.context)
        return CATALOG[self.name].fn(self.size, index, **self.params)


def calibrate(task: Task, target_s: float) -> float:
    """Size a calibrated workload to ``target_s`` an item; the seconds one item takes
    (timed warm: the first call on an index builds that index's buffers)."""
    task(1)
    for _ in range(3):
        t0 = time.perf_counter()
        task(1)
        dt = time.perf_counter() - t0
        if not CATALOG[task.name].calibrate:
            return dt
        task.size = max(1, int(round(task.size * target_s / max(dt, 1e-6))))
    task(1)
    t0 = time.perf_counter()
    task(1)
    return time.perf_counter() - t0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="serial seconds per workload")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="workload names (default: the whole catalog)")
    args = ap.parse_args(argv)
    w = cpu_count()
    load0 = os.getloadavg()
    rows = []
    echo = None
    tmp = tempfile.TemporaryDirectory()
    try:
        for name in sorted(CATALOG):
            wl = CATALOG[name]
            if args.only and name not in args.only:
                continue
            if wl.unavailable():
                print("  %s: skipped (%s)" % (name, wl.unavailable()), file=sys.stderr)
                continue
            context: Dict[str, Any] = {}
            if "echo" in wl.needs:
                if echo is None:
                    from threadwise.bench.echo import EchoServer
                    echo = EchoServer(delay_s=0.001).start()
                context["echo"] = list(echo.address)
            if "tmpdir" in wl.needs:
                context["tmpdir"] = tmp.name
            # I/O workloads are not calibrated: 5 ms sleeps, 10 ms duty cycles (one period)
            size = {"sleep": 5, "duty-cycle": 1}.get(name, wl.size)
            task = Task(name, size, dict(wl.params), context)
            t_item = calibrate(task, ITEM_S)
            n = max(4 * w, int(args.seconds / max(t_item, 1e-6)))
            items = list(range(n))
            for i in items[: 4 * w]:
                task(i)
            expect = [task(i) for i in items]
            _pool.shutdown_shared()
            times: Dict[str, List[float]] = {b: [] for b in ("serial", "threads", "processes", "auto")}
            choice = ""
            rng = random.Random(name)
            for _ in range(args.repeats):
                order = list(times)
                rng.shuffle(order)
                for b in order:
                    t0 = time.perf_counter()
                    out = pmap(task, items, backend=b, workers=w if b == "processes" else None)
                    times[b].append(time.perf_counter() - t0)
                    assert out == expect, (name, b)
                    if b == "auto":
                        choice = "%s x%d" % (out.choice.backend, out.choice.workers)
                        reason = out.choice.reason
            med = {b: statistics.median(v) for b, v in times.items()}
            spread = {b: (max(v) - min(v)) / med[b] for b, v in times.items()}
            best = min(("serial", "threads", "processes"), key=lambda b: med[b])
            per_repeat = [a / b for a, b in zip(times["auto"], times[best])]
            paired = statistics.median(per_repeat)
            rows.append((name, t_item, n, med, spread, best, paired, per_repeat, choice, reason))
            print("  %-13s %4d items of %7.2f ms: serial %.3f threads %.3f processes %.3f auto %.3f "
                  "-> auto/best %.2f, per repeat %.2f (%s)" % (
                      name, n, t_item * 1e3, med["serial"], med["threads"], med["processes"],
                      med["auto"], med["auto"] / med[best], paired, choice), file=sys.stderr)
    finally:
        if echo is not None:
            echo.stop()
        tmp.cleanup()
    load1 = os.getloadavg()
    print("## auto against the best hand-picked backend, every catalog workload\n")
    print("%s %s, %d CPUs, %d repeats (medians, seconds; spread = (max - min) / median of auto); "
          "load average %s before, %s after.  Threads use the default workers (min(32, CPUs + 4)), "
          "processes one per CPU, on pmap's shared warm pool (restarted per workload).\n" % (
              platform.python_implementation(), platform.python_version(), w, args.repeats,
              " ".join("%.2f" % x for x in load0), " ".join("%.2f" % x for x in load1)))
    print("| workload | items x item | serial | threads | processes | auto | best | auto / best "
          "(medians) | auto / best per repeat: median [min-max] | auto / serial | auto chose | "
          "within 10% |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|:-:|")
    worst = 0.0
    for name, t_item, n, med, spread, best, paired, per_repeat, choice, reason in rows:
        ratio = med["auto"] / med[best]
        worst = max(worst, paired)
        print("| %s | %d x %.2f ms | %.3f | %.3f | %.3f | %.3f (±%.0f%%) | %s | %.2f | %.2f [%.2f-%.2f] "
              "| %.2f | %s | %s |" % (
                  name, n, t_item * 1e3, med["serial"], med["threads"], med["processes"], med["auto"],
                  50 * spread["auto"], best, ratio, paired, min(per_repeat), max(per_repeat),
                  med["auto"] / med["serial"], choice, "yes" if paired <= 1.10 else "no"))
    print("\nWorst auto / best (per repeat): %.2f.  Why auto chose what it chose:\n" % worst)
    for name, *_, reason in rows:
        print("- **%s**: %s" % (name, reason))
    return 0


if __name__ == "__main__":
    sys.exit(main())
