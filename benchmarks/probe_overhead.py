"""What does the probe cost a single-threaded pure-Python program?

Side by side in one run, in alternating order (ABC, then a shuffled order each
round), each in a fresh interpreter:

  bare  ``python work.py``
  cli   ``threadwise probe --output FILE -- python work.py``    (default 1 ms interval)
  cli-sparse  the same with ``--interval 10000`` (almost no samples): a control that
        separates the cost of sampling from that of being wrapped at all
  lib   ``python work.py --lib``: the work inside ``with gil_monitor():``

``work.py`` runs a fixed amount of pure-Python work (no threads, no I/O) and
prints how long that work took (perf_counter).  We report, per mode, the ratio
to the bare run of the same round -- of the work's own time ("in-program") and
of the whole command's wall time ("end-to-end", which adds the probe's start-up:
one more interpreter) -- as the median over rounds with the interquartile range,
plus the CPU the probe itself used (as a share of one core).

"In-program CPU" is the work's own CPU time (process_time): it excludes time
the program spent preempted, so it isolates interference (caches, memory)
from competition for a CPU, which only a busy machine has.

Run: ``python benchmarks/probe_overhead.py [--rounds 24] [--work-s 1.5]``; prints a
markdown table; takes about 2 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

WORK = r'''
import sys, time, json
def work(n):
    # pure Python: integer arithmetic, a dict and a list, function calls
    acc = 0
    d = {}
    for i in range(n):
        acc = (acc * 31 + i) % 1000003
        if i % 7 == 0:
            d[i % 1024] = acc
        acc += len(d) & 3
    return acc
n = int(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2] == "--lib":
    sys.path.insert(0, sys.argv[3])
    from threadwise.probe import gil_monitor
    with gil_monitor() as m:
        c0 = time.process_time(); t0 = time.perf_counter(); work(n); t1 = time.perf_counter(); c1 = time.process_time()
    extra = {"samples": m.stats().samples}
else:
    c0 = time.process_time(); t0 = time.perf_counter(); work(n); t1 = time.perf_counter(); c1 = time.process_time()
    extra = {}
print(json.dumps(dict(extra, work_s=t1 - t0, work_cpu_s=c1 - c0)))
'''


def _run(cmd, env):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), p.stderr.decode(errors="replace")[-500:]))
    res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    res["wall_s"] = wall
    res["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return res


def _calibrate(work_file, env, target_s):
    n = 200000
    while True:
        r = _run([sys.executable, work_file, str(n)], env)
        if r["work_s"] > 0.2:
            return int(n * target_s / r["work_s"])
        n *= 4


def _q(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return xs[0], xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def _median_ci(xs, reps=4000, seed=2):
    """95 % bootstrap interval of the median (percentile method)."""
    rng = random.Random(seed)
    n = len(xs)
    meds = sorted(statistics.median(rng.choices(xs, k=n)) for _ in range(reps))
    return meds[int(0.025 * reps)], meds[int(0.975 * reps) - 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("--work-s", type=float, default=1.5, help="seconds of work per run (default 1.5)")
    ap.add_argument("--pin", action="store_true",
                    help="run the program on CPU 0 only (taskset), the probe free to use the others: "
                         "removes the noise of the program migrating between cores (the lib mode, "
                         "whose sampler would share CPU 0, is left out)")
    args = ap.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load0 = open("/proc/loadavg").read().split()[:3]
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work_file = os.path.join(tmp, "work.py")
        with open(work_file, "w") as f:
            f.write(WORK)
        out = os.path.join(tmp, "probe.json")
        n = _calibrate(work_file, env, args.work_s)
        # the console script a user runs (its start-up is part of end-to-end)
        script = os.path.join(os.path.dirname(sys.executable), "threadwise")
        probe = [script, "probe"] if os.path.exists(script) else [sys.executable, "-m",
                                                                     "threadwise.probe.cli"]
        prog = ([shutil.which("taskset") or "taskset", "-c", "0"] if args.pin else []) + [
            sys.executable, work_file, str(n)]
        cmds = {
            "bare": prog,
            "cli": probe + ["--json", "--output", out, "--"] + prog,
            "cli-sparse": probe + ["--interval", "10000", "--json", "--output", out + ".sparse",
                                   "--"] + prog,
            "lib": [sys.executable, work_file, str(n), "--lib", SRC],
        }
        if args.pin:
            del cmds["lib"]
        rng = random.Random(1)
        rounds = []
        samples = []
        for i in range(args.rounds):
            order = list(cmds)
            if i:
                rng.shuffle(order)
            res = {m: _run(cmds[m], env) for m in order}
            with open(out) as f:
                samples.append(json.load(f)["samples"])
            rounds.append(res)
            print("  round %d/%d (%.0f s)" % (i + 1, args.rounds, time.time() - t_start), file=sys.stderr)
    load1 = open("/proc/loadavg").read().split()[:3]

    print("## GIL probe overhead: single-threaded pure-Python work, default sampling\n")
    print("Python %s; %d rounds of ~%.1f s of work; order shuffled each round;%s load average "
          "before %s, after %s; %.0f s.\n" % (
              sys.version.split()[0], args.rounds, args.work_s,
              " the program pinned to CPU 0 (taskset), the probe not;" if args.pin else "",
              " ".join(load0), " ".join(load1), time.time() - t_start))
    print("| mode | in-program wall / bare: median | 95% CI of the median | IQR | in-program CPU / "
          "bare: median | IQR | end-to-end wall / bare: median | 95% CI | IQR | probe's extra CPU "
          "per run (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in [m for m in ("cli", "cli-sparse", "lib") if m in cmds]:
        r_in = [r[mode]["work_s"] / r["bare"]["work_s"] for r in rounds]
        r_cpu = [r[mode]["work_cpu_s"] / r["bare"]["work_cpu_s"] for r in rounds]
        r_e2e = [r[mode]["wall_s"] / r["bare"]["wall_s"] for r in rounds]
        cpu = [r[mode]["cpu_s"] - r["bare"]["cpu_s"] for r in rounds]
        q_in, q_cpu, q_e2e = _q(r_in), _q(r_cpu), _q(r_e2e)
        c_in, c_e2e = _median_ci(r_in), _median_ci(r_e2e)
        print("| %s | %.4f | %.4f-%.4f | %.4f-%.4f | %.4f | %.4f-%.4f | %.4f | %.4f-%.4f | %.4f-%.4f "
              "| %.3f |" % (
                  mode, statistics.median(r_in), c_in[0], c_in[1], q_in[0], q_in[1],
                  statistics.median(r_cpu), q_cpu[0], q_cpu[1], statistics.median(r_e2e),
                  c_e2e[0], c_e2e[1], q_e2e[0], q_e2e[1], statistics.median(cpu)))
    # the cost of sampling alone: the same wrapped program, default sampling against almost
    # none (both carry the start-up hook, so process layout is alike)
    pair = [r["cli"]["work_s"] / r["cli-sparse"]["work_s"] for r in rounds]
    c_pair = _median_ci(pair)
    print("\nSampling alone (cli / cli-sparse, paired by round, in-program wall): median %.4f, "
          "95%% CI %.4f-%.4f, IQR %.4f-%.4f." % (statistics.median(pair), c_pair[0], c_pair[1],
                                                _q(pair)[0], _q(pair)[1]))
    bare = [r["bare"]["work_s"] for r in rounds]
    print("\nbare work time: median %.3f s (IQR %.3f-%.3f); the probe took %d samples per run (median)."
          % (statistics.median(bare), _q(bare)[0], _q(bare)[1], statistics.median(samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
