"""Do the claims' verdicts survive a busy machine and a change of interpreter order?

    python benchmarks/claims_stability.py [--quick] [--repeats N] [--python CMD ...] [--out DIR]

Runs ``threadwise claims`` four times, the way a user's laptop or CI runner would:

    quiet-1, quiet-2     nothing else running
    loaded-1, loaded-2   beside two CPU-burning processes (``python3 -c 'while True: pass'``,
                         started here and killed by PID afterwards): 2 cores, oversubscribed 2x

and, when several interpreters are given, a fifth run with ``--python`` in reverse order
(quiet).  It prints one table: a row per claim, a column per run, and the check the issue
asks for: the two quiet runs agree, every loaded verdict is the quiet one or
``inconclusive`` (never the opposite definite verdict), and the reversed order gives the
same verdicts.  The load average and each run's time are printed with the table; the raw
results files are kept in --out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List

DEFINITE = ("holds", "fails", "partly")


def claims(args: argparse.Namespace, order: List[str], out: str) -> Dict[str, str]:
    cmd = [sys.executable, "-m", "threadwise", "claims", "--json", "-o", out]
    if args.quick:
        cmd.append("--quick")
    if args.repeats:
        cmd += ["--repeats", str(args.repeats)]
    for p in order:
        cmd += ["--python", p]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    took = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("claims failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    verdicts = {c["id"]: c["verdict"] for c in json.loads(p.stdout)["claims"]}
    print("  %s: %.0f s, load average now %s" % (os.path.basename(out), took,
                                                  " ".join("%.2f" % x for x in os.getloadavg())),
          flush=True)
    return verdicts


def burners(n: int) -> List[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (claims' default: 5, quick 3)")
    ap.add_argument("--python", action="append", default=[])
    ap.add_argument("--out", default="benchmarks/results/claims-stability")
    ap.add_argument("--rejudge", metavar="DIR",
                    help="measure nothing: judge the results files of an earlier run in DIR "
                    "again with the rules as they are now (verdicts are pure functions of the "
                    "measurements), and print the same table")
    args = ap.parse_args()
    if args.rejudge:
        return table(rejudge(args.rejudge))
    os.makedirs(args.out, exist_ok=True)
    print("load average at start: %s" % " ".join("%.2f" % x for x in os.getloadavg()), flush=True)
    runs: Dict[str, Dict[str, str]] = {}
    for name in ("quiet-1", "quiet-2"):
        runs[name] = claims(args, args.python, os.path.join(args.out, name + ".json"))
    for name in ("loaded-1", "loaded-2"):
        procs = burners(2)
        try:
            time.sleep(1)
            runs[name] = claims(args, args.python, os.path.join(args.out, name + ".json"))
        finally:
            for b in procs:
                b.kill()
                b.wait()
    if len(args.python) > 1:
        time.sleep(5)
        runs["quiet, reversed"] = claims(args, list(reversed(args.python)),
                                         os.path.join(args.out, "quiet-reversed.json"))
    return table(runs)


def rejudge(folder: str) -> Dict[str, Dict[str, str]]:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from threadwise.bench import claims as claims_mod, results
    runs: Dict[str, Dict[str, str]] = {}
    for name, file in (("quiet-1", "quiet-1"), ("quiet-2", "quiet-2"), ("loaded-1", "loaded-1"),
                       ("loaded-2", "loaded-2"), ("quiet, reversed", "quiet-reversed")):
        path = os.path.join(folder, file + ".json")
        if os.path.exists(path):
            runs[name] = {c.id: c.verdict for c in claims_mod.judge(results.load(path))}
    return runs


def table(runs: Dict[str, Dict[str, str]]) -> int:
    ids = sorted({cid for v in runs.values() for cid in v}, key=lambda c: int(c[1:]))
    names = list(runs)
    print("\n| claim | " + " | ".join(names) + " | check |")
    print("|---|" + "---|" * len(names) + "---|")
    bad = 0
    for cid in ids:
        q1, q2 = runs["quiet-1"].get(cid), runs["quiet-2"].get(cid)
        problems = []
        if q1 != q2:
            problems.append("quiet runs differ")
        for name in ("loaded-1", "loaded-2"):
            v = runs[name].get(cid)
            if v in DEFINITE and v != q1:
                problems.append("%s gives the opposite verdict" % name)
        if "quiet, reversed" in runs and runs["quiet, reversed"].get(cid) != q1:
            problems.append("order changes it")
        bad += bool(problems)
        print("| %s | %s | %s |" % (cid, " | ".join(runs[n].get(cid, "-") for n in names),
                                    "; ".join(problems) or "ok"))
    print("\n%d of %d claims fail the check" % (bad, len(ids)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
