"""The hook-free probe: ``threadwise probe --pid PID`` and the wrapping probe's fallback.

Real processes started WITHOUT the start-up hook (``python -I``), real
interpreters (skipped where absent), real permission refusals.  Every process
started here runs in its own session and is killed with its group in a
``finally`` (conftest's ``popen``/``stop``).
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import popen, stop

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the probe reads /proc")

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
PYENV = os.path.join(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "versions")
CHROOT = "/srv/threadwise-sid"

# two threads spinning in pure Python until killed
SPIN = textwrap.dedent("""
    import threading
    def spin():
        while True:
            pass
    for i in range(2):
        threading.Thread(target=spin, name="spinner-%d" % i, daemon=True).start()
    threading.Event().wait()
""")

# one thread at a known GIL duty (duty_cycle from threadwise.bench.inside.workloads),
# logging its spin phases: the truth (see benchmarks/probe_pid_accuracy.py)
DUTY = textwrap.dedent(r"""
    import json, sys, threading, time
    duty, total = float(sys.argv[1]), float(sys.argv[2])
    clock = time.monotonic
    busy, idle = 0.01 * duty, 0.01 * (1 - duty)
    phases = []
    def worker():
        end_all = clock() + total
        while clock() < end_all:
            a = clock()
            end = a + busy
            while clock() < end:
                pass
            phases.append((a, clock()))
            time.sleep(idle)
    t_go = clock()
    t = threading.Thread(target=worker, name="duty")
    t.start()
    t.join()
    sys.stdout.write(json.dumps({"phases": phases, "t_go": t_go, "t_done": clock()}) + "\n")
""")


def _env():
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def probe(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "threadwise.probe.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env())


def summary(stderr):
    return json.loads(stderr[stderr.index("{"):])


def wait_threads(pid, n, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if len(os.listdir("/proc/%d/task" % pid)) >= n:
                return
        except OSError:
            break
        time.sleep(0.01)
    pytest.fail("process %d did not start %d threads" % (pid, n))


def _chroot_python(name):
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    if not os.path.exists(os.path.join(CHROOT, "usr/bin", name)):
        pytest.skip("%s is not installed in %s (scripts/install-interpreters)" % (name, CHROOT))
    return ["chroot", CHROOT, name]


def _need(path):
    if not os.path.exists(path):
        pytest.skip("%s is not installed (scripts/install-interpreters)" % path)
    return [path]


INTERPRETERS = {
    "host": lambda: [sys.executable],
    "system-3.11": lambda: _need("/usr/bin/python3"),
    "py313": lambda: _need("/opt/threadwise/py313/bin/python3.13"),
    "py314": lambda: _chroot_python("python3.14"),
    "py315": lambda: _chroot_python("python3.15"),
    "pyenv-3.7": lambda: _need(os.path.join(PYENV, "3.7.16/bin/python3")),
    "pyenv-3.8": lambda: _need(os.path.join(PYENV, "3.8.18/bin/python3")),
    "pyenv-3.9": lambda: _need(os.path.join(PYENV, "3.9.18/bin/python3")),
    "pyenv-3.10": lambda: _need(os.path.join(PYENV, "3.10.13/bin/python3")),
    "pyenv-3.12": lambda: _need(os.path.join(PYENV, "3.12.1/bin/python3")),
    "pyenv-3.13": lambda: _need(os.path.join(PYENV, "3.13.0/bin/python3")),
}


def test_pid_reads_a_spinner_started_without_the_hook():
    target = popen([sys.executable, "-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)
        r = probe("--pid", str(target.pid), "--duration", "1", "--json")
        assert r.returncode == 0, r.stderr
        d = summary(r.stderr)
        assert d["gil"] is True and d["pid"] == target.pid
        assert d["gil_held"] >= 0.9, d
        assert d["samples"] > 100
        assert d["gil_found_by"] in ("known-layout", "debug-offsets")
        assert d["exit_code"] is None
        # thread states are mapped to OS threads (3.11+): holds attributed to the spinners
        spinners = [t for t in d["threads"] if t["cpu_s"] > 0.05]
        assert len(spinners) == 2
        assert sum(t["gil_held"] or 0 for t in spinners) > 0.8
        assert target.poll() is None  # untouched: still running
    finally:
        stop(target)


def test_pid_text_report():
    target = popen([sys.executable, "-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)
        r = probe("--pid", str(target.pid), "--duration", "0.5")
        assert r.returncode == 0, r.stderr
        assert "(pid %d)" % target.pid in r.stderr
        assert "GIL held" in r.stderr and "parallelism" in r.stderr
    finally:
        stop(target)


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_pid_on_every_interpreter(name):
    cmd = INTERPRETERS[name]()
    target = popen(cmd + ["-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)
        r = probe("--pid", str(target.pid), "--duration", "0.7", "--json")
        assert r.returncode == 0, r.stderr
        d = summary(r.stderr)
        assert d["gil"] is True
        assert d["gil_held"] >= 0.85, d
        assert 0.0 <= d["gil_wait"] <= d["gil_held"] + 0.05
        assert d["interpreter"].startswith("CPython 3.")
    finally:
        stop(target)


def test_pid_free_threaded_build_says_no_gil():
    cmd = _need("/opt/threadwise/py313t/bin/python3.13t")
    target = popen(cmd + ["-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)
        r = probe("--pid", str(target.pid), "--duration", "0.5", "--json")
        assert r.returncode == 0, r.stderr
        d = summary(r.stderr)
        assert d["gil"] is False and d["gil_held"] is None
        assert "free-threaded" in d["interpreter"]
        assert d["parallelism"] > 0.2
    finally:
        stop(target)
    # the same build with its GIL forced on (-X gil=1: -I ignores PYTHON_GIL)
    target = popen(cmd + ["-X", "gil=1", "-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)
        d = summary(probe("--pid", str(target.pid), "--duration", "0.5", "--json").stderr)
        assert d["gil"] is True and d["gil_held"] > 0.85
    finally:
        stop(target)


def test_pid_stops_on_ctrl_c_and_reports():
    target = popen([sys.executable, "-I", "-c", SPIN])
    p = None
    try:
        wait_threads(target.pid, 3)
        p = popen([sys.executable, "-m", "threadwise.probe.cli", "--pid", str(target.pid), "--json"],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        time.sleep(1.5)
        assert p.poll() is None  # no --duration: it samples until told to stop
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        d = summary(err)
        assert d["gil_held"] > 0.8 and d["wall_s"] > 0.5
        assert target.poll() is None
    finally:
        if p is not None:
            stop(p)
        stop(target)


def test_pid_ends_with_the_process():
    target = popen([sys.executable, "-I", "-c", "import time\nend = time.monotonic() + 1.0\n"
                    "while time.monotonic() < end: pass\n"])
    try:
        wait_threads(target.pid, 1)
        time.sleep(0.1)
        t0 = time.monotonic()
        r = probe("--pid", str(target.pid), "--json")
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - t0 < 15
        d = summary(r.stderr)
        assert d["gil_held"] > 0.8
        assert any("ended" in n for n in d["notes"])
    finally:
        stop(target)


def _three_part(stderr):
    assert "Traceback" not in stderr
    assert "Likely cause:" in stderr and "Fix:" in stderr


def test_pid_refused_for_another_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to start a probe as another user")
    system = "/usr/bin/python3"
    if not os.path.exists(system) or not os.access(SRC, os.R_OK | os.X_OK):
        pytest.skip("no system python that user nobody can run")
    target = popen([sys.executable, "-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)

        def as_nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

        r = subprocess.run([system, "-m", "threadwise.probe.cli", "--pid", str(target.pid), "--duration",
                            "0.3"], capture_output=True, text=True, timeout=60, env=_env(),
                           preexec_fn=as_nobody, cwd="/")
        assert r.returncode == 2, r.stderr
        assert "can't read the memory of process %d" % target.pid in r.stderr
        assert "another user" in r.stderr and "sudo" in r.stderr
        _three_part(r.stderr)
    finally:
        stop(target)


def test_pid_not_a_cpython():
    sleeper = popen(["sleep", "30"])
    try:
        wait_threads(sleeper.pid, 1)
        r = probe("--pid", str(sleeper.pid), "--duration", "0.2")
        assert r.returncode == 2
        assert "is not a CPython interpreter" in r.stderr
        _three_part(r.stderr)
    finally:
        stop(sleeper)


def test_pid_unknown_version():
    cmd = _need(os.path.join(PYENV, "3.6.15/bin/python3"))
    target = popen(cmd + ["-I", "-c", SPIN])
    try:
        wait_threads(target.pid, 3)
        r = probe("--pid", str(target.pid), "--duration", "0.2")
        assert r.returncode == 2
        assert "older than 3.7" in r.stderr and "threadwise probe --" in r.stderr
        _three_part(r.stderr)
    finally:
        stop(target)


def test_pid_that_does_not_exist():
    p = subprocess.Popen(["true"])
    p.wait()
    r = probe("--pid", str(p.pid), "--duration", "0.2")
    assert r.returncode == 2 and "does not exist" in r.stderr
    _three_part(r.stderr)


@pytest.mark.parametrize("args, words", [
    (["--pid", "1", "--", "python", "x.py"], "--pid measures a running process"),
    (["--duration", "3", "--", "python", "x.py"], "--duration goes with --pid"),
    (["--pid", "1", "--duration", "-1"], "--duration must be a positive"),
    (["--pid", "0"], "--pid must be a process ID"),
])
def test_pid_usage_errors(args, words):
    r = probe(*args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Fix:" in r.stderr and "Traceback" not in r.stderr


def test_wrapped_program_under_dash_I_is_measured(tmp_path):
    script = tmp_path / "spin.py"
    script.write_text(textwrap.dedent("""
        import threading, time
        def spin():
            end = time.monotonic() + 0.8
            while time.monotonic() < end:
                pass
        ts = [threading.Thread(target=spin) for _ in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
        print("done")
    """))
    r = probe("--json", "--", sys.executable, "-I", str(script))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    d = summary(r.stderr)
    assert d["gil"] is True and d["method"] == "gil-state"
    assert d["gil_held"] > 0.8, d
    assert d["gil_found_by"] in ("known-layout", "debug-offsets")
    assert any("hook did not run" in n and "found from outside" in n for n in d["notes"])


def test_wrapped_program_in_a_chroot_is_measured():
    cmd = _chroot_python("python3.15")
    code = ("import threading, time\ndef spin():\n    end = time.monotonic() + 0.8\n"
            "    while time.monotonic() < end: pass\n"
            "ts = [threading.Thread(target=spin) for _ in range(2)]\n"
            "[t.start() for t in ts]\n[t.join() for t in ts]\n")
    r = probe("--json", "--", *cmd, "-c", code)  # no -I: the hook's path is not in the chroot
    assert r.returncode == 0, r.stderr
    d = summary(r.stderr)
    assert d["interpreter"].startswith("CPython 3.15")
    assert d["gil_found_by"] == "debug-offsets"
    assert d["gil_held"] > 0.8, d


def test_wrapped_program_names_the_children_it_did_not_follow(tmp_path):
    script = tmp_path / "forker.py"
    script.write_text(textwrap.dedent("""
        import os, subprocess, time
        pid = os.fork()
        if pid == 0:
            time.sleep(0.3)
            os._exit(0)
        subprocess.run(["sleep", "0.3"])
        os.waitpid(pid, 0)
    """))
    r = probe("--json", "--", sys.executable, str(script))
    assert r.returncode == 0, r.stderr
    d = summary(r.stderr)
    assert len(d["children"]) == 2, d["children"]
    assert any("did not follow" in n for n in d["notes"])
    r = probe("--", sys.executable, str(script))
    assert "2 child processes" in r.stderr


def _duty_run(cmd, duty):
    """(probe's GilStats dict, truth over its window) for one duty."""
    target = popen(cmd + ["-I", "-c", DUTY, str(duty), "3.0"], stdout=subprocess.PIPE, text=True)
    try:
        wait_threads(target.pid, 2)
        time.sleep(0.2)
        r = probe("--pid", str(target.pid), "--duration", "2", "--json")
        assert r.returncode == 0, r.stderr
        out, _ = target.communicate(timeout=60)
    finally:
        stop(target)
    d = summary(r.stderr)
    log = json.loads(out.strip().splitlines()[-1])
    w0, w1 = d["window_start"], d["window_end"]
    spans = [tuple(p) for p in log["phases"]] + [(w0, log["t_go"]), (log["t_done"], w1)]
    truth = sum(max(0.0, min(b, w1) - max(a, w0)) for a, b in spans) / (w1 - w0)
    return d, truth


def test_pid_agrees_with_the_true_duty_on_315():
    """CPython 3.15 in a chroot, no hook: held within 5 points of the spin share over the
    probe's window (a timeline truth: it holds on a busy machine too), and the three
    duties in order.  Side-by-side figures: benchmarks/probe_pid_accuracy.py."""
    cmd = _chroot_python("python3.15")
    held = []
    for duty in (0.3, 0.6, 0.9):
        d, truth = _duty_run(cmd, duty)
        assert abs(truth - duty) < 0.15, "the workload itself missed its duty: %.3f for %.1f" % (truth, duty)
        assert abs(d["gil_held"] - truth) <= 0.05, (duty, d["gil_held"], truth, d["notes"])
        held.append(d["gil_held"])
    assert held[0] < held[1] < held[2], held


def test_elf_and_target_units():
    """The ELF reader on this interpreter's own file; children_of on a real child."""
    from threadwise.probe.elf import ElfFile
    from threadwise.probe.target import children_of
    libs = [line.split()[-1] for line in open("/proc/self/maps")
            if "python" in line.split()[-1] and line.split()[-1].startswith("/")]
    found = None
    for path in dict.fromkeys(libs):
        with ElfFile(path) as elf:
            found = found or elf.symbol("_PyRuntime")
    assert found is not None and found[1] > 0
    child = popen(["sleep", "5"])
    try:
        assert child.pid in children_of(os.getpid())
    finally:
        stop(child)
