"""threadwise export --format pyperf: files that pyperf itself loads, summarises and compares.

Every check runs pyperf for real (``python -m pyperf stats`` / ``compare_to``) on
the exported files: from a real ``threadwise bench`` run and from documents with
the awkward labels and numbers a user may type into a results file.  Documents are
built as the JSON of a results file and read through the typed model
(``ResultsDocument.from_json``), as ``threadwise export`` reads them.
"""
import json
import subprocess
import sys

import pytest

from threadwise import environment
from threadwise.bench import results, stats
from threadwise.bench.model import ResultsDocument
from threadwise.errors import ResultsFileError
from threadwise.report import export

pyperf = pytest.importorskip("pyperf", reason="pyperf is not installed: pip install pyperf "
                                                "(it is in threadwise's test extra)")


def _pyperf(*args):
    return subprocess.run([sys.executable, "-m", "pyperf", *args], capture_output=True, text=True,
                          timeout=120)


def _cell(interp, workload, backend, workers, per_s, start_method=None, scaling="strong", tag="",
          per_task=False, label=None, samples=None):
    samples = samples or [per_s * f for f in (1.0, 1.02, 0.99, 1.04, 1.01)]
    wall = stats.summarize(samples)
    cpu = stats.summarize([s * 0.9 for s in samples])
    key = results.cell_key(interp, workload, backend, workers, start_method, scaling) + (
        "|" + tag if tag else "")
    return {"key": key, "interpreter": interp, "command": "/usr/bin/python3", "workload": workload,
            "workload_label": label or workload, "params": {}, "backend": backend, "workers": workers,
            "start_method": start_method, "scaling": scaling, "tasks": 4, "size": 1000, "tag": tag,
            "per_task": per_task, "status": "ok", "error": None, "warnings": [],
            "load_avg_start": 0.25, "started": "2026-01-01T00:00:0%d+0000" % workers,
            "wall_s": wall.to_json(), "cpu_s": cpu.to_json(), "speedup": 1.0, "speedup_ci95": [0.9, 1.1], "parallelism": 1.0}


def _doc(slower=1.0, extra=()):
    """The JSON of a results file (as a user could edit it)."""
    doc = results.new_document(environment.host(), {"command": "test"}).to_json()
    doc["interpreters"] = {"py": {"command": sys.executable, "label": "py", "implementation": "CPython",
                                  "version": "3.11.7", "gil_enabled": True,
                                  "executable": sys.executable}}
    doc["cells"] = [
        _cell("py", "cpu-python", "serial", 1, 0.2 * slower),
        _cell("py", "cpu-python", "threads", 2, 0.21 * slower),
        _cell("py", "cpu-python", "processes", 2, 0.11 * slower),
        _cell("py", "cpu-python", "processes", 2, 0.12 * slower, start_method="spawn"),
        _cell("py", "cpu-python", "threads", 2, 0.4 * slower, scaling="weak"),
        _cell("py", "cpu-python", "processes", 2, 0.3 * slower, tag="tiny", per_task=True),
        {"key": "py|zlib|threads|2|-|strong", "interpreter": "py", "workload": "zlib", "backend": "threads",
         "workers": 2, "status": "error", "error": "boom"},
    ] + list(extra)
    return doc


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_names_and_format(tmp_path):
    suite, skipped = export.to_pyperf(ResultsDocument.from_json(_doc()))
    names = [b["metadata"]["name"] for b in suite["benchmarks"]]
    work = "tasks=4/size=1000"     # the name says how much work: compare_to pairs like with like
    assert names == ["py/cpu-python/serial/x1/" + work, "py/cpu-python/threads/x2/" + work,
                     "py/cpu-python/processes/x2/" + work, "py/cpu-python/processes/spawn/x2/" + work,
                     "py/cpu-python/threads/x2/%s/weak" % work,
                     "py/cpu-python/processes/x2/%s/tiny/per-task" % work]
    assert suite["version"] == "1.0" and skipped == []
    b = suite["benchmarks"][1]
    assert b["metadata"]["unit"] == "second" and b["metadata"]["loops"] == 1
    assert b["runs"][0]["values"] == _doc()["cells"][1]["wall_s"]["samples"]


def test_pyperf_stats_and_compare_to_work_on_the_export(tmp_path, run_cli):
    a = _write(tmp_path / "a.json", _doc())
    b = _write(tmp_path / "b.json", _doc(slower=1.3))
    for src, out in ((a, tmp_path / "pa.json"), (b, tmp_path / "pb.json")):
        p = run_cli("export", "--format", "pyperf", str(src), "-o", str(out))
        assert p.returncode == 0, p.stderr
        assert "6 benchmarks written" in " ".join(p.stderr.split())
    p = _pyperf("stats", str(tmp_path / "pa.json"))
    assert p.returncode == 0, p.stderr
    assert "py/cpu-python/threads/x2" in p.stdout and "Number of benchmarks: 6" in p.stdout
    p = _pyperf("compare_to", str(tmp_path / "pa.json"), str(tmp_path / "pb.json"))
    assert p.returncode == 0, p.stderr
    assert "py/cpu-python/processes/spawn/x2" in p.stdout and "slower" in p.stdout
    p = _pyperf("show", "--metadata", str(tmp_path / "pa.json"))
    assert p.returncode == 0, p.stderr
    assert "threadwise_backend: threads" in p.stdout


def test_hostile_labels_and_odd_values_still_load_in_pyperf(tmp_path, run_cli):
    odd = [
        _cell("py\n<script>", "cpu/python", "threads", 4, 0.1, label="  cpu/python\nx  "),
        _cell("py\n<script>", "cpu/python", "threads", 4, 0.1, label="  cpu/python\nx  "),  # same name
        _cell("py", "sleep", "threads", 8, 0.1),
        _cell("py", "empty", "threads", 8, 0.1),
        _cell("py", "huge", "threads", 8, 0.1),
        _cell("py", "some-huge", "threads", 8, 0.1),
        _cell("py\x00\x1b[31mred\x07\u202e", "ctl\x1b]0;title\x07", "threads", 2, 0.1, tag="t\x9b1"),
    ]
    odd[1]["key"] += "|again"                               # another cell, the same benchmark name
    # a hand-edited file: zero, negative and subnormal samples are numbers, not timings
    odd[2]["wall_s"]["samples"] = [0.0, -1.0, 0.1, 5e-324, 0.11]
    odd[3]["wall_s"]["samples"] = [0.0]
    # valid JSON numbers that overflow pyperf's sums ("intermediate overflow in fsum")
    odd[4]["wall_s"]["samples"] = [1e308, 1e308]
    odd[5]["wall_s"]["samples"] = [0.1, 1e308, 0.12]
    doc = _doc(extra=odd)
    doc["environment"]["hostname"] = ""                      # pyperf rejects empty strings
    doc["environment"]["load_avg"] = [-1.0]
    src = _write(tmp_path / "odd.json", doc)
    out = tmp_path / "odd-pyperf.json"
    p = run_cli("export", str(src), "-o", str(out))
    assert p.returncode == 0, p.stderr
    err = " ".join(p.stderr.split())
    assert "left out" in err and "py/empty/threads/x8" in err and "py/huge/threads/x8" in err, err
    assert "py/some-huge/threads/x8/tasks=4/size=1000: 1 sample over" in err and "overflow" in err, err
    data = json.loads(out.read_text())
    names = [b["metadata"]["name"] for b in data["benchmarks"]]
    assert len(names) == len(set(names)), names
    assert all(n.isprintable() for n in names), names        # no NUL, ESC, BEL, C1, bidi
    w = "/tasks=4/size=1000"
    assert "py <script>/cpu\u2215python x/threads/x4" + w in names           # "/" can't fake a level
    assert "py <script>/cpu\u2215python x/threads/x4%s#2" % w in names
    assert "py??red??/ctl?/threads/x2%s/t?1" % w in names
    assert not any(n.startswith("py/huge/") or n.startswith("py/empty/") for n in names)
    for b in data["benchmarks"]:                            # pyperf's own checks, in process
        assert pyperf.Run(b["runs"][0]["values"], metadata=dict(b["metadata"], **b["runs"][0]["metadata"]),
                          collect_metadata=False)
        assert all(isinstance(v, str) is False or v.isprintable() for v in b["metadata"].values())
    sleep = next(b for b in data["benchmarks"] if b["metadata"]["name"] == "py/sleep/threads/x8" + w)
    assert sleep["runs"][0]["values"] == [0.1, 0.11]
    some = next(b for b in data["benchmarks"] if b["metadata"]["name"] == "py/some-huge/threads/x8/tasks=4/size=1000")
    assert some["runs"][0]["values"] == [0.1, 0.12]
    for args in (["stats", str(out)], ["show", "--metadata", str(out)], ["compare_to", str(out), str(out)]):
        p = _pyperf(*args)
        assert p.returncode == 0, p.stderr
        assert "\x1b" not in p.stdout and "\x00" not in p.stdout


@pytest.mark.parametrize("value,what", [(float("nan"), "not finite"), ("0.5", "expected a number"),
                                        (True, "expected a number")])
def test_samples_the_model_refuses_are_named(tmp_path, value, what):
    doc = _doc()
    doc["cells"][1]["wall_s"]["samples"].append(value)
    with pytest.raises(ResultsFileError) as e:
        results.loads(json.dumps(doc), "odd.json")
    assert "odd.json.cells[1].wall_s.samples[5]" in str(e.value) and what in str(e.value)


def test_a_file_the_model_refuses_fails_the_export_command(tmp_path, run_cli):
    doc = _doc()
    doc["cells"][1]["wall_s"]["samples"].append("0.5")
    src, out = _write(tmp_path / "odd.json", doc), tmp_path / "out.json"
    p = run_cli("export", str(src), "-o", str(out))
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "odd.json" in err and "samples[5]" in err and "Fix:" in err, err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("text,clean", [
    ("plain", "plain"), ("a\nb\tc  d", "a b c d"), ("nul\x00", "nul?"),
    ("\x1b[1;31mred\x1b[0m", "?red?"), ("bell\x07", "bell?"), ("del\x7f", "del?"),
    ("c1\x9b", "c1?"), ("rtl\u202eevil", "rtl?evil"), ("esc\x1b", "esc?"), ("caf\u00e9 \u00d7", "caf\u00e9 \u00d7"),
])
def test_clean_text(text, clean):
    assert export.clean_text(text) == clean


def test_real_bench_run_exports(tmp_path, run_cli):
    res = tmp_path / "bench.json"
    p = run_cli("bench", "-w", "sleep", "-b", "threads", "--workers", "1,2", "--repeats", "3",
                "--warmups", "0", "-o", str(res))
    assert p.returncode == 0, p.stderr
    out = tmp_path / "pyperf.json"
    p = run_cli("export", "--format", "pyperf", str(res), "-o", str(out))
    assert p.returncode == 0, p.stderr
    p = _pyperf("stats", str(out))
    assert p.returncode == 0, p.stderr
    doc = results.load(res)
    for c in doc.cells:
        assert export.benchmark_name(c) in p.stdout
    p = _pyperf("compare_to", str(out), str(out))
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("content,what", [
    ("", "is empty"),
    ('{"schema": "threadwise.results/1", "cel', "not valid JSON"),
    ('{"schema": "other/2", "cells": []}', "has schema"),
    ('{"schema": "threadwise.results/1", "cells": []}', "nothing to export"),
])
def test_bad_input_is_named(tmp_path, run_cli, content, what):
    src = tmp_path / "in.json"
    src.write_text(content)
    out = tmp_path / "out.json"
    p = run_cli("export", "--format", "pyperf", str(src), "-o", str(out))
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "in.json" in err and what in err and "Traceback" not in err, err
    assert not out.exists()


def test_unknown_format_and_default_output(tmp_path, run_cli):
    src = _write(tmp_path / "a.json", _doc())
    p = run_cli("export", "--format", "csv", str(src), "-o", str(tmp_path / "x"))
    assert p.returncode == 2 and "csv" in p.stderr
    # without -o it writes pyperf.json where it runs (like report's report.html)
    p = run_cli("export", str(src), cwd=str(tmp_path))
    assert p.returncode == 0 and (tmp_path / "pyperf.json").exists(), p.stderr
