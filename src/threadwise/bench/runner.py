"""The host side of a benchmark: run each planned cell in a fresh agent, keep the results.

    BenchConfig --plan()--> [CellSpec, ...]   serial first for each (interpreter, workload)
        for each spec:  run_agent(interpreter, spec)  -> samples          (interpreters.py)
                        verify checksums (repeats agree, closed form, serial baseline)
                        stats: median + CI, speedup vs serial, parallelism, warnings
                        -> model.Cell;  doc.with_cell(cell); results.save (cell by cell:
                           Ctrl-C loses nothing)

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

import time
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import environment
from ..environment import CpuWatch
from ..errors import InterpreterError
from . import results, stats
from .config import BenchConfig
from .echo import EchoServer
from .interpreters import AgentRun, Interpreter, describe, gil_reenabled_by, run_agent
from .model import BUSY_SHARE, Cell, InterpreterFacts, ResultsDocument
from .plan import CellSpec

#: the socket workload's echo server answers after this long, like a service on a LAN
SOCKET_SERVICE_DELAY_S = 0.001
#: a cell measured while other processes took more than BUSY_SHARE of the CPUs is measured
#: again (once, after a pause); if the machine stays busy the cell says so in its warnings
MAX_ATTEMPTS = 2
RETRY_PAUSE_S = 1.0


def _verify(samples: List[Dict[str, Any]], baseline: Optional[Sequence[Any]]) -> Optional[str]:
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
        base = list(baseline)
        n = min(len(base), len(first))
        if base[:n] != first[:n]:
            return "checksums %s differ from the serial baseline's %s" % (first[:n], base[:n])
    return None


class Runner:
    """Runs a plan into a results document (``self.doc``), saving after every cell."""

    def __init__(self, cfg: BenchConfig, doc: ResultsDocument, output: Optional[str] = None,
                 on_cell: Optional[Callable[[CellSpec, Cell], None]] = None,
                 on_start: Optional[Callable[[CellSpec], None]] = None,
                 on_sample: Optional[Callable[[CellSpec, Dict[str, Any]], None]] = None) -> None:
        self.cfg, self.doc, self.output = cfg, doc, output
        self.on_cell, self.on_start, self.on_sample = on_cell, on_start, on_sample
        self.echo: Optional[EchoServer] = None
        self.broken: Dict[str, str] = {}

    # -- helpers ------------------------------------------------------------
    def save(self) -> None:
        if self.output:
            self.doc = results.save(self.doc, self.output)

    def _echo(self) -> List[Any]:
        if self.echo is None:
            self.echo = EchoServer(delay_s=SOCKET_SERVICE_DELAY_S).start()
        assert self.echo.address is not None
        return list(self.echo.address)

    def interpreter_facts(self, interp: Interpreter) -> Optional[InterpreterFacts]:
        """Describe once per run; an interpreter that fails is marked broken and skipped."""
        label = interp.label
        if label in self.broken:
            return None
        known = self.doc.interpreters.get(label)
        if known is not None and known.ok and known.command == interp.command:
            return known
        try:
            facts = InterpreterFacts.from_json(
                describe(interp, timeout=min(self.cfg.timeout, 120), imports=self.cfg.imports),
                "interpreter %s" % label)
        except InterpreterError as e:
            self.broken[label] = e.message()
            self.doc = self.doc.with_interpreter(
                InterpreterFacts(command=interp.command, label=label, error=e.message()))
            self.save()
            return None
        self.doc = self.doc.with_interpreter(facts)
        self.save()
        return facts

    def _baseline(self, spec: CellSpec) -> Optional[Cell]:
        c = self.doc.cell(spec.baseline_key)
        return c if c is not None and c.ok else None

    # -- one cell -----------------------------------------------------------
    def run_cell(self, spec: CellSpec) -> Cell:
        """Measure one cell; every outcome (ok, error, unsupported) is a Cell."""
        f: Dict[str, Any] = {
            "key": spec.key, "interpreter": spec.interpreter.label,
            "command": spec.interpreter.command, "workload": spec.workload.name,
            "workload_label": spec.workload.label, "params": spec.workload.params,
            "kind": spec.workload.entry.kind, "backend": spec.backend,
            "workers": spec.workers, "start_method": spec.start_method, "scaling": spec.scaling,
            "tasks": spec.tasks, "per_task": spec.per_task, "tag": spec.tag, "size": None,
            "status": "error", "error": None, "warnings": [],
            "load_avg_start": environment.load_average(), "started": results.now(),
        }
        error = self._measure(spec, f)
        if error is not None:
            f["status"], f["error"] = ("error", error) if isinstance(error, str) else error
        f["warnings"] = tuple(f["warnings"])
        return Cell(**f)

    def _measure(self, spec: CellSpec, f: Dict[str, Any]) -> Any:
        """Fill ``f`` with the cell's measurements; return None, an error text, or
        ("unsupported", reason)."""
        facts = self.interpreter_facts(spec.interpreter)
        if facts is None:
            return self.broken.get(spec.interpreter.label, "interpreter unavailable")
        f["gil_enabled"], f["free_threaded"] = facts.gil_enabled, facts.free_threaded
        baseline = self._baseline(spec) if spec.backend != "serial" else None
        size: Optional[float] = spec.size
        if spec.backend != "serial" and baseline is None:
            if size is None and spec.workload.entry.calibrate:
                return "no serial baseline for this workload (it failed or was skipped)"
        elif size is None and baseline is not None:
            size = baseline.size
        config = self._agent_config(spec, size)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            samples: List[Dict[str, Any]] = []
            watch = CpuWatch(extra_pids=(self.echo.pid,) if self.echo and self.echo.pid else ())
            try:
                run = run_agent(spec.interpreter, config, timeout=self.cfg.timeout,
                                on_record=lambda rec: self._on_record(spec, rec, samples))
            except InterpreterError as e:
                return e.message()
            busy = watch.stop()
            f["others_share"], f["steal_share"] = round(busy.others, 4), round(busy.steal, 4)
            f["attempts"] = attempt
            if busy.others + busy.steal <= BUSY_SHARE or attempt == MAX_ATTEMPTS:
                break
            time.sleep(RETRY_PAUSE_S)   # let the other load pass, then measure again
        if busy.others + busy.steal > BUSY_SHARE:
            f["warnings"].append(
                "other processes used %.0f%% of the CPUs while this cell ran (%d attempts): its "
                "figures are not to be trusted; rerun on a quiet machine"
                % (100 * (busy.others + busy.steal), f["attempts"]))
        return self._read_run(spec, run, samples, baseline, f)

    def _on_record(self, spec: CellSpec, rec: Dict[str, Any], samples: List[Dict[str, Any]]) -> None:
        if rec["type"] == "sample":
            samples.append(rec)
            if self.on_sample:
                self.on_sample(spec, rec)

    def _agent_config(self, spec: CellSpec, size: Any) -> Dict[str, Any]:
        context: Dict[str, Any] = {}
        if "echo" in spec.workload.entry.needs:
            context["echo"] = self._echo()
        if spec.workload.user:
            context["user"] = spec.workload.user.context(spec.tasks)
        return {"mode": "cell", "workload": spec.workload.agent_name, "params": spec.workload.params,
                "backend": spec.backend, "workers": spec.workers, "tasks": spec.tasks,
                "start_method": spec.start_method, "warmups": self.cfg.warmups,
                "repeats": self.cfg.repeats, "size": size, "target_s": self.cfg.task_s,
                "context": context, "switch_interval": self.cfg.switch_interval,
                "per_task": spec.per_task, "imports": list(self.cfg.imports)}

    def _read_run(self, spec: CellSpec, run: AgentRun, samples: List[Dict[str, Any]],
                  baseline: Optional[Cell], f: Dict[str, Any]) -> Any:
        ran = run.first("info") or {}
        if "gil_enabled" in ran:
            f["gil_enabled"] = ran["gil_enabled"]
        reenabled = [m["module"] for m in ran.get("gil_reenabled_by") or []] or \
            gil_reenabled_by(run.stderr)
        if reenabled:
            f["gil_reenabled_by"] = tuple(reenabled)
            f["warnings"].append("importing %s turned the GIL back on in this free-threaded "
                                 "build: these threads ran with a GIL" % ", ".join(reenabled))
        start = run.first("startup")
        f["startup_s"] = start["seconds"] if start else None
        unsupported = run.first("unsupported")
        if unsupported:
            return ("unsupported", unsupported["reason"])
        err = run.first("error")
        if err:
            f["traceback"] = err.get("traceback")
            return err["what"]
        timed = [s for s in samples if not s.get("warmup")]
        if not timed:
            return "the agent returned no timed samples"
        f["size"] = timed[0]["size"]
        wrong = _verify(samples, baseline.checksums if baseline else None)
        if wrong and spec.workload.user:
            return ("%s returned different results here than in the serial run or between repeats: "
                    "it is non-deterministic or not thread-safe (%s)" % (spec.workload.name, wrong))
        if wrong:
            return "checksum verification failed: " + wrong
        self._summarize(spec, timed, baseline, f)
        return None

    def _summarize(self, spec: CellSpec, timed: List[Dict[str, Any]], baseline: Optional[Cell],
                   f: Dict[str, Any]) -> None:
        f["checksums"], f["checksums_ok"] = tuple(timed[0]["checksums"]), True
        wall = stats.summarize([s["wall_s"] for s in timed])
        cpu = stats.summarize([s["cpu_s"] for s in timed])
        f["wall_s"], f["cpu_s"] = wall, cpu
        f["parallelism"] = stats.parallelism(wall.samples, cpu.samples)
        if spec.backend == "serial":
            f["speedup"], f["speedup_ci95"] = 1.0, (1.0, 1.0)
        elif baseline is not None and baseline.wall_s is not None and baseline.tasks:
            factor = spec.tasks / baseline.tasks if spec.scaling == "weak" else 1.0
            sp = stats.speedup(baseline.wall_s.samples, wall.samples, factor=factor)
            f["speedup"], f["speedup_ci95"] = sp.value, tuple(sp.ci95)
        rss = [x for smp in timed for x in (smp.get("worker_maxrss_bytes") or [])]
        if rss:
            f["worker_maxrss_bytes"] = max(rss)
        if timed[0].get("start_method"):
            f["start_method_used"] = timed[0]["start_method"]
        f["warnings"].extend(stats.instability(wall, f["load_avg_start"],
                                               self.doc.environment.usable_cores))
        f["status"], f["error"] = "ok", None

    # -- the whole plan -----------------------------------------------------
    def run(self, specs: Sequence[CellSpec], skip: Optional[set] = None) -> ResultsDocument:
        """Measure every spec not in ``skip``; the document is saved after each cell."""
        skip = skip or set()
        try:
            for spec in specs:
                if spec.key in skip:
                    continue
                if self.on_start:
                    self.on_start(spec)
                cell = self.run_cell(spec)
                cell = replace(cell, finished=results.now())
                self.doc = self.doc.with_cell(cell)
                self.save()
                if self.on_cell:
                    self.on_cell(spec, cell)
        finally:
            if self.echo is not None:
                self.echo.stop()
                self.echo = None
        return self.doc
