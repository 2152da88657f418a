"""How many CPUs this process may really use: :func:`threadwise.environment.cores`
(affinity mask and cgroup quota, counted like loky), cached for the executor's hot paths."""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

from ..environment import cores


@lru_cache(maxsize=1)
def cpu_count_explained() -> Tuple[int, str]:
    """``(cpus, how)``: the CPUs this process may use and how that number was derived."""
    c = cores()
    return c.usable, c.derivation


def cpu_count() -> int:
    """The CPUs this process may use (affinity and cgroup quota included), at least 1."""
    return cpu_count_explained()[0]
