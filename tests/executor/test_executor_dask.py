"""The Dask backend on a real LocalCluster: blame, leftovers, the unguarded script.

Every cluster here is threadwise's own (``pmap(..., backend="dask")`` without
``address``), started and closed by the map itself; the subprocesses run in
their own session and are killed by group whatever the outcome.  The
assertions are about who is blamed and what is left, never about speed.
"""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import psutil
import pytest

from conftest import popen, stop
from threadwise.errors import UsageError
from threadwise.executor import (Executor, Failure, ItemTimeoutError, WorkerCrashedError, pmap)

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(240)

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")


def kill_at_37(x):
    if x == 37:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 2


def hang_at_37(x):
    if x == 37:
        time.sleep(60)
    return x * 2


def square(x):
    return x * x


@pytest.fixture
def no_leftovers(tmp_path, monkeypatch):
    """Runs the test in an empty current directory with its own temp directory; afterwards
    no child process, and nothing in either directory (no dask-scratch-space)."""
    cwd = tmp_path / "cwd"
    tmp = tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 15
    while True:
        left = [p for p in me.children(recursive=True)
                if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                and not _process_helper(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, "processes left behind: %s" % [(p, p.cmdline()) for p in left]
    assert os.listdir(cwd) == [], os.listdir(cwd)
    assert os.listdir(tmp) == [], os.listdir(tmp)


def _process_helper(p):
    """multiprocessing's resource tracker: one per process, started by the first spawned
    child (Dask's Nanny spawns its workers), kept until the process exits; not a worker."""
    try:
        return "multiprocessing.resource_tracker" in " ".join(p.cmdline())
    except psutil.Error:
        return False


def _failures(out):
    return [(r.index, r.kind) for r in out if isinstance(r, Failure)]


# --------------------------------------------------------------------------
# blame: the item that killed its worker, the item that hung, nothing else
# --------------------------------------------------------------------------
def test_killed_worker_blames_the_killer_alone(no_leftovers):
    out = pmap(kill_at_37, range(100), backend="dask", workers=2, errors="collect")
    assert _failures(out) == [(37, "crash")]
    assert [r for i, r in enumerate(out) if i != 37] == [x * 2 for x in range(100) if x != 37]
    err = out[37].exception
    assert isinstance(err, WorkerCrashedError) and err.index == 37
    assert "alone" in str(err) and "Dask worker" in str(err)


def test_killed_worker_raises_naming_the_killer(no_leftovers):
    with pytest.raises(WorkerCrashedError) as info:
        pmap(kill_at_37, range(100), backend="dask", workers=2)
    assert info.value.index == 37
    assert [f.index for f in info.value.failures] == [37]
    assert all(v == k * 2 for k, v in info.value.results.items())


def test_hang_blames_the_hung_item_alone(no_leftovers):
    t0 = time.monotonic()
    out = pmap(hang_at_37, range(100), backend="dask", workers=2, errors="collect", timeout=3)
    assert time.monotonic() - t0 < 50  # the hung call (60 s) was left behind, not waited for
    assert _failures(out) == [(37, "timeout")]
    assert [r for i, r in enumerate(out) if i != 37] == [x * 2 for x in range(100) if x != 37]
    assert isinstance(out[37].exception, ItemTimeoutError)


def test_hang_raises_naming_the_hung_item(no_leftovers):
    with pytest.raises(ItemTimeoutError) as info:
        pmap(hang_at_37, range(100), backend="dask", workers=2, timeout=3)
    assert info.value.index == 37
    assert [f.index for f in info.value.failures] == [37]


def test_submit_survives_a_killed_bystander(no_leftovers):
    with Executor("dask", workers=2) as ex:
        assert ex.submit(square, 7).result(timeout=60) == 49
        with pytest.raises(Exception):
            ex.submit(kill_at_37, 37).result(timeout=120)
        assert ex.submit(square, 8).result(timeout=60) == 64


# --------------------------------------------------------------------------
# leftovers: no dashboard port, no scratch space
# --------------------------------------------------------------------------
def _listening(pids):
    found = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.Error, AttributeError):
            continue
        found += [c.laddr for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def test_no_dashboard_port_and_only_loopback(no_leftovers):
    with Executor("dask", workers=2) as ex:
        assert ex.submit(square, 3).result(timeout=60) == 9
        me = psutil.Process()
        addrs = _listening([me.pid] + [p.pid for p in me.children(recursive=True)])
        assert addrs, "the scheduler listens somewhere"
        assert all(a.port != 8787 for a in addrs), addrs
        assert all(a.ip == "127.0.0.1" for a in addrs), addrs
        made = os.listdir(tempfile.gettempdir())
        assert [m.startswith("threadwise-dask-") for m in made] == [True], made
        assert os.listdir(os.path.join(tempfile.gettempdir(), made[0])) == ["dask-scratch-space"]
    assert os.listdir(tempfile.gettempdir()) == []


def test_a_map_leaves_no_scratch_space(no_leftovers):
    assert pmap(square, range(50), backend="dask", workers=2) == [x * x for x in range(50)]


# --------------------------------------------------------------------------
# the script without `if __name__ == "__main__":`
# --------------------------------------------------------------------------
UNGUARDED = textwrap.dedent("""
    from threadwise.executor import pmap

    def inc(x):
        return x + 1

    print(pmap(inc, range(10), backend="dask", workers=2))
""")

GUARDED = textwrap.dedent("""
    from threadwise.executor import pmap

    def inc(x):
        return x + 1

    def main():
        print(pmap(inc, range(10), backend="dask", workers=2))

    if __name__ == "__main__":
        main()
""")


def _run_script(tmp_path, text, name):
    script = tmp_path / name
    script.write_text(text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, env=env, cwd=str(tmp_path))
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        stop(proc)
    return proc.returncode, out, err


def test_unguarded_script_gets_one_clear_error(tmp_path):
    rc, out, err = _run_script(tmp_path, UNGUARDED, "unguarded.py")
    assert rc == 1
    assert err.count("Traceback") == 1, err
    assert err.count("Nanny failed to start") == 1, err  # in our message, from no worker
    assert "UsageError" in err and 'if __name__ == "__main__":' in err
    assert "unguarded.py" in err and "line 7" in err
    assert "Likely cause:" in err and "Fix:" in err
    assert sorted(os.listdir(tmp_path)) == ["unguarded.py"]


def test_guarded_script_runs(tmp_path):
    rc, out, err = _run_script(tmp_path, GUARDED, "guarded.py")
    assert rc == 0, err
    assert out.strip() == str(list(range(1, 11)))
    assert sorted(os.listdir(tmp_path)) == ["guarded.py"]


@pytest.mark.parametrize("source, line, guarded", [
    ("if __name__ == '__main__':\n    run()\n", 2, True),
    ("if '__main__' == __name__:\n    run()\n", 2, True),
    ("def main():\n    run()\n\nif __name__ == '__main__':\n    main()\n", 5, True),
    ("run()\n", 1, False),
    ("def main():\n    run()\n\nmain()\n", 4, False),
    ("if True:\n    run()\n", 2, False),
    ("if __name__ == '__main__':\n    pass\nrun()\n", 3, False),
])
def test_the_guard_is_found_by_line(source, line, guarded):
    from threadwise.executor.dask import _under_name_test
    assert _under_name_test(ast.parse(source), line) is guarded
