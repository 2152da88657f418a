"""gil_monitor(): properties that hold on a busy 2-core machine, with real threads."""
import dataclasses
import sys
import threading
import time

import pytest

import threadwise.probe as probe
from threadwise.errors import UsageError
from threadwise.probe import GilStats, ThreadStats, gil_monitor
from threadwise.probe.stats import wilson

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sampler reads /proc")


def _spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def _run_threads(target, n, *args):
    threads = [threading.Thread(target=target, args=args, name="worker-%d" % i) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return threads


def test_one_spinning_thread_holds_the_gil():
    with gil_monitor() as m:
        _run_threads(_spin, 1, 0.6)
    s = m.stats()
    assert s.gil is True
    assert s.gil_held > 0.8
    assert s.samples > 100
    lo, hi = s.gil_held_ci
    assert lo <= s.gil_held <= hi
    # one thread wants the GIL: hardly anybody waits for it
    assert s.gil_wait < 0.2


def test_sleeping_threads_hardly_hold_it():
    with gil_monitor() as m:
        _run_threads(time.sleep, 3, 0.5)
    s = m.stats()
    assert s.gil_held < 0.2
    assert s.gil_wait < 0.1
    assert s.parallelism < 0.5


def test_two_spinning_threads_wait_for_each_other():
    with gil_monitor() as m:
        _run_threads(_spin, 2, 0.6)
    s = m.stats()
    assert s.gil_held > 0.8
    assert s.gil_wait > 0.3  # ~1.0 on a quiet machine
    assert s.gil_wait <= s.gil_held + 0.05
    workers = [t for t in s.threads if (t.name or "").startswith("worker-")]
    assert len(workers) == 2
    for t in workers:
        assert t.cpu_s > 0.05
        assert t.gil_held is not None and t.gil_held > 0.2
    # two threads sharing one GIL can't use more than about one core
    assert s.parallelism < 1.3


def test_stats_is_a_frozen_dataclass_and_report_is_text():
    with gil_monitor(interval=0.002) as m:
        _spin(0.2)
    s = m.stats()
    assert isinstance(s, GilStats)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gil_held = 0.5
    assert all(isinstance(t, ThreadStats) for t in s.threads)
    assert 0.001 < s.interval_s < 0.004  # the mean gap achieved
    text = m.report()
    assert "GIL held" in text and "parallelism" in text and "samples" in text
    d = s.to_dict()
    for key in ("gil_held", "gil_wait", "parallelism", "samples", "threads", "gil_held_ci"):
        assert key in d
    assert m.stop() is s  # stopping twice returns the same figures


def test_adaptive_sampling_gets_sparser_and_stays_unbiased():
    # half the run one thread spins, half it sleeps: held ~ 0.5 whatever the rate
    def half_busy():
        _spin(1.2)
        time.sleep(1.2)
    with gil_monitor() as m:
        _run_threads(half_busy, 1)
    s = m.stats()
    assert s.interval_s > 0.0012  # 1 ms for the first second, sparser later
    assert 0.35 < s.gil_held < 0.65
    with gil_monitor(interval=0.001) as fixed:
        _spin(0.3)
    assert fixed.stats().interval_s < 0.0015


def test_live_stats_while_running():
    m = gil_monitor().start()
    try:
        _spin(0.2)
        live = m.stats()
        assert m.running
        assert live.samples > 0
    finally:
        final = m.stop()
    assert not m.running
    assert final.samples >= live.samples


def test_bad_use_is_reported_in_three_parts():
    with pytest.raises(UsageError) as e:
        gil_monitor(interval=0)
    assert "interval" in str(e.value) and e.value.fix
    with pytest.raises(UsageError):
        gil_monitor().stop()
    m = gil_monitor().start()
    try:
        with pytest.raises(UsageError):
            m.start()
    finally:
        m.stop()


def test_wilson_interval():
    assert wilson(0, 0) is None
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and hi - lo < 0.21
    assert wilson(100, 100)[1] == 1.0


def test_exported_names():
    for name in ("gil_monitor", "holds_gil", "GilMonitor", "GilStats", "ThreadStats", "GilHoldResult",
                 "GilEnabledEvent"):
        assert name in probe.__all__
        assert hasattr(probe, name)
