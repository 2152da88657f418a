"""claims.py: verdict logic on recorded samples (pure), and one real quick run."""
import json
import sys

import pytest

from threadwise.bench import results, stats
from threadwise.bench.claims import verdicts as claims
from threadwise.bench.model import ResultsDocument
from threadwise.errors import ResultsFileError
from conftest import cli


def _summary(median):
    return stats.summarize([median] * 5).to_json()


def _cell(interp, workload, backend, workers, speedup, par=None, tag="", **kw):
    base = 1.0
    wall = base / speedup
    c = {"key": "|".join([interp, workload, backend, str(workers), tag, str(kw.get("start_method"))]),
         "interpreter": interp, "workload": workload, "backend": backend, "workers": workers,
         "status": "ok", "tag": tag, "tasks": kw.pop("tasks", 2), "size": kw.pop("size", 1000),
         "speedup": speedup, "speedup_ci95": [speedup * 0.95, speedup * 1.05],
         "parallelism": par if par is not None else min(speedup, workers),
         "wall_s": _summary(wall), "cpu_s": _summary(wall), "warnings": []}
    c.update(kw)
    return c


def _doc(cores=2, interps=None, cells=(), experiments=None):
    """A recorded document, read through the model like any results file."""
    d = results.new_document({"usable_cores": cores}, {}).to_json()
    interps = interps or {"cp": {"implementation": "CPython", "version": "3.11.7",
                                 "free_threaded": False, "gil_enabled": True}}
    d["interpreters"] = {k: dict(v, command=k, label=k) for k, v in interps.items()}
    d["cells"] = list(cells)
    d["experiments"] = dict(experiments or {}, cores=cores)
    return ResultsDocument.from_json(d)


def _scaling(interp, sp, serial_wall=1.0, size=1000):
    return [dict(_cell(interp, "cpu-python", "serial", 1, 1.0, 1.0, size=size),
                 wall_s=_summary(serial_wall)),
            _cell(interp, "cpu-python", "threads", 2, sp, size=size)]


def test_c1_holds_when_gil_threads_do_not_scale():
    v = claims.judge_c1(_doc(cells=_scaling("cp", 0.97)))
    assert v.verdict == "holds" and "0.97x" in v.summary


def test_c1_fails_when_gil_threads_scale():
    assert claims.judge_c1(_doc(cells=_scaling("cp", 1.9))).verdict == "fails"


def test_c1_untestable_on_one_core():
    assert claims.judge_c1(_doc(cores=1, cells=_scaling("cp", 1.0))).verdict == "untestable"


def _multi():
    interps = {
        "cp": {"implementation": "CPython", "version": "3.13.0", "free_threaded": False, "gil_enabled": True},
        "ft": {"implementation": "CPython", "version": "3.13.5", "free_threaded": True, "gil_enabled": False},
        "ft-gil": {"implementation": "CPython", "version": "3.13.5", "free_threaded": True, "gil_enabled": True},
        "jy": {"implementation": "Jython", "version": "2.7.3", "free_threaded": False, "gil_enabled": False},
        "pypy": {"implementation": "PyPy", "version": "3.9.16", "free_threaded": False, "gil_enabled": True},
    }
    cells = (_scaling("cp", 0.98, 1.0) + _scaling("ft", 1.8, 1.5) + _scaling("ft-gil", 0.97, 1.5)
             + _scaling("jy", 1.75) + _scaling("pypy", 1.0))
    return _doc(interps=interps, cells=cells)


def test_c4_c5_c3_across_interpreters():
    d = _multi()
    c4, c5, c3, c1 = claims.judge_c4(d), claims.judge_c5(d), claims.judge_c3(d), claims.judge_c1(d)
    assert c4.verdict == "holds" and "PyPy" in c4.summary
    assert c5.verdict == "fails"
    assert c5.evidence["single_thread_cost"][0]["ratio"] == pytest.approx(1.5)
    assert c5.evidence["single_thread_cost"][0]["same_minor_version"] is True
    assert "PYTHON_GIL=1" in c5.summary
    assert c3.verdict == "partly"
    assert c1.verdict == "holds"    # only GIL interpreters count for C1


def test_c4_c5_untestable_without_the_interpreters():
    d = _doc(cells=_scaling("cp", 1.0))
    assert claims.judge_c4(d).verdict == "untestable"
    assert "install-interpreters" in claims.judge_c4(d).summary
    assert claims.judge_c5(d).verdict == "untestable"
    assert claims.judge_c3(d).verdict == "untestable"


def test_c4_fails_if_jython_does_not_scale():
    d = _doc(interps={"jy": {"implementation": "Jython", "gil_enabled": False}},
             cells=_scaling("jy", 1.0))
    assert claims.judge_c4(d).verdict == "fails"


def test_c2_holds_partly():
    cells = [_cell("cp", "sleep", "threads", 4, 3.8), _cell("cp", "socket", "threads", 4, 3.5),
             _cell("cp", "hashlib", "threads", 2, 1.9), _cell("cp", "zlib", "threads", 2, 1.8)]
    assert claims.judge_c2(_doc(cells=cells)).verdict == "holds"
    cells[2] = _cell("cp", "hashlib", "threads", 2, 1.0)
    cells[3] = _cell("cp", "zlib", "threads", 2, 1.0)
    assert claims.judge_c2(_doc(cells=cells)).verdict == "partly"
    slow = [_cell("cp", w, "threads", 4, 1.0) for w in ("sleep", "socket")]
    assert claims.judge_c2(_doc(cells=slow)).verdict == "fails"


def _gil(label, workload, holds, lib):
    return {"label": label, "workload": workload, "holds": holds, "lib": lib,
            "ticker_share": 0.5 if holds else 0.95, "longest_stall_s": 0.005}


def test_c6_partly_when_some_release_and_some_hold():
    g = [_gil("sha 1K", "hashlib-small", True, "hashlib"), _gil("sha 64K", "hashlib", False, "hashlib"),
         _gil("json", "json", True, "json"), _gil("sleep", "sleep", False, "time")]
    v = claims.judge_c6(_doc(experiments={"gilcheck": g}))
    assert v.verdict == "partly" and "2048 bytes" in v.summary
    g2 = [_gil("json", "json", True, "json")]
    assert claims.judge_c6(_doc(experiments={"gilcheck": g2})).verdict == "fails"
    assert claims.judge_c6(_doc()).verdict == "untestable"


def test_c7_partly_when_tiny_tasks_lose():
    cells = [_cell("cp", "cpu-python", "processes", 2, 1.9, start_method="fork", startup_s=0.004),
             _cell("cp", "cpu-python", "serial", 1, 1.0, tag="tiny", tasks=400),
             _cell("cp", "cpu-python", "processes", 2, 0.3, tag="tiny", tasks=400, per_task=True)]
    v = claims.judge_c7(_doc(cells=cells))
    assert v.verdict == "partly" and v.evidence["start_methods"]["fork"]["startup_per_worker_ms"] == 2.0
    assert claims.judge_c7(_doc(cells=cells[:1])).verdict == "holds"
    cells[0] = _cell("cp", "cpu-python", "processes", 2, 1.0, start_method="fork")
    assert claims.judge_c7(_doc(cells=cells)).verdict == "fails"


def _convoy(pin, k, median, burner="threads", si=None, run=0):
    cfg = {"pin": pin, "cpu_threads": k, "burner": burner}
    if si:
        cfg["switch_interval"] = si
    return {"pinned": pin, "cpu_threads": k, "burner": burner, "median_s": median,
            "p99_s": median * 2, "round_trips": 100, "config": cfg, "run": run}


def test_c8_verdicts():
    runs = [_convoy(True, 0, 5e-5), _convoy(True, 1, 5e-3), _convoy(True, 2, 5e-3),
            _convoy(True, 1, 6e-5, "processes")]
    v = claims.judge_c8(_doc(experiments={"convoy": runs}))
    assert v.verdict == "fails" and v.evidence["factor"] == pytest.approx(100)
    assert v.evidence["convoy_runs"] == "2 of 2"
    runs[3] = _convoy(True, 1, 5e-3, "processes")
    assert claims.judge_c8(_doc(experiments={"convoy": runs})).verdict == "partly"
    flat = [_convoy(True, 0, 5e-5), _convoy(True, 1, 6e-5)]
    assert claims.judge_c8(_doc(experiments={"convoy": flat})).verdict == "holds"
    assert claims.judge_c8(_doc()).verdict == "untestable"


def test_c8_one_run_in_three_with_a_convoy_is_reported_as_such():
    runs = [_convoy(True, 0, 5e-5, run=i) for i in range(3)] + \
        [_convoy(True, 1, m, run=i) for i, m in enumerate((5e-3, 6e-5, 5e-5))] + \
        [_convoy(True, 1, 5e-5, "processes", run=i) for i in range(3)]
    v = claims.judge_c8(_doc(experiments={"convoy": runs}))
    assert v.verdict == "fails" and "1 of 3 runs" in v.summary
    assert v.evidence["latency"]["one core"][1]["run_medians_ms"] == [5.0, 0.06, 0.05]


def test_judge_never_raises_on_partial_data():
    # an ok cell without its timings can't even enter the model ...
    with pytest.raises(ResultsFileError, match="status ok without wall_s"):
        _doc(cells=[{"key": "x", "interpreter": "cp", "workload": "cpu-python", "backend": "threads",
                     "workers": 2, "status": "ok"}])
    # ... and a document whose cells failed or lack their serial baseline still gets 8 verdicts
    d = _doc(cells=[{"key": "x", "interpreter": "cp", "workload": "cpu-python", "backend": "threads",
                     "workers": 2, "status": "error", "error": "boom"},
                    _cell("cp", "cpu-python", "processes", 2, 1.5, start_method="spawn")])
    out = claims.judge(d)
    assert [c.id for c in out] == list(claims.CLAIM_IDS)


def test_claims_json_real_quick_run(tmp_path):
    out = tmp_path / "c.json"
    p = cli("claims", "--quick", "--only", "C1,C6,C8", "--json", "-o", str(out), timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    ids = [c["id"] for c in doc["claims"]]
    assert ids == ["C1", "C6", "C8"]
    for c in doc["claims"]:
        assert c["verdict"] in ("holds", "fails", "partly", "untestable")
        assert c["summary"] and isinstance(c["evidence"], dict)
    saved = results.load(out)
    assert saved.claims and saved.experiments.convoy
