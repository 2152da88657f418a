"""A fault campaign: random crashes, hangs and exceptions through real maps, every map checked.

    python benchmarks/faults.py                 # the full campaign, >= 1,000 faults: FAULTS.md
    python benchmarks/faults.py --maps 5        # a smoke check: a few maps, prints the table only
    python benchmarks/faults.py --backends dask --maps 40 --seed 7 --md /tmp/FAULTS.md

Each map runs ``fn`` over ``n`` items (10 to 60, ``fn(x)`` returns ``(x, x * x)`` after
a little work) where a few random items are faulty, each in one way:

    sigkill    os.kill(os.getpid(), SIGKILL)        processes, dask    expected: Failure "crash"
    segfault   ctypes.string_at(0) (SIGSEGV)        processes, dask    expected: Failure "crash"
    hang       time.sleep(HANG_S), past ``timeout``   every backend    expected: Failure "timeout"
    exception  raise FaultError(x)                  every backend      expected: Failure "exception"

Maps run on an Executor (2 workers) that lives for 1 to 8 maps and is then shut down,
so a pool that survived faults is used again.  Three maps in four collect
(``errors="collect"``), one in four raises.  Every map is checked for:

* hung: the map did not finish within its bound (60 s + 15 s per fault, under
  ``HANG_S``: a map that waited for a hung call instead of timing it out counts too);
* lost: a position with no result (collect: fewer results than items);
* duplicated: more results than items, or a result at another item's position;
* misblamed: a Failure on an item without a fault, or (raise) an error naming one;
* missed: a faulty item that came back as a plain result;
* wrong kind: a Failure of another kind than its fault (a crash reported as a timeout);
* leftover processes: children of this process still running 10 s after a pool's
  shutdown (multiprocessing's resource tracker, one per process, is not counted);
* leftover files: anything left in this campaign's own temporary directory and
  current directory after a pool's shutdown (both start empty; TMPDIR points there).

It prints the counts per backend and fault kind; with the full campaign (or ``--md``)
it writes them to benchmarks/FAULTS.md with the method and the load average.
Figures are counts, not timings: a busy machine is fine as long as nothing hangs.
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import datetime
import itertools
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Any, Counter, Dict, List, Optional, Sequence, Tuple

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from threadwise.executor import Executor, Failure, ItemError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FULL_MAPS = 400
TIMEOUT_S = 1.0
HANG_S = 300.0  # longer than any map's bound: a map that waits for a hung call is hung
KINDS = {
    "processes": ("sigkill", "segfault", "hang", "exception"),
    "dask": ("sigkill", "segfault", "hang", "exception"),
    "threads": ("hang", "exception"),
    "interpreters": ("hang", "exception"),
}
EXPECTED = {"sigkill": "crash", "segfault": "crash", "hang": "timeout", "exception": "exception"}
PROBLEMS = ("hung", "lost", "duplicated", "misblamed", "missed", "wrong kind",
            "leftover processes", "leftover files", "campaign errors")


class FaultError(Exception):
    """The exception a faulty item raises."""


class Faulty:
    """``fn``: ``(x, x * x)`` after ``work_s``, or the fault planned for ``x``."""

    def __init__(self, faults: Dict[int, str], work_s: float, hang_s: float) -> None:
        self.faults = faults
        self.work_s = work_s
        self.hang_s = hang_s

    def __call__(self, x: int) -> Tuple[int, int]:
        kind = self.faults.get(x)
        if kind == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "segfault":
            ctypes.string_at(0)
        elif kind == "hang":
            time.sleep(self.hang_s)
        elif kind == "exception":
            raise FaultError("planned fault on item %d" % x)
        if self.work_s:
            time.sleep(self.work_s)
        return x, x * x


# --------------------------------------------------------------------------
# one map
# --------------------------------------------------------------------------
def plan(rng: random.Random, backend: str) -> Tuple[int, Dict[int, str], str]:
    """(items, {index: fault}, errors=) for one map."""
    n = rng.randint(10, 60)
    nfaults = rng.choice((1, 2, 3, 4, 5))
    faults = {i: rng.choice(KINDS[backend]) for i in rng.sample(range(n), nfaults)}
    return n, faults, ("raise" if rng.random() < 0.25 else "collect")


def run_bounded(ex: Executor, fn: Faulty, n: int, errors: str, bound: float) -> Tuple[str, Any]:
    """The map in a helper thread: ("ok", results) | ("raised", exception) | ("hung", None)."""
    box: Dict[str, Any] = {}

    def body() -> None:
        try:
            box["ok"] = list(ex.imap(fn, range(n), timeout=TIMEOUT_S, errors=errors))
        except BaseException as e:  # the map's own error, checked by the caller
            box["raised"] = e

    t = threading.Thread(target=body, name="faults-map", daemon=True)
    t.start()
    t.join(bound)
    if t.is_alive():
        return "hung", None
    return ("ok", box["ok"]) if "ok" in box else ("raised", box["raised"])


def check_value(i: int, r: Any, faults: Dict[int, str], tally: Counter[str]) -> None:
    """One position of a collected map."""
    if isinstance(r, Failure):
        if r.index != i:
            tally["duplicated"] += 1
        elif i not in faults:
            tally["misblamed"] += 1
        elif r.kind != EXPECTED[faults[i]]:
            tally["wrong kind"] += 1
        return
    if i in faults:
        tally["missed"] += 1
    elif r != (i, i * i):
        tally["duplicated" if isinstance(r, tuple) else "lost"] += 1


def check_collect(out: List[Any], n: int, faults: Dict[int, str], tally: Counter[str]) -> None:
    if len(out) < n:
        tally["lost"] += n - len(out)
    elif len(out) > n:
        tally["duplicated"] += len(out) - n
    for i, r in enumerate(out[:n]):
        check_value(i, r, faults, tally)


def check_raise(err: BaseException, faults: Dict[int, str], tally: Counter[str]) -> None:
    """A raising map: the error names the first faulty item that failed, with its kind; the
    results it carries are right; its failures are all on faulty items."""
    if not isinstance(err, ItemError):
        tally["campaign errors"] += 1
        print("  unexpected %s: %s" % (type(err).__name__, err), file=sys.stderr)
        return
    if err.index not in faults:
        tally["misblamed"] += 1
    else:
        kind = {"WorkerCrashedError": "crash", "ItemTimeoutError": "timeout"}.get(
            type(err).__name__, "exception")
        if kind != EXPECTED[faults[err.index]]:
            tally["wrong kind"] += 1
    tally["misblamed"] += sum(1 for f in err.failures if f.index not in faults)
    for i, r in err.results.items():
        if i in faults:
            tally["missed"] += 1
        elif r != (i, i * i):
            tally["duplicated"] += 1


def one_map(ex: Executor, backend: str, rng: random.Random, tally: Counter[str],
            kinds: Counter[str]) -> bool:
    """Plan, run and check one map; False when it hung (the pool is then given up)."""
    n, faults, errors = plan(rng, backend)
    kinds.update(faults.values())
    fn = Faulty(faults, rng.choice((0.0, 0.0005, 0.002)), HANG_S)
    how, value = run_bounded(ex, fn, n, errors, 60.0 + 15.0 * len(faults))
    tally["maps"] += 1
    if how == "hung":
        tally["hung"] += 1
        print("  HUNG: %s map of %d items, faults %s" % (backend, n, faults), file=sys.stderr)
        return False
    seen = sum(tally[p] for p in PROBLEMS)
    if errors == "collect":
        if how == "raised":
            tally["campaign errors"] += 1
            print("  collect map raised %r" % (value,), file=sys.stderr)
        else:
            check_collect(value, n, faults, tally)
    elif how == "ok":
        tally["missed"] += len(faults)  # a raising map with faults that did not raise
    else:
        check_raise(value, faults, tally)
    if sum(tally[p] for p in PROBLEMS) > seen:
        print("  PROBLEM: %s %s map of %d items, faults %s: %s" % (
            backend, errors, n, faults, _summary(how, value)), file=sys.stderr)
    return True


def _summary(how: str, value: Any) -> str:
    if how == "ok":
        return "failures %s" % [(r.index, r.kind) for r in value if isinstance(r, Failure)]
    failures = [(f.index, f.kind) for f in getattr(value, "failures", [])]
    return "raised %s at %s, failures %s" % (type(value).__name__, getattr(value, "index", "?"),
                                             failures)


# --------------------------------------------------------------------------
# leftovers
# --------------------------------------------------------------------------
def _helper(p: psutil.Process) -> bool:
    try:
        return "multiprocessing.resource_tracker" in " ".join(p.cmdline())
    except psutil.Error:
        return True


def leftover_processes(before: Sequence[int], wait_s: float = 10.0) -> List[str]:
    me = psutil.Process()
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for p in me.children(recursive=True):
            try:
                if p.pid in before or p.status() == psutil.STATUS_ZOMBIE or _helper(p):
                    continue
                left.append("%d %s" % (p.pid, " ".join(p.cmdline())[:80]))
            except psutil.Error:
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def leftover_files(dirs: Sequence[str]) -> List[str]:
    return [os.path.join(d, name) for d in dirs for name in os.listdir(d)]


def clean(dirs: Sequence[str]) -> None:
    for d in dirs:
        for name in os.listdir(d):
            path = os.path.join(d, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)


# --------------------------------------------------------------------------
# the campaign
# --------------------------------------------------------------------------
def pool_run(backend: str, maps: int, rng: random.Random, tally: Counter[str],
             kinds: Counter[str], dirs: Sequence[str]) -> None:
    """One Executor for ``maps`` maps, then shut down and checked for leftovers."""
    before = [p.pid for p in psutil.Process().children(recursive=True)]
    ex = Executor(backend, workers=2)
    gave_up = False
    try:
        for _ in range(maps):
            if not one_map(ex, backend, rng, tally, kinds):
                gave_up = True
                break
    finally:
        if gave_up:  # a hung map still runs in its helper thread: kill, don't wait
            threading.Thread(target=ex.shutdown, kwargs={"kill": True}, daemon=True).start()
        else:
            ex.shutdown(wait=True)
    left = leftover_processes(before)
    if left:
        tally["leftover processes"] += len(left)
        print("  leftover processes after a %s pool: %s" % (backend, left), file=sys.stderr)
    files = leftover_files(dirs)
    if files:
        tally["leftover files"] += len(files)
        print("  leftover files after a %s pool: %s" % (backend, files), file=sys.stderr)
        clean(dirs)


def available_backends(wanted: Sequence[str]) -> List[str]:
    out = []
    for b in wanted:
        if b == "interpreters":
            from threadwise.executor.subinterpreters import available
            if not available()[0]:
                continue
        if b == "dask":
            try:
                import distributed  # noqa: F401
            except ImportError:
                continue
        out.append(b)
    return out


def campaign(args: argparse.Namespace) -> Tuple[Dict[str, Counter[str]], Dict[str, Counter[str]],
                                                 float, List[float]]:
    rng = random.Random(args.seed)
    backends = available_backends(args.backends)
    tallies: Dict[str, Counter[str]] = {b: collections.Counter() for b in backends}
    kinds: Dict[str, Counter[str]] = {b: collections.Counter() for b in backends}
    skipped = [b for b in args.backends if b not in backends]
    if skipped:
        print("skipped (not available here): %s" % ", ".join(skipped))
    args.skipped = skipped
    loads = [os.getloadavg()[0]]
    work = tempfile.mkdtemp(prefix="threadwise-faults-")
    cwd, tmp = os.path.join(work, "cwd"), os.path.join(work, "tmp")
    os.mkdir(cwd)
    os.mkdir(tmp)
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    os.chdir(cwd)
    t0 = time.monotonic()
    try:
        done = 0
        for pool in itertools.count():
            if done >= args.maps:
                break
            backend = backends[pool % len(backends)]
            k = min(rng.randint(1, 8), args.maps - done)
            print("%4d/%d  %-12s pool of %d maps  (load %.2f)" % (
                done, args.maps, backend, k, os.getloadavg()[0]), flush=True)
            pool_run(backend, k, rng, tallies[backend], kinds[backend], [cwd, tmp])
            loads.append(os.getloadavg()[0])
            done += k
    finally:
        os.chdir(old_cwd)
        tempfile.tempdir = old_tmp
        shutil.rmtree(work, ignore_errors=True)
    return tallies, kinds, time.monotonic() - t0, loads


def table(tallies: Dict[str, Counter[str]], kinds: Dict[str, Counter[str]]) -> List[str]:
    kind_names = ("sigkill", "segfault", "hang", "exception")
    head = ["backend", "maps"] + list(kind_names) + ["faults"] + list(PROBLEMS)
    rows = [head, ["---"] * len(head)]
    total: Counter[str] = collections.Counter()
    total_kinds: Counter[str] = collections.Counter()
    for b in tallies:
        t, k = tallies[b], kinds[b]
        total.update(t)
        total_kinds.update(k)
        rows.append([b, str(t["maps"])] + [str(k[x]) for x in kind_names]
                    + [str(sum(k.values()))] + [str(t[p]) for p in PROBLEMS])
    rows.append(["**all**", str(total["maps"])] + [str(total_kinds[x]) for x in kind_names]
                + [str(sum(total_kinds.values()))] + [str(total[p]) for p in PROBLEMS])
    return ["| " + " | ".join(r) + " |" for r in rows]


def write_md(path: str, lines: List[str], args: argparse.Namespace, wall: float,
             loads: List[float]) -> None:
    doc = __doc__ or ""
    method = doc[doc.index("Each map runs"):doc.index("It prints the counts")].rstrip()
    text = "\n".join([
        "# Fault campaign",
        "",
        "`python benchmarks/faults.py --maps %d --seed %d` on %s, Python %s, %d CPUs, %s." % (
            args.maps, args.seed, platform.platform(), platform.python_version(),
            os.cpu_count() or 0, datetime.date.today().isoformat()),
        "Wall time %.0f s; load average (1 min) %.2f at the start, %.2f median, %.2f max "
        "(figures are counts, not timings: load slows a map, it must not change them)." % (
            wall, loads[0], sorted(loads)[len(loads) // 2], max(loads)),
        "`timeout=%gs`, a hang sleeps %gs; 2 workers per pool.%s" % (
            TIMEOUT_S, HANG_S, " Not run here (not available on this interpreter): %s." % (
                ", ".join(args.skipped)) if getattr(args, "skipped", None) else ""),
        "",
        "## Method",
        "",
        method,
        "",
        "## Results",
        "",
        "Faults planned per kind, then the problems found (every problem column should read 0).",
        "",
    ] + lines + [""])
    with open(path, "w") as f:
        f.write(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--maps", type=int, default=FULL_MAPS, help="maps to run (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backends", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--md", help="write the table here (default: benchmarks/FAULTS.md for "
                                 "the full campaign, nowhere for a smaller one)")
    args = ap.parse_args(argv)
    # SIGTERM ends the campaign through its finally: blocks (pools shut down, temp dir removed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tallies, kinds, wall, loads = campaign(args)
    lines = table(tallies, kinds)
    print("\n".join(lines))
    print("wall %.0f s, load average %.2f -> %.2f (max %.2f)" % (wall, loads[0], loads[-1],
                                                                  max(loads)))
    path = args.md or (os.path.join(HERE, "FAULTS.md") if args.maps >= FULL_MAPS else None)
    if path:
        write_md(path, lines, args, wall, loads)
        print("wrote", path)
    problems = sum(t[p] for t in tallies.values() for p in PROBLEMS)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
