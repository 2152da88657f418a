"""One suite across every backend and every installed interpreter: the agent's cells are right.

Real threads, real processes under each start method, real sub-interpreters
(3.14), real sockets on loopback.  Correctness only: checksums, sample counts,
CPU accounting that includes worker processes; no speed assertions except
properties that hold on a loaded machine.
"""
import sys

import pytest

from threadwise.bench.interpreters import Interpreter, describe, run_agent
from threadwise.bench.inside import workloads as W
from conftest import interpreter_params

BACKENDS = [("serial", None), ("threads", None), ("processes", "fork"),
            ("processes", "forkserver"), ("processes", "spawn"), ("interpreters", None),
            ("asyncio", None)]
SIZES = {"cpu-python": 3000, "hashlib": 2, "sleep": 20, "socket": 5, "json": 1}

_info = {}


def _interp(cmd):
    it = Interpreter.parse(cmd)
    if cmd not in _info:
        _info[cmd] = describe(it)
    return it, _info[cmd]


def _cell(it, workload, backend, method, workers=2, tasks=4, echo=None, **kw):
    cfg = {"mode": "cell", "workload": workload, "backend": backend, "workers": workers,
           "tasks": tasks, "start_method": method, "warmups": 1, "repeats": 2,
           "size": SIZES[workload], "context": {"echo": list(echo.address)} if echo else {}}
    cfg.update(kw)
    return run_agent(it, cfg, timeout=120)


def _skip_unsupported(run, info, backend, method, workload):
    uns = run.first("unsupported")
    if uns is None:
        return
    reason = uns["reason"]
    expected = (
        (backend == "processes" and (not info["start_methods"] or method not in info["start_methods"]))
        or (backend == "interpreters" and not info["subinterpreters"])
        or (backend == "asyncio" and (not info["asyncio"] or W.CATALOG[workload].async_name is None))
        or workload in info.get("workloads_unavailable", {}))
    assert expected, "unexpectedly unsupported: " + reason
    pytest.skip(reason)


def _interp_workloads():
    """The host runs every workload kind; the other interpreters run cpu-python (closed-form
    checksums) and socket (I/O with context), which keeps the suite within its time."""
    out = []
    for p in interpreter_params():
        host = p.values[0] == sys.executable
        for w in (["cpu-python", "hashlib", "sleep", "socket"] if host else ["cpu-python", "socket"]):
            out.append(pytest.param(p.values[0], w, id="%s-%s" % (p.id, w), marks=p.marks))
    return out


@pytest.mark.parametrize("cmd,workload", _interp_workloads())
@pytest.mark.parametrize("backend,method", BACKENDS, ids=[b + ("-" + m if m else "") for b, m in BACKENDS])
def test_every_backend_computes_the_right_checksums(cmd, backend, method, workload, echo):
    it, info = _interp(cmd)
    run = _cell(it, workload, backend, method, echo=echo if workload == "socket" else None)
    _skip_unsupported(run, info, backend, method, workload)
    assert run.first("error") is None, run.first("error")
    samples = run.of("sample")
    flags = [s["warmup"] for s in samples]
    # at least one warm-up (more while a JIT settles), then the 2 timed repeats (2 x 2 + 1 on a JIT)
    jit = info["implementation"] in ("PyPy", "Jython")
    assert flags[0] and flags.count(False) == (5 if jit else 2)
    assert flags == sorted(flags, reverse=True)
    serial = [W.CATALOG[workload].fn(SIZES[workload], t) if workload != "socket" else None
              for t in range(4)]
    for s in samples:
        if workload != "socket":
            assert s["checksums"] == serial
        else:
            assert s["checksums"] == [(5 * 1024 + t) for t in range(4)]
        assert s["wall_s"] > 0 and s["cpu_s"] >= 0
    if workload == "cpu-python":
        assert samples[0]["expected"] == samples[0]["checksums"]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_cpu_time_includes_workers(host_python, method):
    run = _cell(host_python, "cpu-python", "processes", method, workers=2, tasks=2,
                size=300000)
    timed = [s for s in run.of("sample") if not s["warmup"]]
    # the parent only waits: nearly all CPU is the workers', and it is counted
    for s in timed:
        assert s["cpu_s"] > 0.5 * s["wall_s"]
    assert run.first("startup")["seconds"] > 0
    assert timed[0]["worker_maxrss_bytes"]


def test_four_sleeping_threads_overlap(host_python):
    # a property that holds on a loaded machine: 4 x 0.2 s of sleep in threads < 0.5 s
    run = _cell(host_python, "sleep", "threads", None, workers=4, tasks=4, size=200)
    for s in run.of("sample"):
        assert s["wall_s"] < 0.5


def test_calibration_reaches_target(host_python):
    cfg = {"mode": "cell", "workload": "cpu-python", "backend": "serial", "workers": 1,
           "tasks": 1, "warmups": 0, "repeats": 1, "size": None, "target_s": 0.05}
    run = run_agent(host_python, cfg, timeout=60)
    cal = run.first("calibrated")
    assert cal and cal["size"] > 1000


def test_worker_exception_is_reported(host_python):
    run = _cell(host_python, "duty-cycle", "threads", None, params={"duty": 7}) \
        if False else run_agent(host_python, {
            "mode": "cell", "workload": "duty-cycle", "backend": "processes", "workers": 2,
            "tasks": 2, "warmups": 0, "repeats": 1, "size": 1, "params": {"duty": 7}}, timeout=60)
    err = run.first("error")
    assert err and "duty must be in [0, 1]" in err["what"]


def test_convoy_mode_measures_latency(host_python, echo):
    run = run_agent(host_python, {"mode": "convoy", "cpu_threads": 1, "pin": True,
                                  "round_trips": 20, "context": {"echo": list(echo.address)}},
                    timeout=60)
    rec = run.first("convoy")
    assert rec["round_trips"] == 20 and rec["pinned"] and rec["median_s"] > 0
    assert rec["p99_s"] >= rec["median_s"]


def test_gilcheck_mode(host_python):
    run = run_agent(host_python, {"mode": "gilcheck", "duration": 0.2, "calls": [
        {"label": "sleep", "workload": "sleep", "size": 100}]}, timeout=60)
    rec = run.first("gilcheck")
    # a 10 ms sleep is longer than 2 switch intervals: the stall test applies and says released
    assert rec["holds"] is False and rec["call_s"] > 0.009
