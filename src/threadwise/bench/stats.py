"""Statistics on timing samples: no I/O, no clocks, just numbers in and numbers out.

    samples (wall_s, cpu_s per timed repeat) --> summarize() --> Summary
    serial Summary + cell Summary             --> speedup()   --> Speedup (ratio + 95% CI)
    Summary + environment                      --> instability warnings (pyperf-style)

The median's 95% confidence interval is distribution-free (order statistics
of the binomial; for fewer than 6 samples the widest interval, min..max, is
used and its actual coverage is reported).  The speedup's interval is a
percentile bootstrap of the ratio of medians with a fixed seed, so the same
samples always give the same interval.
"""
from __future__ import annotations

import math
import random
import statistics as _st
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

#: pyperf warns when the standard deviation is at least 10% of the mean
SPREAD_WARN = 0.10
#: a raw value this short is dominated by timer and scheduling noise
MIN_RAW_S = 0.001


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    ci95: Tuple[float, float]
    ci_coverage: float
    mean: float
    stdev: float
    min: float
    max: float
    samples: Tuple[float, ...]

    def to_json(self) -> Dict[str, object]:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        d["samples"] = list(self.samples)
        return d

    @property
    def spread(self) -> float:
        """Standard deviation relative to the median (0 for a single sample)."""
        return self.stdev / self.median if self.median > 0 else 0.0


def _binom_cdf(k: int, n: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n


def median_ci(values: Sequence[float], level: float = 0.95) -> Tuple[float, float, float]:
    """Distribution-free CI of the median: (low, high, actual coverage).

    For sorted samples x[0..n-1], [x[j], x[n-1-j]] covers the median with
    probability 1 - 2 P(Binomial(n, 1/2) <= j).  The narrowest such interval
    with coverage >= ``level`` is returned; with too few samples for any,
    min..max and its (lower) coverage."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no samples")
    if n == 1:
        return xs[0], xs[0], 0.0
    j = 0
    while j + 1 < n - 1 - (j + 1) and 1.0 - 2.0 * _binom_cdf(j + 1, n) >= level:
        j += 1
    return xs[j], xs[n - 1 - j], 1.0 - 2.0 * _binom_cdf(j, n)


def summarize(values: Sequence[float]) -> Summary:
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summarize() needs at least one sample")
    lo, hi, cov = median_ci(xs)
    return Summary(n=len(xs), median=_st.median(xs), ci95=(lo, hi), ci_coverage=cov,
                   mean=_st.fmean(xs), stdev=_st.stdev(xs) if len(xs) > 1 else 0.0,
                   min=min(xs), max=max(xs), samples=tuple(xs))


@dataclass(frozen=True)
class Speedup:
    value: float
    ci95: Tuple[float, float]

    def to_json(self) -> Dict[str, object]:
        return {"value": self.value, "ci95": list(self.ci95)}


def speedup(baseline: Sequence[float], cell: Sequence[float], factor: float = 1.0,
            resamples: int = 2000, seed: int = 12345) -> Speedup:
    """``factor * median(baseline) / median(cell)`` with a bootstrap 95% CI.

    ``factor`` is 1 for strong scaling (same total work) and W for weak scaling
    (W times the work in the cell)."""
    b = [float(x) for x in baseline]
    c = [float(x) for x in cell]
    if not b or not c:
        raise ValueError("speedup() needs samples on both sides")
    value = factor * _st.median(b) / _st.median(c)
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        mb = _st.median([rng.choice(b) for _ in b])
        mc = _st.median([rng.choice(c) for _ in c])
        ratios.append(factor * mb / mc)
    ratios.sort()
    lo = ratios[int(0.025 * (resamples - 1))]
    hi = ratios[int(math.ceil(0.975 * (resamples - 1)))]
    return Speedup(value, (lo, hi))


def speedup_ratio(base_a: Sequence[float], cell_a: Sequence[float], base_b: Sequence[float],
                  cell_b: Sequence[float], resamples: int = 2000, seed: int = 12345
                  ) -> Tuple[float, Tuple[float, float]]:
    """How many times cell a's speedup over its baseline is cell b's: the point value and a
    bootstrap 95% interval (each of the four sample sets resampled).  Combining the two
    speedups' own intervals end to end covers far more than 95%."""
    sets = [[float(x) for x in v] for v in (base_a, cell_a, base_b, cell_b)]
    if any(not v for v in sets):
        raise ValueError("speedup_ratio() needs samples in all four sets")
    med = _st.median

    def ratio(ba: List[float], ca: List[float], bb: List[float], cb: List[float]) -> float:
        return (med(ba) / med(ca)) / (med(bb) / med(cb))

    value = ratio(*sets)
    rng = random.Random(seed)
    rs = sorted(ratio(*[[rng.choice(v) for _ in v] for v in sets]) for _ in range(resamples))
    return value, (rs[int(0.025 * (resamples - 1))], rs[int(math.ceil(0.975 * (resamples - 1)))])


def parallelism(wall: Sequence[float], cpu: Sequence[float]) -> float:
    """Effective parallelism: median over repeats of CPU seconds / wall seconds."""
    return _st.median([c / w for c, w in zip(cpu, wall) if w > 0])


def percentile(values: Sequence[float], q: float) -> float:
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    k = (len(xs) - 1) * q
    lo = int(math.floor(k))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def instability(wall: Summary, load_avg: Optional[float] = None,
                cores: Optional[int] = None) -> List[str]:
    """pyperf-style warnings: why these numbers may not be trusted, and what to do."""
    out = []
    if wall.n >= 2 and wall.spread >= SPREAD_WARN:
        out.append("the standard deviation is %.0f%% of the median (>= %.0f%%): rerun with more "
                   "repeats, or on a quieter machine" % (100 * wall.spread, 100 * SPREAD_WARN))
    if wall.min < MIN_RAW_S:
        out.append("the shortest run took %.3f ms (< 1 ms): timer and scheduling noise dominate; "
                   "use a larger size" % (1000 * wall.min))
    if load_avg is not None and cores is not None and load_avg > cores:
        out.append("the load average was %.2f at the start, above the %d usable cores: other "
                   "work shared the CPUs" % (load_avg, cores))
    if wall.n < 5:
        out.append("only %d timed repeats; the median's interval covers %.0f%%: use --repeats 5 "
                   "or more" % (wall.n, 100 * wall.ci_coverage))
    return out


def amdahl_fit(points: Sequence[Tuple[int, float]]) -> Optional[float]:
    """Least-squares parallel fraction p of Amdahl's law S(W) = 1 / ((1-p) + p/W).

    ``points`` are (workers, speedup); 1/S = 1 - p*(1 - 1/W) is linear in p.
    Returns p clipped to [0, 1], or None without a point at W > 1."""
    xs, ys = [], []
    for w, s in points:
        if w > 1 and s > 0:
            xs.append(1.0 - 1.0 / w)
            ys.append(1.0 - 1.0 / s)
    if not xs:
        return None
    p = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    return max(0.0, min(1.0, p))
