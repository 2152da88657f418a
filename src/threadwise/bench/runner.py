"""The host side of a benchmark: plan the matrix, run each cell in a fresh agent, keep results.

    BenchConfig --plan()--> [Cell spec, ...]   serial first for each (interpreter, workload)
        for each spec:  run_agent(interpreter, spec)  -> samples
                        verify checksums (repeats agree, closed form, serial baseline)
                        stats: median + CI, speedup vs serial, parallelism, warnings
                        results.add_cell + results.save   (cell by cell: Ctrl-C loses nothing)

Strong scaling (the default) keeps the total work fixed: every cell of an
(interpreter, workload) runs the same ``tasks`` tasks of the same ``size``,
task t on worker t % W, so speedup = serial median / cell median and the
checksums of task t must agree across every backend and worker count.  The
serial cell calibrates ``size`` (CPU workloads: one task takes ``task_s``);
the other cells reuse it.  Weak scaling (``scaling="weak"``) gives every
worker ``tasks_per_worker`` tasks, and speedup = W * serial median / cell median.

An interpreter that can't start is reported once and skipped; a cell that
fails, hangs (``timeout``) or is unsupported is recorded as such and the run
goes on.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import environment
from . import results, stats
from .echo import EchoServer
from ..errors import InterpreterError, UsageError
from .interpreters import Interpreter, describe, gil_reenabled_by, run_agent
from .inside import workloads as catalog

BACKENDS = ("serial", "threads", "processes", "interpreters", "asyncio")
START_METHODS = ("fork", "forkserver", "spawn")
DEFAULT_WORKLOADS = ("cpu-python", "cpu-objects", "nbody", "hashlib", "zlib", "json",
                     "regex", "sleep", "socket", "file-io")
QUICK_WORKLOADS = ("cpu-python", "hashlib", "zlib", "json", "sleep", "socket")
DEFAULT_BACKENDS = ("serial", "threads", "processes", "interpreters", "asyncio")
QUICK_BACKENDS = ("serial", "threads", "processes", "asyncio")
#: the socket workload's echo server answers after this long, like a service on a LAN
SOCKET_SERVICE_DELAY_S = 0.001


@dataclass
class WorkloadSpec:
    name: str
    params: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "WorkloadSpec":
        """``name`` or ``name:key=value,key=value`` (e.g. ``duty-cycle:duty=0.25``)."""
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
        return cls(name, params)

    @property
    def label(self) -> str:
        return self.name + ("[%s]" % ",".join("%s=%s" % kv for kv in sorted(self.params.items()))
                            if self.params else "")


@dataclass
class BenchConfig:
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

    def validate(self) -> None:
        for b in self.backends:
            if b not in BACKENDS:
                raise UsageError("unknown backend %r" % b, "it is not one threadwise can run",
                                 "choose from: %s" % ", ".join(BACKENDS))
        for w in self.workers:
            if not isinstance(w, int) or w < 1:
                raise UsageError("workers must be >= 1, got %r" % (w,),
                                 "a worker count is the number of threads/processes to start",
                                 "e.g. --workers 1,2,4")
        for m in self.start_methods:
            if m is not None and m not in START_METHODS:
                raise UsageError("unknown start method %r" % m, "multiprocessing knows fork, "
                                 "forkserver and spawn", "e.g. --start-method spawn")
        if self.repeats < 1 or self.warmups < 0:
            raise UsageError("repeats must be >= 1 and warm-ups >= 0, got %d and %d"
                             % (self.repeats, self.warmups), "", "e.g. --repeats 5 --warmups 1")
        if self.scaling not in ("strong", "weak"):
            raise UsageError("scaling must be strong or weak, got %r" % self.scaling, "", "")
        if self.tasks is not None and self.tasks < 1:
            raise UsageError("tasks must be >= 1, got %d" % self.tasks, "", "e.g. --tasks 4")

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
                "switch_interval": self.switch_interval, "imports": self.imports}


@dataclass
class CellSpec:
    interpreter: Interpreter
    workload: WorkloadSpec
    backend: str
    workers: int
    start_method: Optional[str]
    scaling: str
    tasks: int
    per_task: bool = False
    tag: str = ""

    @property
    def key(self) -> str:
        return self.key_for(self.backend, self.workers, self.start_method, self.per_task)

    @property
    def baseline_key(self) -> str:
        return self.key_for("serial", 1, None, False)

    def key_for(self, backend: str, workers: int, start_method: Optional[str],
                per_task: bool) -> str:
        return results.cell_key(self.interpreter.label, self.workload.name, backend, workers,
                                start_method, self.scaling, self.workload.params) + \
            ("|per-task" if per_task else "") + ("|" + self.tag if self.tag else "")

    @property
    def title(self) -> str:
        m = "/" + self.start_method if self.start_method else ""
        return "%s %s %s%s x%d" % (self.interpreter.label, self.workload.label, self.backend, m,
                                   self.workers)


def plan(cfg: BenchConfig) -> List[CellSpec]:
    """Every cell of the matrix, the serial baseline first for each (interpreter, workload)."""
    cfg.validate()
    out: List[CellSpec] = []
    for interp in cfg.interpreters:
        for wl in cfg.workloads:
            base_tasks = cfg.tasks_per_worker if cfg.scaling == "weak" else cfg.task_count()
            out.append(CellSpec(interp, wl, "serial", 1, None, cfg.scaling, base_tasks, tag=cfg.tag))
            for backend in cfg.backends:
                if backend == "serial":
                    continue
                if backend == "asyncio" and catalog.CATALOG[wl.name].async_name is None:
                    continue  # asyncio is for the I/O workloads only
                methods = cfg.start_methods if backend == "processes" else [None]
                for m in methods:
                    for w in cfg.workers:
                        tasks = w * cfg.tasks_per_worker if cfg.scaling == "weak" else cfg.task_count()
                        out.append(CellSpec(interp, wl, backend, w, m, cfg.scaling, tasks,
                                            per_task=cfg.per_task and backend == "processes",
                                            tag=cfg.tag))
    return out


def _summarize_samples(spec: CellSpec, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    timed = [s for s in samples if not s.get("warmup")]
    wall = stats.summarize([s["wall_s"] for s in timed])
    cpu = stats.summarize([s["cpu_s"] for s in timed])
    return {"wall": wall, "cpu": cpu,
            "parallelism": stats.parallelism(wall.samples, cpu.samples)}


def _verify(samples: List[Dict[str, Any]], baseline: Optional[List[Any]]) -> Optional[str]:
    """None if the checksums are right, else what is wrong."""
    first = samples[0]["checksums"]
    if any(c is None for c in first):
        return "a task returned no checksum (None): the work did not run"
    for s in samples[1:]:
        if s["checksums"] != first:
            return "checksums differ between repeats (%s vs %s)" % (first, s["checksums"])
    exp = next((s.get("expected") for s in samples if s.get("expected") is not None), None)
    if exp is not None and exp != first:
        return "checksums %s differ from the closed form %s" % (first, exp)
    if baseline is not None:
        n = min(len(baseline), len(first))
        if baseline[:n] != first[:n]:
            return "checksums %s differ from the serial baseline's %s" % (first[:n], baseline[:n])
    return None


class Runner:
    """Runs a plan into a results document, saving after every cell."""

    def __init__(self, cfg: BenchConfig, doc: Dict[str, Any], output: Optional[str] = None,
                 on_cell: Optional[Callable[[CellSpec, Dict[str, Any]], None]] = None,
                 on_start: Optional[Callable[[CellSpec], None]] = None,
                 on_sample: Optional[Callable[[CellSpec, Dict[str, Any]], None]] = None) -> None:
        self.cfg, self.doc, self.output = cfg, doc, output
        self.on_cell, self.on_start, self.on_sample = on_cell, on_start, on_sample
        self.echo: Optional[EchoServer] = None
        self.broken: Dict[str, str] = {}

    # -- helpers ------------------------------------------------------------
    def _save(self) -> None:
        if self.output:
            results.save(self.doc, self.output)

    def _echo(self) -> List[Any]:
        if self.echo is None:
            self.echo = EchoServer(delay_s=SOCKET_SERVICE_DELAY_S).start()
        assert self.echo.address is not None
        return list(self.echo.address)

    def _interp_info(self, interp: Interpreter) -> Optional[Dict[str, Any]]:
        """Describe once per run; an interpreter that fails is marked broken and skipped."""
        label = interp.label
        if label in self.broken:
            return None
        info = self.doc["interpreters"].get(label)
        if info and "error" not in info and info.get("command") == interp.command:
            return info
        try:
            info = describe(interp, timeout=min(self.cfg.timeout, 120), imports=self.cfg.imports)
        except InterpreterError as e:
            self.broken[label] = e.message()
            self.doc["interpreters"][label] = {"command": interp.command, "label": label,
                                               "error": e.message()}
            self._save()
            return None
        self.doc["interpreters"][label] = info
        self._save()
        return info

    def _baseline(self, spec: CellSpec) -> Optional[Dict[str, Any]]:
        key = spec.baseline_key
        return next((c for c in self.doc["cells"] if c["key"] == key and c["status"] == "ok"), None)

    # -- one cell -----------------------------------------------------------
    def run_cell(self, spec: CellSpec) -> Dict[str, Any]:
        info = self._interp_info(spec.interpreter)
        cell: Dict[str, Any] = {
            "key": spec.key, "interpreter": spec.interpreter.label,
            "command": spec.interpreter.command, "workload": spec.workload.name,
            "workload_label": spec.workload.label, "params": spec.workload.params,
            "kind": catalog.CATALOG[spec.workload.name].kind, "backend": spec.backend,
            "workers": spec.workers, "start_method": spec.start_method, "scaling": spec.scaling,
            "tasks": spec.tasks, "per_task": spec.per_task, "tag": spec.tag, "size": None, "status": "error", "error": None,
            "warnings": [], "load_avg_start": environment.load_average(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if info is None:
            cell["error"] = self.broken.get(spec.interpreter.label, "interpreter unavailable")
            return cell
        cell["gil_enabled"] = info.get("gil_enabled")
        cell["free_threaded"] = info.get("free_threaded")
        baseline = None
        size = self.cfg.sizes.get(spec.workload.name)
        if spec.backend != "serial":
            baseline = self._baseline(spec)
            if baseline is None:
                cell["error"] = "no serial baseline for this workload (it failed or was skipped)"
                if size is None and catalog.CATALOG[spec.workload.name].calibrate:
                    return cell
            elif size is None:
                size = baseline["size"]
        wl = catalog.CATALOG[spec.workload.name]
        context: Dict[str, Any] = {}
        if "echo" in wl.needs:
            context["echo"] = self._echo()
        config = {"mode": "cell", "workload": spec.workload.name, "params": spec.workload.params,
                  "backend": spec.backend, "workers": spec.workers, "tasks": spec.tasks,
                  "start_method": spec.start_method, "warmups": self.cfg.warmups,
                  "repeats": self.cfg.repeats, "size": size, "target_s": self.cfg.task_s,
                  "context": context, "switch_interval": self.cfg.switch_interval,
                  "per_task": spec.per_task, "imports": list(self.cfg.imports)}
        samples: List[Dict[str, Any]] = []

        def on_record(rec: Dict[str, Any]) -> None:
            if rec["type"] == "sample":
                samples.append(rec)
                if self.on_sample:
                    self.on_sample(spec, rec)

        try:
            run = run_agent(spec.interpreter, config, timeout=self.cfg.timeout, on_record=on_record)
        except InterpreterError as e:
            cell["error"] = e.message()
            return cell
        ran = run.first("info") or {}
        if "gil_enabled" in ran:
            cell["gil_enabled"] = ran["gil_enabled"]
        reenabled = [m["module"] for m in ran.get("gil_reenabled_by") or []] or \
            gil_reenabled_by(run.stderr)
        if reenabled:
            cell["gil_reenabled_by"] = reenabled
            cell["warnings"].append("importing %s turned the GIL back on in this free-threaded "
                                    "build: these threads ran with a GIL" % ", ".join(reenabled))
        start = run.first("startup")
        cell["startup_s"] = start["seconds"] if start else None
        if run.first("unsupported"):
            cell["status"] = "unsupported"
            cell["error"] = run.first("unsupported")["reason"]
            return cell
        if run.first("error"):
            err = run.first("error")
            cell["error"] = err["what"]
            cell["traceback"] = err.get("traceback")
            return cell
        timed = [s for s in samples if not s.get("warmup")]
        if not timed:
            cell["error"] = "the agent returned no timed samples"
            return cell
        cell["size"] = timed[0]["size"]
        wrong = _verify(samples, baseline["checksums"] if baseline else None)
        if wrong:
            cell["error"] = "checksum verification failed: " + wrong
            return cell
        cell["checksums"] = timed[0]["checksums"]
        cell["checksums_ok"] = True
        s = _summarize_samples(spec, samples)
        cell["wall_s"] = s["wall"].to_json()
        cell["cpu_s"] = s["cpu"].to_json()
        cell["parallelism"] = s["parallelism"]
        if spec.backend == "serial":
            cell["speedup"], cell["speedup_ci95"] = 1.0, [1.0, 1.0]
        elif baseline is not None:
            factor = spec.tasks / baseline["tasks"] if spec.scaling == "weak" else 1.0
            sp = stats.speedup(baseline["wall_s"]["samples"], s["wall"].samples, factor=factor)
            cell["speedup"], cell["speedup_ci95"] = sp.value, list(sp.ci95)
        rss = [x for smp in timed for x in (smp.get("worker_maxrss_bytes") or [])]
        if rss:
            cell["worker_maxrss_bytes"] = max(rss)
        if timed[0].get("start_method"):
            cell["start_method_used"] = timed[0]["start_method"]
        cell["warnings"].extend(stats.instability(
            s["wall"], cell["load_avg_start"], self.doc["environment"].get("usable_cores")))
        cell["status"] = "ok"
        cell["error"] = None
        return cell

    # -- the whole plan -----------------------------------------------------
    def run(self, specs: Sequence[CellSpec], skip: Optional[set] = None) -> Dict[str, Any]:
        skip = skip or set()
        try:
            for spec in specs:
                if spec.key in skip:
                    continue
                if self.on_start:
                    self.on_start(spec)
                cell = self.run_cell(spec)
                cell["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                results.add_cell(self.doc, cell)
                self._save()
                if self.on_cell:
                    self.on_cell(spec, cell)
        finally:
            if self.echo is not None:
                self.echo.stop()
                self.echo = None
        return self.doc
