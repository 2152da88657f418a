"""pmap in a program that already has a thread alive, against a warm, hand-picked pool.

    python benchmarks/executor_warm.py [--calls 3] [--alive ppe|thread] [--scale 1.0]

The situation issue 16 is about: a program with another thread alive (here the
hand-picked ``ProcessPoolExecutor(2)`` itself, kept open, or with ``--alive thread``
a plain sleeping thread), so worker processes can't be forked: each is a fresh
interpreter.  Four functions, each called ``--calls`` times in a row, as a
program would; each call is timed whole and the best call counts:

* ``pmap(fn, items)`` (``backend="auto"``): the first call measures, picks, and
  starts the shared pool; later calls find it warm;
* ``ppe.map(fn, items, chunksize=n // 4W)`` on a ``ProcessPoolExecutor(2)``
  started (and warmed on the function) before the clock: what a user who knew
  the answer would write.

Goal: pmap within 10% of the warm pool (best call against best call).  The item
sizes are calibrated on this machine to the stated times; ``--scale 0.05`` makes
a quick run (fewer, smaller items) that only checks the script works.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import random
import re
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from threadwise.executor import cpu_count, pmap  # noqa: E402

WORDS = ("alpha", "running", "beta", "singing", "gamma", "delta", "ring", "thing", "epsilon",
         "walking", "zeta", "eta", "theta", "bring")
PATTERN = re.compile(r"\b(\w+)ing\b|\b[a-e]\w{3,5}a\b")


def regex_scan(text: str) -> int:
    """Regular-expression scan of a text (the regex engine holds the GIL)."""
    return sum(1 for _ in PATTERN.finditer(text))


def json_round_trip(doc: Any) -> int:
    """Serialize and parse a document of nested dicts and lists."""
    return len(json.dumps(json.loads(json.dumps(doc))))


def sieve(n: int) -> int:
    """Primes below n, pure Python."""
    flags = bytearray([1]) * n
    flags[0:2] = b"\0\0"
    for i in range(2, int(n ** 0.5) + 1):
        if flags[i]:
            flags[i * i::i] = bytes(len(range(i * i, n, i)))
    return sum(flags)


def sort_floats(xs: List[float]) -> float:
    """Sort a list of floats; the median back (not the whole list)."""
    s = sorted(xs)
    return s[len(s) // 2]


def make_text(size: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(size))


def make_doc(size: int, seed: int) -> Any:
    rng = random.Random(seed)
    return [{"id": i, "name": rng.choice(WORDS), "tags": [rng.choice(WORDS) for _ in range(3)],
             "score": rng.random()} for i in range(size)]


def make_floats(size: int, seed: int) -> List[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(size)]


#: name -> (fn, make an item of a given size from a seed, first size, items, target seconds)
WORKLOADS: Dict[str, Tuple[Callable[[Any], Any], Callable[[int, int], Any], int, int, float]] = {
    "regex scan": (regex_scan, make_text, 5000, 160, 0.003),
    "json round trip": (json_round_trip, make_doc, 2000, 20, 0.020),
    "sieve": (sieve, lambda size, seed: size + seed % 7, 50000, 280, 0.001),
    "sort floats": (sort_floats, make_floats, 50000, 37, 0.009),
}


def calibrate(fn: Callable[[Any], Any], make: Callable[[int, int], Any], size: int,
              target_s: float) -> int:
    """The size at which one call takes about ``target_s`` here."""
    for _ in range(4):
        item = make(size, 0)
        fn(item)
        t0 = time.perf_counter()
        fn(item)
        dt = time.perf_counter() - t0
        size = max(1, int(round(size * target_s / max(dt, 1e-6))))
    return size


def best_of(calls: int, run: Callable[[], Any]) -> Tuple[float, List[float], Any]:
    times = []
    out = None
    for _ in range(calls):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3, help="calls of each function (best counts)")
    ap.add_argument("--alive", choices=("ppe", "thread"), default="ppe",
                    help="what keeps a thread alive: the open ProcessPoolExecutor, or a sleeping thread")
    ap.add_argument("--scale", type=float, default=1.0, help="scale items and sizes (0.05: a quick check)")
    ap.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="these functions only")
    args = ap.parse_args(argv)
    w = 2
    if args.alive == "thread":
        threading.Thread(target=threading.Event().wait, name="sleeper", daemon=True).start()
    load0 = os.getloadavg()
    rows = []
    with cf.ProcessPoolExecutor(w) as ppe:
        list(ppe.map(abs, range(4)))  # started: its management thread is alive from now on
        for name, (fn, make, size, n, target) in WORKLOADS.items():
            if args.only and name not in args.only:
                continue
            size = max(1, int(calibrate(fn, make, size, target) * min(1.0, args.scale)))
            n = max(4, int(n * min(1.0, args.scale)))
            items = [make(size, seed) for seed in range(n)]
            expect = [fn(x) for x in items]
            chunk = max(1, n // (4 * w))
            list(ppe.map(fn, items[:2 * w], chunksize=1))  # the pool knows fn: warm
            ppe_best, ppe_all, got = best_of(args.calls, lambda: list(ppe.map(fn, items, chunksize=chunk)))
            assert got == expect, name
            tw_best, tw_all, out = best_of(args.calls, lambda: pmap(fn, items))
            assert list(out) == expect, name
            choice = "%s x%d" % (out.choice.backend, out.choice.workers)
            rows.append((name, n, target, tw_best, tw_all, ppe_best, ppe_all, choice, chunk))
            print("  %-16s pmap %.3f s (%s), ProcessPoolExecutor %.3f s: %.2fx" % (
                name, tw_best, choice, ppe_best, tw_best / ppe_best), file=sys.stderr)
    load1 = os.getloadavg()
    print("## pmap against a warm ProcessPoolExecutor(%d), a thread alive (%s)\n" % (w, args.alive))
    print("%s %s, %d CPUs, %d calls of each function (best call counts), scale %g; load "
          "average %s before, %s after.\n" % (
              platform.python_implementation(), platform.python_version(), cpu_count(), args.calls,
              args.scale, " ".join("%.2f" % x for x in load0), " ".join("%.2f" % x for x in load1)))
    print("| function | items x item | pmap best s | pmap calls s | ProcessPoolExecutor best s "
          "(chunksize) | its calls s | pmap / PPE | pmap chose | goal <= 1.10 |")
    print("|---|---:|---:|---|---:|---|---:|---|:-:|")
    for name, n, target, tw, tw_all, pp, pp_all, choice, chunk in rows:
        print("| %s | %d x %.0f ms | %.3f | %s | %.3f (%d) | %s | %.2f | %s | %s |" % (
            name, n, target * 1e3, tw, " ".join("%.3f" % t for t in tw_all), pp, chunk,
            " ".join("%.3f" % t for t in pp_all), tw / pp, choice, "yes" if tw <= 1.10 * pp else "no"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
