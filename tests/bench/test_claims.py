"""bench/claims/verdicts.py: every verdict each claim can give, on recorded documents;
and one real quick run through the command line."""
import json

import pytest

from threadwise.bench import results, stats
from threadwise.bench.claims import verdicts as claims
from threadwise.bench.model import ResultsDocument
from threadwise.errors import ResultsFileError
from conftest import cli

CP = {"implementation": "CPython", "version": "3.11.7", "free_threaded": False, "gil_enabled": True}
FT = {"implementation": "CPython", "version": "3.14.0", "free_threaded": True, "gil_enabled": False}
FT13 = {"implementation": "CPython", "version": "3.13.5", "free_threaded": True, "gil_enabled": False}
FT_GIL = {"implementation": "CPython", "version": "3.14.0", "free_threaded": True, "gil_enabled": True}
CP14 = {"implementation": "CPython", "version": "3.14.0", "free_threaded": False, "gil_enabled": True}
JY = {"implementation": "Jython", "version": "2.7.3", "free_threaded": False, "gil_enabled": False}
PYPY = {"implementation": "PyPy", "version": "3.9.16", "free_threaded": False, "gil_enabled": True}


def _summary(median):
    return stats.summarize([median * 0.99, median, median, median, median * 1.01]).to_json()


def _cell(interp, workload, backend, workers, speedup, par=None, tag="", ci=0.05, busy=None, **kw):
    wall = 1.0 / speedup
    c = {"key": "|".join([interp, workload, backend, str(workers), tag, str(kw.get("start_method")),
                          str(kw.get("per_task"))]),
         "interpreter": interp, "workload": workload, "backend": backend, "workers": workers,
         "status": "ok", "tag": tag, "tasks": kw.pop("tasks", 2), "size": kw.pop("size", 1000),
         "speedup": speedup, "speedup_ci95": [speedup * (1 - ci), speedup * (1 + ci)],
         "parallelism": par if par is not None else min(speedup, workers),
         "wall_s": _summary(wall), "cpu_s": _summary(wall), "warnings": []}
    if busy is not None:
        c["others_share"] = busy
    c.update(kw)
    return c


def _doc(cores=2, interps=None, cells=(), experiments=None, reference=None):
    """A recorded document, read through the model like any results file."""
    d = results.new_document({"usable_cores": cores}, {}).to_json()
    interps = interps or {"cp": CP}
    d["interpreters"] = {k: dict(v, command=k, label=k) for k, v in interps.items()}
    d["cells"] = list(cells)
    d["experiments"] = dict(experiments or {}, cores=cores)
    if reference:
        d["experiments"]["reference"] = reference
    return ResultsDocument.from_json(json.loads(json.dumps(d)))


def _scaling(interp, sp, serial_wall=1.0, size=1000, **kw):
    return [dict(_cell(interp, "cpu-python", "serial", 1, 1.0, 1.0, size=size),
                 wall_s=_summary(serial_wall)),
            _cell(interp, "cpu-python", "threads", 2, sp, size=size, **kw)]


def _v(judge, doc):
    v = judge(doc)
    assert v.verdict in claims.VERDICTS and v.summary
    json.dumps(v.to_json())           # the evidence is JSON
    return v


# ---- C1 --------------------------------------------------------------------
@pytest.mark.parametrize("sp,par,ci,cores,busy,verdict", [
    (0.97, None, 0.05, 2, None, "holds"),
    (1.9, 1.9, 0.05, 2, None, "fails"),
    (1.35, 1.3, 0.05, 2, None, "partly"),          # in between, the interval clear of 1.5
    (1.45, 1.45, 0.10, 2, None, "inconclusive"),   # the interval straddles 1.5
    (0.97, None, 0.05, 2, 0.45, "inconclusive"),   # two burners beside it
    (1.0, None, 0.05, 1, None, "untestable"),
])
def test_c1(sp, par, ci, cores, busy, verdict):
    v = _v(claims.judge_c1, _doc(cores=cores, cells=_scaling("cp", sp, par=par, ci=ci, busy=busy)))
    assert v.verdict == verdict, v.summary
    if verdict == "inconclusive" and busy:
        assert "rerun on a quiet machine" in v.summary and "45%" in v.summary


def test_c1_without_gil_builds_is_untestable():
    assert _v(claims.judge_c1, _doc(interps={"ft": FT}, cells=_scaling("ft", 1.9))).verdict == "untestable"


# ---- C2 --------------------------------------------------------------------
def _c2(io=3.8, native=1.9, ci=0.05, busy=None, fio=1.3):
    return [_cell("cp", "sleep", "threads", 4, io, ci=ci, busy=busy),
            _cell("cp", "socket", "threads", 4, io * 0.95, ci=ci),
            _cell("cp", "hashlib", "threads", 2, native, ci=ci),
            _cell("cp", "zlib", "threads", 2, native, ci=ci),
            _cell("cp", "file-io", "threads", 4, fio)]


@pytest.mark.parametrize("kw,verdict", [
    ({}, "holds"),
    ({"native": 1.0}, "partly"),
    ({"io": 1.0, "native": 1.0}, "fails"),
    ({"native": 1.4, "ci": 0.1}, "inconclusive"),    # 1.26-1.54 straddles 0.7 x 2
    ({"busy": 0.5}, "inconclusive"),
])
def test_c2(kw, verdict):
    v = _v(claims.judge_c2, _doc(cells=_c2(**kw)))
    assert v.verdict == verdict, v.summary
    if verdict != "inconclusive":
        assert "file-io" in v.summary and "not judged" in v.summary


def test_c2_untestable_without_cells_or_a_gil_cpython():
    assert _v(claims.judge_c2, _doc()).verdict == "untestable"
    assert _v(claims.judge_c2, _doc(interps={"pypy": PYPY}, cells=_c2())).verdict == "untestable"


def test_reference_does_not_depend_on_the_order_of_interpreters():
    cells = [dict(c, interpreter="pypy", key="p" + c["key"]) for c in _c2(native=1.0)] + _c2()
    for order in (["pypy", "cp"], ["cp", "pypy"]):
        interps = {k: {"pypy": PYPY, "cp": CP}[k] for k in order}
        ordered = sorted(cells, key=lambda c: order.index(c["interpreter"]))
        v = _v(claims.judge_c2, _doc(interps=interps, cells=ordered))
        assert v.verdict == "holds" and v.evidence["interpreter"] == "cp"


# ---- C3 --------------------------------------------------------------------
def _c3(ft_sp=1.9, cost=1.3, shared=1.2, private=1.9, with_gil_build=True, ci=0.05):
    cells = _scaling("ft", ft_sp, serial_wall=cost, ci=ci)
    if with_gil_build:
        cells += _scaling("cp14", 1.0)
    cells += [_cell("ft", "shared-objects", "threads", 2, shared, ci=ci),
              _cell("ft", "private-objects", "threads", 2, private, ci=ci)]
    interps = {"ft": FT, "cp14": CP14} if with_gil_build else {"ft": FT}
    return _doc(interps=interps, cells=cells)


@pytest.mark.parametrize("kw,verdict", [
    ({}, "holds"),                                          # cost and contention both show
    ({"cost": 1.3, "shared": 1.9}, "holds"),                # the cost alone
    ({"cost": 1.0, "shared": 1.9}, "partly"),               # GIL-free, and no cost measured
    ({"ft_sp": 1.0}, "fails"),                              # no GIL-free interpreter scaled
    ({"ft_sp": 1.2, "ci": 0.1}, "inconclusive"),            # whether it ran in parallel straddles
    ({"ft_sp": 1.45, "ci": 0.12}, "holds"),                 # clear of 1.2x: parallel
    ({"cost": 1.0, "shared": 1.58, "private": 1.9, "ci": 0.08}, "inconclusive"),
])
def test_c3(kw, verdict):
    v = _v(claims.judge_c3, _c3(**kw))
    assert v.verdict == verdict, v.summary


def test_c3_untestable_and_partly_without_the_builds():
    assert _v(claims.judge_c3, _doc(cells=_scaling("cp", 1.0))).verdict == "untestable"
    doc = _doc(interps={"jy": JY}, cells=_scaling("jy", 1.8))
    assert _v(claims.judge_c3, doc).verdict == "partly"


# ---- C4 --------------------------------------------------------------------
@pytest.mark.parametrize("sp,ci,verdict", [(1.8, 0.05, "partly"), (1.0, 0.05, "fails"),
                                           (1.5, 0.1, "partly"), (1.71, 0.19, "partly"),
                                           (1.25, 0.1, "inconclusive"),
                                           (0.88, 0.6, "inconclusive")])   # wide: not a clear "no"
def test_c4(sp, ci, verdict):
    doc = _doc(interps={"jy": JY, "pypy": PYPY},
               cells=_scaling("jy", sp, par=sp, ci=ci) + _scaling("pypy", 1.0))
    v = _v(claims.judge_c4, doc)
    assert v.verdict == verdict
    assert "jy" in v.summary and "IronPython" in v.summary or verdict == "inconclusive"


def test_c4_untestable_without_jython():
    v = _v(claims.judge_c4, _doc(cells=_scaling("cp", 1.0)))
    assert v.verdict == "untestable" and "install-interpreters" in v.summary


# ---- C5 --------------------------------------------------------------------
def test_c5_judges_the_newest_free_threaded_build_and_shows_the_older():
    cells = (_scaling("cp", 0.98) + _scaling("ft13", 1.1, serial_wall=1.5) + _scaling("ft", 1.9, serial_wall=1.1)
             + _scaling("ftgil", 0.97, serial_wall=1.1) + _scaling("cp14", 1.0))
    interps = {"cp": CP, "ft13": FT13, "ft": FT, "ftgil": FT_GIL, "cp14": CP14}
    v = _v(claims.judge_c5, _doc(interps=interps, cells=cells))
    assert v.verdict == "fails" and "newest" in v.summary and "ft13" in v.summary
    assert "PYTHON_GIL=1" in v.summary
    cost = {c["free_threaded"]: c for c in v.evidence["single_thread_cost"]}
    assert cost["ft"]["ratio"] == pytest.approx(1.1) and cost["ft"]["same_minor_version"]


@pytest.mark.parametrize("sp,ci,verdict", [(1.9, 0.05, "fails"), (1.0, 0.05, "holds"),
                                           (1.35, 0.05, "partly"), (1.25, 0.1, "inconclusive"),
                                           (1.79, 0.17, "fails"), (1.5, 0.1, "fails")])
def test_c5(sp, ci, verdict):
    assert _v(claims.judge_c5, _doc(interps={"ft": FT}, cells=_scaling("ft", sp, ci=ci))).verdict == verdict


def test_c5_untestable_without_a_free_threaded_build():
    assert _v(claims.judge_c5, _doc(cells=_scaling("cp", 1.0))).verdict == "untestable"


# ---- C6 --------------------------------------------------------------------
def _gil(label, workload, holds, lib, busy=None):
    g = {"label": label, "workload": workload, "holds": holds, "lib": lib, "interpreter": "cp",
         "ticker_share": 0.5 if holds else 0.95, "longest_stall_s": 0.005}
    if busy is not None:
        g["others_share"] = busy
    return g


NATIVE = [("sha 64K", "hashlib", "hashlib"), ("zlib", "zlib", "zlib"), ("bz2", "bz2", "bz2"),
          ("lzma", "lzma", "lzma"), ("sqlite3", "sqlite3", "sqlite3"), ("json", "json", "json"),
          ("re", "regex", "re")]


@pytest.mark.parametrize("released,undecided,busy,verdict", [
    (5, 0, None, "holds"),          # 5 of 7 release: "many"
    (2, 0, None, "partly"),
    (0, 0, None, "fails"),
    (2, 3, None, "inconclusive"),   # too many calls undecided
    (5, 0, 0.5, "inconclusive"),
])
def test_c6(released, undecided, busy, verdict):
    g = []
    for i, (label, wl, lib) in enumerate(NATIVE):
        holds = False if i < released else (None if i < released + undecided else True)
        g.append(_gil(label, wl, holds, lib, busy))
    g += [_gil("sha 1K", "hashlib-small", True, "hashlib"), _gil("sleep", "sleep", False, "time")]
    v = _v(claims.judge_c6, _doc(experiments={"gilcheck": g}))
    assert v.verdict == verdict, v.summary
    if verdict in ("holds", "partly"):
        assert "%d of 7" % released in v.summary and "2048 bytes" in v.summary


def test_c6_untestable_when_the_check_did_not_run():
    assert _v(claims.judge_c6, _doc()).verdict == "untestable"


# ---- C7 --------------------------------------------------------------------
def _c7(sp=1.9, tiny=0.3, ci=0.05):
    return [_cell("cp", "cpu-python", "processes", 2, sp, start_method="fork", startup_s=0.004, ci=ci),
            _cell("cp", "cpu-python", "processes", 2, sp, start_method=None, start_method_used="forkserver"),
            _cell("cp", "cpu-python", "serial", 1, 1.0, tag="tiny", tasks=400),
            _cell("cp", "cpu-python", "processes", 2, tiny, tag="tiny", tasks=400, per_task=True)]


@pytest.mark.parametrize("kw,verdict", [({}, "partly"), ({"tiny": 1.5}, "holds"),
                                        ({"sp": 1.0}, "fails"), ({"sp": 1.4, "ci": 0.1}, "inconclusive")])
def test_c7(kw, verdict):
    v = _v(claims.judge_c7, _doc(cells=_c7(**kw)))
    assert v.verdict == verdict, v.summary
    if verdict == "partly":
        assert v.evidence["start_methods"]["fork"]["startup_per_worker_ms"] == 2.0
        assert "default (forkserver)" in v.evidence["start_methods"]   # named by the method used


def test_c7_untestable_without_processes():
    assert _v(claims.judge_c7, _doc(cells=_scaling("cp", 1.0))).verdict == "untestable"


# ---- C8 --------------------------------------------------------------------
def _convoy(pin, k, median, burner="threads", si=None, run=0, busy=None):
    cfg = {"pin": pin, "cpu_threads": k, "burner": burner}
    if si:
        cfg["switch_interval"] = si
    r = {"pinned": pin, "cpu_threads": k, "burner": burner, "median_s": median, "interpreter": "cp",
         "p99_s": median * 2, "round_trips": 100, "config": cfg, "run": run, "switch_interval_s": 0.005}
    if busy is not None:
        r["others_share"] = busy
    return r


def _c8(busy_medians, control=6e-5, busy=None):
    runs = [_convoy(True, 0, 5e-5, run=i, busy=busy) for i in range(3)]
    runs += [_convoy(True, 1 + i % 2, m, run=i // 2) for i, m in enumerate(busy_medians)]
    runs += [_convoy(True, 1, control, "processes", run=i) for i in range(3)]
    return _doc(experiments={"convoy": runs})


@pytest.mark.parametrize("medians,control,busy,verdict", [
    ([8e-3] * 6, 6e-5, None, "fails"),
    ([8e-3, 6e-5, 6e-5, 6e-5, 6e-5, 6e-5], 6e-5, None, "fails"),   # one strong run proves it
    ([8e-3] * 6, 8e-3, None, "partly"),               # the process control is as slow
    ([6e-5] * 6, 6e-5, None, "holds"),
    ([6e-5] * 4, 6e-5, None, "inconclusive"),         # not seen in 4 runs: too few to say never
    ([3e-3, 6e-5, 6e-5, 6e-5, 6e-5, 6e-5], 6e-5, None, "inconclusive"),   # a weak effect only
    ([5e-4] * 6, 6e-5, None, "holds"),                # 10x, but far below a switch interval: no effect
    ([8e-3] * 6, 6e-5, 0.5, "inconclusive"),
])
def test_c8(medians, control, busy, verdict):
    v = _v(claims.judge_c8, _c8(medians, control, busy))
    assert v.verdict == verdict, v.summary
    assert "of %d runs" % len(medians) in v.summary or v.verdict == "inconclusive" and busy


def test_c8_untestable():
    assert _v(claims.judge_c8, _doc()).verdict == "untestable"
    flat = [_convoy(False, 0, 5e-5), _convoy(False, 1, 6e-5)]
    assert _v(claims.judge_c8, _doc(experiments={"convoy": flat})).verdict == "untestable"


# ---- C9 --------------------------------------------------------------------
def _race(interp, op, lost, run=0, busy=None):
    r = {"interpreter": interp, "op": op, "run": run, "threads": 4, "per_thread": 1000,
         "expected": 4000, "actual": 4000 - lost, "lost": lost}
    if busy is not None:
        r["others_share"] = busy
    return r


@pytest.mark.parametrize("gil_dict,ft_counter,busy,verdict", [
    (0, 900, None, "holds"),
    (500, 900, None, "partly"),
    (500, 0, None, "fails"),
    (0, 900, 0.6, "inconclusive"),
])
def test_c9(gil_dict, ft_counter, busy, verdict):
    races = []
    for run in range(3):
        races += [_race("cp", "counter += 1", 0, run, busy), _race("cp", "list.append", 0, run),
                  _race("cp", "dict read-modify-write", gil_dict, run),
                  _race("ft", "counter += 1", ft_counter, run), _race("ft", "list.append", 0, run),
                  _race("ft", "dict read-modify-write", 0 if not ft_counter else 700, run)]
    v = _v(claims.judge_c9, _doc(interps={"cp": CP, "ft": FT}, experiments={"races": races}))
    assert v.verdict == verdict, v.summary


def test_c9_untestable_without_both_builds():
    races = [_race("cp", "counter += 1", 0)]
    assert _v(claims.judge_c9, _doc(experiments={"races": races})).verdict == "untestable"


# ---- all -------------------------------------------------------------------
def test_judge_never_raises_on_partial_data():
    # an ok cell without its timings can't even enter the model ...
    with pytest.raises(ResultsFileError, match="status ok without wall_s"):
        _doc(cells=[{"key": "x", "interpreter": "cp", "workload": "cpu-python", "backend": "threads",
                     "workers": 2, "status": "ok"}])
    # ... and a document whose cells failed or lack their serial baseline still gets 9 verdicts
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
        assert c["verdict"] in claims.VERDICTS
        assert c["summary"] and isinstance(c["evidence"], dict)
    saved = results.load(out)
    assert saved.claims and saved.experiments.convoy
    assert saved.experiments.reference and all(r.others_share is not None for r in saved.experiments.convoy)
