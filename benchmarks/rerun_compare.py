"""Two identical ``bench --quick`` runs, compared with pyperf: do they measure the same work?

    python benchmarks/rerun_compare.py [--out DIR]

Run A calibrates its sizes; run B reuses them (``--sizes-from A.json``), so both measure
the same work and their pyperf export names (which say tasks and size) match.  Both are
exported (``threadwise export``) and compared with ``python -m pyperf compare_to``; the
script prints pyperf's table and the largest ratio between the two runs.  The issue's
goal: no difference above 1.3x.  Without --sizes-from (``--recalibrate``) the second run
calibrates anew: then most names differ and pyperf compares only what is left.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(args), p.stderr[-2000:]))
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/rerun")
    ap.add_argument("--recalibrate", action="store_true", help="let run B calibrate its own sizes")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    a, b = os.path.join(args.out, "a.json"), os.path.join(args.out, "b.json")
    for f in (a, b):
        if os.path.exists(f):
            os.remove(f)
    print("load average at start: %s" % " ".join("%.2f" % x for x in os.getloadavg()), flush=True)
    run("threadwise", "bench", "--quick", "-o", a)
    extra = [] if args.recalibrate else ["--sizes-from", a]
    run("threadwise", "bench", "--quick", "-o", b, *extra)
    pa, pb = a.replace(".json", "-pyperf.json"), b.replace(".json", "-pyperf.json")
    run("threadwise", "export", a, "-o", pa)
    run("threadwise", "export", b, "-o", pb)
    table = run("pyperf", "compare_to", pa, pb, "--table").stdout
    print(table)
    va = {x["metadata"]["name"]: x for x in json.load(open(pa))["benchmarks"]}
    vb = {x["metadata"]["name"]: x for x in json.load(open(pb))["benchmarks"]}
    common = sorted(set(va) & set(vb))
    ratios = []
    for name in common:
        ma = statistics.median(v for r in va[name]["runs"] for v in r.get("values", []))
        mb = statistics.median(v for r in vb[name]["runs"] for v in r.get("values", []))
        ratios.append((max(ma, mb) / min(ma, mb), name))
    ratios.sort(reverse=True)
    print("%d benchmarks in both runs (of %d and %d); largest differences:" % (len(common), len(va), len(vb)))
    for r, name in ratios[:5]:
        print("  %.2fx  %s" % (r, name))
    print("load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    worst = ratios[0][0] if ratios else float("nan")
    print("largest ratio %.2fx (goal: <= 1.3x)" % worst)
    return 0 if common and worst <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
