"""A benchmark run's options, every one checked once, where the config is made.

    command line (bench/cli.py) --from_args()--+
    claims' experiments ------------------------+--> BenchConfig (checked in __post_init__)
    a resumed results file's "config" ----------+          --plan()--> cells to measure

Every number must be finite and in its range (``--timeout nan``, ``--task-ms inf``,
``--switch-interval -1``, ``--workers 100000`` are refused here, before anything
starts); names must be known.  A bad option raises :class:`~threadwise.errors.UsageError`
in three parts (exit status 2).  Nothing downstream checks options again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..errors import UsageError
from .inside import workloads as catalog
from .interpreters import Interpreter

BACKENDS = ("serial", "threads", "processes", "interpreters", "asyncio")
START_METHODS = ("fork", "forkserver", "spawn")
DEFAULT_WORKLOADS = ("cpu-python", "cpu-objects", "nbody", "hashlib", "zlib", "json",
                     "regex", "sleep", "socket", "file-io")
QUICK_WORKLOADS = ("cpu-python", "hashlib", "zlib", "json", "sleep", "socket")
DEFAULT_BACKENDS = ("serial", "threads", "processes", "interpreters", "asyncio")
QUICK_BACKENDS = ("serial", "threads", "processes", "asyncio")
#: more workers than this in one cell is a typo, not a benchmark (each is a thread or process)
MAX_WORKERS = 1024
#: a size above this (in the workload's unit) would run for days
MAX_SIZE = 10 ** 12


def check_number(name: str, value: Any, low: float, high: float, example: str,
                 low_open: bool = False) -> float:
    """``value`` as a float, finite and in [low, high] (or (low, high]); else a UsageError."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    ok = math.isfinite(x) and (x > low if low_open else x >= low) and x <= high
    if not ok:
        raise UsageError("%s must be a number %s %g and <= %g, got %r"
                         % (name, ">" if low_open else ">=", low, high, value),
                         "it is not finite, or out of the range that makes sense",
                         "e.g. %s" % example)
    return x


def check_int(name: str, value: Any, low: int, high: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError("%s must be >= %d%s, got %r"
                         % (name, low, " and <= %d" % high if isinstance(value, int) and value > high
                            else "", value),
                         "a count is a whole number in a range this machine can run",
                         "e.g. %s" % example)
    return value


@dataclass
class UserFunction:
    """The user's own function in the matrix: ``file.py:fn`` (shipped to the target as source)
    or ``pkg.mod:fn`` (imported there by name), and the items it is mapped over."""
    module: str
    function: str
    items: List[Any]
    source: Optional[str] = None
    label: str = ""

    @classmethod
    def parse(cls, text: str, items: Sequence[Any]) -> "UserFunction":
        import json
        import os
        target, _, function = text.rpartition(":")
        if not target or not function.isidentifier():
            raise UsageError("%r names no function" % text, "a user workload is FILE.py:FUNCTION "
                             "or MODULE:FUNCTION", "e.g. -w mycode.py:work --range 16")
        if not items:
            raise UsageError("-w %s has no items to map it over" % text,
                             "a user function needs its inputs", "add --range N or --items FILE")
        try:
            json.dumps(list(items))
        except (TypeError, ValueError) as e:
            raise UsageError("the items for %s are not JSON values (%s)" % (text, e), "",
                             "--items takes one JSON value a line") from None
        if target.endswith(".py"):
            try:
                with open(target, encoding="utf-8") as f:
                    source = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError("can't read %s: %s" % (target, e), "the path is wrong",
                                 "give the file's path, e.g. -w ./mycode.py:work") from None
            module = os.path.basename(target)[:-3]
            if not module.isidentifier():
                raise UsageError("%s is not an importable module name" % target, "", "rename the file")
            return cls(module, function, list(items), source, "%s:%s" % (os.path.basename(target), function))
        if not all(p.isidentifier() for p in target.split(".")):
            raise UsageError("%r is neither a .py file nor a module name" % target, "",
                             "e.g. -w mycode.py:work or -w mypkg.mod:work")
        return cls(target, function, list(items), None, text)

    def context(self, tasks: int) -> Dict[str, Any]:
        """What the agent needs (workloads.user_workload)."""
        return {"module": self.module, "function": self.function, "items": self.items,
                "source": self.source, "tasks": tasks}


@dataclass
class WorkloadSpec:
    name: str
    params: Dict[str, Any] = field(default_factory=dict)
    user: Optional[UserFunction] = None

    @property
    def agent_name(self) -> str:
        """The name the agent knows it by (``user`` for the user's own function)."""
        return catalog.USER if self.user else self.name

    @property
    def entry(self) -> Any:
        """The catalog entry (kind, needs, calibrate, async_name); a plain one for user code."""
        if self.user:
            return catalog.Workload(self.name, None, "user", self.user.label, calibrate=False,
                                    size=len(self.user.items))
        return catalog.CATALOG[self.name]

    @classmethod
    def parse(cls, text: str, items: Optional[Sequence[Any]] = None) -> "WorkloadSpec":
        """``name``, ``name:key=value,key=value`` (e.g. ``duty-cycle:duty=0.25``), or the user's
        function ``file.py:fn`` / ``pkg.mod:fn`` (mapped over ``items``)."""
        head, _, tail = text.rpartition(":")
        if head and "=" not in tail and (head.endswith(".py") or "/" in head or "." in head
                                         or head not in catalog.CATALOG):
            user = UserFunction.parse(text, items or [])
            return cls(user.label, {}, user)
        name, _, rest = text.partition(":")
        name = name.strip()
        if name not in catalog.CATALOG:
            raise UsageError("unknown workload %r" % name,
                             "it is not in the catalog",
                             "choose from: %s" % ", ".join(sorted(catalog.CATALOG)))
        params: Dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            k, eq, v = item.partition("=")
            allowed = catalog.CATALOG[name].params
            if not eq or k not in allowed:
                raise UsageError("bad parameter %r for workload %s" % (item, name),
                                 "parameters are key=value pairs among: %s"
                                 % (", ".join(allowed) or "(this workload has none)"),
                                 "e.g. duty-cycle:duty=0.25")
            try:
                params[k] = type(allowed[k])(v)
            except ValueError:
                raise UsageError("parameter %s=%r of workload %s is not a number" % (k, v, name),
                                 "it must be a %s" % type(allowed[k]).__name__, "e.g. %s=0.25" % k)
            if isinstance(params[k], float):
                check_number("parameter %s of workload %s" % (k, name), params[k], 0.0, 1e6,
                             "%s=0.25" % k)
        return cls(name, params)

    @property
    def label(self) -> str:
        return self.name + ("[%s]" % ",".join("%s=%s" % kv for kv in sorted(self.params.items()))
                            if self.params else "")


@dataclass
class BenchConfig:
    """The options of one run; checked when made (``__post_init__``)."""
    interpreters: List[Interpreter]
    workloads: List[WorkloadSpec]
    backends: List[str] = field(default_factory=lambda: list(DEFAULT_BACKENDS))
    workers: List[int] = field(default_factory=list)
    start_methods: List[Optional[str]] = field(default_factory=lambda: [None])
    repeats: int = 5
    warmups: int = 1
    task_s: float = 0.1
    tasks: Optional[int] = None
    scaling: str = "strong"
    tasks_per_worker: int = 2
    timeout: float = 300.0
    switch_interval: Optional[float] = None
    sizes: Dict[str, int] = field(default_factory=dict)
    #: processes backend: one message per task instead of one per worker and repeat
    per_task: bool = False
    #: distinguishes cells of the same workload measured for another purpose (e.g. "tiny")
    tag: str = ""
    #: modules the agent imports before measuring (to see, e.g., whether one turns the GIL on)
    imports: List[str] = field(default_factory=list)
    #: sizes an earlier run calibrated (--sizes-from, --resume): interpreter label -> workload -> size
    calibrated_sizes: Dict[str, Dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for b in self.backends:
            if b not in BACKENDS:
                raise UsageError("unknown backend %r" % b, "it is not one threadwise can run",
                                 "choose from: %s" % ", ".join(BACKENDS))
        for w in self.workers:
            check_int("workers", w, 1, MAX_WORKERS, "--workers 1,2,4")
        for m in self.start_methods:
            if m is not None and m not in START_METHODS:
                raise UsageError("unknown start method %r" % m, "multiprocessing knows fork, "
                                 "forkserver and spawn", "e.g. --start-method spawn")
        check_int("repeats", self.repeats, 1, 10000, "--repeats 5")
        check_int("warm-ups", self.warmups, 0, 1000, "--warmups 1")
        if self.scaling not in ("strong", "weak"):
            raise UsageError("scaling must be strong or weak, got %r" % self.scaling, "",
                             "--scaling strong")
        if self.tasks is not None:
            check_int("tasks", self.tasks, 1, 100000, "--tasks 4")
        check_int("tasks per worker", self.tasks_per_worker, 1, 100000, "2")
        self.task_s = check_number("--task-ms", self.task_s * 1000, 0, 3.6e6, "--task-ms 50",
                                   low_open=True) / 1000
        self.timeout = check_number("--timeout", self.timeout, 0, 86400 * 7, "--timeout 300",
                                    low_open=True)
        if self.switch_interval is not None:
            self.switch_interval = check_number("--switch-interval", self.switch_interval, 0, 3600,
                                                "--switch-interval 0.005", low_open=True)
        if any(w.user for w in self.workloads) and self.scaling != "strong":
            raise UsageError("a user function is measured with strong scaling only",
                             "its items are the work: every cell maps the same items",
                             "drop --scaling weak")
        names = {w.name for w in self.workloads}
        for k, v in self.sizes.items():
            if k not in names:
                raise UsageError("--size names workload %r, which this run does not measure" % k,
                                 "a typo, or the workload is missing from --workload",
                                 "choose among: %s" % ", ".join(sorted(names)))
            check_int("--size %s" % k, v, 1, MAX_SIZE, "--size cpu-python=200000")

    def size_for(self, interpreter: str, workload: str) -> Optional[int]:
        """The fixed size of a workload on an interpreter, or None (calibrate it)."""
        return self.sizes.get(workload) or self.calibrated_sizes.get(interpreter, {}).get(workload)

    def task_count(self) -> int:
        if self.tasks:
            return self.tasks
        ws = sorted(set(self.workers)) or [1]
        lcm = reduce(lambda a, b: a * b // math.gcd(a, b), ws, 1)
        return lcm if lcm <= 16 else max(ws) * 2

    def to_json(self) -> Dict[str, Any]:
        return {"interpreters": [i.command for i in self.interpreters],
                "workloads": [w.label for w in self.workloads], "backends": self.backends,
                "workers": self.workers, "start_methods": self.start_methods,
                "repeats": self.repeats, "warmups": self.warmups, "task_s": self.task_s,
                "tasks": self.task_count(), "scaling": self.scaling,
                "tasks_per_worker": self.tasks_per_worker, "timeout_s": self.timeout,
                "switch_interval": self.switch_interval, "imports": self.imports,
                "sizes": self.sizes, "calibrated_sizes": self.calibrated_sizes,
                "per_task": self.per_task, "tag": self.tag}

    @classmethod
    def from_json(cls, c: Mapping[str, Any], labels: Mapping[str, str]) -> "BenchConfig":
        """The config a results file recorded (``to_json``), to resume it; ``labels`` maps
        each interpreter command to the label it was measured under."""
        unknown = [w for w in c.get("workloads") or [] if str(w).partition("[")[0] not in catalog.CATALOG]
        if unknown:
            raise UsageError("the run being resumed measured your own function (%s)" % ", ".join(unknown),
                             "its items are not kept in the results file",
                             "start a new run: threadwise bench -w ... --items/--range ... -o NEW.json")
        try:
            interps = [Interpreter.parse(cmd, labels.get(cmd)) for cmd in c["interpreters"]]
            return cls(interpreters=interps,
                       workloads=[WorkloadSpec.parse(_spec_text(w)) for w in c["workloads"]],
                       backends=list(c["backends"]), workers=list(c["workers"]),
                       start_methods=list(c.get("start_methods") or [None]),
                       repeats=c["repeats"], warmups=c["warmups"], task_s=c["task_s"],
                       tasks=c.get("tasks"), scaling=c.get("scaling", "strong"),
                       tasks_per_worker=c.get("tasks_per_worker", 2),
                       timeout=c.get("timeout_s", 300.0), switch_interval=c.get("switch_interval"),
                       sizes=dict(c.get("sizes") or {}), imports=list(c.get("imports") or []),
                       calibrated_sizes={k: dict(v) for k, v in (c.get("calibrated_sizes") or {}).items()},
                       per_task=bool(c.get("per_task", False)), tag=str(c.get("tag") or ""))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise UsageError("the run's options in the results file can't be read back (%s: %s)"
                             % (type(e).__name__, e),
                             "it was written by threadwise claims, or by hand, not by threadwise bench",
                             "start a new run with -o NEW.json instead of --resume") from None


def _spec_text(label: str) -> str:
    """``duty-cycle[duty=0.25]`` (a WorkloadSpec label) -> ``duty-cycle:duty=0.25``."""
    name, _, rest = label.partition("[")
    return name + (":" + rest.rstrip("]") if rest else "")


def parse_sizes(items: Sequence[str]) -> Dict[str, int]:
    """``--size WORKLOAD=N`` options."""
    sizes: Dict[str, int] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not v.strip().isdigit() or int(v) < 1:
            raise UsageError("bad --size %r" % item, "it must be WORKLOAD=N with N >= 1",
                             "e.g. --size cpu-python=200000")
        sizes[k.strip()] = int(v)
    return sizes
