"""Faults: a worker killed mid-task, a hung item, Ctrl-C, unpicklable functions, orphans.

Every case must end with a clear error naming the item (or a Failure in its
place), never a hang, and leave no worker process behind.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from threadwise.errors import UsageError
from threadwise.executor import (Executor, Failure, ItemTimeoutError, WorkerCrashedError, pmap)
from threadwise.executor.processes import ProcessBackend

pytestmark = pytest.mark.timeout(120)

START_METHODS = ["fork", "spawn"]


def exit_on_5(x):
    if x == 5:
        os._exit(7)
    return x + 1


def sigkill_on_5(x):
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1


def segfault_on_5(x):
    if x == 5:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x + 1


def hang_on_3(x):
    if x == 3:
        time.sleep(60)
    return x + 1


def sleepy(x):
    time.sleep(0.01)
    return x


@pytest.fixture
def no_orphans():
    """No child process started by the test outlives it."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [p for p in me.children(recursive=True)
                if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, "worker processes left behind: %s" % left


# --------------------------------------------------------------------------
# a worker killed mid-task
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn, words", [
    (exit_on_5, "exited with code 7"),
    (sigkill_on_5, "SIGKILL"),
    (segfault_on_5, "SIGSEGV"),
])
@pytest.mark.parametrize("method", START_METHODS)
def test_crash_raises_naming_the_item(fn, words, method, no_orphans):
    t0 = time.monotonic()
    with pytest.raises(WorkerCrashedError) as info:
        pmap(fn, range(20), backend="processes", workers=2, chunksize=3, start_method=method)
    assert time.monotonic() - t0 < 30
    e = info.value
    assert e.index == 5
    assert "item #5" in str(e) and words in str(e)
    assert "errors='collect'" in str(e)
    assert all(e.results[i] == i + 1 for i in range(5))  # the other results are not lost


@pytest.mark.parametrize("method", START_METHODS)
def test_crash_collect_goes_on_and_replaces_the_worker(method, no_orphans):
    out = pmap(sigkill_on_5, range(30), backend="processes", workers=2, chunksize=4,
               errors="collect", start_method=method)
    assert len(out) == 30
    assert isinstance(out[5], Failure) and out[5].kind == "crash"
    assert isinstance(out[5].exception, WorkerCrashedError) and out[5].exception.index == 5
    assert [x for i, x in enumerate(out) if i != 5] == [i + 1 for i in range(30) if i != 5]
    assert out.stats.workers_replaced >= 1


def test_executor_stays_usable_after_a_crash(no_orphans):
    with Executor("processes", workers=2) as ex:
        with pytest.raises(WorkerCrashedError):
            list(ex.imap(exit_on_5, range(10), chunksize=2))
        assert list(ex.imap(sleepy, range(10))) == list(range(10))
        assert ex.statistics().workers_replaced >= 1
        fut = ex.submit(exit_on_5, 5)
        with pytest.raises(WorkerCrashedError):
            fut.result(timeout=30)
        assert ex.submit(exit_on_5, 1).result(timeout=30) == 2


def test_worker_killed_from_outside(no_orphans):
    """kill -9 of a worker by someone else: the map still ends (result or clear error)."""
    pool = ProcessBackend(2)
    try:
        fut = pool.submit_chunk(hang_on_3, 0, [3], timeout=None, stop_on_error=True)
        time.sleep(0.5)
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        out = fut.result(timeout=20)
        assert out.kind == "crash" and out.index == 0  # the chunk's first (only) item
        assert pool.workers_replaced >= 1
        again = pool.submit_chunk(sleepy, 0, [1, 2], timeout=None, stop_on_error=True)
        assert again.result(timeout=30).results == [1, 2]
    finally:
        pool.shutdown()


# --------------------------------------------------------------------------
# a hung item hits the timeout
# --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["processes", "threads", "serial"])
def test_timeout_raises_naming_the_item(backend, no_orphans):
    t0 = time.monotonic()
    with pytest.raises(ItemTimeoutError) as info:
        pmap(hang_on_3, range(8), backend=backend, workers=2 if backend != "serial" else None,
             timeout=0.5, chunksize=2)
    assert time.monotonic() - t0 < 15
    e = info.value
    assert e.index == 3 and "timeout=0.5" in str(e)
    assert isinstance(e, TimeoutError)
    assert all(e.results[i] == i + 1 for i in range(3))


@pytest.mark.parametrize("backend", ["processes", "threads", "auto"])
def test_timeout_collect_goes_on(backend, no_orphans):
    out = pmap(hang_on_3, range(8), backend=backend, timeout=0.5, errors="collect")
    assert isinstance(out[3], Failure) and out[3].kind == "timeout"
    assert [x for i, x in enumerate(out) if i != 3] == [i + 1 for i in range(8) if i != 3]


def test_watchdog_expires_what_is_late_and_nothing_else():
    # the one deadline watchdog that threads, interpreters and Dask share
    from threadwise.executor._base import Watchdog
    expired = []
    dog = Watchdog("threadwise-test-watchdog", expired.append, tick=0.01)
    try:
        now = time.monotonic()
        dog.watch("late", now + 0.05, "late chunk")
        dog.watch("done", now + 0.05, "finished chunk")
        dog.watch("far", now + 600, "far chunk")
        dog.forget("done")  # finished before its deadline
        give_up = time.monotonic() + 20
        while not expired and time.monotonic() < give_up:
            time.sleep(0.01)
        time.sleep(0.1)  # time for a wrong second expiry to show
        assert expired == ["late chunk"]
        assert dog.drain() == ["far chunk"]
    finally:
        dog.close()
    assert dog._thread is not None
    dog._thread.join(timeout=10)
    assert not dog._thread.is_alive()


# --------------------------------------------------------------------------
# what can't be pickled
# --------------------------------------------------------------------------
def test_lambda_and_closure_work_on_processes(no_orphans):
    k = 5
    assert pmap(lambda x: x + k, range(10), backend="processes") == [x + 5 for x in range(10)]

    def make():
        offset = 100
        return lambda x: x + offset
    assert pmap(make(), range(5), backend="processes", start_method="spawn") == list(range(100, 105))


def test_unpicklable_fn_suggests_threads(no_orphans):
    lock = threading.Lock()

    def locked(x):
        with lock:
            return x
    with pytest.raises(UsageError) as info:
        pmap(locked, range(5), backend="processes")
    msg = str(info.value)
    assert "can't be sent to a worker process" in msg and "backend='threads'" in msg
    assert isinstance(info.value, TypeError)
    assert pmap(locked, range(5), backend="threads") == list(range(5))


def test_unpicklable_item_names_it(no_orphans):
    items = [1, 2, threading.Lock(), 4]
    with pytest.raises(UsageError, match="item #2 can't be sent"):
        pmap(sleepy, items, backend="processes", chunksize=1)


def test_unpicklable_result_is_a_failure(no_orphans):
    out = pmap(_make_lock, range(3), backend="processes", errors="collect")
    assert all(isinstance(f, Failure) for f in out)
    assert "can't be sent back" in str(out[0].exception) or "pickle" in str(out[0].exception)


def _make_lock(x):
    return threading.Lock()


# --------------------------------------------------------------------------
# Ctrl-C stops everything within 2 s, and no worker outlives the parent
# --------------------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import sys, time
    from threadwise.executor import pmap, Executor

    def spin(x):
        t = time.time()
        while time.time() - t < 60:
            pass
        return x

    backend = sys.argv[1]
    if backend == "processes":
        import threadwise.executor.processes as P
        orig = P.ProcessBackend.__init__
        def init(self, *a, **k):
            orig(self, *a, **k)
            print("pids", *self.pids(), flush=True)
        P.ProcessBackend.__init__ = init
    print("ready", flush=True)
    pmap(spin, range(8), backend=backend, workers=2)
""")


@pytest.mark.parametrize("backend", ["processes", "threads", "serial", "auto"])
def test_ctrl_c_stops_within_2s(backend, tmp_path):
    script = tmp_path / "ctrlc.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(script), backend], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    pids = []
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("ready"):
            line = proc.stdout.readline()
        if backend == "processes":
            line = proc.stdout.readline()
            assert line.startswith("pids"), line
            pids = [int(p) for p in line.split()[1:]]
        time.sleep(1.0)  # the map is running
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert "KeyboardInterrupt" in err
    assert elapsed < 2.0, elapsed
    time.sleep(0.3)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


ORPHAN_SCRIPT = textwrap.dedent("""
    import os, time
    from threadwise.executor import Executor

    def spin(x):
        time.sleep(60)
        return x

    ex = Executor("processes", workers=2)
    futs = [ex.submit(spin, i) for i in range(2)]
    time.sleep(0.3)
    pool = list(ex._backends.values())[0]
    print(*pool.pids(), flush=True)
    time.sleep(60)
""")


def test_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.kill()  # SIGKILL: no atexit, no cleanup in the parent
        proc.wait()
        deadline = time.monotonic() + 3
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                  for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                       for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
