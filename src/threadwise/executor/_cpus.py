"""How many CPUs this process may really use, counted like loky.

``os.cpu_count()`` counts the machine; a process may be pinned to fewer cores
(``sched_setaffinity``, ``taskset``, Docker's ``--cpuset-cpus``) or throttled to a
CPU quota (cgroups: Docker's ``--cpus``, Kubernetes limits).  The smallest of the
three is the number of CPU-bound workers worth starting; :func:`cpu_count_explained`
says how it was derived.
"""
from __future__ import annotations

import math
import os
from typing import List, Optional, Tuple

_CACHE: Optional[Tuple[int, str]] = None


def _cgroup_quota() -> Optional[float]:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max``, v1 ``cfs_quota_us``), None if unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota_us = float(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period_us = float(f.read())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def cpu_count_explained() -> Tuple[int, str]:
    """``(cpus, how)``: the CPUs this process may use and how that number was derived."""
    global _CACHE
    if _CACHE is not None:
        return _CACHE
    counts: List[Tuple[int, str]] = []
    machine = os.cpu_count() or 1
    counts.append((machine, "os.cpu_count()=%d" % machine))
    if hasattr(os, "sched_getaffinity"):
        try:
            aff = len(os.sched_getaffinity(0))
            counts.append((aff, "affinity=%d" % aff))
        except OSError:
            pass
    quota = _cgroup_quota()
    if quota is not None:
        q = max(1, int(math.ceil(quota)))
        counts.append((q, "cgroup quota=%.2f CPUs" % quota))
    else:
        counts.append((machine, "cgroup quota=none"))
    n = max(1, min(c for c, _ in counts))
    _CACHE = (n, "%d = min(%s)" % (n, ", ".join(how for _, how in counts)))
    return _CACHE


def cpu_count() -> int:
    """The CPUs this process may use (affinity and cgroup quota included), at least 1."""
    return cpu_count_explained()[0]
