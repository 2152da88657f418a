"""Every installed interpreter side by side: single-thread cost and 2-thread scaling per workload.

    python benchmarks/interpreters_compare.py [--repeats 5] [--out benchmarks/results/interpreters]

Runs one ``threadwise bench`` over the interpreters the install manifest lists (the host
CPython first, each free-threaded build also with ``PYTHON_GIL=1``) on pure-Python CPU
(cpu-python, cpu-objects, nbody), GIL-releasing native code (hashlib) and GIL-holding native
code (json): serial, and threads x2, every interpreter on the sizes a first calibration
on the host chose (``--size``), so that every interpreter does the same work.  Prints a Markdown table:

    time   serial time for the same work, relative to the host CPython (median; lower is faster)
    x2     threads x2 speedup over that interpreter's serial run, with its 95% interval

and writes the results file and the table to --out.  Load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from threadwise.bench import results  # noqa: E402
from threadwise.bench.cli import installed_interpreters  # noqa: E402

WORKLOADS = "cpu-python,cpu-objects,nbody,hashlib,json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--task-ms", type=float, default=60)
    ap.add_argument("--out", default="benchmarks/results/interpreters")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print("interpreters: %s" % ", ".join(i.label for i in installed_interpreters()), flush=True)
    load0 = os.getloadavg()
    sizes = os.path.join(args.out, "sizes.json")
    out = os.path.join(args.out, "interpreters.json")
    base = [sys.executable, "-m", "threadwise", "bench", "-w", WORKLOADS, "--repeats", str(args.repeats),
            "--task-ms", str(args.task_ms)]
    # the sizes, calibrated once on the host: every interpreter then runs the same work
    subprocess.run(base + ["-b", "serial", "--workers", "1", "-o", sizes], check=True,
                   stdout=subprocess.DEVNULL)
    fixed = [a for c in results.load(sizes).cells if c.ok and c.size
             for a in ("--size", "%s=%d" % (c.workload, c.size))]
    cmd = base + ["-b", "threads", "--workers", "2", "-o", out, "--python", "all"] + fixed
    subprocess.run(cmd, stdout=subprocess.DEVNULL)
    doc = results.load(out)
    labels = doc.interpreter_order()
    host = labels[0]
    rows: List[str] = ["| workload | " + " | ".join(
        "%s (%s%s)" % (lab, doc.facts(lab).version or "?", "" if doc.facts(lab).gil_enabled else ", no GIL")
        for lab in labels) + " |", "|---|" + "---|" * len(labels)]
    per: Dict[str, Dict[str, Any]] = {}
    for c in doc.cells:
        per.setdefault(c.workload, {}).setdefault(c.interpreter, {})[c.backend] = c
    for wl in WORKLOADS.split(","):
        ref = per.get(wl, {}).get(host, {}).get("serial")
        cells = []
        for lab in labels:
            s = per.get(wl, {}).get(lab, {}).get("serial")
            t = per.get(wl, {}).get(lab, {}).get("threads")
            if s is None or not s.ok:
                cells.append("error" if s is not None else "-")
                continue
            rel = "time %.2fx" % (s.wall_median / ref.wall_median) if ref is not None and ref.ok else ""
            sp = ""
            if t is not None and t.ok:
                lo, hi = t.speedup_ci95 or (t.speedup, t.speedup)
                sp = "x2 %.2fx [%.2f-%.2f]%s" % (t.speedup, lo, hi, " busy" if t.busy else "")
            cells.append("%s, %s" % (rel, sp))
        rows.append("| %s | %s |" % (wl, " | ".join(cells)))
    load1 = os.getloadavg()
    text = "\n".join(rows) + "\n\nLoad average %s before, %s after; %d repeats; sizes calibrated on %s.\n" % (
        " ".join("%.2f" % x for x in load0), " ".join("%.2f" % x for x in load1), args.repeats, host)
    with open(os.path.join(args.out, "interpreters.md"), "w") as f:
        f.write(text)
    print(text)
    json.dumps(doc.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
