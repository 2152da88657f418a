"""How close is ``threadwise probe --pid`` (no hook: the GIL found from outside) to the truth?

Ground truth: the duty-cycle workload (threadwise.bench.inside.workloads.duty_cycle)
with one thread that spins in pure Python for d x 10 ms of every 10 ms period
and sleeps the rest, d in {0.3, 0.6, 0.9}.  The target runs with ``-I`` (so the
probe's start-up hook can't run) and logs the wall-clock bounds of each spin
phase; the truth is the share of the probe's window (``window_start`` ..
``window_end`` in its JSON, on CLOCK_MONOTONIC, the target's clock too, even
in a chroot) covered by spin phases: the GIL's wall-clock holding time (see
benchmarks/PROBE.md, "Ground truth").

Targets: any interpreter command, e.g. the host CPython, /opt/threadwise/py313,
``chroot /srv/threadwise-sid python3.14`` and ``... python3.15``.  Where the
target is CPython 3.15 with ``profiling.sampling`` (``--mode gil``), the same
workload is also measured by it (in a separate run: two samplers would compete
for the CPUs): its GIL share is the GIL-holding stacks it kept (``--collapsed``)
over the samples it took; its truth is the spin share over the profiler's
lifetime (its own window is not reported).

Run: ``python benchmarks/probe_pid_accuracy.py [--targets host,py313,py314,py315]
[--duties 0.3,0.6,0.9] [--duration 2] [--repeats 1]``.  Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
CHROOT = "/srv/threadwise-sid"

TARGETS = {
    "host": [sys.executable],
    "system": ["/usr/bin/python3"],
    "py313": ["/opt/threadwise/py313/bin/python3.13"],
    "py314": ["chroot", CHROOT, "python3.14"],
    "py315": ["chroot", CHROOT, "python3.15"],
}
PYENV = os.path.join(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "versions")

# runs in the target with -I (stdlib only; 3.8+): duty_cycle() plus a log of the spin phases
WORKLOAD = r'''
import json, sys, threading, time
duty, total = float(sys.argv[1]), float(sys.argv[2])
clock = time.monotonic
period = 0.01
busy, idle = period * duty, period * (1 - duty)
phases = []
def worker():
    end_all = clock() + total
    while clock() < end_all:
        a = clock()
        end = a + busy
        while clock() < end:
            pass
        phases.append((a, clock()))
        if idle > 0:
            time.sleep(idle)
t_go = clock()
t = threading.Thread(target=worker, name="duty")
t.start()
t.join()
sys.stdout.write(json.dumps({"phases": phases, "t_go": t_go, "t_done": clock()}) + "\n")
'''


def truth(log: Dict[str, Any], w0: float, w1: float) -> float:
    """Share of [w0, w1] during which the GIL was held: a spin phase ran, or the
    main thread ran Python before starting / after joining the worker."""
    spans = [tuple(p) for p in log["phases"]] + [(w0, log["t_go"]), (log["t_done"], w1)]
    held = sum(max(0.0, min(b, w1) - max(a, w0)) for a, b in spans)
    return held / (w1 - w0) if w1 > w0 else float("nan")


def _wait_threads(pid: int, n: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if len(os.listdir("/proc/%d/task" % pid)) >= n:
                return True
        except OSError:
            return False
        time.sleep(0.01)
    return False


def _start(cmd: Sequence[str], duty: float, total: float) -> subprocess.Popen:
    return subprocess.Popen(list(cmd) + ["-I", "-c", WORKLOAD, str(duty), str(total)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _finish(proc: subprocess.Popen) -> Optional[Dict[str, Any]]:
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def run_probe(cmd: Sequence[str], duty: float, duration: float) -> Dict[str, Any]:
    proc = _start(cmd, duty, duration + 1.5)
    try:
        if not _wait_threads(proc.pid, 2):
            return {"error": "the workload did not start"}
        time.sleep(0.2)
        env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([sys.executable, "-m", "threadwise.probe.cli", "--pid", str(proc.pid),
                            "--duration", str(duration), "--json"], capture_output=True, text=True,
                           timeout=duration + 60, env=env)
        log = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if r.returncode != 0 or log is None:
        return {"error": (r.stderr or "no log")[-300:]}
    d = json.loads(r.stderr[r.stderr.index("{"):])
    return {"held": d["gil_held"], "truth": truth(log, d["window_start"], d["window_end"]),
            "samples": d["samples"], "found_by": d["gil_found_by"], "interpreter": d["interpreter"],
            "ci": d["gil_held_ci"]}


def run_profiling_sampling(cmd: Sequence[str], duty: float, duration: float) -> Dict[str, Any]:
    """CPython 3.15's own sampler, ``profiling.sampling attach --mode gil``."""
    proc = _start(cmd, duty, duration + 1.5)
    out_name = "threadwise-pp-%d.collapsed" % os.getpid()
    inside = cmd[0] == "chroot"
    out_path = os.path.join(cmd[1] if inside else "/", "tmp", out_name)
    try:
        if not _wait_threads(proc.pid, 2):
            return {"error": "the workload did not start"}
        time.sleep(0.2)
        t0 = time.monotonic()
        r = subprocess.run(list(cmd) + ["-m", "profiling.sampling", "attach", "--mode", "gil", "-a",
                                        "-d", str(max(1, int(round(duration)))), "--collapsed", "-o", "/tmp/" + out_name,
                                        str(proc.pid)], capture_output=True, text=True,
                           timeout=duration + 60)
        t1 = time.monotonic()
        log = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        with open(out_path) as f:
            held_samples = sum(int(line.rsplit(" ", 1)[1]) for line in f if line.strip())
        os.unlink(out_path)
    except (OSError, ValueError, IndexError):
        return {"error": (r.stdout + r.stderr)[-300:]}
    captured = [int(w) for line in r.stdout.splitlines() if line.startswith("Captured")
                for w in line.split()[1:2]]
    if not captured or log is None:
        return {"error": (r.stdout + r.stderr)[-300:]}
    return {"held": held_samples / captured[0], "truth": truth(log, t0, t1), "samples": captured[0]}


def has_profiling_sampling(cmd: Sequence[str]) -> bool:
    try:
        r = subprocess.run(list(cmd) + ["-c", "import profiling.sampling"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def available(cmd: Sequence[str]) -> bool:
    if cmd[0] == "chroot":
        return os.geteuid() == 0 and os.path.exists(os.path.join(cmd[1], "usr/bin", cmd[2]))
    return shutil.which(cmd[0]) is not None or os.path.exists(cmd[0])


def _resolve(name: str) -> Optional[List[str]]:
    if name in TARGETS:
        return TARGETS[name]
    if name.startswith("pyenv-"):
        return [os.path.join(PYENV, name[6:], "bin", "python3")]
    return None


def _cell(results: List[Dict[str, Any]]) -> Tuple[str, str, str, List[float]]:
    ok = [r for r in results if "error" not in r]
    if not ok:
        return "error", "", "", []
    errs = [r["held"] - r["truth"] for r in ok]
    return ("%.1f" % (100 * statistics.median(r["truth"] for r in ok)),
            "%.1f" % (100 * statistics.median(r["held"] for r in ok)),
            "%+.1f" % (100 * statistics.median(errs)), errs)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="host,py313,py314,py315")
    ap.add_argument("--duties", default="0.3,0.6,0.9")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds the probe samples (default 2)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-profiling-sampling", action="store_true")
    args = ap.parse_args(argv)
    duties = [float(x) for x in args.duties.split(",")]
    load0 = open("/proc/loadavg").read().split()[:3]
    t_start = time.time()
    rows = []
    worst: List[float] = []
    for name in args.targets.split(","):
        cmd = _resolve(name)
        if cmd is None or not available(cmd):
            print("skipped %s: not installed here" % name, file=sys.stderr)
            continue
        pps = not args.no_profiling_sampling and has_profiling_sampling(cmd)
        for d in duties:
            ours = [run_probe(cmd, d, args.duration) for _ in range(args.repeats)]
            theirs = [run_profiling_sampling(cmd, d, args.duration) for _ in range(args.repeats)] if pps else []
            for r in ours + theirs:
                if "error" in r:
                    print("error: %s d=%s: %s" % (name, d, r["error"]), file=sys.stderr)
            rows.append((name, d, ours, theirs))
            print("  %s d=%.1f done (%.0f s)" % (name, d, time.time() - t_start), file=sys.stderr)
    load1 = open("/proc/loadavg").read().split()[:3]
    print("## threadwise probe --pid accuracy (no hook; duty-cycle ground truth, one thread, 10 ms periods)\n")
    print("Probe run on Python %s; %d CPUs; load average before %s, after %s; %.0f s; %d s of sampling "
          "per run, median of %d run(s).\n" % (sys.version.split()[0], os.cpu_count() or 0, " ".join(load0),
                                              " ".join(load1), time.time() - t_start, args.duration,
                                              args.repeats))
    print("| target | interpreter | found by | duty | truth held | probe held | err (pp) "
          "| profiling.sampling held | its truth | err (pp) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, d, ours, theirs in rows:
        t, h, e, errs = _cell(ours)
        worst += errs
        ok = [r for r in ours if "error" not in r]
        interp = ok[0]["interpreter"] if ok else "?"
        found = ok[0]["found_by"] if ok else "?"
        pt = ph = pe = "-"
        if theirs:
            pt, ph, pe, _ = _cell(theirs)
            if pt == "error":
                pt, ph = "", "error"
        print("| %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %s |" % (name, interp, found, d, t, h, e, ph, pt, pe))
    if worst:
        print("\nWorst |probe - truth| over all runs: %.1f pp." % (100 * max(abs(e) for e in worst)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
