"""Export threadwise measurements as pyperf JSON, for ``pyperf stats`` / ``compare_to``.

pyperf's file format (``pyperf/_bench.py``, format version "1.0")::

    {"version": "1.0",
     "metadata": {suite-wide metadata: hostname, cpu_count, ...},
     "benchmarks": [
        {"metadata": {"name": ..., "unit": "second", ...},
         "runs": [{"metadata": {...}, "values": [v, ...]}]}]}

The mapping: one benchmark per cell with status ok, named
``interpreter/workload/backend[/start_method]/xW`` (plus ``/weak``, the tag and
``/per-task`` where the cell has them), e.g. ``python3.11/cpu-python/threads/x2``;
one run per cell (a cell's repeats come from one agent process, which is what a
pyperf run is), its values the cell's timed wall-clock samples in seconds.
Warm-ups are not recorded in results files, so runs carry none.

pyperf validates what it loads, and this module writes only what it accepts:
values > 0; metadata values int, float or a non-empty one-line str; known keys
with their types (``loops`` int >= 1, ``unit`` "second", ``load_avg_1min``
>= 0, ``date`` str); unique benchmark names; at least one benchmark.  Labels
come from files a user may edit, so strings are flattened to one line.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import __version__
from ..bench import results
from .. import _io
from ..errors import ThreadwiseError

FORMATS = ("pyperf",)
PYPERF_VERSION = "1.0"


def _meta_value(v: Any) -> Optional[Any]:
    """A value pyperf accepts as metadata, or None to leave the key out."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        s = " ".join(v.split())
        return s or None
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (str, int, float)) for x in v):
        return _meta_value(", ".join(str(x) for x in v))
    return None


def _meta(pairs: Sequence[Tuple[str, Any]]) -> Dict[str, Any]:
    out = {}
    for k, v in pairs:
        mv = _meta_value(v)
        if mv is not None:
            out[k] = mv
    return out


def _dict(x: Any) -> Dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _name_part(x: Any) -> str:
    s = " ".join(str(x).split()).replace("/", "\u2215")   # a "/" inside a label would fake a level
    return s or "?"


def benchmark_name(cell: Dict[str, Any]) -> str:
    """``interpreter/workload/backend[/start_method]/xW[/weak][/tag][/per-task]``."""
    parts = [_name_part(cell.get("interpreter")),
             _name_part(cell.get("workload_label") or cell.get("workload")),
             _name_part(cell.get("backend"))]
    if cell.get("start_method"):
        parts.append(_name_part(cell["start_method"]))
    parts.append("x%s" % _name_part(cell.get("workers")))
    if cell.get("scaling") not in (None, "strong"):
        parts.append(_name_part(cell["scaling"]))
    if cell.get("tag"):
        parts.append(_name_part(cell["tag"]))
    if cell.get("per_task"):
        parts.append("per-task")
    return "/".join(parts)


def _samples(cell: Dict[str, Any]) -> List[float]:
    wall = cell.get("wall_s")
    raw = wall.get("samples") if isinstance(wall, dict) else None
    if not isinstance(raw, list):
        return []
    return [float(v) for v in raw if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v > 0]


def to_pyperf(doc: Dict[str, Any], source: str = "results") -> Tuple[Dict[str, Any], List[str]]:
    """The pyperf suite for ``doc``, and what was left out (one line each)."""
    env = _dict(doc.get("environment"))
    interps = _dict(doc.get("interpreters"))
    cores = _dict(env.get("cores"))
    load = env.get("load_avg")
    suite_meta = _meta([
        ("hostname", env.get("hostname")),
        ("platform", env.get("os")),
        ("cpu_model_name", env.get("cpu_model")),
        ("cpu_count", env.get("usable_cores")),
        ("threadwise_cpu_derivation", cores.get("derivation")),
        ("threadwise_version", doc.get("threadwise") or __version__),
        ("threadwise_source", source),
        ("description", "threadwise measurements: wall-clock seconds per repeat of a cell "
                        "(a workload run on a backend with W workers)"),
    ])
    if isinstance(load, list) and load and isinstance(load[0], (int, float)) and load[0] >= 0:
        suite_meta["load_avg_1min"] = float(load[0])
    benchmarks: List[Dict[str, Any]] = []
    skipped: List[str] = []
    names: Dict[str, int] = {}
    for cell in doc.get("cells", []):
        if not isinstance(cell, dict) or cell.get("status") != "ok":
            continue
        name = benchmark_name(cell)
        values = _samples(cell)
        if not values:
            skipped.append("%s: no positive wall-clock samples" % name)
            continue
        if name in names:
            names[name] += 1
            name = "%s#%d" % (name, names[name])
        else:
            names[name] = 1
        info = _dict(interps.get(str(cell.get("interpreter"))))
        sp = cell.get("speedup_ci95")
        bmeta = _meta([
            ("name", name),
            ("unit", "second"),
            ("loops", 1),
            ("python_implementation", (info.get("implementation") or "").lower() or None),
            ("python_version", info.get("version")),
            ("python_executable", info.get("executable") or cell.get("command")),
            ("threadwise_key", cell.get("key")),
            ("threadwise_interpreter", cell.get("interpreter")),
            ("threadwise_workload", cell.get("workload_label") or cell.get("workload")),
            ("threadwise_backend", cell.get("backend")),
            ("threadwise_workers", cell.get("workers")),
            ("threadwise_start_method", cell.get("start_method")),
            ("threadwise_scaling", cell.get("scaling")),
            ("threadwise_tasks", cell.get("tasks")),
            ("threadwise_size", cell.get("size")),
            ("threadwise_gil_enabled", info.get("gil_enabled", cell.get("gil_enabled"))),
            ("threadwise_speedup", cell.get("speedup")),
            ("threadwise_speedup_ci95", sp if isinstance(sp, list) else None),
            ("threadwise_parallelism", cell.get("parallelism")),
            ("threadwise_warnings", len(cell.get("warnings") or [])),
        ])
        run_meta = _meta([("date", cell.get("started"))])
        la = cell.get("load_avg_start")
        if isinstance(la, (int, float)) and not isinstance(la, bool) and math.isfinite(la) and la >= 0:
            run_meta["load_avg_1min"] = float(la)
        run: Dict[str, Any] = {"values": values}
        if run_meta:
            run["metadata"] = run_meta
        benchmarks.append({"metadata": bmeta, "runs": [run]})
    return {"version": PYPERF_VERSION, "metadata": suite_meta, "benchmarks": benchmarks}, skipped


def export(paths: Sequence[str], output: str, fmt: str = "pyperf") -> Tuple[int, List[str]]:
    """Load ``paths`` (merged), write ``output`` in ``fmt``; returns (benchmarks, skipped)."""
    if fmt not in FORMATS:
        raise ThreadwiseError("unknown export format %r" % fmt, "only %s is supported" % ", ".join(FORMATS),
                              "use --format pyperf")
    docs = [results.load(p) for p in paths]
    doc = results.merge(docs)
    suite, skipped = to_pyperf(doc, ", ".join(str(p) for p in paths))
    if not suite["benchmarks"]:
        raise ThreadwiseError(
            "nothing to export: %s has no cell with status ok and samples" % ", ".join(map(str, paths)),
            "the run measured nothing, every cell failed, or the file holds only claims experiments",
            "measure first (threadwise bench -o results.json), then export that file")
    write_json(suite, output)
    return len(suite["benchmarks"]), skipped


def write_json(data: Dict[str, Any], output: str) -> None:
    _io.write_atomic(output, json.dumps(data, indent=1) + "\n", "the pyperf export", "-o ./pyperf.json")
