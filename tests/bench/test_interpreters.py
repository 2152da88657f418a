"""interpreters.py: command parsing, the agent on real interpreters, and broken ones."""
import os
import stat
import sys

import pytest

from threadwise.errors import InterpreterError, UsageError
from threadwise.bench.interpreters import Interpreter, describe, discover, gil_reenabled_by, run_agent


def test_parse_env_prefix_and_label():
    i = Interpreter.parse("PYTHON_GIL=1 python3.13t -X dev")
    assert i.argv == ("python3.13t", "-X", "dev") and i.env == (("PYTHON_GIL", "1"),)
    assert i.environ()["PYTHON_GIL"] == "1"
    assert i.label == "PYTHON_GIL=1 python3.13t -X dev"
    assert Interpreter.parse("chroot /srv/x python3.14").argv == ("chroot", "/srv/x", "python3.14")


@pytest.mark.parametrize("bad", ["", "A=1", "'unbalanced"])
def test_parse_rejects(bad):
    with pytest.raises(UsageError):
        Interpreter.parse(bad)


def test_describe_host(host_python):
    info = describe(host_python, parallel_probe=True)
    assert info["implementation"] == "CPython"
    assert info["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert info["gil_enabled"] in (True, False)
    assert "fork" in info["start_methods"]
    assert 0.1 < info["parallel_probe"]["parallelism"] < 2.5


def test_describe_python27(py27):
    info = describe(py27)
    assert info["version"].startswith("2.7") and info["gil_enabled"] is True


def test_missing_interpreter():
    with pytest.raises(InterpreterError, match="could not be started") as e:
        describe(Interpreter.parse("no-such-python-3.99"))
    assert "install" in e.value.message()


def _script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


def test_hanging_interpreter_times_out(tmp_path):
    hang = _script(tmp_path, "hang", "exec sleep 60")
    with pytest.raises(InterpreterError, match="did not finish within 2 s"):
        run_agent(Interpreter.parse(hang), {"mode": "describe"}, timeout=2)


def test_garbage_printing_interpreter(tmp_path):
    junk = _script(tmp_path, "junk", "cat >/dev/null; echo 'hello, I am not python'; exit 0")
    with pytest.raises(InterpreterError, match="before the agent finished") as e:
        run_agent(Interpreter.parse(junk), {"mode": "describe"}, timeout=10)
    assert "hello, I am not python" in e.value.message()


def test_failing_interpreter_shows_stderr(tmp_path):
    bad = _script(tmp_path, "bad", "cat >/dev/null; echo 'ImportError: no json' >&2; exit 3")
    with pytest.raises(InterpreterError, match="status 3") as e:
        run_agent(Interpreter.parse(bad), {"mode": "describe"}, timeout=10)
    assert "no json" in e.value.message()


def test_gil_reenabled_parser():
    err = ("<frozen importlib._bootstrap>:488: RuntimeWarning: The global interpreter lock (GIL) "
           "has been enabled to load module 'fastthing._core', which has not declared that it "
           "can run safely without the GIL.")
    assert gil_reenabled_by(err) == ["fastthing._core"]


def test_discover_finds_this_python():
    rows = discover(parallel_probe=False, timeout=60)
    assert any(os.path.realpath(r.get("executable") or "") == os.path.realpath(sys.executable)
               for r in rows)
    for r in rows:
        assert {"command", "implementation", "version", "free_threaded", "gil_enabled",
                "subinterpreters"} <= set(r)


def test_discover_reads_the_install_manifest(tmp_path, monkeypatch):
    import json
    import threadwise.bench.interpreters as I
    manifest = tmp_path / "interpreters.json"
    manifest.write_text(json.dumps({"my-python": [sys.executable, "-S"]}))
    monkeypatch.setattr(I, "MANIFEST", manifest)
    labels = {label: argv for label, argv in I._candidates()}
    assert labels["my-python"] == [sys.executable, "-S"]


SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "scripts", "install-interpreters")


def _check(prefix, *names):
    import subprocess
    env = dict(os.environ, THREADWISE_PREFIX=str(prefix))
    return subprocess.run(["bash", SCRIPT, "--check", *names], capture_output=True, text=True,
                          env=env, timeout=300)


def test_install_script_checks_each_build_for_its_version_and_flavour(tmp_path):
    # --check runs as any user and installs nothing: a prefix of our own, with a wrong
    # interpreter under py314t's name, and the 3.13t build (when there is one) under its own
    (tmp_path / "py314t" / "bin").mkdir(parents=True)
    (tmp_path / "py314t" / "bin" / "python3.14t").symlink_to(sys.executable)
    p = _check(tmp_path, "py314t", "py315t", "py314-gil")
    assert p.returncode == 1, p.stdout + p.stderr
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.startswith("  py")}
    assert "fails its check: it is Python %d.%d, want 3.14" % sys.version_info[:2] in lines["py314t"]
    assert "not installed" in lines["py315t"] and "sid's python3.15" in lines["py315t"]
    assert "sid's python3.14" in lines["py314-gil"]
    ft = "/opt/threadwise/py313t/bin/python3.13t"
    if os.path.exists(ft):
        (tmp_path / "py313t" / "bin").mkdir(parents=True)
        (tmp_path / "py313t" / "bin" / "python3.13t").symlink_to(ft)
        p = _check(tmp_path, "py313t")
        assert p.returncode == 0 and "py313t    present: CPython 3.13" in p.stdout, p.stdout


def test_install_script_rejects_unknown_names(tmp_path):
    p = _check(tmp_path, "py399t")
    assert p.returncode == 2 and "unknown argument 'py399t'" in p.stdout


def test_discover_knows_where_the_install_script_puts_them(tmp_path, monkeypatch):
    # no manifest: discovery still finds every build scripts/install-interpreters makes
    import threadwise.bench.interpreters as I
    monkeypatch.setattr(I, "MANIFEST", tmp_path / "missing.json")
    found = {label: argv for label, argv in I._candidates()}
    with open(SCRIPT) as f:
        script = f.read()
    for label, argv in I.INSTALLED:
        assert label in script, label   # a name the script knows
        if os.path.exists(argv[0]) and argv[0].startswith("/opt/"):
            assert found[label] == argv
