"""Shared fixtures: real interpreters, real echo server, a results document factory."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from threadwise.bench.interpreters import Interpreter

PY27 = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions/2.7.18/bin/python"


def _which(*names):
    for n in names:
        p = shutil.which(n) if not os.path.isabs(n) else (n if os.path.exists(n) else None)
        if p:
            return p
    return None


@pytest.fixture(scope="session")
def host_python():
    return Interpreter((sys.executable,), (), "host")


@pytest.fixture(scope="session")
def py27():
    if not PY27.exists():
        pytest.skip("no Python 2.7 at %s (pyenv install 2.7.18)" % PY27)
    return Interpreter((str(PY27),), (), "py27")


@pytest.fixture
def echo():
    from threadwise.bench.echo import EchoServer
    with EchoServer() as e:
        yield e


def cli(*args, timeout=300, **kw):
    """Run ``python -m threadwise ARGS`` for real; returns CompletedProcess (text)."""
    import subprocess
    return subprocess.run([sys.executable, "-m", "threadwise", *args], capture_output=True,
                          text=True, timeout=timeout, **kw)


def _sigint_default():
    # a shell running the suite in the background ignores SIGINT, and children inherit
    # that: a child that must see Ctrl-C gets the default back (Python then raises
    # KeyboardInterrupt in it, as in a terminal)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(args, **kw):
    """A child for a Ctrl-C/kill test: default SIGINT, its own process group (stop() ends
    it and everything it started, whatever the test's outcome)."""
    kw.setdefault("preexec_fn", _sigint_default)
    kw.setdefault("start_new_session", True)
    return subprocess.Popen(args, **kw)


def stop(proc):
    """End ``proc`` and its process group (idempotent; for a finally: block)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture
def run_cli():
    return cli


# every interpreter this machine has (scripts/install-interpreters puts them in place);
# those that are missing are skipped with the command that installs them
OTHER_INTERPRETERS = [
    ("pypy3", "pypy3", "scripts/install-interpreters pypy"),
    ("jython", "jython", "scripts/install-interpreters jython"),
    ("py313t", "/opt/threadwise/py313t/bin/python3.13t", "scripts/install-interpreters py313t"),
    ("py314", "chroot /srv/threadwise-sid python3.14", "scripts/install-interpreters py314"),
    ("py314t", "/opt/threadwise/py314t/bin/python3.14t", "scripts/install-interpreters py314t"),
    ("py315t", "/opt/threadwise/py315t/bin/python3.15t", "scripts/install-interpreters py315t"),
]


def interpreter_available(command):
    argv = command.split()
    if argv[0] == "chroot":
        return os.geteuid() == 0 and os.path.exists(os.path.join(argv[1], "usr/bin", argv[2]))
    return _which(argv[0]) is not None


def interpreter_params():
    out = [pytest.param(sys.executable, id="host")]
    for name, cmd, how in OTHER_INTERPRETERS:
        marks = [] if interpreter_available(cmd) else [
            pytest.mark.skip(reason="%s is not installed: %s" % (name, how))]
        out.append(pytest.param(cmd, id=name, marks=marks))
    return out


#: a program whose two pure-Python threads spin for 0.5 s (the probe's reference load);
#: it prints its argv at the end
SPIN2 = """
import sys, threading, time
def spin():
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        pass
threads = [threading.Thread(target=spin, name="spinner-%d" % i) for i in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print("done", sys.argv[1:])
"""
