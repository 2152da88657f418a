"""pmap / Executor: one suite run on every backend, real threads, processes and Dask.

Correctness, not speed: results, order, laziness, errors with indices, the
concurrent.futures API, bad input.  Fault cases (crashes, timeouts, Ctrl-C)
are in test_executor_faults.py, auto's choices in test_executor_auto.py.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import socket
import threading
import time

import pytest

import threadwise.executor as tx
from threadwise.errors import ThreadwiseError, UsageError
from threadwise.executor import (Executor, Failure, ItemError, NotCallableError, Statistics,
                                 pmap)


def inc(x):
    return x + 1


def square(x):
    return x * x


def slow_square(x):
    time.sleep(0.002)
    return x * x


def fail_on_7(x):
    if x == 7:
        raise ValueError("seven is bad: %d" % x)
    return x * 10


def add(a, b):
    return a + b


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       protocol="tcp", host="127.0.0.1", dashboard_address=None,
                                       silence_logs=50)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


LOCAL = ["serial", "threads", "processes"]
ALL = LOCAL + ["dask"]


def _interpreters_available() -> bool:
    from threadwise.executor.subinterpreters import available
    return available()[0]


if _interpreters_available():  # Python 3.14+
    ALL.append("interpreters")


@pytest.fixture(params=ALL)
def backend_kw(request):
    """Keyword arguments selecting each backend (Dask on the module's LocalCluster)."""
    if request.param == "dask":
        return {"backend": "dask", "address": request.getfixturevalue("dask_address")}
    return {"backend": request.param}


# --------------------------------------------------------------------------
# one suite, every backend
# --------------------------------------------------------------------------
def test_pmap_results_in_order(backend_kw):
    out = pmap(square, range(500), **backend_kw)
    assert out == [x * x for x in range(500)]
    assert isinstance(out, list)
    assert out.choice is not None and out.choice.backend == backend_kw["backend"]
    assert out.stats.items_done == 500 and out.stats.items_failed == 0


def test_pmap_unordered_has_every_result(backend_kw):
    out = pmap(slow_square, range(60), ordered=False, **backend_kw)
    assert sorted(out) == [x * x for x in range(60)]


def test_pmap_fixed_chunksize(backend_kw):
    out = pmap(inc, range(103), chunksize=10, **backend_kw)
    assert out == list(range(1, 104))
    assert out.stats.chunks == 11


def test_pmap_generator_and_empty_input(backend_kw):
    assert pmap(inc, (x for x in range(50)), **backend_kw) == list(range(1, 51))
    assert pmap(inc, [], **backend_kw) == []


def test_pmap_lambda_and_closure(backend_kw):
    k = 3
    assert pmap(lambda x: x * k, range(20), **backend_kw) == [x * 3 for x in range(20)]


def test_error_raise_names_the_item_and_keeps_other_results(backend_kw):
    with pytest.raises(ItemError) as info:
        pmap(fail_on_7, range(40), chunksize=4, **backend_kw)
    e = info.value
    assert e.index == 7
    assert isinstance(e.exception, ValueError)
    assert "seven is bad" in str(e)
    assert "fail_on_7" in e.remote_traceback  # the worker's traceback, with fn's frame
    assert "item #7" in str(e) and "errors='collect'" in str(e)
    # results before the failure came back; the chunks in flight were not lost
    assert all(e.results[i] == i * 10 for i in range(7))
    assert 7 not in e.results
    assert [f.index for f in e.failures] == [7]


def test_error_collect_puts_failure_in_place(backend_kw):
    out = pmap(fail_on_7, range(20), errors="collect", **backend_kw)
    assert len(out) == 20
    f = out[7]
    assert isinstance(f, Failure) and f.index == 7 and f.kind == "exception"
    assert isinstance(f.exception, ValueError) and "fail_on_7" in f.traceback
    assert [x for i, x in enumerate(out) if i != 7] == [i * 10 for i in range(20) if i != 7]
    assert out.stats.items_failed == 1


def test_executor_submit_map_and_shutdown(backend_kw):
    with Executor(**backend_kw) as ex:
        assert isinstance(ex, cf.Executor)
        fut = ex.submit(add, 2, b=3)
        assert fut.result(timeout=30) == 5
        assert list(ex.map(square, range(30))) == [x * x for x in range(30)]
        assert list(ex.map(add, range(5), range(10, 15))) == [a + b for a, b in
                                                               zip(range(5), range(10, 15))]
        assert list(ex.imap(inc, iter(range(10)))) == list(range(1, 11))
        bad = ex.submit(fail_on_7, 7)
        with pytest.raises(ValueError, match="seven"):
            bad.result(timeout=30)
        stats = ex.statistics()
        assert isinstance(stats, Statistics)
        assert stats.calls == 2 and stats.items_done >= 45
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.items_done = 0  # type: ignore[misc]
    with pytest.raises(RuntimeError):
        ex.submit(add, 1, 2)


def test_executor_map_raises_the_original_exception(backend_kw):
    with Executor(**backend_kw) as ex:
        it = ex.map(fail_on_7, range(10))
        got = [next(it) for _ in range(7)]
        assert got == [i * 10 for i in range(7)]
        with pytest.raises(ValueError, match="seven") as info:
            next(it)
        notes = getattr(info.value, "__notes__", None)
        if notes is not None:  # Python 3.11+
            assert any("item #7" in n for n in notes)


def test_input_is_consumed_lazily(backend_kw):
    pulled = [0]

    def gen():
        for i in range(1_000_000):
            pulled[0] += 1
            yield i

    with Executor(**backend_kw) as ex:
        it = ex.imap(slow_square, gen())
        assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
        # a few chunks in flight, not the million
        assert pulled[0] < 2000, pulled[0]
        del it


# --------------------------------------------------------------------------
# specifics
# --------------------------------------------------------------------------
def test_statistics_and_choice_on_the_executor():
    with Executor("threads", workers=3) as ex:
        list(ex.imap(inc, range(100)))
        s = ex.statistics()
        assert s.backend == "threads" and s.workers == 3
        assert ex.choice is not None and "threads x3" in ex.choice.reason


def test_threads_default_workers_and_explicit():
    out = pmap(inc, range(10), backend="threads", workers=2)
    assert out.stats.workers == 2


def test_ordered_progress_bar(capsys):
    out = pmap(slow_square, range(40), backend="threads", progress=True)
    assert out == [x * x for x in range(40)]
    err = capsys.readouterr().err
    assert "40/40" in err


def test_dask_batches_items(dask_address):
    out = pmap(inc, range(2000), backend="dask", address=dask_address)
    assert out == list(range(1, 2001))
    assert out.stats.chunks < 200  # batched: far fewer tasks than items


def test_dask_accepts_a_client(dask_address):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(dask_address, set_as_default=False) as client:
        assert pmap(square, range(10), backend="dask", address=client) == [x * x for x in range(10)]
        assert client.status == "running"  # a client we were given is not closed


# --------------------------------------------------------------------------
# bad input: one clear message at the call, naming the argument
# --------------------------------------------------------------------------
def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("kwargs, words", [
    ({"workers": 0}, ["workers must be", ">= 1", "got 0"]),
    ({"workers": -2}, ["workers must be", "got -2"]),
    ({"workers": 1.5}, ["workers must be", "got 1.5"]),
    ({"backend": "gpu"}, ["backend must be one of", "'threads'", "'processes'", "'dask'", "got 'gpu'"]),
    ({"chunksize": 0}, ["chunksize must be 'auto' or an integer >= 1", "got 0"]),
    ({"errors": "ignore"}, ["errors must be 'raise' or 'collect'", "got 'ignore'"]),
    ({"timeout": -1}, ["timeout must be", "got -1"]),
    ({"ordered": "yes"}, ["ordered must be True or False"]),
    ({"address": "tcp://127.0.0.1:8786"}, ["address=", "only applies to backend='dask'"]),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(UsageError) as info:
        pmap(inc, range(3), **kwargs)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "Fix:" in msg


def test_bad_arguments_on_executor():
    with pytest.raises(UsageError, match="workers must be"):
        Executor("threads", workers=0)
    with pytest.raises(UsageError, match="backend must be one of"):
        Executor("gpu")
    with pytest.raises(UsageError, match="chunksize must be"):
        Executor("threads", chunksize=0)


def test_not_callable():
    with pytest.raises(NotCallableError) as info:
        pmap([1, 2, 3], inc)  # swapped arguments
    assert isinstance(info.value, TypeError) and isinstance(info.value, ThreadwiseError)
    assert "fn must be callable" in str(info.value)


def test_not_iterable():
    with pytest.raises(UsageError, match="items must be iterable"):
        pmap(inc, 5)


def test_address_nobody_listens_on():
    pytest.importorskip("distributed")
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(UsageError) as info:
        pmap(inc, range(3), backend="dask", address="tcp://127.0.0.1:%d" % port)
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert "address=" in msg and "nobody listens there" in msg and str(port) in msg


def test_bad_address_shape():
    pytest.importorskip("distributed")
    with pytest.raises(UsageError, match="tcp://host:port"):
        pmap(inc, range(3), backend="dask", address="nonsense")


def test_interpreters_unavailable_message():
    if _interpreters_available():
        pytest.skip("sub-interpreters are available here")
    with pytest.raises(UsageError) as info:
        pmap(inc, range(3), backend="interpreters")
    msg = str(info.value)
    assert "not available on this interpreter" in msg and "3.14" in msg


def test_public_names():
    for name in ("pmap", "Executor", "advise", "Advice", "BackendResult", "Choice", "Statistics",
                 "Failure", "ItemError", "WorkerCrashedError", "ItemTimeoutError", "MapResults"):
        assert name in tx.__all__ and hasattr(tx, name)
    assert set(tx.__all__) <= set(dir(tx))


def test_no_thread_leak_after_pmap_threads():
    before = threading.active_count()
    pmap(inc, range(100), backend="threads", workers=4)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_pmap_results_pickle_with_their_choice_and_stats():
    import pickle

    out = pmap(inc, range(100))
    back = pickle.loads(pickle.dumps(out))
    assert back == out and back.choice == out.choice
    assert back.stats == out.stats and back.stats.items_done == 100
