"""The command line as a user meets it: real subprocesses, exit codes, messages, no tracebacks."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import cli, popen, stop


def _no_traceback(p):
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr


def test_bench_small_run_writes_schema(tmp_path):
    out = tmp_path / "r.json"
    p = cli("bench", "-w", "cpu-python,sleep", "-b", "threads,processes", "--workers", "1,2",
            "--repeats", "3", "--warmups", "0", "--task-ms", "10", "-o", str(out))
    assert p.returncode == 0, p.stderr
    _no_traceback(p)
    d = json.loads(out.read_text())
    assert d["schema"] == "threadwise.results/2"
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
    (["claims", "--only", "C10"], "unknown claim C10"),
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
    proc = popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
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
    finally:
        stop(proc)
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


def _bench(out, *extra):
    return cli("bench", "-w", "sleep", "-b", "threads", "--workers", "2", "--repeats", "2",
               "--warmups", "0", "--tasks", "2", "-o", str(out), *extra)


@pytest.mark.parametrize("flags,what", [
    (["--tasks", "4"], "--tasks contradicts"),
    (["--workers", "1,2", "--tasks", "8"], "contradicts"),
    (["-w", "cpu-python"], "--workload contradicts"),
])
def test_resume_refuses_options_that_change_the_work(tmp_path, flags, what):
    out = tmp_path / "r.json"
    assert _bench(out).returncode == 0
    before = out.read_text()
    p = cli("bench", "--resume", str(out), *flags)
    assert p.returncode == 2 and what in p.stderr and "Fix:" in p.stderr, p.stderr
    _no_traceback(p)
    assert out.read_text() == before          # nothing measured is lost or changed


def test_resume_with_no_flags_continues_the_stored_matrix(tmp_path):
    out = tmp_path / "r.json"
    assert _bench(out).returncode == 0
    p = cli("bench", "--resume", str(out), "--timeout", "100")
    assert p.returncode == 0, p.stderr
    assert "2 of 2 cells already measured, 0 to go" in p.stderr


def test_sizes_from_makes_two_runs_measure_the_same_work(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("bench", "-w", "cpu-python", "-b", "threads", "--workers", "2", "--repeats", "2",
               "--warmups", "0", "--task-ms", "5", "-o", str(a)).returncode == 0
    p = cli("bench", "-w", "cpu-python", "-b", "threads", "--workers", "2", "--repeats", "2",
            "--warmups", "0", "--task-ms", "5", "--sizes-from", str(a), "-o", str(b))
    assert p.returncode == 0, p.stderr
    size_a = {c["size"] for c in json.loads(a.read_text())["cells"]}
    cells_b = json.loads(b.read_text())["cells"]
    assert {c["size"] for c in cells_b} == size_a and all("size=" in c["key"] for c in cells_b)


@pytest.mark.parametrize("flags,what", [
    (["--timeout", "nan"], "--timeout must be a number"),
    (["--timeout", "-1"], "--timeout must be a number"),
    (["--timeout", "inf"], "--timeout must be a number"),
    (["--task-ms", "nan"], "--task-ms must be a number"),
    (["--switch-interval", "-1"], "--switch-interval must be"),
    (["--switch-interval", "nan"], "--switch-interval must be"),
    (["--workers", "100000"], "workers must be >= 1 and <= 1024"),
    (["-w", "duty-cycle:duty=nan"], "must be a number"),
    (["--size", "sleep=100000000000000000000000"], "must be >= 1 and <= "),
    (["--python", "X=\udcff python3"], "not valid UTF-8"),
])
def test_numbers_that_are_not_numbers_are_refused_before_measuring(flags, what):
    p = cli("bench", "-w", "sleep", "-b", "threads", "--workers", "2", *flags) if "-w" not in flags \
        else cli("bench", "-b", "threads", *flags)
    assert p.returncode == 2 and what in " ".join(p.stderr.split()), p.stderr
    _no_traceback(p)


def test_output_never_overwrites_a_foreign_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    p = _bench(notes)
    assert p.returncode == 2 and "not a threadwise results file" in p.stderr
    assert notes.read_text() == "my notes\n"


def test_all_cells_failed_exits_1(tmp_path):
    p = cli("bench", "-w", "sleep", "-b", "threads", "--workers", "2", "--python", "no-such-python-3.99")
    assert p.returncode == 1, p.stderr


def test_sigterm_leaves_no_process_or_temp_folder(tmp_path):
    import psutil
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = [sys.executable, "-m", "threadwise", "bench", "-w", "socket", "-b", "threads",
            "--workers", "2", "--repeats", "50", "--warmups", "0", "-o", str(tmp_path / "r.json")]
    proc = popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 env=dict(os.environ, TMPDIR=str(tmp)))
    try:
        deadline = time.time() + 60
        kids = []
        while time.time() < deadline:   # the echo server and an agent are running
            kids = psutil.Process(proc.pid).children(recursive=True)
            if len(kids) >= 2 and list(tmp.iterdir()):
                break
            time.sleep(0.05)
        assert len(kids) >= 2
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        time.sleep(0.5)
        alive = [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
        assert not alive, alive
        assert not list(tmp.iterdir())
    finally:
        stop(proc)


def test_sigkill_of_bench_takes_its_children_along(tmp_path):
    import psutil
    args = [sys.executable, "-m", "threadwise", "bench", "-w", "socket", "-b", "threads",
            "--workers", "2", "--repeats", "50", "--warmups", "0"]
    # a new session but the default SIGKILL: nothing in the parent runs
    proc = popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            kids = psutil.Process(proc.pid).children(recursive=True)
            if len(kids) >= 2:
                break
            time.sleep(0.05)
        assert len(kids) >= 2
        proc.kill()
        proc.wait(10)
        deadline = time.time() + 5
        while time.time() < deadline and any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE
                                             for k in kids):
            time.sleep(0.05)
        assert not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    finally:
        for k in kids:
            try:
                k.kill()
            except psutil.Error:
                pass
        stop(proc)


def test_markdown_summary_and_log_progress(tmp_path):
    md = tmp_path / "summary.md"
    p = cli("bench", "-w", "sleep", "-b", "threads", "--workers", "2", "--repeats", "2",
            "--warmups", "0", "--markdown", str(md))
    assert p.returncode == 0, p.stderr
    text = md.read_text()
    assert text.startswith("## threadwise bench") and "| sleep | threads |" in text
    # no terminal: a line per step that a CI log can show, not a silent bar
    assert "[1/2]" in p.stderr and "[2/2]" in p.stderr and "sleep threads x2" in p.stderr


def test_bench_on_your_own_function(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import random\n"
        "def square(x):\n    return x * x\n"
        "def noisy(x):\n    return x + random.random()\n")
    out = tmp_path / "r.json"
    p = cli("bench", "-w", "mine.py:square", "-w", "mine.py:noisy", "--range", "8", "-b", "threads,processes",
            "--workers", "2", "--repeats", "2", "--warmups", "0", "-o", str(out), cwd=str(tmp_path))
    assert p.returncode == 1, p.stderr            # noisy's cells fail: exit 1
    cells = json.loads(out.read_text())["cells"]
    square = [c for c in cells if c["workload"] == "mine.py:square"]
    assert len(square) == 3 and all(c["status"] == "ok" for c in square), square
    noisy = [c for c in cells if c["workload"] == "mine.py:noisy" and c["backend"] != "serial"]
    assert noisy and all("non-deterministic or not thread-safe" in c["error"] for c in noisy)


@pytest.mark.parametrize("args,what", [
    (["-w", "mine.py:square"], "has no items"),
    (["-w", "nope.py:f", "--range", "3"], "can't read nope.py"),
    (["-w", "mine.py:square", "--range", "0"], "--range must be between"),
])
def test_bench_own_function_bad_input(tmp_path, args, what):
    (tmp_path / "mine.py").write_text("def square(x):\n    return x * x\n")
    p = cli("bench", *args, cwd=str(tmp_path))
    assert p.returncode == 2 and what in " ".join(p.stderr.split()), p.stderr
    _no_traceback(p)


def test_bench_own_function_missing_in_the_target(tmp_path):
    (tmp_path / "needs.py").write_text("import no_such_module_here\ndef f(x):\n    return x\n")
    p = cli("bench", "-w", "needs.py:f", "--range", "4", "-b", "threads", "--workers", "2",
            "--repeats", "2", cwd=str(tmp_path))
    assert p.returncode == 1
    assert "no_such_module_here" in p.stdout + p.stderr
