"""The command line as a user meets it: real subprocesses, exit codes, messages, no tracebacks."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import cli


def _no_traceback(p):
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr


def test_bench_small_run_writes_schema(tmp_path):
    out = tmp_path / "r.json"
    p = cli("bench", "-w", "cpu-python,sleep", "-b", "threads,processes", "--workers", "1,2",
            "--repeats", "3", "--warmups", "0", "--task-ms", "10", "-o", str(out))
    assert p.returncode == 0, p.stderr
    _no_traceback(p)
    d = json.loads(out.read_text())
    assert d["schema"] == "threadwise.results/1"
    assert {"cpu_model", "usable_cores", "load_avg", "cores"} <= set(d["environment"])
    for c in d["cells"]:
        assert {"interpreter", "workload", "backend", "workers", "wall_s", "cpu_s", "speedup",
                "parallelism", "warnings"} <= set(c)
        assert len(c["wall_s"]["ci95"]) == 2
    assert "speedup against serial" in p.stdout


def test_bench_list():
    p = cli("bench", "--list")
    assert p.returncode == 0 and "cpu-python" in p.stdout and "duty-cycle" in p.stdout


@pytest.mark.parametrize("args,match", [
    (["bench", "-w", "nosuch"], "unknown workload 'nosuch'"),
    (["bench", "-b", "fibers"], "unknown backend 'fibers'"),
    (["bench", "--workers", "0"], "workers must be >= 1, got 0"),
    (["bench", "--workers", "two"], "not a whole number"),
    (["bench", "--bogus"], "unrecognized arguments"),
    (["bench", "-o", "/nonexistent-dir/r.json"], "does not exist"),
    (["bench", "--size", "cpu-python=abc"], "bad --size"),
    (["claims", "--only", "C9"], "unknown claim C9"),
])
def test_bad_input_exit_2_with_three_parts(args, match):
    p = cli(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert match in p.stderr
    assert "Fix:" in p.stderr or "see:" in p.stderr
    _no_traceback(p)


@pytest.mark.parametrize("content", ["", "{\"schema\": \"threadwise.results/1\", \"cel",
                                     "{\"schema\": \"other/9\", \"cells\": []}"])
def test_resume_bad_file(tmp_path, content):
    f = tmp_path / "r.json"
    f.write_text(content)
    p = cli("bench", "-w", "sleep", "--resume", str(f))
    assert p.returncode == 2 and str(f) in p.stderr
    _no_traceback(p)


def test_ctrl_c_keeps_finished_cells_and_resume_finishes(tmp_path):
    out = tmp_path / "r.json"
    args = [sys.executable, "-m", "threadwise", "bench", "-w", "sleep", "-b", "threads",
            "--workers", "1,2,3,4", "--repeats", "5", "--warmups", "0", "-o", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:          # wait until at least two cells are on disk
        try:
            if len(json.loads(out.read_text())["cells"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)     # what Ctrl-C in a terminal does
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    kept = json.loads(out.read_text())["cells"]
    assert 2 <= len(kept) < 5
    p = cli("bench", "-w", "sleep", "-b", "threads", "--workers", "1,2,3,4", "--repeats", "5",
            "--warmups", "0", "--resume", str(out))
    assert p.returncode == 0, p.stderr
    assert "already measured" in p.stderr
    cells = json.loads(out.read_text())["cells"]
    assert len(cells) == 5 and all(c["status"] == "ok" for c in cells)


def test_missing_interpreter_is_reported_rest_measured(tmp_path):
    out = tmp_path / "r.json"
    p = cli("bench", "-w", "sleep", "-b", "threads", "--workers", "2", "--repeats", "2",
            "--python", "no-such-python-3.99", "--python", sys.executable, "-o", str(out))
    assert p.returncode == 1, p.stderr      # some cells failed: a CI script can tell

    d = json.loads(out.read_text())
    assert any(c["status"] == "ok" for c in d["cells"])
    assert "could not be started" in p.stdout + p.stderr


def test_interpreters_json():
    p = cli("interpreters", "--json", "--no-probe", "--python", sys.executable)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert rows[0]["implementation"] == "CPython" and rows[0]["free_threaded"] in (True, False)


def test_version_and_help():
    assert cli("--version").stdout.startswith("threadwise ")
    p = cli("--help")
    assert p.returncode == 0 and "bench" in p.stdout and "claims" in p.stdout


@pytest.mark.parametrize("sub", ["probe", "advise", "report", "export"])
def test_every_subcommand_is_wired_into_the_main_cli(sub):
    p = cli(sub, "--help")
    assert p.returncode == 0, p.stderr
    assert "usage: threadwise " + sub in p.stdout


def test_advise_through_the_main_cli(tmp_path):
    (tmp_path / "mywork.py").write_text("def cpu(n):\n    return sum(i * n for i in range(20000))\n")
    p = cli("advise", str(tmp_path / "mywork.py") + ":cpu", "--range", "60", "--json",
            cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    _no_traceback(p)
    out = json.loads(p.stdout)
    assert out["backend"] in ("serial", "threads", "processes") and out["sentence"]
    assert out["gil_held"] > 0.5          # a pure-Python loop holds the GIL


def test_claims_names_an_interpreter_it_could_not_start():
    p = cli("claims", "--only", "C1", "--quick", "--python", "no-such-python-3.99")
    assert p.returncode == 0, p.stderr
    assert "no-such-python-3.99 was not measured" in p.stderr
    _no_traceback(p)
