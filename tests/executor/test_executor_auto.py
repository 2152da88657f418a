"""backend="auto": it measures, chooses, says why, and never loses the sampled results.

Only choices that hold on a loaded machine are asserted: tiny work stays
serial, waiting work goes to threads, CPU-bound pure Python that holds the
GIL goes to processes (given two CPUs).
"""
from __future__ import annotations

import hashlib
import threading
import time

import pytest

import sys as _sys
GIL = getattr(_sys, "_is_gil_enabled", lambda: True)()

from threadwise.executor import Executor, Failure, ItemError, cpu_count, pmap
from threadwise.executor._engine import Chunker
from threadwise.executor._gilmeter import GilMeter
from threadwise.executor.auto import fmt_s, predict, threads_for

pytestmark = pytest.mark.timeout(120)


def inc(x):
    return x + 1


def wait_2ms(x):
    time.sleep(0.002)
    return x


def spin_3ms(x):
    end = time.perf_counter() + 0.003
    n = 0
    while time.perf_counter() < end:
        n += 1
    return x


_ONE_AT_A_TIME = threading.Lock()
_MIB = b"x" * (1 << 20)


def serialized_hash(x):
    """Releases the GIL (sha256 of 1 MiB) but holds a lock of its own: threads can't
    scale it, the way OpenBLAS serializes concurrent numpy calls."""
    with _ONE_AT_A_TIME:
        return hashlib.sha256(_MIB + bytes([x % 256])).hexdigest()[:8]


def fail_on(x):
    if x in (3, 40):
        raise KeyError(x)
    return x


def test_tiny_items_stay_serial():
    out = pmap(inc, range(20000))
    assert out == list(range(1, 20001))
    assert out.choice.backend == "serial"
    assert "serial" in out.choice.reason and out.choice.item_s is not None


def test_tiny_items_from_a_generator_stay_serial():
    out = pmap(inc, (x for x in range(50000)))
    assert out == list(range(1, 50001))
    assert out.choice.backend == "serial"


def test_waiting_items_go_to_threads():
    out = pmap(wait_2ms, range(300))
    assert out == list(range(300))
    assert out.choice.backend == "threads", out.choice.reason
    assert out.choice.workers > cpu_count()  # waits overlap beyond the CPU count
    assert "wait" in out.choice.reason


@pytest.mark.skipif(cpu_count() < 2, reason="needs two CPUs to gain from processes")
@pytest.mark.skipif(not GIL, reason="a free-threaded build without its GIL: see the next test")
def test_gil_holding_cpu_work_goes_to_processes():
    out = pmap(spin_3ms, range(200))
    assert out == list(range(200))
    assert out.choice.backend == "processes", out.choice.reason
    assert out.choice.gil_held is not None and out.choice.gil_held > 0.5
    assert "GIL" in out.choice.reason and "%" in out.choice.reason


@pytest.mark.skipif(GIL, reason="needs a free-threaded build running without its GIL "
                    "(scripts/test runs the executor tests under 3.13t too)")
def test_pure_python_cpu_work_goes_to_threads_without_a_gil():
    out = pmap(spin_3ms, range(200))
    assert out == list(range(200))
    assert out.choice.backend in ("threads", "processes"), out.choice.reason
    assert "free-threaded" in out.choice.reason or "no GIL" in out.choice.reason, out.choice.reason


def test_explain_prints_the_choice(capsys):
    pmap(inc, range(100), explain=True)
    assert "threadwise: serial" in capsys.readouterr().err


def test_executor_auto_choice_and_submit():
    with Executor() as ex:
        assert ex.choice is None
        assert ex.submit(inc, 1).result() == 2  # before any map: threads
        assert list(ex.imap(wait_2ms, range(200))) == list(range(200))
        assert ex.choice.backend == "threads"
        assert ex.statistics().choice is ex.choice
        assert ex.submit(inc, 2).result() == 3


def test_auto_errors_raise_and_collect():
    with pytest.raises(ItemError) as info:
        pmap(fail_on, range(100))
    assert info.value.index == 3 and isinstance(info.value.exception, KeyError)
    assert [info.value.results[i] for i in range(3)] == [0, 1, 2]
    out = pmap(fail_on, range(100), errors="collect")
    assert isinstance(out[3], Failure) and isinstance(out[40], Failure)
    assert [x for x in out if not isinstance(x, Failure)] == [x for x in range(100) if x not in (3, 40)]


def test_auto_lookahead_is_bounded():
    pulled = [0]

    def gen():
        for i in range(10_000_000):
            pulled[0] += 1
            yield i

    with Executor() as ex:
        it = ex.imap(wait_2ms, gen())
        next(it)
        assert pulled[0] < 60_000
        del it


@pytest.mark.skipif(not GIL, reason="no GIL to meter on a free-threaded build without it")
def test_gil_meter_tells_held_from_released():
    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    m = GilMeter().start()
    spin(0.15)
    held = m.stop()
    m = GilMeter().start()
    time.sleep(0.15)
    free = m.stop()
    assert held is not None and free is not None
    assert held > free
    assert free < 0.3


def test_cost_model():
    # 1000 items of 1 ms, CPU-bound, GIL held: processes win, threads don't
    p = predict(1000, 1e-3, 1.0, 1.0, 2, None, (1e-6, 1e-6), 0.03)
    assert p["processes"][0] < 0.6 and p["threads"][0] >= 0.99
    # GIL released: threads as fast as processes, without the start-up
    p = predict(1000, 1e-3, 1.0, 0.0, 2, None, (1e-6, 1e-6), 0.03)
    assert p["threads"][0] < p["processes"][0]
    # waiting work: many threads
    assert threads_for(0.05, 2, None) >= 20 and threads_for(1.0, 2, None) == 2
    assert threads_for(0.05, 2, 3) == 3


def test_cost_model_for_a_call_that_runs_its_own_thread_pool():
    # a call that keeps 2 CPUs busy by itself (BLAS) on 2 CPUs: nothing left to win in
    # parallel, on threads or processes; on 8 CPUs, 4 such calls at once do
    p = predict(1000, 0.001, 1.0, 0.0, 2, None, (0.0, 0.0), 0.0, par=2.0)
    assert p["threads"][0] >= 0.95 * p["serial"][0]
    assert p["processes"][0] >= 0.95 * p["serial"][0]
    p8 = predict(1000, 0.001, 1.0, 0.0, 8, None, (0.0, 0.0), 0.0, par=2.0)
    assert p8["processes"][0] < 0.3 * p8["serial"][0]
    assert predict(1000, 0.001, 1.0, 1.0, 2, None, (0.0, 0.0), 0.0) == predict(
        1000, 0.001, 1.0, 1.0, 2, None, (0.0, 0.0), 0.0, par=1.0)


def test_chunker_sizes():
    c = Chunker(None, 0.01, 2, remaining=10_000)
    assert c.next_size() == 1  # nothing measured yet
    c.observe(1, 1e-4)
    assert c.next_size() == 100  # 10 ms of work
    c2 = Chunker(None, 0.01, 2, remaining=8, item_s=1e-3)
    assert c2.next_size() == 2  # the tail is split so both workers get some
    c3 = Chunker(None, 0.01, 2, remaining=40, item_s=1e-6)
    assert c3.next_size() >= 40  # 40 µs of work: not worth splitting
    assert Chunker(7, 0.01, 2).next_size() == 7


def test_fmt_s():
    assert fmt_s(2e-7) == "0.20 µs" and fmt_s(0.0123) == "12 ms" and fmt_s(2.5) == "2.5 s"


@pytest.mark.skipif(cpu_count() < 2, reason="needs two CPUs to tell threads from serial")
def test_gil_free_calls_that_do_not_scale_on_threads_do_not_get_threads():
    items = list(range(80))
    out = pmap(serialized_hash, items)
    assert list(out) == [serialized_hash(x) for x in items]
    assert out.choice.backend != "threads", out.choice.reason
    assert "threads ran" in out.choice.reason  # the trial that showed it


_WEIGHT = {"spin_s": 0.0}


def weighted(x):
    end = time.perf_counter() + _WEIGHT["spin_s"]
    while time.perf_counter() < end:
        pass
    return x + 1


def test_auto_remembers_a_tiny_function_and_notices_when_it_gets_heavier():
    _WEIGHT["spin_s"] = 0.0
    items = list(range(2000))
    first = pmap(weighted, items)
    assert first.choice.backend == "serial" and first.choice.sampled > 0
    again = pmap(weighted, items)          # predicted tiny from the first map: no probe
    assert list(again) == [x + 1 for x in items]
    assert again.choice.sampled == 0 and "previous map" in again.choice.reason
    _WEIGHT["spin_s"] = 0.0005             # now 1 s of work: the memory is wrong once...
    heavy = pmap(weighted, items[:40])     # (a short map the memory still calls tiny)
    assert heavy.choice.sampled == 0 and list(heavy) == [x + 1 for x in items[:40]]
    nxt = pmap(weighted, items[:400])      # ...and corrected by that timed run: measured again
    assert nxt.choice.sampled > 0 and "previous map" not in nxt.choice.reason
    _WEIGHT["spin_s"] = 0.0


def test_a_repeated_map_confirms_the_memory_instead_of_probing_again():
    from threadwise.executor import auto
    _WEIGHT["spin_s"] = 0.0002             # 200 items: 40 ms of work (wall clock: load-proof)
    items = list(range(200))
    try:
        first = pmap(weighted, items)
        assert "probe measured them" not in first.choice.reason
        for k in range(1, auto.FACTS_REUSE + 1):  # a short batch confirms the time per item
            again = pmap(weighted, items)
            assert list(again) == [x + 1 for x in items]
            assert ("CPU and GIL shares as this function's probe measured them %d map" % k
                    in again.choice.reason), again.choice.reason
        fresh = pmap(weighted, items)      # after FACTS_REUSE maps: a full probe again
        assert "probe measured them" not in fresh.choice.reason
        assert "measured them 1 map ago" in pmap(weighted, items).choice.reason
        _WEIGHT["spin_s"] = 0.002          # items 10x heavier: not confirmed, probed again
        heavy = pmap(weighted, items[:60])
        assert list(heavy) == [x + 1 for x in items[:60]]
        assert "probe measured them" not in heavy.choice.reason
        assert heavy.choice.item_s > 0.001
    finally:
        _WEIGHT["spin_s"] = 0.0


_BAD = set()


def weighted_failing(x):
    if x in _BAD:
        raise ValueError("bad item %d" % x)
    return weighted(x)


def test_a_failure_in_the_confirming_batch_is_named():
    _WEIGHT["spin_s"] = 0.0002
    try:
        assert pmap(weighted_failing, range(200)) == list(range(1, 201))
        _BAD.add(1)                        # inside the next map's confirming batch
        out = pmap(weighted_failing, range(200), errors="collect")
        assert isinstance(out[1], Failure) and out[1].index == 1
        assert [out[i] for i in range(200) if i != 1] == [i + 1 for i in range(200) if i != 1]
        with pytest.raises(ItemError) as info:
            pmap(weighted_failing, range(200))
        assert info.value.index == 1 and info.value.results[0] == 1
        with Executor() as ex:
            got = []
            with pytest.raises(ItemError):
                for v in ex.imap(weighted_failing, range(200)):
                    got.append(v)
            assert got == [1]
    finally:
        _BAD.clear()
        _WEIGHT["spin_s"] = 0.0


def _fails_at(bad):
    def fn(x):
        if x in bad:
            raise ValueError("bad item %d" % x)
        return x * 2
    return fn


@pytest.mark.parametrize("bad", [{0}, {10}, {64}, {70, 71}])
def test_failures_inside_the_probe_batches(bad):
    # the probe's first batches (the lone first item, then 64) run inline in the caller:
    # a failure there is named, counted and placed like anywhere else
    n = 3000
    out = pmap(_fails_at(bad), range(n), errors="collect")
    assert len(out) == n
    for i in range(n):
        if i in bad:
            assert isinstance(out[i], Failure) and out[i].index == i and out[i].item == str(i)
        else:
            assert out[i] == 2 * i
    assert out.stats.items_done == n and out.stats.items_failed == len(bad)
    first = min(bad)
    with pytest.raises(ItemError) as info:
        pmap(_fails_at(bad), list(range(n)))
    assert info.value.index == first and info.value.item == str(first)
    assert [info.value.results[i] for i in range(first)] == [2 * i for i in range(first)]
    with Executor() as ex:  # imap: no result list to append to, chunks are yielded
        got = []
        with pytest.raises(ItemError):
            for v in ex.imap(_fails_at(bad), range(n)):
                got.append(v)
        assert got == [2 * i for i in range(first)]


def test_memory_of_a_function_goes_with_it():
    import gc

    from threadwise.executor import auto

    def short_lived(x):
        return x

    pmap(short_lived, range(1000))
    assert auto.recall(short_lived) is not None
    key = id(short_lived)
    del short_lived
    gc.collect()
    assert key not in auto._MEMO


def test_choice_reason_written_when_read_behaves_like_a_field():
    import copy
    import pickle

    from threadwise.executor import Choice

    calls = []

    def write():
        calls.append(1)
        return "serial: because"

    c = Choice("serial", 1, write, item_s=1e-6)
    assert calls == []
    assert c.reason == "serial: because" and str(c) == "serial: because" and calls == [1]
    assert c.reason == "serial: because" and calls == [1]          # written once
    assert c == Choice("serial", 1, "serial: because", item_s=1e-6)
    assert pickle.loads(pickle.dumps(Choice("threads", 2, lambda: "why"))).reason == "why"
    assert copy.deepcopy(Choice("threads", 2, lambda: "why")).to_dict()["reason"] == "why"
    with pytest.raises(AttributeError):
        c.not_a_field


def test_auto_logs_its_decision_with_the_reason(caplog):
    import logging
    from threadwise import pmap
    with caplog.at_level(logging.INFO, logger="threadwise"):
        out = pmap(lambda x: x + 1, range(500))
    assert list(out) == list(range(1, 501))
    msgs = [r.getMessage() for r in caplog.records if r.name == "threadwise"]
    assert msgs and msgs[-1].startswith("auto: serial") and out.choice.reason in msgs[-1]


def test_auto_model_chooses_sub_interpreters_where_they_win():
    from threadwise.executor import auto
    # CPU-bound, holds the GIL, 200 items of 5 ms: processes and sub-interpreters both scale;
    # a sub-interpreter starts without a process (20 ms each vs 150 ms for a spawned pool)
    p = auto.predict(200, 0.005, 1.0, 1.0, 2, None, (1e-5, 1e-5), 0.15, interpreters_s=0.02)
    assert auto._decide(p)[0] == "interpreters"
    # without a sub-interpreter pool (before 3.14) the same map goes to processes
    p = auto.predict(200, 0.005, 1.0, 1.0, 2, None, (1e-5, 1e-5), 0.15, interpreters_s=None)
    assert auto._decide(p)[0] == "processes" and "interpreters" not in p
    # a map too short to pay for any start-up stays serial
    p = auto.predict(4, 0.005, 1.0, 1.0, 2, None, (1e-5, 1e-5), 0.15, interpreters_s=0.02)
    assert auto._decide(p)[0] == "serial"
