"""The results model: what a benchmark or claims run measured, typed and immutable.

Every view (the terminal tables, the claims verdicts, the HTML report, the pyperf
export, ``--resume``) reads these classes; none reads raw JSON.  The one way in from
JSON is :meth:`ResultsDocument.from_json`, which validates every field (type, range,
finite numbers, strings that encode as UTF-8, size and depth) and raises a
:class:`~threadwise.errors.ResultsFileError` naming the field, so a hand-edited,
truncated or hostile file ends in a three-part message, never a traceback::

    JSON text --results.load()--> dict --ResultsDocument.from_json()--> ResultsDocument
        ResultsDocument
          environment:  Environment            the host, at the start of the run
          interpreters: {label: InterpreterFacts}
          config:       {option: value}         the run's options (JSON, as given)
          cells:        (Cell, ...)             one per (interpreter, workload, backend, workers, ...)
            Cell.wall_s / cpu_s: Summary        median, 95% CI, samples (bench.stats)
          experiments:  Experiments             claims only: convoy runs, GIL checks
          claims:       (Claim, ...)            claims only: verdicts
        --to_json()--> dict --results.save()--> JSON text (atomic)

Like pyperf's ``Run``/``Benchmark``, the classes are frozen: a run grows its document
with :meth:`ResultsDocument.with_cell`, which returns a new one.  Fields this version
does not know are kept in ``extra`` and written back, so a newer file read and saved
by an older threadwise loses nothing.

Schema history (the ``schema`` field; a change that breaks readers gets a new number):

- ``threadwise.results/1`` (threadwise 0.1.0): environment, interpreters, config, cells,
  experiments, claims; a cell's key is interpreter|workload[params]|backend|workers|
  start method|scaling (+|per-task, +|tag).
- ``threadwise.results/2``: the key also names the work, ``|tasks=N`` and, when the size
  was fixed rather than calibrated, ``|size=N`` (a resumed or compared run divides
  like by like); ``config`` records ``sizes``, ``calibrated_sizes``, ``per_task`` and
  ``tag``.  A /1 file is read with its keys recomputed from the cells' fields.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import math
import typing
from dataclasses import dataclass, field, replace
from typing import (Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type,
                    TypeVar, Union)

from .. import __version__
from ..errors import ResultsFileError
from .stats import Summary

SCHEMA = "threadwise.results/2"
#: older schemas this version reads (and upgrades in memory; it writes SCHEMA)
READS = ("threadwise.results/1", SCHEMA)
#: JSON nesting a results document may have (a real one has about 6)
MAX_DEPTH = 64
#: integers beyond this are not counts or sizes (and would overflow float arithmetic)
MAX_INT = 2 ** 53
STATUSES = ("ok", "error", "unsupported")
#: a cell is "busy" when others took more than this share of all CPUs while it ran: on
#: 2 cores, 0.2 is 0.4 of a core; one CPU burner beside it reads 0.5
BUSY_SHARE = 0.2

JSON = Any
T = TypeVar("T")
Number = Union[int, float]


# --------------------------------------------------------------------------
# validation: the only place that looks at raw JSON values
# --------------------------------------------------------------------------
def _bad(where: str, what: str) -> ResultsFileError:
    return ResultsFileError("%s: %s" % (where, what),
                            "the file was edited by hand, truncated, or written by another tool",
                            "measure again, or fix that field")


def _check_str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise _bad(where, "expected text, got %s" % type(v).__name__)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(where, "text that is not valid Unicode (a lone surrogate)") from None
    return v


def _check_json(v: Any, where: str, depth: int = 0) -> JSON:
    """Any JSON value: finite numbers, encodable strings, bounded depth."""
    if depth > MAX_DEPTH:
        raise _bad(where, "nested more than %d levels deep" % MAX_DEPTH)
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        if abs(v) > MAX_INT:
            raise _bad(where, "an integer too large (%d digits)" % len(str(abs(v))))
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _bad(where, "a number that is not finite (%r)" % v)
        return v
    if isinstance(v, str):
        return _check_str(v, where)
    if isinstance(v, list):
        return [_check_json(x, "%s[%d]" % (where, i), depth + 1) for i, x in enumerate(v)]
    if isinstance(v, dict):
        return {_check_str(k, where): _check_json(x, "%s.%s" % (where, k), depth + 1)
                for k, x in v.items()}
    raise _bad(where, "a value JSON can't hold (%s)" % type(v).__name__)


def _check(tp: Any, v: Any, where: str) -> Any:
    """``v`` checked against the annotation ``tp`` (the model's small type vocabulary)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        if v is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if rest == [int, float] or rest == [float, int]:
            return _check_number(v, where)
        return _check(rest[0], v, where)
    if tp is Any:
        return _check_json(v, where)
    if tp is str:
        return _check_str(v, where)
    if tp is bool:
        if not isinstance(v, bool):
            raise _bad(where, "expected true or false, got %r" % (v,))
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _bad(where, "expected an integer, got %r" % (_short(v),))
        return _check_json(v, where)
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _bad(where, "expected a number, got %r" % (_short(v),))
        return float(_check_json(v, where))
    if origin in (tuple, Tuple):
        if not isinstance(v, list):
            raise _bad(where, "expected a list, got %s" % type(v).__name__)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(args[0], x, "%s[%d]" % (where, i)) for i, x in enumerate(v))
        if len(v) != len(args):
            raise _bad(where, "expected %d values, got %d" % (len(args), len(v)))
        return tuple(_check(a, x, "%s[%d]" % (where, i)) for i, (a, x) in enumerate(zip(args, v)))
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        if not isinstance(v, dict):
            raise _bad(where, "expected an object, got %s" % type(v).__name__)
        vt = args[1] if len(args) == 2 else Any
        return {_check_str(k, where): _check(vt, x, "%s.%s" % (where, k)) for k, x in v.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _from_json(tp, v, where)
    raise TypeError("the model has no check for %r" % (tp,))  # a bug here, not in the file


def _check_number(v: Any, where: str) -> Number:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(where, "expected a number, got %r" % (_short(v),))
    return typing.cast(Number, _check_json(v, where))


def _short(v: Any) -> Any:
    s = repr(v)
    return v if len(s) <= 40 else s[:37] + "..."


_HINTS: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _from_json(cls: Type[T], d: Any, where: str) -> T:
    """A model object from a JSON object: known fields checked, the rest kept in ``extra``."""
    if not isinstance(d, dict):
        raise _bad(where, "expected an object, got %s" % type(d).__name__)
    hints = _hints(cls)
    kw: Dict[str, Any] = {}
    extra: Dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    missing = [f.name for f in fields.values() if f.name not in d and f.name != "extra"
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _bad(where, "lacks %s" % ", ".join(missing))
    for k, v in d.items():
        name = k if k in fields and k != "extra" else None
        if name is None:
            extra[_check_str(k, where)] = _check_json(v, "%s.%s" % (where, k))
        else:
            kw[name] = _check(hints[name], v, "%s.%s" % (where, k))
    if "extra" in fields:
        kw["extra"] = extra
    return cls(**kw)


def _to_json(obj: Any) -> JSON:
    """A model object (or value) as JSON: tuples become lists, ``extra`` merges back."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            if f.name == "extra":
                continue
            v = getattr(obj, f.name)
            if v is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _to_json(v)
        out.update(getattr(obj, "extra", {}) or {})
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_json(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    return obj


def as_json(obj: Any) -> Any:
    """Any model object as plain JSON data (what ``to_json`` methods return)."""
    return _to_json(obj)


def _opt() -> Any:
    """A field written only when set (older files lack it)."""
    return field(default=None, metadata={"omit_none": True})


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------
M = TypeVar("M", bound="_Model")


class _Model:
    """JSON in (checked) and out, for every class of the model."""

    @classmethod
    def from_json(cls: Type[M], d: Any, where: str = "") -> M:
        return _from_json(cls, d, where or cls.__name__)

    def to_json(self) -> Dict[str, Any]:
        return typing.cast(Dict[str, Any], _to_json(self))
def cell_key(interpreter: str, workload: str, backend: str, workers: int,
             start_method: Optional[str] = None, scaling: str = "strong",
             params: Optional[Mapping[str, Any]] = None, tasks: Optional[int] = None,
             size: Optional[Number] = None, per_task: bool = False, tag: str = "") -> str:
    """The identity of a cell: what --resume compares, and what pairs cells across runs."""
    p = ",".join("%s=%s" % kv for kv in sorted((params or {}).items()))
    parts = [interpreter, workload + ("[%s]" % p if p else ""), backend, str(workers),
             start_method or "-", scaling]
    if tasks is not None:
        parts.append("tasks=%d" % tasks)
    if size is not None:
        parts.append("size=%s" % size)
    return "|".join(parts) + ("|per-task" if per_task else "") + ("|" + tag if tag else "")



@dataclass(frozen=True)
class Environment(_Model):
    """The host at the start of a run (see docs/results-schema.md)."""
    cpu_model: Optional[str] = None
    usable_cores: Optional[int] = None
    cores: Mapping[str, Any] = field(default_factory=dict)
    load_avg: Optional[Tuple[float, ...]] = None
    memory_bytes: Optional[int] = None
    os: Optional[str] = None
    machine: Optional[str] = None
    hostname: Optional[str] = None
    host_python: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict)




@dataclass(frozen=True)
class InterpreterFacts(_Model):
    """What one ``--python`` command turned out to be; ``error`` when it could not start."""
    command: str
    label: str = ""
    implementation: Optional[str] = None
    version: Optional[str] = None
    version_info: Optional[Tuple[Any, ...]] = None
    executable: Optional[str] = None
    env: Mapping[str, str] = field(default_factory=dict)
    free_threaded: Optional[bool] = None
    gil_enabled: Optional[bool] = None
    switch_interval_s: Optional[float] = None
    start_methods: Tuple[str, ...] = ()
    default_start_method: Optional[str] = None
    subinterpreters: Optional[bool] = None
    subinterpreters_module: Optional[str] = None
    subinterpreters_reason: Optional[str] = _opt()
    asyncio: Optional[bool] = None
    sys_version: Optional[str] = None
    cpu_clock: Optional[str] = None
    parallel_probe: Optional[Mapping[str, Any]] = _opt()
    usable_cores: Optional[int] = None
    workloads_unavailable: Mapping[str, Any] = field(default_factory=dict)
    gil_reenabled_by: Tuple[Mapping[str, Any], ...] = ()
    error: Optional[str] = _opt()
    extra: Mapping[str, Any] = field(default_factory=dict)



    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def kind(self) -> str:
        """CPython, CPython (free-threaded), PyPy, Jython..."""
        impl = self.implementation or "?"
        return impl + (" (free-threaded)" if self.free_threaded else "")


@dataclass(frozen=True)
class Cell(_Model):
    """One measured combination: interpreter x workload x backend x workers (x start method,
    scaling, tasks, size).  ``status`` ok: ``wall_s``/``cpu_s``/``speedup`` are set;
    error/unsupported: ``error`` says why."""
    key: str
    interpreter: str
    workload: str
    backend: str
    workers: int
    status: str
    command: str = ""
    workload_label: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: Optional[str] = None
    start_method: Optional[str] = None
    start_method_used: Optional[str] = _opt()
    scaling: str = "strong"
    tasks: Optional[int] = None
    size: Optional[Union[int, float]] = None
    per_task: bool = False
    tag: str = ""
    error: Optional[str] = None
    traceback: Optional[str] = _opt()
    wall_s: Optional[Summary] = _opt()
    cpu_s: Optional[Summary] = _opt()
    speedup: Optional[float] = _opt()
    speedup_ci95: Optional[Tuple[float, float]] = _opt()
    parallelism: Optional[float] = _opt()
    startup_s: Optional[float] = _opt()
    worker_maxrss_bytes: Optional[int] = _opt()
    checksums: Optional[Tuple[Any, ...]] = _opt()
    checksums_ok: Optional[bool] = _opt()
    warnings: Tuple[str, ...] = ()
    load_avg_start: Optional[float] = None
    #: share of all CPUs other processes used while the cell ran (environment.CpuWatch)
    others_share: Optional[float] = _opt()
    #: share of all CPUs a hypervisor gave to other guests meanwhile
    steal_share: Optional[float] = _opt()
    #: measurements taken (2: the first was on a busy machine and was re-measured)
    attempts: Optional[int] = _opt()
    started: Optional[str] = None
    finished: Optional[str] = _opt()
    gil_enabled: Optional[bool] = _opt()
    free_threaded: Optional[bool] = _opt()
    gil_reenabled_by: Optional[Tuple[str, ...]] = _opt()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise _bad("cell %s" % self.key, "status %r is none of %s" % (self.status, ", ".join(STATUSES)))
        if self.workers < 1 or (self.tasks is not None and self.tasks < 1):
            raise _bad("cell %s" % self.key, "workers and tasks must be >= 1")
        if self.status == "ok" and (self.wall_s is None or self.cpu_s is None):
            raise _bad("cell %s" % self.key, "status ok without wall_s and cpu_s")



    # -- derived --------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """The workload with its parameters (``duty-cycle[duty=0.3]``)."""
        return self.workload_label or self.workload

    @property
    def wall_median(self) -> Optional[float]:
        return self.wall_s.median if self.wall_s is not None else None

    @property
    def samples(self) -> Tuple[float, ...]:
        return self.wall_s.samples if self.wall_s is not None else ()

    @property
    def busy(self) -> bool:
        """Other processes (or a hypervisor) took more than BUSY_SHARE of the CPUs meanwhile."""
        return (self.others_share or 0.0) + (self.steal_share or 0.0) > BUSY_SHARE

    @property
    def task_s(self) -> Optional[float]:
        """Median wall time per task (serial cells: the calibrated task length)."""
        m = self.wall_median
        return m / self.tasks if m is not None and self.tasks else None

    @property
    def series(self) -> str:
        """backend[/start method][, a message per task]: one line of a scaling plot."""
        s = self.backend + ("/" + self.start_method if self.start_method else "")
        return s + (", a message per task" if self.per_task else "")

    def figures(self) -> Dict[str, Any]:
        """The cell's headline numbers, rounded, as a verdict's evidence."""
        return {"workers": self.workers,
                "speedup": round(self.speedup, 3) if self.speedup is not None else None,
                "speedup_ci95": [round(x, 3) for x in self.speedup_ci95 or ()],
                "parallelism": round(self.parallelism, 3) if self.parallelism is not None else None,
                "wall_median_s": self.wall_median, "warnings": len(self.warnings)}


@dataclass(frozen=True)
class ConvoyRun(_Model):
    """One run of the convoy experiment (C8): I/O latency beside CPU-bound threads."""
    interpreter: Optional[str] = None
    run: Optional[int] = None
    config: Mapping[str, Any] = field(default_factory=dict)
    pinned: Optional[bool] = None
    cpu_threads: Optional[int] = None
    burner: Optional[str] = None
    switch_interval_s: Optional[float] = None
    round_trips: Optional[int] = None
    median_s: Optional[float] = None
    p99_s: Optional[float] = None
    max_s: Optional[float] = None
    latencies_s: Optional[Tuple[float, ...]] = _opt()
    others_share: Optional[float] = _opt()
    error: Optional[str] = _opt()
    unsupported: Optional[str] = _opt()
    extra: Mapping[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class GilCheck(_Model):
    """One native call checked for holding the GIL (C6)."""
    label: str = ""
    interpreter: Optional[str] = None
    lib: Optional[str] = None
    workload: Optional[str] = None
    holds: Optional[bool] = None
    ticker_share: Optional[float] = None
    longest_stall_s: Optional[float] = None
    call_s: Optional[float] = None
    calls: Optional[int] = None
    method: Optional[str] = None
    others_share: Optional[float] = _opt()
    error: Optional[str] = _opt()
    unsupported: Optional[str] = _opt()
    extra: Mapping[str, Any] = field(default_factory=dict)


    @property
    def measured(self) -> bool:
        """The call ran (``holds`` may still be None: undecidable)."""
        return self.error is None and self.unsupported is None


@dataclass(frozen=True)
class RaceRun(_Model):
    """One run of unsynchronized shared updates from several threads (C9)."""
    interpreter: Optional[str] = None
    op: str = ""
    run: Optional[int] = None
    threads: Optional[int] = None
    per_thread: Optional[int] = None
    expected: Optional[int] = None
    actual: Optional[int] = None
    lost: Optional[int] = None
    seconds: Optional[float] = None
    others_share: Optional[float] = _opt()
    error: Optional[str] = _opt()
    unsupported: Optional[str] = _opt()
    extra: Mapping[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class Experiments(_Model):
    """The claims run's experiments beside the cells."""
    convoy: Tuple[ConvoyRun, ...] = ()
    gilcheck: Tuple[GilCheck, ...] = ()
    races: Tuple[RaceRun, ...] = ()
    #: the CPython with a GIL that C2, C6, C7 and C8 were measured on
    reference: Optional[str] = _opt()
    cores: Optional[int] = _opt()
    extra: Mapping[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class Claim(_Model):
    """One verdict: ``holds``, ``fails``, ``partly`` or ``untestable``, and what it rests on."""
    id: str
    claim: str
    verdict: str
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)



@dataclass(frozen=True)
class ResultsDocument(_Model):
    """A results file: the run's environment, interpreters, options, cells and verdicts."""
    schema: str = SCHEMA
    threadwise: str = __version__
    created: str = ""
    updated: str = ""
    environment: Environment = field(default_factory=Environment)
    interpreters: Mapping[str, InterpreterFacts] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    cells: Tuple[Cell, ...] = ()
    experiments: Experiments = field(default_factory=Experiments)
    claims: Tuple[Claim, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: Any, name: str = "results") -> "ResultsDocument":
        """The only reader of raw results JSON: every field checked (ResultsFileError)."""
        if not isinstance(d, dict) or "schema" not in d:
            raise ResultsFileError("%s is not a threadwise results file (no \"schema\" field)" % name,
                                   "it is some other JSON document",
                                   "pass a file written by threadwise bench/claims --output")
        if d.get("schema") not in READS:
            raise ResultsFileError(
                "%s has schema %r; this threadwise (%s) reads %r"
                % (name, _short(d.get("schema")), __version__, SCHEMA),
                "it was written by another version of threadwise, or by another tool",
                "measure again with this version, or use the threadwise version that wrote it")
        if not isinstance(d.get("cells"), list):
            raise ResultsFileError("%s has no \"cells\" list" % name, "it was edited or truncated",
                                   "measure again")
        doc = _from_json(cls, d, name)
        if doc.schema != SCHEMA:   # /1: keys without the work's size; recompute them
            doc = replace(doc, schema=SCHEMA, cells=tuple(replace(c, key=cell_key(
                c.interpreter, c.workload, c.backend, c.workers, c.start_method, c.scaling,
                c.params, c.tasks, None, c.per_task, c.tag)) for c in doc.cells))
        seen = set()
        for c in doc.cells:
            if c.key in seen:
                raise _bad(name, "two cells have the key %r" % c.key)
            seen.add(c.key)
        return doc


    # -- growing (returns a new document) ---------------------------------
    def with_cell(self, cell: Cell) -> "ResultsDocument":
        """This document with ``cell`` added, or replacing the cell with its key."""
        return replace(self, cells=tuple(c for c in self.cells if c.key != cell.key) + (cell,))

    def with_interpreter(self, facts: InterpreterFacts) -> "ResultsDocument":
        return replace(self, interpreters={**self.interpreters, facts.label: facts})

    # -- reading ----------------------------------------------------------
    def finished_keys(self) -> set:
        """Keys of the cells a resumed run must not measure again."""
        return {c.key for c in self.cells if c.status in ("ok", "unsupported")}

    def cell(self, key: str) -> Optional[Cell]:
        return next((c for c in self.cells if c.key == key), None)

    def ok_cells(self, interpreter: Optional[str] = None, workload: Optional[str] = None,
                 backend: Optional[str] = None, tag: Optional[str] = "",
                 per_task: Optional[bool] = None, scaling: Optional[str] = None) -> List[Cell]:
        """Cells with status ok matching every argument given (``tag=None``: any tag)."""
        return [c for c in self.cells if c.ok
                and (interpreter is None or c.interpreter == interpreter)
                and (workload is None or c.workload == workload)
                and (backend is None or c.backend == backend)
                and (tag is None or c.tag == tag)
                and (per_task is None or c.per_task == per_task)
                and (scaling is None or c.scaling == scaling)]

    def interpreter_order(self) -> List[str]:
        """Interpreter labels in the order their first cell appears."""
        seen: Dict[str, None] = {}
        for c in self.cells:
            seen.setdefault(c.interpreter, None)
        return list(seen)

    def facts(self, label: str) -> InterpreterFacts:
        """The interpreter's facts (an empty record if it was never described)."""
        return self.interpreters.get(label) or InterpreterFacts(command=label, label=label)

    @property
    def cores(self) -> int:
        """The usable core count the run's verdicts use."""
        return int(self.experiments.cores or self.environment.usable_cores or 1)


def merge(docs: Sequence[ResultsDocument]) -> ResultsDocument:
    """One document from several (the report's input); later cells win on equal keys."""
    if not docs:
        raise ValueError("merge() needs at least one document")
    out = docs[0]
    for d in docs[1:]:
        cells = {c.key: c for c in out.cells}
        for c in d.cells:
            cells.pop(c.key, None)
            cells[c.key] = c
        exp = Experiments(convoy=out.experiments.convoy + d.experiments.convoy,
                          gilcheck=out.experiments.gilcheck + d.experiments.gilcheck,
                          races=out.experiments.races + d.experiments.races,
                          reference=d.experiments.reference or out.experiments.reference,
                          cores=d.experiments.cores or out.experiments.cores,
                          extra={**out.experiments.extra, **d.experiments.extra})
        out = replace(out, interpreters={**out.interpreters, **d.interpreters},
                      cells=tuple(cells.values()), experiments=exp,
                      claims=d.claims or out.claims)
    return out


def summary_from_json(d: Any, where: str) -> Summary:
    return _from_json(Summary, d, where)


__all__ = ["SCHEMA", "as_json", "cell_key", "Cell", "Claim", "ConvoyRun", "Environment", "Experiments", "GilCheck",
           "InterpreterFacts", "RaceRun", "ResultsDocument", "Summary", "merge"]
