"""Export threadwise measurements as pyperf JSON, for ``pyperf stats`` / ``compare_to``.

pyperf's file format (``pyperf/_bench.py``, format version "1.0")::

    {"version": "1.0",
     "metadata": {suite-wide metadata: hostname, cpu_count, ...},
     "benchmarks": [
        {"metadata": {"name": ..., "unit": "second", ...},
         "runs": [{"metadata": {...}, "values": [v, ...]}]}]}

The mapping, from the typed model (:class:`~threadwise.bench.model.ResultsDocument`):
one benchmark per cell with status ok, named
``interpreter/workload/backend[/start_method]/xW`` (plus ``/weak``, the tag and
``/per-task`` where the cell has them), e.g. ``python3.11/cpu-python/threads/x2``;
one run per cell (a cell's repeats come from one agent process, which is what a
pyperf run is), its values the cell's timed wall-clock samples in seconds.
Warm-ups are not recorded in results files, so runs carry none.

pyperf validates what it loads, and this module writes only what it accepts
(pyperf 2.11, checked against its code and by running it):

* ``Run``: every value a number > 0.  Beyond that pyperf does float arithmetic
  that a valid file can still break: ``pyperf stats`` sums every value of the
  suite (``math.fsum``: "OverflowError: intermediate overflow" on two samples of
  1e308), and ``compare_to`` divides one file's mean by the other's
  (ZeroDivisionError when the ratio underflows, 1e-300 s against 1e300 s).  So a
  sample is exported only inside [:data:`MIN_SAMPLE_S`, :data:`MAX_SAMPLE_S`]:
  1 ns (perf_counter's resolution) to about 31 years; the others are left out
  with a note, and a cell with none left is skipped with a note.
* metadata: values int, float or a non-empty one-line str; known keys with
  their types (``loops`` int >= 1, ``unit`` "second", ``load_avg_1min`` >= 0,
  ``date`` str); unique benchmark names; at least one benchmark.

Labels come from files a user may edit and pyperf prints them to a terminal as
they are, so every string is flattened to one line and its control characters
(NUL, ESC of an ANSI sequence, BEL, DEL, C1, bidirectional overrides) are
replaced with "?".
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import __version__, _io
from ..bench import model, results
from ..bench.model import Cell, InterpreterFacts, ResultsDocument
from ..errors import ThreadwiseError

FORMATS = ("pyperf",)
PYPERF_VERSION = "1.0"
#: a sample shorter than the clock's resolution (1 ns) is not a measurement
MIN_SAMPLE_S = 1e-9
#: no timed repeat runs for decades; far larger values overflow pyperf's sums and ratios
MAX_SAMPLE_S = 1e9

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str) -> str:
    """``text`` as one printable line: whitespace runs (newlines, tabs) become one space,
    an ANSI escape sequence and every other control character become "?"."""
    s = " ".join(text.split())
    s = _ANSI.sub("?", s)
    return "".join("?" if unicodedata.category(ch) == "Cc" or ch in _BIDI else ch for ch in s)


def _meta_value(v: Any) -> Optional[Any]:
    """A value pyperf accepts as metadata, or None to leave the key out."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        return clean_text(v) or None
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


def _name_part(x: Any) -> str:
    s = clean_text(str(x)).replace("/", "\u2215")   # a "/" inside a label would fake a level
    return s or "?"


def benchmark_name(cell: Cell) -> str:
    """``interpreter/workload/backend[/start_method]/xW/tasks=T/size=S[/weak][/tag][/per-task]``.

    The name says how much work was measured (tasks and size), so ``pyperf compare_to``
    pairs only benchmarks of the same work: two runs that calibrated different sizes
    share no name (rerun with ``bench --sizes-from FIRST.json`` to compare them)."""
    parts = [_name_part(cell.interpreter), _name_part(cell.label), _name_part(cell.backend)]
    if cell.start_method:
        parts.append(_name_part(cell.start_method))
    parts.append("x%d" % cell.workers)
    if cell.tasks is not None:
        parts.append("tasks=%d" % cell.tasks)
    if cell.size is not None:
        parts.append("size=%s" % _name_part(cell.size))
    if cell.scaling != "strong":
        parts.append(_name_part(cell.scaling))
    if cell.tag:
        parts.append(_name_part(cell.tag))
    if cell.per_task:
        parts.append("per-task")
    return "/".join(parts)


def samples(cell: Cell) -> Tuple[List[float], List[str]]:
    """The cell's wall-clock samples pyperf can take, and a note per kind left out."""
    kept = [v for v in cell.samples if MIN_SAMPLE_S <= v <= MAX_SAMPLE_S]
    notes = []
    low = sum(1 for v in cell.samples if v < MIN_SAMPLE_S)
    high = sum(1 for v in cell.samples if v > MAX_SAMPLE_S)
    if low:
        notes.append("%d sample%s under 1 ns (zero or negative: not a timing)"
                     % (low, "" if low == 1 else "s"))
    if high:
        notes.append("%d sample%s over %g s (pyperf's sums and ratios overflow on such values)"
                     % (high, "" if high == 1 else "s", MAX_SAMPLE_S))
    return kept, notes


def _suite_metadata(doc: ResultsDocument, source: str) -> Dict[str, Any]:
    env = doc.environment
    meta = _meta([
        ("hostname", env.hostname),
        ("platform", env.os),
        ("cpu_model_name", env.cpu_model),
        ("cpu_count", env.usable_cores),
        ("threadwise_cpu_derivation", env.cores.get("derivation")),
        ("threadwise_version", doc.threadwise or __version__),
        ("threadwise_source", source),
        ("description", "threadwise measurements: wall-clock seconds per repeat of a cell "
                        "(a workload run on a backend with W workers)"),
    ])
    if env.load_avg and env.load_avg[0] >= 0:
        meta["load_avg_1min"] = float(env.load_avg[0])
    return meta


def _benchmark(cell: Cell, name: str, info: Optional[InterpreterFacts],
               values: List[float]) -> Dict[str, Any]:
    info = info or InterpreterFacts(command=cell.command, label=cell.interpreter)
    gil = info.gil_enabled if info.gil_enabled is not None else cell.gil_enabled
    meta = _meta([
        ("name", name),
        ("unit", "second"),
        ("loops", 1),
        ("python_implementation", (info.implementation or "").lower()),
        ("python_version", info.version),
        ("python_executable", info.executable or cell.command),
        ("threadwise_key", cell.key),
        ("threadwise_interpreter", cell.interpreter),
        ("threadwise_workload", cell.label),
        ("threadwise_backend", cell.backend),
        ("threadwise_workers", cell.workers),
        ("threadwise_start_method", cell.start_method),
        ("threadwise_scaling", cell.scaling),
        ("threadwise_tasks", cell.tasks),
        ("threadwise_size", cell.size),
        ("threadwise_gil_enabled", gil),
        ("threadwise_speedup", cell.speedup),
        ("threadwise_speedup_ci95", list(cell.speedup_ci95) if cell.speedup_ci95 else None),
        ("threadwise_parallelism", cell.parallelism),
        ("threadwise_warnings", len(cell.warnings)),
    ])
    run_meta = _meta([("date", cell.started)])
    if cell.load_avg_start is not None and cell.load_avg_start >= 0:
        run_meta["load_avg_1min"] = float(cell.load_avg_start)
    run: Dict[str, Any] = {"values": values}
    if run_meta:
        run["metadata"] = run_meta
    return {"metadata": meta, "runs": [run]}


def _unique(name: str, names: Dict[str, int]) -> str:
    """``name``, or ``name#2``, ``name#3``... if a cell already took it."""
    if name not in names:
        names[name] = 1
        return name
    n = names[name]
    while True:
        n += 1
        alt = "%s#%d" % (name, n)
        if alt not in names:
            names[name] = n
            names[alt] = 1
            return alt


def to_pyperf(doc: ResultsDocument, source: str = "results") -> Tuple[Dict[str, Any], List[str]]:
    """The pyperf suite for ``doc``, and what was left out (one line each)."""
    benchmarks: List[Dict[str, Any]] = []
    skipped: List[str] = []
    names: Dict[str, int] = {}
    for cell in doc.ok_cells(tag=None):
        name = benchmark_name(cell)
        values, notes = samples(cell)
        if not values:
            skipped.append("%s: no wall-clock sample pyperf can take%s"
                           % (name, " (%s)" % "; ".join(notes) if notes else ""))
            continue
        name = _unique(name, names)
        skipped += ["%s: %s left out" % (name, n) for n in notes]
        benchmarks.append(_benchmark(cell, name, doc.interpreters.get(cell.interpreter), values))
    suite = {"version": PYPERF_VERSION, "metadata": _suite_metadata(doc, source),
             "benchmarks": benchmarks}
    return suite, skipped


def export(paths: Sequence[str], output: str, fmt: str = "pyperf") -> Tuple[int, List[str]]:
    """Load ``paths`` (merged), write ``output`` in ``fmt``; returns (benchmarks, skipped)."""
    if fmt not in FORMATS:
        raise ThreadwiseError("unknown export format %r" % fmt, "only %s is supported" % ", ".join(FORMATS),
                              "use --format pyperf")
    doc = model.merge([results.load(p) for p in paths])
    suite, skipped = to_pyperf(doc, ", ".join(str(p) for p in paths))
    if not suite["benchmarks"]:
        raise ThreadwiseError(
            "nothing to export: %s has no cell with status ok and samples pyperf can take"
            % ", ".join(map(str, paths)),
            "the run measured nothing, every cell failed, or the file holds only claims experiments",
            "measure first (threadwise bench -o results.json), then export that file")
    write_json(suite, output)
    return len(suite["benchmarks"]), skipped


def write_json(data: Dict[str, Any], output: str) -> None:
    _io.write_atomic(output, json.dumps(data, indent=1) + "\n", "the pyperf export", "-o ./pyperf.json")
