"""Verdicts: pure functions from a :class:`~threadwise.bench.model.ResultsDocument` to claims.

    ResultsDocument (cells + experiments, measured by claims/experiments.py)
        --judge_c1 .. judge_c8--> Claim(id, claim, verdict, summary, evidence)

No I/O, no clocks: the same document always gives the same verdicts, and the tests
feed recorded documents through every branch.  Every threshold is a constant below,
and docs/claims.md lists them.  A verdict is "untestable" with its reason when the
document lacks what it needs (one core, no Jython, no free-threaded build...), never
a guess.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

from ..model import Cell, Claim, ConvoyRun, ResultsDocument, as_json

CLAIM_IDS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8")
CLAIM_TEXT = {
    "C1": "The GIL stops two bytecodes running at once: Python code gets no parallelism from threads",
    "C2": "Threads still cut run time and raise throughput (I/O, GIL-releasing native code)",
    "C3": "The GIL is a CPython detail tied to memory management",
    "C4": "Jython and IronPython have no GIL and run Python threads in parallel",
    "C5": "CPython can't remove the GIL",
    "C6": "Many libraries bypass the GIL in C extensions",
    "C7": "Use multiprocessing to use all cores",
    "C8": "The GIL is only a problem on multiprocessor machines",
}

# ---- thresholds (docs/claims.md) ------------------------------------------
#: a speedup (and CPU/wall parallelism) at or above this on >= 2 cores means "ran in parallel"
SCALES = 1.5
#: below this, "no parallelism"
NO_SCALE = 1.2
#: I/O in threads "cuts run time" when speedup >= this share of the worker count
IO_EFFICIENCY = 0.7
#: GIL-releasing native code scales when speedup >= this share of min(workers, cores)
NATIVE_EFFICIENCY = 0.7
#: processes "use all cores" when speedup >= this share of min(workers, cores)
PROC_EFFICIENCY = 0.7
#: convoy: median latency with CPU-bound threads this many times the idle median = a GIL problem
CONVOY_FACTOR = 5.0


def _verdict(cid: str, verdict: str, summary: str, **evidence: Any) -> Claim:
    return Claim(id=cid, claim=CLAIM_TEXT[cid], verdict=verdict, summary=summary, evidence=evidence)


def _best(doc: ResultsDocument, interp: Optional[str], workload: str, backend: str,
          max_workers: Optional[int] = None, **kw: Any) -> Optional[Cell]:
    """The ok cell with the most workers (<= max_workers) for this combination."""
    cs = [c for c in doc.ok_cells(interpreter=interp, workload=workload, backend=backend, **kw)
          if max_workers is None or c.workers <= max_workers]
    return max(cs, key=lambda c: c.workers) if cs else None


def _first_interpreter(doc: ResultsDocument) -> Optional[str]:
    return (doc.interpreter_order() or [None])[0]


def _scaling_rows(doc: ResultsDocument) -> Dict[str, Dict[str, Any]]:
    """Per interpreter: facts + the cpu-python threads cell at the most workers <= cores."""
    n = max(2, doc.cores)
    rows = {}
    for label in doc.interpreter_order():
        info = doc.facts(label)
        t = _best(doc, label, "cpu-python", "threads", n)
        if t is None:
            continue
        serial = _best(doc, label, "cpu-python", "serial")
        rows[label] = {"implementation": info.implementation, "version": info.version,
                       "free_threaded": info.free_threaded, "gil_enabled": info.gil_enabled,
                       "gil_reenabled_by": list(t.gil_reenabled_by) if t.gil_reenabled_by else None,
                       "threads": t.figures(),
                       "serial_task_s": serial.task_s if serial else None,
                       "serial_size": serial.size if serial else None}
    return rows


def judge_c1(doc: ResultsDocument) -> Claim:
    cores = doc.cores
    rows = _scaling_rows(doc)
    gil = {k: v for k, v in rows.items() if v["gil_enabled"] and not v.get("gil_reenabled_by")}
    gil.update({k: v for k, v in rows.items() if v.get("gil_reenabled_by")})
    if cores < 2:
        return _verdict("C1", "untestable", "only %d usable core: parallelism can't show" % cores,
                        interpreters=rows)
    if not gil:
        return _verdict("C1", "untestable", "no interpreter with a GIL was measured", interpreters=rows)
    sp = {k: v["threads"]["speedup"] for k, v in gil.items()}
    par = {k: v["threads"]["parallelism"] for k, v in gil.items()}
    text = "; ".join("%s: %d threads %.2fx, CPU/wall %.2f" % (k, v["threads"]["workers"], sp[k], par[k])
                     for k, v in gil.items())
    # CPU/wall is the direct reading of "two bytecodes at once"; speedup confirms it
    if all(par[k] < NO_SCALE and sp[k] < SCALES for k in gil):
        verdict = "holds"
    elif any(sp[k] >= SCALES and par[k] >= SCALES for k in gil):
        verdict = "fails"
    else:
        verdict = "partly"
    nogil = [k for k in rows if k not in gil]
    if nogil:
        text += " (without a GIL, see C4/C5: %s)" % ", ".join(
            "%s %.2fx" % (k, rows[k]["threads"]["speedup"]) for k in nogil)
    return _verdict("C1", verdict, "pure-Python CPU work in threads, GIL on: " + text,
                    interpreters=rows, thresholds={"holds_below": NO_SCALE, "fails_at": SCALES})


def judge_c2(doc: ResultsDocument) -> Claim:
    cores = doc.cores
    label = _first_interpreter(doc)
    io, native = {}, {}
    for w in ("sleep", "socket", "file-io"):
        c = _best(doc, label, w, "threads")
        if c:
            io[w] = c.figures()
    for w in ("hashlib", "zlib"):
        c = _best(doc, label, w, "threads", max(2, cores))
        if c:
            native[w] = c.figures()
    if not io and not native:
        return _verdict("C2", "untestable", "the I/O and native workloads were not measured")
    io_ok = {w: f["speedup"] >= IO_EFFICIENCY * f["workers"] for w, f in io.items()}
    nat_ok = {w: f["speedup"] >= NATIVE_EFFICIENCY * min(f["workers"], cores) for w, f in native.items()}
    core_io = [io_ok[w] for w in ("sleep", "socket") if w in io_ok]
    io_holds = bool(core_io) and all(core_io)
    nat_holds = bool(nat_ok) and all(nat_ok.values()) and cores >= 2
    parts = ["%s x%d %.2fx" % (w, f["workers"], f["speedup"]) for w, f in list(io.items()) + list(native.items())]
    if io_holds and (nat_holds or cores < 2):
        verdict = "holds"
    elif io_holds or nat_holds or any(io_ok.values()) or any(nat_ok.values()):
        verdict = "partly"
    else:
        verdict = "fails"
    note = ""
    if "file-io" in io_ok and not io_ok["file-io"]:
        note = "; file I/O to the page cache is memory copying, not waiting, so it scales less"
    if cores < 2:
        note += "; one core: native code can't run in parallel here"
    return _verdict("C2", verdict, "threads on %s: %s%s" % (label, ", ".join(parts), note),
                    io=io, native=native, io_scales=io_ok, native_scales=nat_ok,
                    thresholds={"io_efficiency": IO_EFFICIENCY, "native_efficiency": NATIVE_EFFICIENCY})


def judge_c3(doc: ResultsDocument) -> Claim:
    rows = _scaling_rows(doc)
    facts = {k: {"implementation": v["implementation"], "free_threaded": v["free_threaded"],
                 "gil_enabled": v["gil_enabled"]} for k, v in rows.items()}
    free = {k: v for k, v in rows.items() if v["gil_enabled"] is False}
    if not free:
        return _verdict("C3", "untestable", "no interpreter without a GIL was measured, so there is "
                        "nothing to compare the GIL build with (install one: scripts/install-interpreters)",
                        facts=facts)
    scaled = {k: v for k, v in free.items() if v["threads"]["speedup"] >= SCALES}
    cost = _single_thread_cost(rows)
    text = "GIL-free %s: %s. " % ("implementations" if len(free) > 1 else "implementation", ", ".join(
        "%s %s %.2fx on threads" % (k, v["implementation"], v["threads"]["speedup"]) for k, v in free.items()))
    if cost:
        text += "Removing it from CPython costs single-thread speed: %s. " % ", ".join(
            "%s %.2fx the time of %s" % (c["free_threaded"], c["ratio"], c["gil_build"]) for c in cost)
    if scaled:
        verdict = "partly"
        text += ("So the GIL is an implementation detail, not part of Python; memory management "
                 "(reference counting) is one reason for it, the thread safety of the object "
                 "model (dict, list) the other.")
    else:
        verdict = "untestable"
        text += "No GIL-free interpreter scaled here, so this run can't separate the two."
    return _verdict("C3", verdict, text, facts=facts, single_thread_cost=cost)


def _single_thread_cost(rows: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Serial time per task of each free-threaded CPython against a GIL CPython build."""
    out = []
    cps = {k: v for k, v in rows.items() if v["implementation"] == "CPython" and v["serial_task_s"]}
    for k, v in cps.items():
        if not v["free_threaded"] or v["gil_enabled"]:
            continue
        same = [g for g, gv in cps.items() if not gv["free_threaded"]
                and (gv["version"] or "")[:4] == (v["version"] or "")[:4]]
        others = same or [g for g, gv in cps.items() if not gv["free_threaded"]]
        for g in others:
            gv = cps[g]
            if gv["serial_size"] and v["serial_size"]:
                ratio = (v["serial_task_s"] / v["serial_size"]) / (gv["serial_task_s"] / gv["serial_size"])
                out.append({"free_threaded": k, "gil_build": g, "ratio": round(ratio, 3),
                            "same_minor_version": bool(same)})
    return out


def judge_c4(doc: ResultsDocument) -> Claim:
    rows = _scaling_rows(doc)
    jy = {k: v for k, v in rows.items() if (v["implementation"] or "").lower() == "jython"}
    others = {k: v for k, v in rows.items() if v["implementation"] not in ("CPython", "Jython")}
    ev = {"jython": jy, "other_implementations": others,
          "ironpython": "not testable here: IronPython can't be installed from the package "
                        "sources this machine reaches"}
    other_txt = "; ".join("%s (%s) %.2fx, CPU/wall %.2f" % (k, v["implementation"], v["threads"]["speedup"],
                                                          v["threads"]["parallelism"])
                          for k, v in others.items())
    if not jy:
        return _verdict("C4", "untestable", "no Jython was measured (install it: scripts/install-"
                        "interpreters jython, then --python jython); IronPython can't be installed "
                        "here" + ("; measured: " + other_txt if other_txt else ""), **ev)
    if doc.cores < 2:
        return _verdict("C4", "untestable", "only one usable core", **ev)
    ok = all(v["threads"]["speedup"] >= SCALES and v["threads"]["parallelism"] >= SCALES
             for v in jy.values())
    bad = all(v["threads"]["speedup"] < NO_SCALE for v in jy.values())
    verdict = "holds" if ok else ("fails" if bad else "partly")
    return _verdict("C4", verdict, "pure-Python threads: %s; IronPython not testable here" % other_txt, **ev)


def judge_c5(doc: ResultsDocument) -> Claim:
    rows = _scaling_rows(doc)
    ft = {k: v for k, v in rows.items() if v["implementation"] == "CPython" and v["free_threaded"]}
    free = {k: v for k, v in ft.items() if v["gil_enabled"] is False}
    controls = {k: v for k, v in ft.items() if v["gil_enabled"]}
    cost = _single_thread_cost(rows)
    ev = {"free_threaded": free, "gil_on_controls": controls, "single_thread_cost": cost}
    if not free:
        return _verdict("C5", "untestable", "no free-threaded CPython running without its GIL was "
                        "measured (build one: scripts/install-interpreters py313t, then "
                        "--python /opt/threadwise/py313t/bin/python3.13t)", **ev)
    if doc.cores < 2:
        return _verdict("C5", "untestable", "only one usable core", **ev)
    txt = ", ".join("%s %.2fx (CPU/wall %.2f)" % (k, v["threads"]["speedup"], v["threads"]["parallelism"])
                    for k, v in free.items())
    if controls:
        txt += "; with PYTHON_GIL=1: " + ", ".join("%s %.2fx" % (k, v["threads"]["speedup"])
                                                   for k, v in controls.items())
    if cost:
        txt += "; single-thread cost: " + ", ".join("%.2fx vs %s" % (c["ratio"], c["gil_build"]) for c in cost)
    if any(v["threads"]["speedup"] >= SCALES for v in free.values()):
        verdict = "fails"
        txt = "CPython without its GIL (PEP 703) runs threads in parallel: " + txt
    elif all(v["threads"]["speedup"] < NO_SCALE for v in free.values()):
        verdict = "holds"
        txt = "the free-threaded build did not scale here: " + txt
    else:
        verdict = "partly"
    return _verdict("C5", verdict, txt, **ev)


def judge_c6(doc: ResultsDocument) -> Claim:
    every = doc.experiments.gilcheck
    checks = [g for g in every if g.measured]
    if not checks:
        why = next((g.error or g.unsupported for g in every), None)
        return _verdict("C6", "untestable", "the per-call GIL check did not run" + (": " + why if why else ""))
    native = [g for g in checks if g.lib != "time"]
    undecided = [g for g in native if g.holds is None]
    released = [g.label for g in native if g.holds is False]
    held = [g.label for g in native if g.holds is True]
    label = _first_interpreter(doc)
    scale = {}
    for w in ("hashlib", "hashlib-small", "zlib", "json"):
        c = _best(doc, label, w, "threads", max(2, doc.cores))
        if c:
            scale[w] = c.figures()
    ev = {"calls": [as_json(g) for g in checks], "thread_scaling": scale}
    if undecided and not released and not held:
        return _verdict("C6", "untestable", "one core: a call holding the GIL can't be told apart", **ev)
    txt = "releases the GIL: %s; holds it: %s" % (", ".join(released) or "none", ", ".join(held) or "none")
    sm = next((g for g in checks if g.workload == "hashlib-small"), None)
    big = next((g for g in checks if g.workload == "hashlib"), None)
    if sm and big and sm.holds is True and big.holds is False:
        txt += " (hashlib releases it only from 2048 bytes on)"
    if scale:
        txt += "; threads: " + ", ".join("%s %.2fx" % (w, f["speedup"]) for w, f in scale.items())
    if released and held:
        verdict = "partly"
    elif released:
        verdict = "holds"
    else:
        verdict = "fails"
    return _verdict("C6", verdict, txt, **ev)


def _start_methods(doc: ResultsDocument, label: Optional[str]) -> Dict[str, Dict[str, Any]]:
    """C7: per start method, the processes cell with the most workers."""
    methods: Dict[str, Dict[str, Any]] = {}
    best: Dict[str, int] = {}
    for c in doc.ok_cells(interpreter=label, workload="cpu-python", backend="processes", per_task=False):
        m = c.start_method or c.start_method_used or "default"
        if m not in methods or c.workers > best[m]:
            f = c.figures()
            f["startup_per_worker_ms"] = round(1000 * (c.startup_s or 0) / c.workers, 2)
            f["worker_maxrss_mib"] = round((c.worker_maxrss_bytes or 0) / 2 ** 20, 1)
            f["start_method_used"] = c.start_method_used
            methods[m], best[m] = f, c.workers
    return methods


def judge_c7(doc: ResultsDocument) -> Claim:
    cores = doc.cores
    label = _first_interpreter(doc)
    methods = _start_methods(doc, label)
    tiny = next(iter(doc.ok_cells(interpreter=label, workload="cpu-python", backend="processes",
                                  tag="tiny")), None)
    tiny_base = next(iter(doc.ok_cells(interpreter=label, workload="cpu-python", backend="serial",
                                       tag="tiny")), None)
    ev: Dict[str, Any] = {"start_methods": methods}
    if tiny and tiny_base and tiny.task_s is not None and tiny_base.task_s is not None:
        ev["tiny_tasks"] = {"tasks": tiny.tasks, "speedup": round(tiny.speedup or 0.0, 3),
                            "serial_us_per_task": round(1e6 * tiny_base.task_s, 2),
                            "processes_us_per_task": round(1e6 * tiny.task_s, 2)}
    if not methods:
        return _verdict("C7", "untestable", "the processes backend was not measured (or is not "
                        "available on %s)" % label, **ev)
    if cores < 2:
        return _verdict("C7", "untestable", "only one usable core", **ev)
    top = max(methods.values(), key=lambda f: f["speedup"])
    scales = top["speedup"] >= PROC_EFFICIENCY * min(top["workers"], cores)
    txt = "pure-Python work in processes: " + ", ".join(
        "%s x%d %.2fx (start %.1f ms/worker, %.0f MiB each)" % (m, f["workers"], f["speedup"],
                                                              f["startup_per_worker_ms"], f["worker_maxrss_mib"])
        for m, f in methods.items())
    tiny_loses = "tiny_tasks" in ev and ev["tiny_tasks"]["speedup"] < 1.0
    if "tiny_tasks" in ev:
        t = ev["tiny_tasks"]
        txt += "; tiny tasks one message each: %.2fx (%.1f us per task against %.1f serial)" % (
            t["speedup"], t["processes_us_per_task"], t["serial_us_per_task"])
    if not scales:
        verdict = "fails"
    elif tiny_loses:
        verdict = "partly"
        txt += ": worth it only when tasks are large against the cost of sending them"
    else:
        verdict = "holds"
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
    every = doc.experiments.convoy
    runs = [r for r in every if r.median_s is not None]
    if not runs:
        bad = next((r.unsupported or r.error for r in every), None)
        return _verdict("C8", "untestable", "the convoy experiment did not run" + (": " + bad if bad else ""))
    table = {("one core" if pin else "all cores"): {k: _convoy_ms(_convoy_pick(runs, pin, k)) for k in (0, 1, 2)}
             for pin in (True, False)}
    control = _convoy_ms(_convoy_pick(runs, True, 1, "processes"))
    sweep = {si: _convoy_ms(_convoy_pick(runs, True, 1, "threads", si)) for si in (0.001, 0.02)}
    ev: Dict[str, Any] = {"latency": table, "process_burner_control_one_core": control,
                          "switch_interval_sweep": sweep,
                          "rule": "a run shows the convoy when its median is >= %g x the idle median"
                                  % CONVOY_FACTOR}
    base_runs = _convoy_pick(runs, True, 0)
    busy_runs = _convoy_pick(runs, True, 1) + _convoy_pick(runs, True, 2)
    if not base_runs or not busy_runs:
        return _verdict("C8", "untestable", "pinning to one core was not possible here", **ev)
    base = sorted(r.median_s or 0.0 for r in base_runs)[len(base_runs) // 2]
    slow = CONVOY_FACTOR * max(base, 1e-9)
    convoy = [r for r in busy_runs if (r.median_s or 0.0) >= slow]
    ctl_runs = _convoy_pick(runs, True, 1, "processes")
    ctl_convoy = [r for r in ctl_runs if (r.median_s or 0.0) >= slow]
    worst = max(busy_runs, key=lambda r: r.median_s or 0.0)
    worst_s = worst.median_s or 0.0
    txt = ("I/O round trip on ONE core: %.3f ms median alone; beside 1-2 CPU-bound threads the "
           "median rose >= %gx in %d of %d runs (worst %.3f ms, p99 %.3f ms)"
           % (1000 * base, CONVOY_FACTOR, len(convoy), len(busy_runs), 1000 * worst_s,
              1000 * (worst.p99_s or 0.0)))
    if control:
        txt += "; beside a CPU-bound process instead: %.3f ms" % control["median_ms"]
    s1, s20 = sweep.get(0.001), sweep.get(0.02)
    if s1 and s20:
        txt += "; switch interval 1 ms -> %.2f ms, 20 ms -> %.2f ms" % (s1["median_ms"], s20["median_ms"])
    ev["convoy_runs"] = "%d of %d" % (len(convoy), len(busy_runs))
    ev["factor"] = round(worst_s / max(base, 1e-9), 2)
    if convoy:
        if ctl_runs and len(ctl_convoy) * 2 > len(ctl_runs):
            verdict = "partly"
            txt += " (the process control is slow too: the core itself is the bottleneck)"
        else:
            verdict = "fails"
            txt += ": the GIL convoy hurts on a single core too"
    else:
        verdict = "holds"
    return _verdict("C8", verdict, txt, **ev)


JUDGES: Dict[str, Callable[[ResultsDocument], Claim]] = {
    "C1": judge_c1, "C2": judge_c2, "C3": judge_c3, "C4": judge_c4, "C5": judge_c5,
    "C6": judge_c6, "C7": judge_c7, "C8": judge_c8}


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
