"""How close is the probe's "GIL held" / "GIL waited on" to the truth?

Ground truth: the duty-cycle workload (threadwise.bench.inside.workloads.duty_cycle)
with N threads (1..4) and duty d in {0, .25, .5, .75, 1}, instrumented so that
every thread logs the wall-clock bounds of each spin phase and each wake-up.
From those logs (see benchmarks/PROBE.md, "Ground truth"):

* held(t) = 1 while at least one thread is inside a spin phase (a spinning
  thread holds the GIL, or waits while another one holds it);
* wanting(t) = threads inside a spin phase or woken from their sleep but not
  yet spinning again; wait(t) = 1 while wanting(t) >= 2 (one holds, the others
  wait); waiting(t) = max(0, wanting(t) - 1).

Each case runs in a fresh interpreter, three ways:
  lib       ``with threadwise.gil_monitor():`` around the threads
  cli       ``threadwise probe --json -- python case.py`` (truth over the probe's window)
  gil_load  ``python -m gil_load case.py`` (if gil_load is installed)

Run: ``python benchmarks/probe_accuracy.py [--repeats 2] [--periods 120] [--no-cli] [--no-gil-load]``.
Prints a markdown table; takes about 2-3 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

CASE = r'''
import json, os, sys, threading, time
mode, n, duty, periods, period_ms, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
clock = time.monotonic          # the sampler's clock too (CLOCK_MONOTONIC)
t_script = clock()
period = period_ms / 1000.0
busy = period * duty
idle = period - busy

def worker(log):
    # duty_cycle() from threadwise.bench.inside.workloads, plus a log of the phases:
    # (spin start, spin end, planned wake-up = spin end + idle)
    append = log.append
    for _ in range(periods):
        a = clock()
        end = a + busy
        while clock() < end:
            pass
        b = clock()
        append((a, b))
        if idle > 0:
            time.sleep(idle)

def run():
    logs = [[] for _ in range(n)]
    threads = [threading.Thread(target=worker, args=(logs[i],), name="duty-%d" % i) for i in range(n)]
    t_go = clock()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return logs, t_go, clock()

def truth(logs, w0, w1, extra_held=()):
    """held / wait / waiting shares over [w0, w1] from the phase logs."""
    ev_spin, ev_want = [], []
    for log in logs:
        prev_b = None
        for a, b in log:
            ev_spin += [(a, 1), (b, -1)]
            ev_want += [(a, 1), (b, -1)]
            if prev_b is not None and idle > 0:
                wake = prev_b + idle + SLACK
                if a > wake:          # woken, waiting to run Python again
                    ev_want += [(wake, 1), (a, -1)]
            prev_b = b
    for a, b in extra_held:
        ev_spin += [(a, 1), (b, -1)]
        ev_want += [(a, 1), (b, -1)]
    def integrate(events, f):
        events.sort()
        total, level, last = 0.0, 0, w0
        for t, dv in events:
            t = min(max(t, w0), w1)
            total += f(level) * (t - last)
            last = t
            level += dv
        total += f(level) * (w1 - last)
        return total / (w1 - w0)
    return (integrate(list(ev_spin), lambda k: 1.0 if k >= 1 else 0.0),
            integrate(list(ev_want), lambda k: 1.0 if k >= 2 else 0.0),
            integrate(list(ev_want), lambda k: max(0, k - 1)))

# the OS's timer slack: how late time.sleep(idle) returns with nothing else running
SLACK = 0.0
if idle > 0:
    lates = []
    for _ in range(5):
        t0 = clock(); time.sleep(idle / 4); lates.append(clock() - t0 - idle / 4)
    SLACK = sorted(lates)[len(lates) // 2]

res = {"mode": mode}
if mode == "lib":
    sys.path.insert(0, os.environ["TW_SRC"])
    from threadwise.probe import gil_monitor
    with gil_monitor() as m:
        w0 = clock()
        logs, t_go, t_done = run()
        w1 = clock()
    s = m.stats()
    res.update(held=s.gil_held, wait=s.gil_wait, waiting=s.waiting, samples=s.samples,
               ci=s.gil_held_ci)
    res["truth"] = truth(logs, w0, w1, extra_held=[(w0, t_go), (t_done, w1)])
elif mode == "gil_load":
    import gil_load
    gil_load.init()
    gil_load.start(av_sample_interval=0.001)
    w0 = clock()
    logs, t_go, t_done = run()
    w1 = clock()
    gil_load.stop()
    g = gil_load.get()[0]
    res.update(held=g["held"], wait=g["wait"])
    res["truth"] = truth(logs, w0, w1, extra_held=[(w0, t_go), (t_done, w1)])
elif mode == "cli":
    logs, t_go, t_done = run()
    # the probe's window starts when its start-up hook ran and ends at exit;
    # the main thread runs Python (holds the GIL) outside the threads' span
    res["logs"] = logs
    res["t_go"], res["t_done"] = t_go, t_done
    res["idle"], res["slack"] = idle, SLACK
with open(out, "w") as f:
    json.dump(res, f)
'''


def run_case(case_file: str, mode: str, n: int, duty: float, periods: int, period_ms: float):
    env = dict(os.environ, TW_SRC=SRC, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "case.json")
        args = [case_file, mode, str(n), str(duty), str(periods), str(period_ms), out]
        if mode == "lib":
            cmd = [sys.executable] + args
        elif mode == "gil_load":
            cmd = [sys.executable, "-m", "gil_load"] + args
        else:
            probe_out = os.path.join(tmp, "probe.json")
            cmd = [sys.executable, "-m", "threadwise.probe.cli", "--json", "--output", probe_out,
                   "--", sys.executable] + args
        run_s = periods * period_ms / 1000.0
        try:
            # gil_load sometimes never returns (its stop() with spinning threads)
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=(5 + 2 * run_s) if mode == "gil_load" else (30 + 3 * run_s))
        except subprocess.TimeoutExpired:
            return {"error": "timed out (hung)"}
        if p.returncode != 0 or not os.path.exists(out):
            return {"error": (p.stderr.decode(errors="replace")[-300:] or "exit %d" % p.returncode)}
        with open(out) as f:
            res = json.load(f)
        if mode == "cli":
            with open(probe_out) as f:
                probe = json.load(f)
            res.update(held=probe["gil_held"], wait=probe["gil_wait"], waiting=probe.get("waiting"),
                       samples=probe["samples"])
            res["truth"] = _cli_truth(res, probe)
        return res


def _cli_truth(res, probe):
    """Truth over the probe's own window (the JSON's window_start/window_end)."""
    w0, w1 = probe["window_start"], probe["window_end"]
    ns = {}
    code = CASE.split("# the OS's timer slack")[0]
    # reuse truth() from the case script without running its workload
    ns_src = code[code.index("def truth"):]
    exec("idle = %r\nSLACK = %r\n" % (res["idle"], res["slack"]) + ns_src, ns)
    logs = [[tuple(x) for x in log] for log in res["logs"]]
    return ns["truth"](logs, w0, w1, extra_held=[(w0, res["t_go"]), (res["t_done"], w1)])


def _fmt(x, pct=True):
    if x is None:
        return "-"
    return "%.1f" % (100 * x) if pct else "%.2f" % x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="library-mode repeats per case (default 2)")
    ap.add_argument("--periods", type=int, default=100, help="10 ms periods per run (default 100)")
    ap.add_argument("--threads", default="1,2,3,4")
    ap.add_argument("--duties", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--no-cli", action="store_true")
    ap.add_argument("--no-gil-load", action="store_true")
    args = ap.parse_args(argv)
    import importlib.util
    have_gil_load = importlib.util.find_spec("gil_load") is not None and not args.no_gil_load
    threads = [int(x) for x in args.threads.split(",")]
    duties = [float(x) for x in args.duties.split(",")]
    t_start = time.time()
    load0 = open("/proc/loadavg").read().split()[:3]
    with tempfile.NamedTemporaryFile("w", suffix="_case.py", delete=False) as f:
        f.write(CASE)
        case_file = f.name
    rows = []
    errs_held, errs_wait, errs_cli = [], [], []
    try:
        for n in threads:
            for d in duties:
                lib = [run_case(case_file, "lib", n, d, args.periods, 10.0) for _ in range(args.repeats)]
                cli = None if args.no_cli else run_case(case_file, "cli", n, d, args.periods, 10.0)
                gl = run_case(case_file, "gil_load", n, d, args.periods, 10.0) if have_gil_load else None
                rows.append((n, d, lib, cli, gl))
                for r in lib + ([cli] if cli else []):
                    if "error" in r:
                        print("error: n=%d d=%s: %s" % (n, d, r["error"]), file=sys.stderr)
                print("  n=%d d=%.2f done (%.0f s)" % (n, d, time.time() - t_start), file=sys.stderr)
    finally:
        os.unlink(case_file)
    load1 = open("/proc/loadavg").read().split()[:3]

    print("## GIL probe accuracy (duty-cycle ground truth, 10 ms periods, %d periods per run)\n" % args.periods)
    print("Python %s, %s; load average before %s, after %s; %.0f s.\n"
          % (sys.version.split()[0], sys.platform, " ".join(load0), " ".join(load1), time.time() - t_start))
    print("Figures in %% of wall time. lib = `gil_monitor()` (median of %d runs, error = probe - truth);"
          " cli = `threadwise probe --json`; gil_load = `python -m gil_load` (0.4.2) where installed.\n"
          % args.repeats)
    print("| threads | duty | truth held | lib held | err | truth wait | lib wait | err | cli held (err) | cli wait (err) | gil_load held | gil_load wait |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, d, lib, cli, gl in rows:
        ok = [r for r in lib if "error" not in r]
        if not ok:
            print("| %d | %.2f | error | | | | | | | | | |" % (n, d))
            continue
        th = statistics.median(r["truth"][0] for r in ok)
        tw = statistics.median(r["truth"][1] for r in ok)
        eh = [r["held"] - r["truth"][0] for r in ok]
        ew = [r["wait"] - r["truth"][1] for r in ok]
        errs_held += eh
        errs_wait += ew
        mh = statistics.median(r["held"] for r in ok)
        mw = statistics.median(r["wait"] for r in ok)
        cli_h = cli_w = "-"
        if cli and "error" not in cli:
            cli_h = "%s (%+.1f)" % (_fmt(cli["held"]), 100 * (cli["held"] - cli["truth"][0]))
            cli_w = "%s (%+.1f)" % (_fmt(cli["wait"]), 100 * (cli["wait"] - cli["truth"][1]))
            errs_cli += [cli["held"] - cli["truth"][0]]
        gl_h = gl_w = "-"
        if gl and "error" not in gl:
            gl_h, gl_w = _fmt(gl["held"]), _fmt(gl["wait"])
        elif gl:
            gl_h = gl_w = "hung" if "hung" in gl["error"] else "error"
        print("| %d | %.2f | %s | %s | %+.1f | %s | %s | %+.1f | %s | %s | %s | %s |" % (
            n, d, _fmt(th), _fmt(mh), 100 * statistics.median(eh), _fmt(tw), _fmt(mw),
            100 * statistics.median(ew), cli_h, cli_w, gl_h, gl_w))
    if errs_held:
        print("\nWorst |error|, every run: held %.1f pp, wait %.1f pp (library); held %.1f pp (cli)."
              % (100 * max(abs(e) for e in errs_held), 100 * max(abs(e) for e in errs_wait),
                 100 * max([abs(e) for e in errs_cli] or [0.0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
