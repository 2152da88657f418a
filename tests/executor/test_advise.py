"""advise(fn, items) and `threadwise advise module:function`: measures, recommends, explains."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from threadwise.errors import UsageError
from threadwise.executor import Advice, BackendResult, ItemError, advise
from threadwise.executor import cli

pytestmark = pytest.mark.timeout(120)

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def inc(x):
    return x + 1


def wait_1ms(x):
    time.sleep(0.001)
    return x


def bad(x):
    if x == 2:
        raise ValueError("no twos")
    return x


GIL = getattr(sys, "_is_gil_enabled", lambda: True)()


def _reads(a, prefix):
    """The advice starts with ``prefix``, or, measured on a busy machine, says it is
    inconclusive and quotes a run that started so (a busy machine must not decide)."""
    if a.verdict == "inconclusive":
        assert "rerun on a quiet machine" in a.sentence and a.others_share > 0.2
        return ("this run read: " + prefix) in a.sentence
    return a.sentence.startswith(prefix)


def _names(results):
    return [r.backend.replace("free threads", "threads") for r in results]


def test_advise_tiny_items_recommends_serial():
    a = advise(inc, range(5000), sample_s=0.05)
    assert isinstance(a, Advice)
    assert a.backend == "serial"
    names = _names(a.results)
    assert names[0] == "serial" and {"threads", "processes"} <= set(names)
    assert all(isinstance(r, BackendResult) for r in a.results)
    proc = [r for r in a.results if r.backend == "processes"][0]
    assert proc.available and proc.startup_s is not None and proc.transfer_s is not None
    assert proc.transfer_bytes is not None and proc.transfer_bytes > 0
    assert str(a) == a.sentence and _reads(a, "serial")
    assert "processes:" in a.sentence and "start-up" in a.sentence
    assert a.environment["cpus"] >= 1 and "loadavg" in a.environment
    d = a.to_dict()
    json.dumps(d, default=str)
    assert d["results"][0]["backend"] == "serial"


def test_advise_waiting_items_recommends_threads():
    a = advise(wait_1ms, range(400), sample_s=0.1, backends=["threads"])
    assert a.backend == "threads", a.sentence
    assert a.cpu_share < 0.5
    assert _reads(a, "threads x") or _reads(a, "free threads x"), a.sentence


@pytest.mark.skipif(not GIL, reason="a free-threaded build without its GIL has none to report")
def test_advise_reports_the_gil():
    def spin(x):
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass
        return x
    a = advise(spin, range(100), sample_s=0.1, backends=["threads"])
    assert a.gil_held is not None and a.gil_held > 0.5
    assert "holds" in str(a.gil_check.get("holds")) or a.gil_check.get("holds") in (True, False, None)
    assert "GIL" in a.sentence or a.backend == "threads"


def test_advise_bad_input():
    with pytest.raises(UsageError, match="fn must be callable"):
        advise(5, range(3))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="workers must be"):
        advise(inc, range(3), workers=0)
    with pytest.raises(UsageError, match="no items"):
        advise(inc, [])
    with pytest.raises(UsageError, match="backends must name"):
        advise(inc, range(3), backends=["dask"])
    with pytest.raises(ItemError, match="no twos"):
        advise(bad, range(10), sample_s=0.01)


# --------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------
@pytest.fixture
def work_file(tmp_path):
    f = tmp_path / "mywork.py"
    f.write_text(textwrap.dedent("""
        def inc(x):
            return x + 1

        def size(s):
            return len(s)

        NOT_A_FUNCTION = 3
    """))
    return f


def test_cli_range_table(work_file, capsys):
    rc = cli.main(["%s:inc" % work_file, "--range", "2000", "--sample-seconds", "0.05",
                   "--backends", "threads,processes"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "serial" in out and "threads" in out and "processes" in out
    assert "recommendation:" in out


def test_cli_items_json(work_file, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text('"a"\n"bb"\n\n"ccc"\n')
    rc = cli.main(["advise", "%s:size" % work_file, "--items", str(items), "--json",
                   "--sample-seconds", "0.02", "--backends", "threads"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total"] == 3 and d["backend"] in ("serial", "threads")
    assert [r["backend"].replace("free threads", "threads") for r in d["results"]] == ["serial", "threads"]


@pytest.mark.parametrize("argv, words", [
    (["nosuchmodule_xyz:f", "--range", "3"], "can't import module"),
    (["{f}:missing", "--range", "3"], "has no attribute"),
    (["{f}:NOT_A_FUNCTION", "--range", "3"], "is not callable"),
    (["{f}", "--range", "3"], "expected module:function"),
    (["{f}:inc", "--range", "0"], "--range must be >= 1"),
    (["{f}:inc", "--items", "/nonexistent/items"], "can't read the items file"),
    (["{f}:inc", "--range", "3", "--workers", "0"], "workers must be"),
])
def test_cli_errors_exit_2_without_traceback(argv, words, work_file, capsys):
    rc = cli.main([a.format(f=work_file) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert words in err and "Fix:" in err
    assert "Traceback" not in err


def test_cli_bad_json_line(work_file, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text('1\n2\nnot json\n')
    assert cli.main(["%s:inc" % work_file, "--items", str(items)]) == 2
    assert "line 3 is not JSON" in capsys.readouterr().err


def test_cli_as_a_module(work_file, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "threadwise.executor.cli", "mywork:inc", "--range",
                        "1000", "--sample-seconds", "0.02", "--backends", "threads", "--json"],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["sampled"] >= 1


def test_add_parser_hook():
    import argparse
    parser = argparse.ArgumentParser(prog="threadwise")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(["advise", "m:f", "--range", "5"])
    assert args.func is cli.run and args.range == 5


def test_advise_across_interpreters_cli(tmp_path, run_cli):
    import json as _json
    (tmp_path / "sq.py").write_text("def sq(x):\n    s = 0\n    for i in range(20000):\n        s += i * x\n    return s\n")
    out = tmp_path / "a.json"
    p = run_cli("advise", "sq.py:sq", "--range", "8", "--python", sys.executable, "--json",
                "-o", str(out), cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    data = _json.loads(p.stdout)
    assert data == _json.loads(out.read_text())
    (row,) = data["interpreters"]
    assert row["verdict"] in ("recommended", "inconclusive") and row["sentence"].startswith("on ")
    assert set(row["cells"]) >= {"serial", "threads", "processes"}


def test_advise_across_names_a_missing_dependency(tmp_path, run_cli):
    (tmp_path / "dep.py").write_text("import not_installed_anywhere\ndef f(x):\n    return x\n")
    p = run_cli("advise", "dep.py:f", "--range", "4", "--python", sys.executable, cwd=str(tmp_path))
    assert p.returncode == 1
    assert "not_installed_anywhere" in p.stdout and "Traceback" not in p.stderr


@pytest.mark.parametrize("code,how", [
    ("import sys\nsys.exit(3)\ndef f(x):\n    return x\n", "sys.exit(3)"),
    ("import os\ndef f(x):\n    os._exit(5)\n", "os._exit(5)"),
])
def test_advise_on_code_that_exits(tmp_path, run_cli, code, how):
    (tmp_path / "ex.py").write_text(code)
    p = run_cli("advise", "ex.py:f", "--range", "4", cwd=str(tmp_path))
    assert p.returncode == 2 and how in p.stderr and "Fix:" in p.stderr, (p.returncode, p.stderr)
