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

from conftest import popen, stop
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


def _shared_pids():
    """The shared warm pool's workers (pmap's): they belong to the program, not a test."""
    from threadwise.executor import _pool
    pids = set()
    for method in (None, "fork", "spawn"):
        pool = _pool.peek(method)
        if pool is not None:
            pids.update(pool.pids())
    return pids


@pytest.fixture
def no_orphans():
    """No child process started by the test outlives it (but the shared pool's workers)."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        shared = _shared_pids()
        left = [p for p in me.children(recursive=True)
                if p.pid not in before and p.pid not in shared and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]
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
    import os, sys, time
    from threadwise.executor import pmap, Executor

    def spin(x):
        print("running", os.getpid(), flush=True)
        t = time.time()
        while time.time() - t < 60:
            pass
        return x

    backend = sys.argv[1]
    print("ready", flush=True)
    pmap(spin, range(8), backend=backend, workers=2, chunksize=1)
""")


@pytest.mark.parametrize("backend", ["processes", "threads", "serial", "auto"])
def test_ctrl_c_stops_within_2s(backend, tmp_path):
    script = tmp_path / "ctrlc.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = popen([sys.executable, str(script), backend], stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True, env=env)
    pids = []
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("ready"):
            line = proc.stdout.readline()
        if backend == "processes":  # the shared pool's two workers, each running an item
            while len(set(pids)) < 2:
                line = proc.stdout.readline()
                assert line.startswith("running"), line
                pids.append(int(line.split()[1]))
            assert proc.pid not in pids
        time.sleep(1.0)  # the map is running
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        err = proc.stderr.read()
        assert "KeyboardInterrupt" in err
        assert elapsed < 2.0, elapsed
        deadline = time.monotonic() + 2
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids)
    finally:
        stop(proc)


ORPHAN_SCRIPT = textwrap.dedent("""
    import os, re, sys, threading, time
    from threadwise.executor import Executor, pmap, _pool

    def spin(x):
        time.sleep(60)
        return x

    def catastrophic(x):  # minutes in the regex engine's C code, holding the GIL
        return bool(re.match(r"(a+)+$", "a" * 40 + "b"))

    if sys.argv[1] == "executor":
        ex = Executor("processes", workers=2)
        futs = [ex.submit(spin, i) for i in range(2)]
        time.sleep(0.3)
        pids = list(ex._backends.values())[0].pids()
    else:  # the shared pool, its workers stuck in GIL-holding C code
        threading.Thread(target=pmap, args=(catastrophic, range(2)),
                         kwargs=dict(backend="processes", workers=2, chunksize=1),
                         daemon=True).start()
        while _pool.peek() is None or len(_pool.peek().pids()) < 2:
            time.sleep(0.01)
        time.sleep(0.5)  # both items started
        pids = _pool.peek().pids()
    print(*pids, flush=True)
    time.sleep(60)
""")


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("mode", ["executor", "shared-gil-held"])
def test_workers_die_with_a_killed_parent(tmp_path, mode):
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "..", "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        proc.kill()  # SIGKILL: no atexit, no cleanup in the parent
        proc.wait()
        deadline = time.monotonic() + 3
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids)
    finally:
        stop(proc)


# --------------------------------------------------------------------------
# numbers at the public boundary: one check, exact messages (pmap, Executor, advise)
# --------------------------------------------------------------------------
BAD_NUMBERS = [
    ("workers", 0, "workers must be >= 1, got 0"),
    ("workers", -1, "workers must be >= 1, got -1"),
    ("workers", True, "workers must be None (one per CPU) or an integer >= 1, got True (a bool)"),
    ("workers", "2", "workers must be None (one per CPU) or an integer >= 1, got '2' (a str)"),
    ("workers", 2.0, "workers must be None (one per CPU) or an integer >= 1, got 2.0"),
    ("workers", float("nan"), "workers must be None (one per CPU) or an integer >= 1, got nan"),
    ("workers", 100000, "workers must be >= 1 and <= 1024, got 100000"),
    ("timeout", -1, "timeout must be > 0 seconds, got -1"),
    ("timeout", 0, "timeout must be > 0 seconds, got 0"),
    ("timeout", float("nan"), "timeout must be a finite number of seconds, got nan"),
    ("timeout", float("inf"), "timeout must be a finite number of seconds, got inf"),
    ("timeout", "3", "timeout must be None or a number of seconds, got '3' (a str)"),
    ("timeout", True, "timeout must be None or a number of seconds, got True (a bool)"),
    ("chunksize", 0, "chunksize must be 'auto' or an integer >= 1, got 0"),
    ("chunksize", float("nan"), "chunksize must be 'auto' or an integer >= 1, got nan"),
    ("chunksize", 2.5, "chunksize must be 'auto' or an integer >= 1, got 2.5"),
    ("chunksize", True, "chunksize must be 'auto' or an integer >= 1, got True (a bool)"),
]


def _three_parts(err, first_line):
    msg = str(err)
    assert msg.splitlines()[0] == first_line + ".", msg
    assert "\nLikely cause: " in msg and "\nFix: " in msg, msg


@pytest.mark.parametrize("arg, value, message", BAD_NUMBERS,
                         ids=["%s=%r" % (a, v) for a, v, _ in BAD_NUMBERS])
@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_bad_numbers_in_pmap(arg, value, message, backend):
    with pytest.raises(UsageError) as info:
        pmap(abs, range(3), backend=backend, **{arg: value})
    _three_parts(info.value, message)


@pytest.mark.parametrize("arg, value, message",
                         [b for b in BAD_NUMBERS if b[0] in ("workers", "chunksize")])
def test_bad_numbers_in_executor(arg, value, message):
    with pytest.raises(UsageError) as info:
        Executor("threads", **{arg: value})
    _three_parts(info.value, message)


@pytest.mark.parametrize("arg, value, message", [b for b in BAD_NUMBERS if b[0] != "workers"])
def test_bad_numbers_in_executor_maps(arg, value, message):
    with Executor("threads", workers=2) as ex:
        with pytest.raises(UsageError) as info:
            list(ex.imap(abs, range(3), **{arg: value}))
    _three_parts(info.value, message)


@pytest.mark.parametrize("arg, value, message", [
    ("workers", 0, "workers must be >= 1, got 0"),
    ("workers", "2", "workers must be None (one per CPU) or an integer >= 1, got '2' (a str)"),
    ("workers", 100000, "workers must be >= 1 and <= 1024, got 100000"),
    ("max_items", 0, "max_items must be >= 1, got 0"),
    ("max_items", 1.5, "max_items must be None or an integer >= 1, got 1.5"),
])
def test_bad_numbers_in_advise(arg, value, message):
    from threadwise.executor import advise
    with pytest.raises(UsageError) as info:
        advise(abs, range(3), **{arg: value})
    _three_parts(info.value, message)


def test_whole_numbers_of_other_types_are_accepted():
    np = pytest.importorskip("numpy")
    assert pmap(abs, range(-3, 3), backend="threads", workers=np.int64(2),
                chunksize=np.int32(2), timeout=np.float64(30)) == [3, 2, 1, 0, 1, 2]


# --------------------------------------------------------------------------
# threads: never more than the work needs, never past the stated limit
# --------------------------------------------------------------------------
def _pool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("threadwise-thread-")]


def test_threads_bounded_by_the_items():
    earlier = set(_pool_threads())  # threads other tests abandoned on a hung item
    seen = []

    def f(x):
        seen.append(len(set(_pool_threads()) - earlier))
        time.sleep(0.05)
        return x

    assert pmap(f, range(3), backend="threads", workers=500, chunksize=1) == [0, 1, 2]
    assert max(seen) <= 3, seen


def test_threads_above_the_limit_is_a_usage_error_before_any_thread():
    before = threading.active_count()
    with pytest.raises(UsageError) as info:
        pmap(abs, range(10), backend="threads", workers=100000)
    _three_parts(info.value, "workers must be >= 1 and <= 1024, got 100000")
    assert threading.active_count() <= before


def test_threads_at_the_limit_start_only_what_the_work_needs():
    earlier = set(_pool_threads())
    with Executor("threads", workers=1024) as ex:
        assert list(ex.imap(abs, range(-20, 20), chunksize=1)) == [abs(x) for x in range(-20, 20)]
        assert len(set(_pool_threads()) - earlier) <= 40
