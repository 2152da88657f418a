"""``threadwise probe -- CMD``: real programs in real processes; output and exit status kept."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import SPIN2, popen, stop

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the probe reads /proc")

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _env():
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def probe(*args, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "threadwise.probe.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=_env())


def write(tmp_path, name, code):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def test_json_schema_and_program_output_kept(tmp_path):
    script = write(tmp_path, "spin2.py", SPIN2)
    out = tmp_path / "probe.json"
    r = probe("--json", "--output", str(out), "--", sys.executable, script, "a", "b c")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done ['a', 'b c']\n"
    d = json.loads(out.read_text())
    for key in ("gil_held", "gil_wait", "parallelism", "samples", "threads", "exit_code"):
        assert key in d
    assert d["exit_code"] == 0
    assert 0.8 < d["gil_held"] <= 1.0
    assert 0.0 <= d["gil_wait"] <= d["gil_held"] + 0.05
    assert d["samples"] > 100
    spinners = [t for t in d["threads"] if (t["name"] or "").startswith("spinner-")]
    assert len(spinners) == 2
    assert all(t["cpu_s"] > 0.05 for t in spinners)
    assert d["parallelism"] < 1.3


def test_json_goes_to_stderr_without_output(tmp_path):
    script = write(tmp_path, "quick.py", "import time; time.sleep(0.3); print('hi')\n")
    r = probe("--json", "--", sys.executable, script)
    assert r.returncode == 0
    assert r.stdout == "hi\n"
    d = json.loads(r.stderr[r.stderr.index("{"):])
    assert d["gil_held"] < 0.2
    assert d["exit_code"] == 0


def test_text_report_and_python_word(tmp_path):
    script = write(tmp_path, "sleepy.py", "import time; time.sleep(0.2)\n")
    r = probe("--", "python", script)  # 'python' may not be on PATH: the probe uses its own
    assert r.returncode == 0, r.stderr
    assert "GIL held" in r.stderr and "parallelism" in r.stderr


def test_exit_code_passed_through(tmp_path):
    script = write(tmp_path, "three.py", "import sys; print('out'); sys.exit(3)\n")
    r = probe("--", sys.executable, script)
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert "exit code      3" in r.stderr


def test_program_exception_is_not_swallowed(tmp_path):
    script = write(tmp_path, "boom.py", """
        import time
        time.sleep(0.1)
        def f():
            raise ValueError("boom from the program")
        f()
    """)
    r = probe("--", sys.executable, script)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "ValueError: boom from the program" in r.stderr
    assert "GIL held" in r.stderr  # and the probe still reports


def test_killed_by_signal_reports_what_it_measured(tmp_path):
    script = write(tmp_path, "killed.py", """
        import os, signal, time
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = tmp_path / "probe.json"
    r = probe("--json", "--output", str(out), "--", sys.executable, script)
    assert r.returncode == 128 + signal.SIGKILL
    d = json.loads(out.read_text())
    assert d["exit_code"] == 137
    assert d["samples"] > 50 and d["gil_held"] > 0.8
    assert any("SIGKILL" in n for n in d["notes"])


def test_os_exit_keeps_status(tmp_path):
    script = write(tmp_path, "osexit.py", "import os, time; time.sleep(0.1); os._exit(5)\n")
    r = probe("--", sys.executable, script)
    assert r.returncode == 5
    assert "exit handlers" in r.stderr


def test_ctrl_c_reaches_the_program_and_status_is_130(tmp_path):
    script = write(tmp_path, "forever.py", """
        import time
        print("started", flush=True)
        try:
            while True:
                time.sleep(0.02)
        finally:
            print("cleanup", flush=True)
    """)
    p = popen([sys.executable, "-m", "threadwise.probe.cli", "--", sys.executable, script],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert p.stdout.readline() == "started\n"
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        stop(p)   # the probe and the program it started, even when an assertion failed
    assert p.returncode == 130
    assert "cleanup" in out
    assert "KeyboardInterrupt" in err
    assert "GIL held" in err


def test_missing_script_is_a_usage_error(tmp_path):
    r = probe("--", sys.executable, str(tmp_path / "nope.py"))
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Fix:" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_command_and_bad_options(tmp_path):
    r = probe("--", "no-such-interpreter-xyz", "x.py")
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = probe("--")
    assert r.returncode == 2 and "no program" in r.stderr
    script = write(tmp_path, "ok.py", "pass\n")
    r = probe("--interval", "0", "--", sys.executable, script)
    assert r.returncode == 2 and "--interval" in r.stderr


def test_module_mode(tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "job.py").write_text("import sys\nprint('module', __name__, sys.argv[1:])\nsys.exit(4)\n")
    r = probe("--json", "--", sys.executable, "-m", "mypkg.job", "x", cwd=str(tmp_path))
    assert r.returncode == 4
    assert r.stdout == "module __main__ ['x']\n"
    d = json.loads(r.stderr[r.stderr.index("{"):])
    assert d["exit_code"] == 4
    # the short form: -m MODULE with the Python that runs threadwise; its own options kept
    r = probe("--json", "-m", "mypkg.job", "y", "--flag", cwd=str(tmp_path))
    assert r.returncode == 4
    assert r.stdout == "module __main__ ['y', '--flag']\n"


def test_every_prints_figures_so_far(tmp_path):
    script = write(tmp_path, "slow.py", "import time; time.sleep(0.9)\n")
    r = probe("--every", "0.25", "--", sys.executable, script)
    assert r.returncode == 0
    assert r.stderr.count("threadwise probe (so far)") >= 2


def test_program_environment_is_left_alone(tmp_path):
    script = write(tmp_path, "env.py", """
        import os, sys
        print(os.environ.get("PYTHONPATH", "<unset>"))
        print(any("_boot" in p for p in sys.path))
        print(sorted(k for k in os.environ if k.startswith("THREADWISE_PROBE")))
    """)
    env = _env()
    r = subprocess.run([sys.executable, "-m", "threadwise.probe.cli", "--", sys.executable, script],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == env["PYTHONPATH"]
    assert lines[1] == "False"
    assert lines[2] == "[]"


def test_through_the_threadwise_command(tmp_path):
    """`threadwise probe` (the fast path that starts the program before loading the
    other subcommands): status passed on, JSON summary, three-part usage errors."""
    script = write(tmp_path, "three.py", "import sys\nprint('hi')\nsys.exit(3)\n")
    r = subprocess.run([sys.executable, "-m", "threadwise", "probe", "--json", "--", sys.executable,
                        script], capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 3 and r.stdout == "hi\n"
    assert json.loads(r.stderr[r.stderr.index("{"):])["exit_code"] == 3
    r = subprocess.run([sys.executable, "-m", "threadwise", "probe", "--every", "x", "--",
                        sys.executable, script], capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "threadwise: error:" in r.stderr and "--every" in r.stderr and "Fix:" in r.stderr
