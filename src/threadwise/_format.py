"""How threadwise writes numbers for people: one place, so every table reads the same."""
from __future__ import annotations

from typing import Optional


def fmt_s(s: Optional[float]) -> str:
    """A duration for humans: 0.4 µs, 12 ms, 1.9 s."""
    if s is None:
        return "?"
    if s < 1e-6:
        return "%.2f µs" % (s * 1e6)
    if s < 1e-3:
        return "%.1f µs" % (s * 1e6) if s < 1e-4 else "%.0f µs" % (s * 1e6)
    if s < 1.0:
        return "%.1f ms" % (s * 1e3) if s < 1e-2 else "%.0f ms" % (s * 1e3)
    return "%.1f s" % s


def pct(x: Optional[float]) -> str:
    """A share as a whole percentage: 0.42 -> 42%."""
    return "?" if x is None else "%d%%" % round(100 * x)
