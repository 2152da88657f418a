"""Verdicts: pure functions from a :class:`~threadwise.bench.model.ResultsDocument` to claims.

    ResultsDocument (cells + experiments, measured by claims/experiments.py)
        --judge_c1 .. judge_c9--> Claim(id, claim, verdict, summary, evidence)

No I/O, no clocks: the same document always gives the same verdicts, and the tests
feed recorded documents through every branch.  Every threshold is a constant below;
docs/claims.md gives every rule.  The rules compare **intervals**, not point
estimates: a speedup "reaches" a threshold when its whole 95% interval lies at or above
it, "misses" it when the whole interval lies below, and otherwise the claim is
``inconclusive`` with the reason.  So is a claim whose measurements were taken while
other processes used more than :data:`~threadwise.bench.model.BUSY_SHARE` of the CPUs:
a busy machine gets "rerun on a quiet machine", never the opposite verdict.

Each claim is judged on the interpreters it is about, whatever the order of
``--python``: C1 on every GIL build, C2/C6/C7/C8 on the reference CPython with a GIL
(``experiments.reference``, chosen by the experiments), C4 on Jython and the other
GIL-free implementations, C5 on the newest free-threaded CPython (older ones beside
it), C9 on every CPython build.  A claim is ``untestable`` with its reason when the run
lacks what it needs (one core, no Jython, no free-threaded build), never a guess.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..model import (BUSY_SHARE, Cell, Claim, ConvoyRun, InterpreterFacts, RaceRun,
                     ResultsDocument, as_json)

CLAIM_IDS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9")
VERDICTS = ("holds", "fails", "partly", "inconclusive", "untestable")
CLAIM_TEXT = {
    "C1": "The GIL stops two bytecodes running at once: Python code gets no parallelism from threads",
    "C2": "Threads still cut run time and raise throughput (I/O, GIL-releasing native code)",
    "C3": "The GIL is a CPython detail tied to memory management",
    "C4": "Jython and IronPython have no GIL and run Python threads in parallel",
    "C5": "CPython can't remove the GIL",
    "C6": "Many libraries bypass the GIL in C extensions",
    "C7": "Use multiprocessing to use all cores",
    "C8": "The GIL is only a problem on multiprocessor machines",
    "C9": "The GIL makes a developer's life easier (unsynchronized shared updates)",
}

# ---- thresholds (docs/claims.md) ------------------------------------------
#: a speedup (and CPU/wall parallelism) at or above this on >= 2 cores means "ran in parallel"
SCALES = 1.5
#: CPU/wall below this: "one core busy at a time"
NO_SCALE = 1.2
#: I/O in threads "cuts run time" when speedup >= this share of the worker count
IO_EFFICIENCY = 0.7
#: GIL-releasing native code scales when speedup >= this share of min(workers, cores)
NATIVE_EFFICIENCY = 0.7
#: processes "use all cores" when speedup >= this share of min(workers, cores)
PROC_EFFICIENCY = 0.7
#: C3: a free-threaded build's single-thread time this many times a same-flags GIL build's,
#: or threads on shared objects this many times slower than on private ones, is a
#: memory-management cost of removing the GIL
COST_MIN = 1.05
CONTENTION_MIN = 1.2
#: C6: "many" = more than this share of the native calls tested release the GIL
MANY = 0.5
#: C8: a run shows the convoy when its median latency beside CPU-bound threads is at least
#: CONVOY_FACTOR x the idle median AND at least CONVOY_MIN_SWITCHES switch intervals above it
CONVOY_FACTOR = 5.0
CONVOY_MIN_SWITCHES = 0.5
#: C8: whether the I/O thread gets caught behind a spinning one is settled early in a run and
#: then sticks, so runs differ (measured: 4 of 4, 2 of 4 and 0 of 4 on the same quiet
#: machine).  One run with a strong convoy (the median a whole switch interval above the idle
#: one) shows that the GIL can do it on one core: "fails"; "holds" needs no convoy in at
#: least CONVOY_HOLD_RUNS runs; fewer runs without one, or only weak ones: inconclusive
CONVOY_STRONG_SWITCHES = 1.0
CONVOY_HOLD_RUNS = 6


def _verdict(cid: str, verdict: str, summary: str, **evidence: Any) -> Claim:
    return Claim(id=cid, claim=CLAIM_TEXT[cid], verdict=verdict, summary=summary, evidence=evidence)


# --------------------------------------------------------------------------
# reading the document
# --------------------------------------------------------------------------
def _best(doc: ResultsDocument, interp: Optional[str], workload: str, backend: str,
          max_workers: Optional[int] = None, **kw: Any) -> Optional[Cell]:
    """The ok cell with the most workers (<= max_workers) for this combination."""
    cs = [c for c in doc.ok_cells(interpreter=interp, workload=workload, backend=backend, **kw)
          if max_workers is None or c.workers <= max_workers]
    return max(cs, key=lambda c: c.workers) if cs else None


def reference(doc: ResultsDocument) -> Optional[str]:
    """The CPython with a GIL that C2, C6, C7, C8 are judged on (order-independent)."""
    if doc.experiments.reference:
        return doc.experiments.reference
    gil = sorted((label for label in doc.interpreter_order() if is_gil_cpython(doc.facts(label))),
                 key=lambda label: (doc.facts(label).version or "", label))
    return gil[0] if gil else None


def is_gil_cpython(f: InterpreterFacts) -> bool:
    return f.implementation == "CPython" and f.gil_enabled is True and not f.free_threaded


def _version_key(v: Optional[str]) -> Tuple[int, ...]:
    out = []
    for part in (v or "0").split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def reach(c: Cell, threshold: float) -> Optional[bool]:
    """True: the whole speedup interval is >= threshold; False: all below; None: straddles."""
    sp = c.speedup if c.speedup is not None else 0.0
    lo, hi = c.speedup_ci95 or (sp, sp)
    if lo >= threshold:
        return True
    if hi < threshold:
        return False
    return None


def parallel(c: Cell) -> Optional[bool]:
    """Did threads run in parallel at all (C3, C4, C5: an implementation without a GIL)?
    True: the whole speedup interval is at or above NO_SCALE (a GIL allows ~1.0x); False:
    all of it below; None: it straddles.  How far they got is the median's to say, against
    SCALES.  (Judging the interval against SCALES made 1.79x [1.48-1.90] and Jython's
    1.71x [1.39-1.80] inconclusive in one quiet run of three.)"""
    return reach(c, NO_SCALE)


def _busy(items: Iterable[Any]) -> Optional[float]:
    """The largest share of the CPUs other processes took while these were measured, when
    it is above BUSY_SHARE (else None)."""
    worst = 0.0
    for x in items:
        worst = max(worst, (getattr(x, "others_share", None) or 0.0) + (getattr(x, "steal_share", None) or 0.0))
    return worst if worst > BUSY_SHARE else None


def _busy_claim(cid: str, share: float, **evidence: Any) -> Claim:
    return _verdict(cid, "inconclusive", "other processes used %.0f%% of the CPUs while %s was "
                    "measured; rerun on a quiet machine" % (100 * share, cid),
                    busy_share=round(share, 3), **evidence)


def _fig(c: Cell) -> Dict[str, Any]:
    f = c.figures()
    if c.others_share is not None:
        f["others_share"] = c.others_share
    return f


def _x(c: Cell) -> str:
    """``1.93x [1.88-1.97]``: a speedup and its interval."""
    lo, hi = c.speedup_ci95 or (c.speedup, c.speedup)
    return "%.2fx [%.2f-%.2f]" % (c.speedup or 0.0, lo or 0.0, hi or 0.0)


def _scaling_cells(doc: ResultsDocument) -> Dict[str, Cell]:
    """Per interpreter: the cpu-python threads cell at the most workers <= cores."""
    n = max(2, doc.cores)
    out = {}
    for label in doc.interpreter_order():
        c = _best(doc, label, "cpu-python", "threads", n)
        if c is not None:
            out[label] = c
    return out


def _gil_on(doc: ResultsDocument, label: str, c: Cell) -> bool:
    f = doc.facts(label)
    return bool(c.gil_reenabled_by) or (f.gil_enabled is True if c.gil_enabled is None else c.gil_enabled)


# --------------------------------------------------------------------------
# C1 .. C5: pure-Python CPU work in threads, across interpreters
# --------------------------------------------------------------------------
def judge_c1(doc: ResultsDocument) -> Claim:
    rows = _scaling_cells(doc)
    gil = {k: c for k, c in rows.items() if _gil_on(doc, k, c)}
    ev: Dict[str, Any] = {"gil_builds": {k: _fig(c) for k, c in gil.items()},
                          "thresholds": {"speedup_fails_at": SCALES, "cpu_per_wall_holds_below": NO_SCALE}}
    if doc.cores < 2:
        return _verdict("C1", "untestable", "only %d usable core: parallelism can't show" % doc.cores, **ev)
    if not gil:
        return _verdict("C1", "untestable", "no interpreter with a GIL was measured", **ev)
    busy = _busy(gil.values())
    if busy:
        return _busy_claim("C1", busy, **ev)
    text = "; ".join("%s: %d threads %s, CPU/wall %.2f" % (k, c.workers, _x(c), c.parallelism or 0)
                     for k, c in gil.items())
    reached = {k: reach(c, SCALES) for k, c in gil.items()}
    one_core = {k: (c.parallelism or 0.0) < NO_SCALE for k, c in gil.items()}
    if any(r is None for r in reached.values()):
        verdict = "inconclusive"
        text += " (an interval straddles %.1fx: rerun with more --repeats)" % SCALES
    elif all(r is False and one_core[k] for k, r in reached.items()):
        verdict = "holds"
    elif any(r is True and (gil[k].parallelism or 0) >= SCALES for k, r in reached.items()):
        verdict = "fails"
    else:
        verdict = "partly"
    free = [k for k in rows if k not in gil]
    if free:
        text += " (without a GIL, see C4/C5: %s)" % ", ".join("%s %s" % (k, _x(rows[k])) for k in free)
    return _verdict("C1", verdict, "pure-Python CPU work in threads, GIL on: " + text, **ev)


def judge_c4(doc: ResultsDocument) -> Claim:
    rows = _scaling_cells(doc)
    jy = {k: c for k, c in rows.items() if (doc.facts(k).implementation or "").lower() == "jython"}
    others = {k: c for k, c in rows.items() if doc.facts(k).implementation not in ("CPython", "Jython")}
    ev = {"jython": {k: _fig(c) for k, c in jy.items()},
          "other_implementations": {k: dict(_fig(c), implementation=doc.facts(k).implementation)
                                    for k, c in others.items()},
          "ironpython": "not testable here: IronPython can't be installed from the package "
                        "sources this machine reaches"}
    other_txt = "; ".join("%s (%s, has a GIL) %s" % (k, doc.facts(k).implementation, _x(c))
                          for k, c in others.items())
    if not jy:
        return _verdict("C4", "untestable", "no Jython was measured (install it: scripts/install-"
                        "interpreters jython, then --python jython); IronPython can't be installed "
                        "here" + ("; measured: " + other_txt if other_txt else ""), **ev)
    if doc.cores < 2:
        return _verdict("C4", "untestable", "only one usable core", **ev)
    busy = _busy(jy.values())
    if busy:
        return _busy_claim("C4", busy, **ev)
    ran = [parallel(c) for c in jy.values()]
    text = "Jython threads: %s" % ", ".join("%s %s, CPU/wall %.2f" % (k, _x(c), c.parallelism or 0)
                                            for k, c in jy.items())
    if all(ran):
        # the claim names two implementations; only one can be tested here
        verdict = "partly"
        text += ": Jython runs Python threads in parallel%s; IronPython is not testable here" % (
            "" if all((c.speedup or 0) >= SCALES for c in jy.values())
            else " (less than %.1fx)" % SCALES)
    elif all(r is False for r in ran):
        verdict = "fails"
        text += ": Jython's threads did not run in parallel here; IronPython is not testable here"
    else:   # an interval across "no parallelism"
        verdict = "inconclusive"
        text += (" (the interval straddles %.1fx: a JIT still warming up, or a busy machine; "
                 "rerun with more --repeats)" % NO_SCALE)
    if other_txt:
        text += "; for comparison: " + other_txt
    return _verdict("C4", verdict, text, **ev)


def _free_threaded(doc: ResultsDocument, rows: Dict[str, Cell]) -> Dict[str, Cell]:
    """Free-threaded CPython builds running without their GIL, newest first."""
    ft = {k: c for k, c in rows.items()
          if doc.facts(k).implementation == "CPython" and doc.facts(k).free_threaded
          and not _gil_on(doc, k, c)}
    return dict(sorted(ft.items(), key=lambda kv: _version_key(doc.facts(kv[0]).version), reverse=True))


def judge_c5(doc: ResultsDocument) -> Claim:
    rows = _scaling_cells(doc)
    free = _free_threaded(doc, rows)
    controls = {k: c for k, c in rows.items() if doc.facts(k).free_threaded and _gil_on(doc, k, c)}
    cost = single_thread_cost(doc)
    ev = {"free_threaded": {k: dict(_fig(c), version=doc.facts(k).version) for k, c in free.items()},
          "gil_on_controls": {k: _fig(c) for k, c in controls.items()}, "single_thread_cost": cost}
    if not free:
        return _verdict("C5", "untestable", "no free-threaded CPython running without its GIL was "
                        "measured (build one: scripts/install-interpreters py314t, then "
                        "--python /opt/threadwise/py314t/bin/python3.14t)", **ev)
    if doc.cores < 2:
        return _verdict("C5", "untestable", "only one usable core", **ev)
    newest, c = next(iter(free.items()))
    busy = _busy([c])
    if busy:
        return _busy_claim("C5", busy, **ev)
    txt = "%s (newest free-threaded build) %s, CPU/wall %.2f" % (newest, _x(c), c.parallelism or 0)
    older = [(k, o) for k, o in free.items() if k != newest]
    if older:
        txt += "; beside it " + ", ".join("%s %s" % (k, _x(o)) for k, o in older)
    if controls:
        txt += "; with PYTHON_GIL=1: " + ", ".join("%s %s" % (k, _x(o)) for k, o in controls.items())
    if cost:
        txt += "; single-thread cost: " + ", ".join(
            "%s %.2fx vs %s" % (x["free_threaded"], x["ratio"], x["gil_build"]) for x in cost)
    # the question is whether threads ran in parallel at all (a GIL allows ~1.0x): the
    # interval is judged against NO_SCALE, and the median then says how far they got
    # (judging the interval against SCALES made a 1.79x [1.48-1.90] inconclusive in one of
    # three quiet runs while the other two read 1.66x [1.54-1.80] and 1.83x [1.67-1.85])
    r = parallel(c)
    if r is None:
        return _verdict("C5", "inconclusive", txt + " (the interval straddles %.1fx)" % NO_SCALE, **ev)
    if r is False:
        return _verdict("C5", "holds", "the free-threaded build did not scale here: " + txt, **ev)
    if (c.speedup or 0.0) >= SCALES:
        return _verdict("C5", "fails", "CPython without its GIL (PEP 703) runs threads in parallel: " + txt, **ev)
    return _verdict("C5", "partly", "the free-threaded build ran threads in parallel, but less than "
                    "%.1fx: %s" % (SCALES, txt), **ev)


def single_thread_cost(doc: ResultsDocument) -> List[Dict[str, Any]]:
    """Serial time per unit of cpu-python work of each free-threaded CPython against a GIL
    CPython build (same minor version when measured), with an interval from the medians'."""
    out = []
    serial = {k: c for k in doc.interpreter_order()
              for c in [_best(doc, k, "cpu-python", "serial")] if c is not None and c.size}
    for k, c in serial.items():
        f = doc.facts(k)
        if f.implementation != "CPython" or not f.free_threaded or _gil_on(doc, k, c):
            continue
        gil = [g for g in serial if is_gil_cpython(doc.facts(g))]
        same = [g for g in gil if (doc.facts(g).version or "")[:4] == (f.version or "")[:4]]
        for g in same or gil:
            b = serial[g]
            if c.wall_s is None or b.wall_s is None or not c.tasks or not b.tasks:
                continue
            unit_c = float(c.tasks * (c.size or 1))
            unit_b = float(b.tasks * (b.size or 1))
            ratio = (c.wall_s.median / unit_c) / (b.wall_s.median / unit_b)
            if len(c.wall_s.samples) >= 3 and len(b.wall_s.samples) >= 3:
                # a bootstrap 95% interval of the ratio of the medians (the interval from
                # both medians' own intervals covers far more than 95%: it straddled
                # COST_MIN where the samples did not)
                from ..stats import speedup
                r = speedup([x / unit_c for x in c.wall_s.samples],
                            [x / unit_b for x in b.wall_s.samples])
                lo, hi = r.ci95
            else:
                lo = (c.wall_s.ci95[0] / unit_c) / (b.wall_s.ci95[1] / unit_b)
                hi = (c.wall_s.ci95[1] / unit_c) / (b.wall_s.ci95[0] / unit_b)
            out.append({"free_threaded": k, "gil_build": g, "ratio": round(ratio, 3),
                        "ratio_ci95": [round(lo, 3), round(hi, 3)],
                        "same_minor_version": bool(same), "others_share": max(c.others_share or 0, b.others_share or 0)})
    return out


def contention(doc: ResultsDocument) -> List[Dict[str, Any]]:
    """On each GIL-free CPython: threads on shared objects vs on private ones (reference counts)."""
    out = []
    n = max(2, doc.cores)
    for label in doc.interpreter_order():
        shared = _best(doc, label, "shared-objects", "threads", n)
        private = _best(doc, label, "private-objects", "threads", n)
        if shared is None or private is None or not shared.speedup or not private.speedup:
            continue
        slo, shi = shared.speedup_ci95 or (shared.speedup, shared.speedup)
        plo, phi = private.speedup_ci95 or (private.speedup, private.speedup)
        ci = [plo / max(shi, 1e-9), phi / max(slo, 1e-9)]
        slowdown = private.speedup / shared.speedup
        bs = _best(doc, label, "shared-objects", "serial")
        bp = _best(doc, label, "private-objects", "serial")
        if bs is not None and bp is not None and all(
                len(x.samples) >= 3 for x in (bs, shared, bp, private)):
            # a bootstrap interval of the ratio itself (the one from both speedups' intervals
            # covers far more than 95%: it straddled CONTENTION_MIN where the samples did not)
            from ..stats import speedup_ratio
            value, (lo, hi) = speedup_ratio(bp.samples, private.samples, bs.samples, shared.samples)
            ci = [lo * slowdown / value, hi * slowdown / value]
        out.append({"interpreter": label, "workers": shared.workers,
                    "shared_speedup": round(shared.speedup, 3), "private_speedup": round(private.speedup, 3),
                    "slowdown": round(slowdown, 3),
                    "slowdown_ci95": [round(ci[0], 3), round(ci[1], 3)],
                    "others_share": max(shared.others_share or 0, private.others_share or 0)})
    return out


def _interval_reach(ci: Sequence[float], threshold: float) -> Optional[bool]:
    lo, hi = ci
    return True if lo >= threshold else (False if hi < threshold else None)


def judge_c3(doc: ResultsDocument) -> Claim:
    rows = _scaling_cells(doc)
    free = {k: c for k, c in rows.items() if not _gil_on(doc, k, c)}
    cost = [x for x in single_thread_cost(doc) if x["same_minor_version"]] or single_thread_cost(doc)
    cont = [x for x in contention(doc) if x["interpreter"] in free]
    ev = {"gil_free": {k: dict(_fig(c), implementation=doc.facts(k).implementation) for k, c in free.items()},
          "single_thread_cost": cost, "shared_object_contention": cont,
          "thresholds": {"cost_min": COST_MIN, "contention_min": CONTENTION_MIN, "scales": SCALES}}
    if not free:
        return _verdict("C3", "untestable", "no interpreter without a GIL was measured, so there is "
                        "nothing to compare the GIL build with (install one: scripts/install-interpreters)", **ev)
    shares = [x["others_share"] for x in cost + cont]
    busy = _busy(list(free.values())) or (max(shares) if shares and max(shares) > BUSY_SHARE else None)
    if busy:
        return _busy_claim("C3", busy, **ev)
    scaled = {k: parallel(c) for k, c in free.items()}
    detail = "GIL-free: %s" % ", ".join("%s (%s) %s" % (k, doc.facts(k).implementation, _x(c))
                                        for k, c in free.items())
    costs = [_interval_reach(x["ratio_ci95"], COST_MIN) for x in cost]
    conts = [_interval_reach(x["slowdown_ci95"], CONTENTION_MIN) for x in cont]
    if cost:
        detail += "; single-thread cost of the free-threaded build: " + ", ".join(
            "%s %.2fx [%.2f-%.2f] the time of %s" % (x["free_threaded"], x["ratio"], x["ratio_ci95"][0],
                                                   x["ratio_ci95"][1], x["gil_build"]) for x in cost)
    if cont:
        detail += "; threads on shared objects vs private ones: " + ", ".join(
            "%s %.2fx slower [%.2f-%.2f]" % (x["interpreter"], x["slowdown"], x["slowdown_ci95"][0],
                                            x["slowdown_ci95"][1]) for x in cont)
    if not any(scaled.values()):
        verdict = "inconclusive" if any(v is None for v in scaled.values()) else "fails"
        why = "no GIL-free interpreter ran threads in parallel here"
    elif not cost and not cont:
        verdict, why = "partly", ("the GIL is an implementation detail (GIL-free implementations run "
                                  "threads in parallel); its tie to memory management was not measured "
                                  "(no free-threaded CPython with a GIL build beside it)")
    elif any(costs) or any(conts):
        verdict, why = "holds", ("the GIL is an implementation detail, and removing it costs in memory "
                                 "management: atomic/biased reference counts slow single threads "
                                 "and contend on shared objects")
    elif all(v is False for v in costs + conts):
        verdict, why = "partly", ("the GIL is an implementation detail, but this run measured no cost "
                                  "of removing it in memory management")
    else:
        verdict, why = "inconclusive", "the cost intervals straddle their thresholds; rerun with more --repeats"
    return _verdict("C3", verdict, why + ". " + detail, **ev)


# --------------------------------------------------------------------------
# C2, C6, C7, C8: on the reference CPython with a GIL
# --------------------------------------------------------------------------
def _no_reference(cid: str) -> Claim:
    return _verdict(cid, "untestable", "no CPython with a GIL was measured (it is the interpreter "
                    "this claim is about); add --python python3")


def judge_c2(doc: ResultsDocument) -> Claim:
    cores = doc.cores
    label = reference(doc)
    if label is None:
        return _no_reference("C2")
    io = {w: c for w in ("sleep", "socket") for c in [_best(doc, label, w, "threads")] if c}
    native = {w: c for w in ("hashlib", "zlib") for c in [_best(doc, label, w, "threads", max(2, cores))] if c}
    fio = _best(doc, label, "file-io", "threads")
    ev: Dict[str, Any] = {"interpreter": label, "io": {w: _fig(c) for w, c in io.items()},
                          "native": {w: _fig(c) for w, c in native.items()},
                          "file_io": _fig(fio) if fio else None,
                          "thresholds": {"io_efficiency": IO_EFFICIENCY, "native_efficiency": NATIVE_EFFICIENCY}}
    if not io and not native:
        return _verdict("C2", "untestable", "the I/O and native workloads were not measured", **ev)
    busy = _busy(list(io.values()) + list(native.values()))
    if busy:
        return _busy_claim("C2", busy, **ev)
    io_ok = {w: reach(c, IO_EFFICIENCY * c.workers) for w, c in io.items()}
    nat_ok = {w: reach(c, NATIVE_EFFICIENCY * min(c.workers, cores)) for w, c in native.items()}
    if cores < 2:
        nat_ok = {}
    parts = ["%s x%d %s" % (w, c.workers, _x(c)) for w, c in list(io.items()) + list(native.items())]
    ok = list(io_ok.values()) + list(nat_ok.values())
    if any(v is None for v in ok):
        verdict = "inconclusive"
    elif ok and all(ok):
        verdict = "holds"
    elif any(ok):
        verdict = "partly"
    else:
        verdict = "fails"
    note = ""
    if fio:
        note = ("; file-io x%d %s is reported but not judged: reading and writing the page cache is "
                "memory copying, not waiting" % (fio.workers, _x(fio)))
    if cores < 2:
        note += "; one core: native code can't run in parallel here"
    return _verdict("C2", verdict, "threads on %s: %s%s" % (label, ", ".join(parts), note), **ev)


def judge_c6(doc: ResultsDocument) -> Claim:
    label = reference(doc)
    every = [g for g in doc.experiments.gilcheck if label is None or g.interpreter in (None, label)]
    checks = [g for g in every if g.measured]
    if not checks:
        why = next((g.error or g.unsupported for g in every), None)
        return _verdict("C6", "untestable", "the per-call GIL check did not run" + (": " + why if why else ""))
    native = [g for g in checks if g.lib not in ("time",) and g.workload != "hashlib-small"]
    released = [g.label for g in native if g.holds is False]
    held = [g.label for g in native if g.holds is True]
    undecided = [g.label for g in native if g.holds is None]
    ev = {"interpreter": label, "calls": [as_json(g) for g in checks],
          "released": released, "held": held, "undecided": undecided,
          "rule": "holds when more than %d%% of the native calls tested release the GIL" % (100 * MANY)}
    busy = _busy(checks)
    if busy:
        return _busy_claim("C6", busy, **ev)
    txt = "on %s, %d of %d popular native calls release the GIL: %s; hold it: %s" % (
        label, len(released), len(native), ", ".join(released) or "none", ", ".join(held) or "none")
    small = next((g for g in checks if g.workload == "hashlib-small"), None)
    if small is not None and small.holds is True:
        txt += " (hashlib keeps it below 2048 bytes: sha256 of 1 KiB held it)"
    if undecided:
        txt += "; undecided: " + ", ".join(undecided)
    decided = len(released) + len(held)
    if not native or len(undecided) * 3 > len(native):
        verdict = "inconclusive" if decided else "untestable"
    elif len(released) > MANY * len(native):
        verdict = "holds"
    elif released:
        verdict = "partly"
    else:
        verdict = "fails"
    return _verdict("C6", verdict, txt, **ev)


def _start_methods(doc: ResultsDocument, label: Optional[str]) -> Dict[str, Cell]:
    """C7: per start method actually used, the processes cell with the most workers."""
    methods: Dict[str, Cell] = {}
    for c in doc.ok_cells(interpreter=label, workload="cpu-python", backend="processes", per_task=False):
        m = c.start_method or ("default (%s)" % c.start_method_used if c.start_method_used else "default")
        if m not in methods or c.workers > methods[m].workers:
            methods[m] = c
    return methods


def judge_c7(doc: ResultsDocument) -> Claim:
    cores = doc.cores
    label = reference(doc)
    if label is None:
        return _no_reference("C7")
    methods = _start_methods(doc, label)
    tiny = _best(doc, label, "cpu-python", "processes", tag="tiny")
    tiny_base = _best(doc, label, "cpu-python", "serial", tag="tiny")
    ev: Dict[str, Any] = {"interpreter": label, "start_methods": {
        m: dict(_fig(c), startup_per_worker_ms=round(1000 * (c.startup_s or 0) / c.workers, 2),
                worker_maxrss_mib=round((c.worker_maxrss_bytes or 0) / 2 ** 20, 1),
                start_method_used=c.start_method_used) for m, c in methods.items()}}
    if tiny and tiny_base and tiny.task_s is not None and tiny_base.task_s is not None:
        ev["tiny_tasks"] = dict(_fig(tiny), tasks=tiny.tasks,
                                serial_us_per_task=round(1e6 * tiny_base.task_s, 2),
                                processes_us_per_task=round(1e6 * tiny.task_s, 2))
    if not methods:
        return _verdict("C7", "untestable", "the processes backend was not measured (or is not "
                        "available on %s)" % label, **ev)
    if cores < 2:
        return _verdict("C7", "untestable", "only one usable core", **ev)
    busy = _busy(list(methods.values()) + [c for c in (tiny, tiny_base) if c])
    if busy:
        return _busy_claim("C7", busy, **ev)
    txt = "pure-Python work in processes on %s: " % label + ", ".join(
        "%s x%d %s (start %.1f ms/worker, %.0f MiB each)" % (
            m, c.workers, _x(c), 1000 * (c.startup_s or 0) / c.workers, (c.worker_maxrss_bytes or 0) / 2 ** 20)
        for m, c in methods.items())
    reached = {m: reach(c, PROC_EFFICIENCY * min(c.workers, cores)) for m, c in methods.items()}
    tiny_wins = reach(tiny, 1.0) if tiny is not None and "tiny_tasks" in ev else True
    if tiny is not None and "tiny_tasks" in ev:
        t = ev["tiny_tasks"]
        txt += "; tiny tasks one message each: %s (%.1f us per task against %.1f serial)" % (
            _x(tiny), t["processes_us_per_task"], t["serial_us_per_task"])
    if any(reached.values()):
        if tiny_wins is None:
            verdict = "inconclusive"
        elif tiny_wins:
            verdict = "holds"
        else:
            verdict = "partly"
            txt += ": worth it only when tasks are large against the cost of sending them"
    elif any(v is None for v in reached.values()):
        verdict = "inconclusive"
    else:
        verdict = "fails"
    return _verdict("C7", verdict, txt, **ev)


def _convoy_pick(runs: Sequence[ConvoyRun], pin: bool, k: int, burner: str = "threads",
                 si: Optional[float] = None) -> List[ConvoyRun]:
    return [r for r in runs if r.pinned == pin and r.cpu_threads == k and r.burner == burner
            and r.config.get("switch_interval") == si]


def _convoy_ms(rs: Sequence[ConvoyRun]) -> Optional[Dict[str, Any]]:
    """Median of the runs' medians, the worst p99, and every run's median."""
    if not rs:
        return None
    meds = sorted(r.median_s or 0.0 for r in rs)
    return {"median_ms": round(1000 * meds[len(meds) // 2], 3),
            "p99_ms": round(1000 * max(r.p99_s or 0.0 for r in rs), 3),
            "run_medians_ms": [round(1000 * (r.median_s or 0.0), 3) for r in rs],
            "round_trips": sum(r.round_trips or 0 for r in rs)}


def judge_c8(doc: ResultsDocument) -> Claim:
    label = reference(doc)
    every = [r for r in doc.experiments.convoy if label is None or r.interpreter in (None, label)]
    runs = [r for r in every if r.median_s is not None]
    if not runs:
        bad = next((r.unsupported or r.error for r in every), None)
        return _verdict("C8", "untestable", "the convoy experiment did not run" + (": " + bad if bad else ""))
    table = {("one core" if pin else "all cores"): {k: _convoy_ms(_convoy_pick(runs, pin, k)) for k in (0, 1, 2)}
             for pin in (True, False)}
    control = _convoy_ms(_convoy_pick(runs, True, 1, "processes"))
    sweep = {si: _convoy_ms(_convoy_pick(runs, True, 1, "threads", si)) for si in (0.001, 0.02)}
    switch = next((r.switch_interval_s for r in runs if r.switch_interval_s), None) or 0.005
    ev: Dict[str, Any] = {"interpreter": label, "latency": table, "process_burner_control_one_core": control,
                          "switch_interval_sweep": sweep,
                          "rule": "a run shows the convoy when its median is >= %g x the idle median and "
                                  ">= %g switch intervals (%.1f ms) above it; fails when a run shows a "
                                  "strong one (>= %g switch interval above idle), holds when none of "
                                  ">= %d runs shows it" % (
                                      CONVOY_FACTOR, CONVOY_MIN_SWITCHES, 1000 * CONVOY_MIN_SWITCHES * switch,
                                      CONVOY_STRONG_SWITCHES, CONVOY_HOLD_RUNS)}
    base_runs = _convoy_pick(runs, True, 0)
    busy_runs = _convoy_pick(runs, True, 1) + _convoy_pick(runs, True, 2)
    if not base_runs or not busy_runs:
        return _verdict("C8", "untestable", "pinning to one core was not possible here", **ev)
    busy = _busy(base_runs + busy_runs)
    if busy:
        return _busy_claim("C8", busy, **ev)
    base = sorted(r.median_s or 0.0 for r in base_runs)[len(base_runs) // 2]

    def shows(r: ConvoyRun) -> bool:
        m = r.median_s or 0.0
        return m >= CONVOY_FACTOR * max(base, 1e-9) and m - base >= CONVOY_MIN_SWITCHES * switch

    convoy = [r for r in busy_runs if shows(r)]
    strong = [r for r in convoy if (r.median_s or 0.0) - base >= CONVOY_STRONG_SWITCHES * switch]
    ctl_runs = _convoy_pick(runs, True, 1, "processes")
    ctl_convoy = [r for r in ctl_runs if shows(r)]
    worst = max(busy_runs, key=lambda r: r.median_s or 0.0)
    worst_s = worst.median_s or 0.0
    txt = ("I/O round trip on ONE core: %.3f ms median alone; beside 1-2 CPU-bound threads the convoy "
           "showed in %d of %d runs (worst median %.3f ms, p99 %.3f ms)"
           % (1000 * base, len(convoy), len(busy_runs), 1000 * worst_s, 1000 * (worst.p99_s or 0.0)))
    if control:
        txt += "; beside a CPU-bound process instead: %.3f ms" % control["median_ms"]
    s1, s20 = sweep.get(0.001), sweep.get(0.02)
    if s1 and s20:
        txt += "; switch interval 1 ms -> %.2f ms, 20 ms -> %.2f ms" % (s1["median_ms"], s20["median_ms"])
    ev["convoy_runs"] = "%d of %d" % (len(convoy), len(busy_runs))
    ev["factor"] = round(worst_s / max(base, 1e-9), 2)
    if strong:
        if ctl_runs and len(ctl_convoy) * 2 > len(ctl_runs):
            verdict = "partly"
            txt += " (the process control is slow too: the core itself is the bottleneck)"
        else:
            verdict = "fails"
            txt += ": the GIL convoy hurts on a single core too"
    elif not convoy and len(busy_runs) >= CONVOY_HOLD_RUNS:
        verdict = "holds"
    else:
        verdict = "inconclusive"
        txt += (": too few runs to say it never happens (it is settled early in a run)"
                if not convoy else ": only weak effects; rerun on a quiet machine")
    return _verdict("C8", verdict, txt, **ev)


# --------------------------------------------------------------------------
# C9: does the GIL make unsynchronized code safe?
# --------------------------------------------------------------------------
def _lost(runs: Sequence[RaceRun]) -> Dict[str, Dict[str, Any]]:
    """Per operation: updates lost in each run, and in how many runs any were lost."""
    out: Dict[str, Dict[str, Any]] = {}
    for r in runs:
        if r.lost is None:
            continue
        d = out.setdefault(r.op, {"lost": [], "expected": r.expected})
        d["lost"].append(r.lost)
    for d in out.values():
        d["runs_losing"] = sum(1 for x in d["lost"] if x > 0)
    return out


def judge_c9(doc: ResultsDocument) -> Claim:
    by_interp: Dict[str, List[RaceRun]] = {}
    for r in doc.experiments.races:
        if r.interpreter:
            by_interp.setdefault(r.interpreter, []).append(r)
    gil = {k: _lost(v) for k, v in by_interp.items() if is_gil_cpython(doc.facts(k))}
    ft = {k: _lost(v) for k, v in by_interp.items()
          if doc.facts(k).free_threaded and doc.facts(k).gil_enabled is False}
    ev = {"gil_builds": gil, "free_threaded": ft}
    if not gil or not ft:
        return _verdict("C9", "untestable", "needs a CPython with a GIL and a free-threaded CPython "
                        "to compare (measured: %s)" % (", ".join(by_interp) or "none"), **ev)
    busy = _busy([r for v in by_interp.values() for r in v])
    if busy:
        return _busy_claim("C9", busy, **ev)
    ops = sorted({op for d in list(gil.values()) + list(ft.values()) for op in d})

    def losing(table: Dict[str, Dict[str, Dict[str, Any]]], op: str) -> bool:
        return any(d.get(op, {}).get("runs_losing", 0) > 0 for d in table.values())

    protected = [op for op in ops if losing(ft, op) and not losing(gil, op)]
    unsafe = [op for op in ops if losing(gil, op)]
    txt = "; ".join("%s: GIL builds lost %s, free-threaded lost %s" % (
        op, _fmt_lost(gil, op), _fmt_lost(ft, op)) for op in ops)
    if protected and not unsafe:
        verdict = "holds"
        why = "the GIL kept these unsynchronized updates whole, the free-threaded build lost some"
    elif protected:
        verdict = "partly"
        why = ("the GIL kept %s whole, but %s lost updates with the GIL too: it makes simple "
               "updates safer, not thread-safe" % (", ".join(protected), ", ".join(unsafe)))
    else:
        verdict = "fails"
        why = "the GIL builds lost updates wherever the free-threaded build did"
    return _verdict("C9", verdict, why + ". " + txt, **ev)


def _fmt_lost(table: Dict[str, Dict[str, Dict[str, Any]]], op: str) -> str:
    parts = []
    for label, d in table.items():
        if op in d:
            lost = d[op]["lost"]
            parts.append("%s %d of %d runs (up to %d of %d)" % (
                label, d[op]["runs_losing"], len(lost), max(lost), d[op]["expected"] or 0))
    return ", ".join(parts) or "-"


JUDGES: Dict[str, Callable[[ResultsDocument], Claim]] = {
    "C1": judge_c1, "C2": judge_c2, "C3": judge_c3, "C4": judge_c4, "C5": judge_c5,
    "C6": judge_c6, "C7": judge_c7, "C8": judge_c8, "C9": judge_c9}


def judge(doc: ResultsDocument, only: Optional[Sequence[str]] = None) -> List[Claim]:
    """Verdicts for the claims (all, or ``only``) from a results document."""
    out = []
    for cid in (only or CLAIM_IDS):
        try:
            out.append(JUDGES[cid](doc))
        except (KeyError, TypeError, ZeroDivisionError, ValueError) as e:
            out.append(_verdict(cid, "untestable", "the data for this claim is incomplete (%s: %s)"
                                % (type(e).__name__, e)))
    return out
