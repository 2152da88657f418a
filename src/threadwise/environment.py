"""The host's environment, recorded with every result: CPU model, usable cores, load.

Usable cores are counted the way loky counts them: the CPU affinity mask, then
a container quota (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), whichever
is smaller, and the derivation is kept as text so a reader sees why the number
is what it is.  Facts about a *target* interpreter (version, GIL, switch
interval, start methods) come from the agent (``interpreters.describe``).
"""
from __future__ import annotations

import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import psutil

from . import __version__


@dataclass(frozen=True)
class Cores:
    usable: int
    logical: int
    physical: Optional[int]
    affinity: Optional[int]
    quota: Optional[float]
    derivation: str


def _cgroup_quota() -> Tuple[Optional[float], str]:
    """CPUs allowed by the cgroup's CFS quota, or None, with where it came from."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            if quota != "max":
                return int(quota) / int(period), "cgroup v2 cpu.max %s/%s" % (quota, period)
            return None, "cgroup v2 cpu.max: no quota"
        q = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        p = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if q.exists() and p.exists():
            quota_us, period_us = int(q.read_text()), int(p.read_text())
            if quota_us > 0:
                return quota_us / period_us, "cgroup v1 cfs quota %d/%d" % (quota_us, period_us)
            return None, "cgroup v1: no quota"
    except (OSError, ValueError) as e:
        return None, "cgroup quota unreadable (%s)" % e
    return None, "no cgroup cpu controller"


def cores() -> Cores:
    logical = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False)
    try:
        affinity: Optional[int] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    quota, qwhy = _cgroup_quota()
    usable = affinity or logical
    parts = ["os.cpu_count()=%d" % logical,
             "affinity mask=%s" % (affinity if affinity is not None else "n/a"), qwhy]
    if quota is not None and math.ceil(quota) < usable:
        usable = max(1, math.ceil(quota))
        parts.append("quota limits to %d" % usable)
    return Cores(usable=usable, logical=logical, physical=physical, affinity=affinity,
                 quota=quota, derivation="; ".join(parts) + " -> %d usable" % usable)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def host() -> Dict[str, Any]:
    """Everything about the host that a reader needs to judge a measurement."""
    c = cores()
    la = None
    try:
        la = list(os.getloadavg())
    except (AttributeError, OSError):
        pass
    return {
        "threadwise": __version__,
        "hostname": platform.node(),
        "os": "%s %s" % (platform.system(), platform.release()),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cores": asdict(c),
        "usable_cores": c.usable,
        "load_avg": la,
        "memory_bytes": psutil.virtual_memory().total,
        "host_python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "host_executable": sys.executable,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@dataclass(frozen=True)
class Contention:
    """How busy the machine was while something ran, apart from threadwise itself.

    ``others`` is the share of all CPUs' time that other processes used (0.5 on a 2-core
    machine = one core's worth), ``steal`` the share a hypervisor gave to other guests."""
    seconds: float
    others: float
    steal: float

    def to_json(self) -> Dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "others": round(self.others, 4),
                "steal": round(self.steal, 4)}


#: every process threadwise starts inherits this variable (agents, their workers, a
#: forkserver's children, the echo server): processes that carry it are threadwise's own
OWNER_ENV = "THREADWISE_OWNER"


def _mark_tree() -> str:
    return os.environ.setdefault(OWNER_ENV, str(os.getpid()))


def _steal_and_span() -> Tuple[float, float]:
    """(steal, all) seconds of every CPU since boot (/proc/stat via psutil)."""
    t = psutil.cpu_times()
    total = sum(t) - (getattr(t, "guest", 0.0) or 0.0) - (getattr(t, "guest_nice", 0.0) or 0.0)
    return getattr(t, "steal", 0.0) or 0.0, total


def _others(owner: str) -> Dict[Tuple[int, float], float]:
    """CPU seconds so far of every process that is not threadwise's own (by OWNER_ENV)."""
    me = os.getpid()
    out: Dict[Tuple[int, float], float] = {}
    for p in psutil.process_iter(["pid", "create_time", "cpu_times", "environ"]):
        info = p.info
        if info["pid"] == me or info.get("cpu_times") is None:
            continue
        env = info.get("environ") or {}
        if env.get(OWNER_ENV) == owner:
            continue
        ct = info["cpu_times"]
        out[(info["pid"], info.get("create_time") or 0.0)] = ct.user + ct.system
    return out


class CpuWatch:
    """Measure the other processes' CPU share over an interval (see :class:`Contention`).

    Start it before launching a measurement and stop it after::

        watch = CpuWatch()
        ... run the agent ...
        busy = watch.stop()     # Contention(seconds, others, steal)

    "Other" processes are those without this process's OWNER_ENV mark, which every child
    threadwise starts inherits (so a forkserver's workers, reparented when their parent
    exits, are still recognised as threadwise's).  Each process's CPU time is read at the
    start and the end (psutil, /proc): a process that started and ended in between is
    not seen.  ``extra_pids`` is accepted for compatibility (the mark covers them)."""

    def __init__(self, extra_pids: "tuple[int, ...]" = ()) -> None:
        self.owner = _mark_tree()
        self.t0 = time.monotonic()
        self.cpu0 = _steal_and_span()
        self.others0 = _others(self.owner)

    def stop(self) -> Contention:
        wall = max(time.monotonic() - self.t0, 1e-9)
        steal1, total1 = _steal_and_span()
        steal0, total0 = self.cpu0
        others1 = _others(self.owner)
        used = sum(max(0.0, v - self.others0.get(k, 0.0)) for k, v in others1.items())
        span = max(total1 - total0, 1e-9)      # all CPUs' seconds in the interval
        return Contention(seconds=wall, others=min(1.0, used / span),
                          steal=min(1.0, (steal1 - steal0) / span))
