"""stats.py: intervals, speedup, warnings, Amdahl fit — pure functions."""
import random

import pytest

from threadwise.bench import stats


def test_summary_fields():
    s = stats.summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert s.median == 3.0 and s.min == 1.0 and s.max == 5.0 and s.n == 5
    assert s.ci95 == (1.0, 5.0) and s.ci_coverage == pytest.approx(1 - 2 / 32)


@pytest.mark.parametrize("n", [6, 10, 20, 50])
def test_median_ci_reaches_95_percent_and_is_narrowest(n):
    lo, hi, cov = stats.median_ci(list(range(n)))
    assert cov >= 0.95
    assert lo <= (n - 1) / 2 <= hi


def test_median_ci_covers_the_true_median_about_95_percent():
    rng = random.Random(1)
    hits = 0
    for _ in range(2000):
        xs = [rng.expovariate(1.0) for _ in range(15)]
        lo, hi, _ = stats.median_ci(xs)
        hits += lo <= 0.6931471805599453 <= hi
    assert 0.93 <= hits / 2000 <= 0.995


def test_speedup_ratio_and_interval():
    sp = stats.speedup([1.0, 1.02, 0.98, 1.01, 0.99], [0.5, 0.51, 0.49, 0.5, 0.52])
    assert sp.value == pytest.approx(2.0, rel=0.02)
    assert sp.ci95[0] <= sp.value <= sp.ci95[1]
    assert stats.speedup([1.0], [0.5], factor=2).value == pytest.approx(4.0)


def test_speedup_is_reproducible():
    a, b = [1.0, 1.2, 0.9, 1.1], [0.6, 0.5, 0.7, 0.55]
    assert stats.speedup(a, b) == stats.speedup(a, b)


def test_instability_warnings():
    noisy = stats.summarize([1.0, 1.5, 0.7, 1.2, 0.9])
    tiny = stats.summarize([0.0004, 0.0004, 0.0004, 0.0004, 0.0004])
    calm = stats.summarize([1.0, 1.01, 0.99, 1.0, 1.0])
    assert any("standard deviation" in w for w in stats.instability(noisy))
    assert any("1 ms" in w for w in stats.instability(tiny))
    assert any("load average" in w for w in stats.instability(calm, load_avg=3.5, cores=2))
    assert stats.instability(calm, load_avg=0.5, cores=2) == []


def test_parallelism_and_amdahl():
    assert stats.parallelism([1.0, 2.0], [1.9, 3.8]) == pytest.approx(1.9)
    p = stats.amdahl_fit([(2, 1.0 / (0.2 + 0.8 / 2)), (4, 1.0 / (0.2 + 0.8 / 4))])
    assert p == pytest.approx(0.8, abs=1e-6)
    assert stats.amdahl_fit([(1, 1.0)]) is None


def test_percentile():
    assert stats.percentile([1, 2, 3, 4, 5], 0.5) == 3
    assert stats.percentile(list(range(101)), 0.99) == pytest.approx(99)


def test_speedup_ratio_is_the_ratio_of_medians_with_a_bootstrap_interval():
    import random as _r
    from threadwise.bench.stats import speedup, speedup_ratio
    rng = _r.Random(3)
    ba = [1.0 + rng.gauss(0, 0.02) for _ in range(11)]
    ca = [0.5 + rng.gauss(0, 0.02) for _ in range(11)]
    bb = [1.0 + rng.gauss(0, 0.02) for _ in range(11)]
    cb = [0.8 + rng.gauss(0, 0.02) for _ in range(11)]
    value, (lo, hi) = speedup_ratio(ba, ca, bb, cb)
    sa, sb = speedup(ba, ca), speedup(bb, cb)
    assert value == pytest.approx(sa.value / sb.value)
    assert lo < value < hi
    # narrower than the two speedups' intervals combined end to end
    assert lo > sa.ci95[0] / sb.ci95[1] and hi < sa.ci95[1] / sb.ci95[0]
    with pytest.raises(ValueError):
        speedup_ratio([], ca, bb, cb)
