"""The matrix: a checked :class:`~threadwise.bench.config.BenchConfig` -> the cells to measure.

    for each interpreter, for each workload:
        serial x1 first (it calibrates the size and is every other cell's baseline)
        then each backend x start method (processes only) x worker count

Strong scaling keeps the total work fixed (every cell runs ``task_count()`` tasks);
weak scaling gives each worker ``tasks_per_worker`` tasks.  asyncio is planned only
for workloads with an async variant (the I/O ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from .config import BenchConfig, WorkloadSpec
from .interpreters import Interpreter
from .model import cell_key


@dataclass
class CellSpec:
    """One cell to measure; ``key`` is its identity in the results file."""
    interpreter: Interpreter
    workload: WorkloadSpec
    backend: str
    workers: int
    start_method: Optional[str]
    scaling: str
    tasks: int
    per_task: bool = False
    tag: str = ""
    #: the work per task when fixed (--size, --sizes-from, a resumed file); None: calibrated
    size: Optional[int] = None
    #: tasks of this cell's serial baseline (weak scaling: fewer than the cell's)
    baseline_tasks: Optional[int] = None

    @property
    def key(self) -> str:
        return cell_key(self.interpreter.label, self.workload.name, self.backend, self.workers,
                        self.start_method, self.scaling, self.workload.params, self.tasks,
                        self.size, self.per_task, self.tag)

    @property
    def baseline_key(self) -> str:
        return cell_key(self.interpreter.label, self.workload.name, "serial", 1, None,
                        self.scaling, self.workload.params, self.baseline_tasks or self.tasks,
                        self.size, False, self.tag)

    @property
    def title(self) -> str:
        m = "/" + self.start_method if self.start_method else ""
        return "%s %s %s%s x%d" % (self.interpreter.label, self.workload.label, self.backend, m,
                                   self.workers)


def plan(cfg: BenchConfig) -> List[CellSpec]:
    """Every cell of the matrix, the serial baseline first for each (interpreter, workload)."""
    out: List[CellSpec] = []
    for interp in cfg.interpreters:
        for wl in cfg.workloads:
            base_tasks = cfg.tasks_per_worker if cfg.scaling == "weak" else cfg.task_count()
            size = cfg.size_for(interp.label, wl.name)
            out.append(CellSpec(interp, wl, "serial", 1, None, cfg.scaling, base_tasks, tag=cfg.tag,
                                size=size, baseline_tasks=base_tasks))
            for backend in cfg.backends:
                if backend == "serial":
                    continue
                if backend == "asyncio" and wl.entry.async_name is None:
                    continue  # asyncio is for the I/O workloads only
                methods = cfg.start_methods if backend == "processes" else [None]
                for m in methods:
                    for w in cfg.workers:
                        tasks = w * cfg.tasks_per_worker if cfg.scaling == "weak" else cfg.task_count()
                        out.append(CellSpec(interp, wl, backend, w, m, cfg.scaling, tasks,
                                            per_task=cfg.per_task and backend == "processes",
                                            tag=cfg.tag, size=size, baseline_tasks=base_tasks))
    return out
