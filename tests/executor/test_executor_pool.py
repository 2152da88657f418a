"""The shared warm pool behind pmap: reused across calls, resized, replaced, stopped when
idle and at exit, never used by a forked child, started by a thread that lives as long.

Properties, not speed: pids, counts, results.  Every test that needs a pool of its
own stops the shared ones first; the module stops them at the end (no thread or
process outlives it); subprocesses run in their own session, killed in a finally.
"""
from __future__ import annotations

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
from threadwise.executor import Executor, Failure, _pool, pmap
from threadwise.executor.processes import startup_estimate

pytestmark = pytest.mark.timeout(120)

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def inc(x):
    return x + 1


def slow_inc(x):
    time.sleep(0.02)
    return x + 1


def pid_of(_):
    time.sleep(0.01)
    return os.getpid()


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _managers():
    return [t for t in threading.enumerate() if t.name == "threadwise-process-manager"]


def _wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(autouse=True, scope="module")
def _stop_shared_pools_at_the_end():
    _pool.shutdown_shared()
    yield
    _pool.shutdown_shared(kill=True)


@pytest.fixture
def fresh():
    """No shared pool: the test starts one from scratch."""
    _pool.shutdown_shared()
    yield
    _pool.shutdown_shared()


def _pool_pids():
    pool = _pool.peek()
    return sorted(pool.pids()) if pool is not None else []


# --------------------------------------------------------------------------
# reuse, resize, limits
# --------------------------------------------------------------------------
def test_second_pmap_reuses_the_workers(fresh):
    assert pmap(inc, range(50), backend="processes", workers=2) == list(range(1, 51))
    first = _pool_pids()
    assert len(first) == 2 and all(_alive(p) for p in first)
    # another function, another map: the same processes run it
    got = pmap(pid_of, range(20), backend="processes", workers=2, chunksize=1)
    assert set(got) <= set(first)
    assert _pool_pids() == first
    assert os.getpid() not in got


def test_auto_choosing_processes_leases_the_same_pool(fresh):
    from threadwise.executor import _executor
    ex = _executor.shared_executor("processes", 2)
    try:
        assert list(ex.map(inc, range(10))) == list(range(1, 11))
        pids = _pool_pids()
        assert len(pids) == 2
    finally:
        ex.shutdown()
    assert pmap(inc, range(10), backend="processes", workers=2) == list(range(1, 11))
    assert _pool_pids() == pids


def test_resize_down_then_up(fresh):
    pmap(slow_inc, range(8), backend="processes", workers=3, chunksize=1)
    three = _pool_pids()
    assert len(three) == 3
    assert pmap(inc, range(10), backend="processes", workers=1) == list(range(1, 11))
    assert _wait_for(lambda: len(_pool_pids()) == 1)
    assert set(_pool_pids()) <= set(three)  # the surplus stopped, one kept
    gone = set(three) - set(_pool_pids())
    assert _wait_for(lambda: not any(_alive(p) for p in gone))
    pmap(slow_inc, range(8), backend="processes", workers=2, chunksize=1)
    assert len(_pool_pids()) == 2


def test_no_more_workers_than_items(fresh):
    assert pmap(abs, range(3), backend="processes", workers=64) == [0, 1, 2]
    assert 1 <= len(_pool_pids()) <= 3
    _pool.shutdown_shared()
    assert pmap(abs, iter(range(-3, 0)), backend="processes", workers=64) == [3, 2, 1]
    assert 1 <= len(_pool_pids()) <= 3


def test_too_many_workers_is_a_usage_error_in_three_parts(fresh):
    for backend in ("processes", "auto"):
        with pytest.raises(UsageError) as info:
            pmap(abs, range(3), backend=backend, workers=5000)
        msg = str(info.value)
        assert "5000" in msg and "1024" in msg
        assert "\nLikely cause: " in msg and "\nFix: " in msg
    assert _pool.peek() is None  # nothing started


def test_executor_keeps_a_pool_of_its_own(fresh):
    pmap(inc, range(10), backend="processes", workers=2)
    shared = _pool_pids()
    with Executor("processes", workers=2) as ex:
        assert list(ex.map(pid_of, range(10), chunksize=1))
        own = list(ex._backends.values())[0].pids()
    assert own and not set(own) & set(shared)
    assert _wait_for(lambda: not any(_alive(p) for p in own))
    assert _pool_pids() == shared  # untouched


def test_concurrent_maps_share_the_pool_and_one_abort_spares_the_other(fresh):
    from test_executor_faults import exit_on_5
    out = {}

    def long_map():
        out["a"] = pmap(slow_inc, range(60), backend="processes", workers=2, chunksize=2)

    t = threading.Thread(target=long_map)
    t.start()
    try:
        time.sleep(0.2)
        with pytest.raises(Exception):
            pmap(exit_on_5, range(20), backend="processes", workers=2, chunksize=1)
    finally:
        t.join(60)
    assert out["a"] == list(range(1, 61))


# --------------------------------------------------------------------------
# functions: loaded once per worker, sent again when they changed
# --------------------------------------------------------------------------
def test_a_module_is_imported_once_per_worker(fresh, tmp_path):
    pmap(inc, range(4), backend="processes", workers=2)  # workers started before the module exists
    log = tmp_path / "imports.log"
    (tmp_path / "tw_counted.py").write_text(textwrap.dedent("""
        import os
        with open(%r, "a") as f:
            f.write("%%d\\n" %% os.getpid())

        def double(x):
            return 2 * x

        def triple(x):
            return 3 * x
    """ % str(log)))
    sys.path.insert(0, str(tmp_path))
    try:
        import tw_counted
        for _ in range(3):
            assert pmap(tw_counted.double, range(20), backend="processes", workers=2,
                        chunksize=1) == [2 * x for x in range(20)]
            assert pmap(tw_counted.triple, range(20), backend="processes", workers=2,
                        chunksize=1) == [3 * x for x in range(20)]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tw_counted", None)
    pids = [int(line) for line in log.read_text().split()]
    assert pids[0] == os.getpid()
    assert len(pids[1:]) == len(set(pids[1:])) <= 2  # each worker imported it once at most
    assert set(pids[1:]) <= set(_pool_pids())


def test_a_function_whose_globals_changed_is_sent_again(fresh):
    box = {"k": 2}

    def scaled(x):
        return x * box["k"]

    assert pmap(scaled, range(5), backend="processes", workers=2) == [0, 2, 4, 6, 8]
    box["k"] = 3
    assert pmap(scaled, range(5), backend="processes", workers=2) == [0, 3, 6, 9, 12]


def test_chunks_of_a_known_function_are_sized_at_once(fresh):
    from threadwise.executor import processes
    sizes = []
    orig = processes.ProcessBackend.submit_chunk_ref

    def spy(self, ref, base, items, **kw):
        sizes.append(len(items))
        return orig(self, ref, base, items, **kw)

    pmap(inc, range(4000), backend="processes", workers=2)
    processes.ProcessBackend.submit_chunk_ref = spy
    try:
        assert pmap(inc, range(4000), backend="processes", workers=2) == list(range(1, 4001))
    finally:
        processes.ProcessBackend.submit_chunk_ref = orig
    assert sizes[0] > 1 and len(sizes) <= 8, sizes  # no one-item probing chunks


# --------------------------------------------------------------------------
# deaths, idle, exit, fork, threads
# --------------------------------------------------------------------------
def test_a_killed_worker_is_replaced(fresh):
    pmap(inc, range(10), backend="processes", workers=2)
    before = _pool_pids()
    os.kill(before[0], signal.SIGKILL)
    assert _wait_for(lambda: len(_pool_pids()) == 2 and before[0] not in _pool_pids())
    assert before[1] in _pool_pids()
    out = pmap(slow_inc, range(10), backend="processes", workers=2, chunksize=1)
    assert out == list(range(1, 11))
    assert not _alive(before[0])


def test_idle_pool_stops_its_workers_and_its_thread(fresh, monkeypatch):
    monkeypatch.setattr(_pool, "IDLE_S", 0.5)
    pmap(inc, range(10), backend="processes", workers=2)
    pids = _pool_pids()
    assert len(pids) == 2 and _managers()
    assert _wait_for(lambda: _pool.peek() is None, timeout=20)
    assert _wait_for(lambda: not _managers())
    assert _wait_for(lambda: not any(_alive(p) for p in pids))
    # and the next call starts a new pool
    assert pmap(inc, range(10), backend="processes", workers=2) == list(range(1, 11))
    assert not set(_pool_pids()) & set(pids)


def test_idle_timeout_waits_while_a_map_runs(fresh, monkeypatch):
    monkeypatch.setattr(_pool, "IDLE_S", 0.3)
    out = pmap(slow_inc, range(40), backend="processes", workers=2, chunksize=1)  # ~0.4 s
    assert out == list(range(1, 41))


def test_workers_outlive_the_thread_that_first_needed_them(fresh):
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", pmap(
        slow_inc, range(6), backend="processes", workers=2, chunksize=1)))
    t.start()
    t.join(60)
    assert got["r"] == list(range(1, 7))
    pids = _pool_pids()
    assert len(pids) == 2
    time.sleep(0.5)  # a parent-death signal tied to that thread would have fired by now
    assert all(_alive(p) for p in pids)
    assert pmap(inc, range(10), backend="processes", workers=2) == list(range(1, 11))
    assert _pool_pids() == pids


def test_startup_estimate_is_zero_on_a_warm_pool(fresh):
    secs, how = startup_estimate(2)
    assert secs > 0 and ("assumed" in how or "measured" in how)
    pmap(inc, range(10), backend="processes", workers=2)
    secs, how = startup_estimate(2)
    assert secs == 0 and "warm" in how
    secs, how = startup_estimate(2, fn=inc)
    assert secs == 0 and "fn loaded" in how
    _pool.shutdown_shared()
    secs, how = startup_estimate(2)
    assert secs > 0 and "measured" in how


def test_unpicklable_item_collected_at_its_index(fresh):
    items = [1, 2, threading.Lock(), 4, threading.Lock(), 6]
    out = pmap(inc, items, backend="processes", workers=2, errors="collect", chunksize=6)
    assert [out[i] for i in (0, 1, 3, 5)] == [2, 3, 5, 7]
    for i in (2, 4):
        assert isinstance(out[i], Failure) and out[i].index == i
        assert "can't be sent to a worker process" in str(out[i].exception)
    assert out.stats.items_failed == 2


FORK_SCRIPT = textwrap.dedent("""
    import os, sys
    from threadwise.executor import pmap, _pool

    def inc(x):
        return x + 1

    def pid_of(_):
        import time
        time.sleep(0.01)
        return os.getpid()

    assert pmap(inc, range(10), backend="processes", workers=2) == list(range(1, 11))
    mine = sorted(_pool.peek().pids())
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(r)
            got = set(pmap(pid_of, range(8), backend="processes", workers=2, chunksize=1))
            theirs = sorted(_pool.peek().pids())
            os.write(w, ("%s|%s|%d" % (sorted(got), theirs, os.getpid())).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = os.read(r, 65536).decode()
    _, status = os.waitpid(child, 0)
    print("parent", mine, "child", data, "status", status, flush=True)
    assert pmap(inc, range(10), backend="processes", workers=2) == list(range(1, 11))
    assert sorted(_pool.peek().pids()) == mine
    print("ok", flush=True)
""")


def test_a_forked_child_starts_its_own_pool(tmp_path):
    script = tmp_path / "forked.py"
    script.write_text(FORK_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, env=env)
    try:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        line = [x for x in out.splitlines() if x.startswith("parent")][0]
        assert out.splitlines()[-1] == "ok"
        mine = eval(line.split("parent ")[1].split(" child")[0])
        got, theirs, child_pid = line.split(" child ")[1].split(" status")[0].split("|")
        got, theirs = eval(got), eval(theirs)
        assert len(mine) == 2 and len(theirs) == 2
        assert not set(theirs) & set(mine)        # its own workers
        assert set(got) <= set(theirs)            # which ran its map
        assert line.endswith("status 0")
    finally:
        stop(proc)


EXIT_SCRIPT = textwrap.dedent("""
    import sys, threading
    from threadwise.executor import pmap, _pool

    def inc(x):
        return x + 1

    if sys.argv[1] == "thread":  # a thread alive: the workers are fresh interpreters
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    assert pmap(inc, range(10), backend="processes", workers=2) == list(range(1, 11))
    print(*_pool.peek().pids(), flush=True)
""")


@pytest.mark.parametrize("mode", ["plain", "thread"])
def test_no_worker_outlives_a_normal_exit(tmp_path, mode):
    script = tmp_path / "exits.py"
    script.write_text(EXIT_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        pids = [int(p) for p in out.split()]
        assert len(pids) == 2
        assert _wait_for(lambda: not any(_alive(p) for p in pids), timeout=5)
    finally:
        stop(proc)


def exit_on_15000(x):
    if x == 15000:
        os._exit(9)
    return x + 1


def test_a_crash_in_a_chunk_of_tiny_items_names_the_item(fresh):
    # tiny items run without per-item bookkeeping; the chunk a worker died in runs again,
    # tracked, and the item is named as if it always had been
    from threadwise.executor import WorkerCrashedError
    out = pmap(exit_on_15000, range(20000), backend="processes", workers=2, errors="collect")
    assert isinstance(out[15000], Failure) and out[15000].kind == "crash"
    assert out[15000].index == 15000 and "exited with code 9" in str(out[15000].exception)
    assert [x for i, x in enumerate(out) if i != 15000] == [x + 1 for x in range(20000) if x != 15000]
    with pytest.raises(WorkerCrashedError) as info:
        pmap(exit_on_15000, range(20000), backend="processes", workers=2)
    assert info.value.index == 15000
    assert all(info.value.results[i] == i + 1 for i in range(100))


def _uses_threadwise(x):
    import threadwise.executor as tx
    from threadwise.executor import _chunk
    return "%s %s %d" % (tx.Failure.__name__, _chunk.Failed.__name__, x)


def test_a_fresh_worker_loads_only_what_it_needs_and_the_rest_on_demand(fresh):
    # a function sent by value (a module-level one would import its test module, and with
    # it the library)
    assert pmap(lambda _: "threadwise.executor._base" in sys.modules, range(2),
                backend="processes", workers=1, start_method="spawn") == [False, False]
    assert pmap(_uses_threadwise, range(2), backend="processes", workers=1,
                start_method="spawn") == ["Failure Failed 0", "Failure Failed 1"]
    from test_executor import fail_on_7
    out = pmap(fail_on_7, range(9), backend="processes", workers=1, start_method="spawn",
               errors="collect")
    assert isinstance(out[7], Failure) and "seven is bad" in str(out[7].exception)


def test_start_workers_on_demand_waits_until_they_are_ready(fresh):
    from threadwise.executor._executor import shared_executor
    ex = shared_executor("processes", 2, start_method="spawn")
    try:
        lease = ex._get("processes", 2)
        lease.start_workers(wait_ready=True)
        assert len(lease.pids()) == 2 and all(p.ready for p in lease.pool._procs)
        assert startup_estimate(2, "spawn")[0] == 0
    finally:
        ex.shutdown()
    _pool.shutdown_shared()
    with Executor("processes", workers=2) as own:  # an Executor's own pool starts whole
        own.submit(inc, 1).result(timeout=30)
        assert len(list(own._backends.values())[0].pids()) == 2


# --------------------------------------------------------------------------
# start-up overlapped with the map; functions loaded ahead; a lean worker
# --------------------------------------------------------------------------
def spin(n):
    """About n * 50 ns of pure-Python work (holds the GIL)."""
    s = 0
    for i in range(n):
        s += i
    return s


@pytest.fixture
def thread_alive():
    """Another thread alive, as in a web app: workers start as fresh interpreters (spawn)."""
    done = threading.Event()
    t = threading.Thread(target=done.wait, name="test-sleeper", daemon=True)
    t.start()
    yield
    done.set()
    t.join(5)


def test_auto_runs_items_while_slow_workers_start(fresh, thread_alive):
    # ~1 s of GIL-holding work, no pool yet and a thread alive: auto starts the workers
    # (fresh interpreters, which then import this test module, pytest and all) and keeps
    # running items itself until they have loaded fn, then hands them the rest
    items = [100_000] * 300
    out = pmap(spin, items)
    assert out == [spin(100_000)] * 300
    assert out.choice.backend == "processes", out.choice.reason
    assert "overlapped: 2 worker processes started and loaded fn in" in out.choice.reason
    pool = _pool.peek()
    assert pool is not None and len(pool.pids()) == 2
    assert all(p.method == "spawn" for p in pool._procs)
    # measured now, not assumed; and the next map finds them warm, fn loaded
    assert startup_estimate(2, "spawn", pool=None)[1].startswith("warm")
    assert pool.fn_load_s(spin)[1] is True
    again = pmap(spin, items)
    assert again == out and "warm" in again.choice.reason


def test_items_stream_in_order_while_workers_start(fresh, thread_alive):
    with Executor() as ex:   # auto on an Executor of its own: its pool starts the same way
        got = list(ex.imap(spin, [100_000 + i for i in range(300)]))
        assert got == [spin(100_000 + i) for i in range(300)]
        assert ex.choice.backend == "processes", ex.choice.reason
        assert "overlapped" in ex.choice.reason


def test_all_items_can_run_here_while_the_workers_start(fresh, thread_alive, tmp_path):
    # a module whose import takes 5 s in a worker (not in this process): every item runs
    # here before the workers have loaded fn; they stay warm for the next map
    (tmp_path / "slow_import_mod.py").write_text(textwrap.dedent("""
        import os, time
        if os.getpid() != %d:
            time.sleep(5)
        def spin(n):
            s = 0
            for i in range(n):
                s += i
            return s
    """ % os.getpid()))
    sys.path.insert(0, str(tmp_path))
    try:
        import slow_import_mod
        items = [40_000] * 200
        out = pmap(slow_import_mod.spin, items)
        assert out == [spin(40_000)] * 200
        assert out.choice.backend == "serial", out.choice.reason
        assert "items left ran here while 2 worker processes started" in out.choice.reason
        assert len(_pool.peek().pids()) == 2
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("slow_import_mod", None)


def test_a_spawned_worker_imports_cloudpickle_only_when_it_needs_it(fresh, tmp_path):
    (tmp_path / "cp_probe_mod.py").write_text(
        "import sys\ndef has(name):\n    return name in sys.modules\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import cp_probe_mod
        # sent by reference: plain pickle loads it, and the worker starts without cloudpickle
        assert pmap(cp_probe_mod.has, ["cloudpickle"], backend="processes", workers=1,
                    start_method="spawn") == [False]
        # a lambda travels by value: loading it imports cloudpickle in the worker
        assert pmap(lambda name: name in sys.modules, ["cloudpickle"], backend="processes",
                    workers=1, start_method="spawn") == [True]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("cp_probe_mod", None)


def _blas_threads(_):
    import numpy  # noqa: F401  (loads its BLAS, in a fresh worker)
    from threadpoolctl import threadpool_info
    sizes = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(sizes) if sizes else None


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_get_their_share_of_the_cpus_for_blas(fresh, method, monkeypatch):
    np = pytest.importorskip("numpy")
    pytest.importorskip("threadpoolctl")
    np.ones((4, 4)) @ np.ones((4, 4))   # the parent's BLAS is loaded before the fork
    if _blas_threads(0) is None:
        pytest.skip("numpy here has no BLAS that threadpoolctl knows")
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        monkeypatch.delenv(v, raising=False)
    from threadwise.executor import cpu_count
    got = pmap(_blas_threads, range(2), backend="processes", workers=2, start_method=method,
               chunksize=1)
    assert got == [max(1, cpu_count() // 2)] * 2
    _pool.shutdown_shared()
    # one worker gets every CPU; sized by the user, left alone
    if method == "spawn" and cpu_count() >= 2:
        assert pmap(_blas_threads, range(1), backend="processes", workers=1,
                    start_method=method) == [cpu_count()]
        _pool.shutdown_shared()
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert pmap(_blas_threads, range(1), backend="processes", workers=1,
                    start_method=method) == [1]


def _frozen(_):
    import gc
    return gc.get_freeze_count()


def test_a_forked_worker_keeps_the_parents_heap_out_of_the_collectors_sight(fresh):
    # a full collection in a long-lived worker would walk (and copy) the parent's heap:
    # json round trips on a warm pool ran 0.93 s against 0.51 s before gc.freeze()
    assert pmap(_frozen, range(2), backend="processes", workers=1, start_method="fork")[0] > 1000
