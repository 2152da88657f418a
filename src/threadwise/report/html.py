"""The HTML report: one self-contained page from one or more results documents.

    ResultsDocument, ...  (already validated: ResultsDocument.from_json / results.load)
        │  model.merge: one document, later cells win; each file's environment kept apart
        ▼  build(): the view model -- a Page of small dataclasses (text, numbers, figures)
    claims · speedup plots per (interpreter, workload) · interpreter comparison ·
    convoy latency · GIL check · problems · instability warnings · environment
        │   figures: plots.py (matplotlib -> inline SVG)
        ▼
    templates/report.html.j2 (+ templates/report.css inlined), Jinja2, autoescape on
        ──►  report.html (written atomically)

The constraints, and where they are kept:

* **No network to view it**: no external CSS, JS, fonts or images; figures are
  inline SVG, the styles of templates/report.css one inline ``<style>``.
* **No script at all**: the page needs none, and a Content-Security-Policy
  meta (:data:`CSP`) forbids any (``default-src 'none'``), so even a label that
  escaped escaping could not run.
* **Every label is untrusted**: results files are JSON a user may edit.  Text
  reaches the page only through Jinja2's autoescape; the only ``Markup`` is the
  CSS (a file of this package) and the SVG from plots.inline_svg, where
  matplotlib escaped the text and inline_svg refuses active elements.  Ids and
  anchors are counters, never labels.
* **Odd numbers**: wrong types, NaN and the like never get here (the model
  refused the file with a message naming the field); what the model lets
  through (a speedup of 1e308, a zero median) is shown as given, and a figure
  that can't be drawn says so in its place instead of costing the page.
* **Phone width**: figures scale to the column (viewBox, no fixed size); wide
  tables scroll inside their own box.

The view model's classes hold what the template shows and nothing else; they
are built from the typed model (:mod:`threadwise.bench.model`) by one function
per section.
"""
from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

from markupsafe import Markup

from .. import __version__, _io
from ..bench import model, results
from ..bench.model import Cell, Claim, ConvoyRun, Environment, GilCheck, ResultsDocument
from ..bench.stats import amdahl_fit
from ..errors import ThreadwiseError
from . import plots

VERDICTS = ("holds", "fails", "partly", "inconclusive", "untestable")
STATUSES = ("ok", "error", "unsupported")

#: which figures stand behind which claim: figure kinds, and workloads for the scaling plots
CLAIM_FIGURES: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "C1": (("interp",), ("cpu-python",)),
    "C2": ((), ("sleep", "socket", "file-io", "hashlib", "zlib")),
    "C3": (("interp",), ("cpu-python", "shared-objects", "private-objects")),
    "C4": (("interp",), ("cpu-python",)),
    "C5": (("interp",), ("cpu-python",)),
    "C6": (("gilcheck",), ()),
    "C7": ((), ("cpu-python",)),
    "C8": (("convoy",), ()),
    "C9": ((), ()),
}

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
       "script-src 'none'; base-uri 'none'; form-action 'none'")
#: package data, next to this module (pyproject: package-data "report/templates/*")
TEMPLATE = "report.html.j2"
STYLESHEET = "report.css"
DASH = "\u2013"


# --------------------------------------------------------------------------
# numbers and values as text
# --------------------------------------------------------------------------
def fmt_s(v: Optional[float]) -> str:
    """Seconds as a short human string: 12.3 ms, 45.6 us, 1.23 s."""
    if v is None:
        return "?"
    a = abs(v)
    if a >= 1:
        return "%.3g s" % v
    if a >= 1e-3:
        return "%.3g ms" % (v * 1e3)
    if a == 0:
        return "0 s"
    return "%.3g \u00b5s" % (v * 1e6)


def fmt_num(v: float, digits: int = 2) -> str:
    """A ratio: ``1.23``; ``1e+308`` where fixed point would print 300 digits."""
    return ("%.*f" % (digits, v)) if abs(v) < 1e6 else "%.3g" % v


def fmt_x(v: Optional[float], digits: int = 2) -> str:
    return "?" if v is None else fmt_num(v, digits) + "\u00d7"


def fmt_bytes(v: Optional[float]) -> str:
    if v is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return ("%d %s" % (v, unit)) if unit == "B" else ("%.1f %s" % (v, unit))
        v /= 1024
    return "?"  # pragma: no cover


def _plain(x: Any) -> str:
    """Any JSON value (the model's free-form mappings hold them) as one line of text."""
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if x is None:
        return DASH
    if isinstance(x, float):
        return "%.4g" % x
    if isinstance(x, (list, tuple)) and all(not isinstance(i, (list, tuple, dict)) for i in x):
        return ", ".join(_plain(i) for i in x) if x else DASH
    return json.dumps(x, default=str, sort_keys=True)


def _json(x: Any) -> str:
    return json.dumps(x, indent=1, default=str, sort_keys=True)


def _ci(ci: Optional[Tuple[float, float]]) -> Tuple[Optional[float], Optional[float]]:
    return (ci[0], ci[1]) if ci is not None else (None, None)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# --------------------------------------------------------------------------
# the view model: what the template shows
# --------------------------------------------------------------------------
@dataclass
class Figure:
    """One inline SVG figure, or why it could not be drawn."""
    id: str
    kind: str                           # scaling | interp | convoy | gilcheck
    caption: str
    svg: Optional[Markup] = None
    error: Optional[str] = None
    note: str = ""
    workload: Optional[str] = None      # scaling/interp: the claims link by workload
    interpreter: Optional[str] = None
    tag: str = ""


@dataclass(frozen=True)
class CellRow:
    interpreter: str
    workload: str
    backend: str
    start_method: str
    workers: str
    scaling: str
    tasks: str
    status: str
    status_class: str
    wall: str
    wall_ci: str
    speedup: str
    speedup_ci: str
    parallelism: str
    n: str
    warnings: str


@dataclass(frozen=True)
class InterpreterRow:
    label: str
    implementation: str
    version: str
    gil: str
    free_threaded: str
    switch: str
    start_methods: str
    default_start: str
    subinterpreters: str
    command: str
    details: str


@dataclass
class InterpreterSection:
    rows: List[InterpreterRow]
    figure: Optional[Figure]
    workload: Optional[str]


@dataclass(frozen=True)
class Problem:
    what: str
    message: str
    status: str = "error"
    status_class: str = "error"
    traceback: str = ""


@dataclass(frozen=True)
class ConvoyRow:
    where: str
    burner: str
    k: str
    switch: str
    median: str
    p99: str
    max: str
    n: str
    run: str


@dataclass(frozen=True)
class GilRow:
    label: str
    lib: str
    holds: str
    holds_class: str
    share: str
    call: str
    stall: str
    method: str


@dataclass
class ExperimentBlock:
    """One interpreter's convoy or GIL-check runs: a figure, a table, what failed."""
    interpreter: str
    figure: Optional[Figure]
    rows: Sequence[Union[ConvoyRow, GilRow]]
    problems: List[Problem]


@dataclass(frozen=True)
class Link:
    id: str
    caption: str


@dataclass(frozen=True)
class ClaimRow:
    id: str
    claim: str
    verdict: str
    verdict_class: str
    summary: str
    links: Tuple[Link, ...]
    evidence: str


@dataclass(frozen=True)
class Warned:
    what: str
    warnings: Tuple[str, ...]


@dataclass(frozen=True)
class EnvRow:
    key: str
    value: str


@dataclass
class EnvColumn:
    """The environment of one results file (files with the same one share a column)."""
    sources: List[str]
    rows: List[EnvRow]
    warnings: List[str]
    written: List[str]
    config: str


@dataclass(frozen=True)
class EnvTableRow:
    key: str
    values: Tuple[str, ...]


@dataclass(frozen=True)
class Counts:
    ok: int
    error: int
    unsupported: int


@dataclass
class Page:
    version: str
    sources: List[str]
    from_files: bool
    empty: bool
    host: str
    created: str
    updated: str
    counts: Counts
    interpreter_count: int
    verdict_counts: List[Tuple[str, int]]
    claims: List[ClaimRow]
    scaling: List[Figure]
    interp: InterpreterSection
    convoy: List[ExperimentBlock]
    gilcheck: List[ExperimentBlock]
    problems: List[Problem]
    warned: List[Warned]
    warning_count: int
    environments: List[EnvColumn]
    env_table: List[EnvTableRow]
    cells: List[CellRow]
    figures: List[Figure] = field(default_factory=list)


# --------------------------------------------------------------------------
# cells, as the report shows them
# --------------------------------------------------------------------------
Group = Tuple[str, str, str, str]


def _plottable(c: Cell) -> bool:
    return c.ok and c.speedup is not None


def _group(c: Cell) -> Group:
    """One scaling plot: interpreter, workload (with parameters), scaling, tag."""
    return (c.interpreter, c.label, c.scaling, c.tag)


def cell_title(c: Cell) -> str:
    """``py · cpu-python · threads ×4 (weak scaling) [tag]``: a cell in one line."""
    out = "%s \u00b7 %s \u00b7 %s \u00d7%d" % (c.interpreter, c.label, c.series, c.workers)
    if c.scaling != "strong":
        out += " (%s scaling)" % c.scaling
    return out + (" [%s]" % c.tag if c.tag else "")


def _status_class(status: str) -> str:
    return status if status in STATUSES else "error"


def cell_row(c: Cell) -> CellRow:
    lo, hi = _ci(c.speedup_ci95)
    wlo, whi = _ci(c.wall_s.ci95 if c.wall_s is not None else None)
    return CellRow(
        interpreter=c.interpreter, workload=c.label, backend=c.backend,
        start_method=c.start_method or "", workers=str(c.workers),
        scaling=c.scaling + (" [%s]" % c.tag if c.tag else ""), tasks=_plain(c.tasks),
        status=c.status, status_class=_status_class(c.status), wall=fmt_s(c.wall_median),
        wall_ci="%s %s %s" % (fmt_s(wlo), DASH, fmt_s(whi)) if wlo is not None else "",
        speedup=fmt_x(c.speedup) if c.speedup is not None else "",
        speedup_ci="%s %s %s" % (fmt_num(lo), DASH, fmt_num(hi)) if lo is not None and hi is not None
        else "",
        parallelism=fmt_num(c.parallelism) if c.parallelism is not None else "",
        n=str(len(c.samples)), warnings=str(len(c.warnings)))


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------
class _Figures:
    """Every figure of the page, numbered in the order drawn (ids are counters)."""

    def __init__(self) -> None:
        self.ids: Iterator[str] = plots.iter_ids("f")
        self.all: List[Figure] = []

    def add(self, kind: str, caption: str, render: Callable[[str], str], note: str = "",
            workload: Optional[str] = None, interpreter: Optional[str] = None,
            tag: str = "") -> Figure:
        prefix = next(self.ids)
        fig = Figure(prefix + "fig", kind, caption, note=note, workload=workload,
                     interpreter=interpreter, tag=tag)
        try:
            with warnings.catch_warnings():     # numpy's overflow notes on odd numbers: the
                warnings.simplefilter("ignore", RuntimeWarning)   # figure draws or says why not
                fig.svg = Markup(render(prefix))
        except plots.UnsafeSVGError:
            raise
        except Exception as e:  # a figure that can't be drawn must not cost the whole page
            fig.error = "%s: %s" % (type(e).__name__, e)
        self.all.append(fig)
        return fig


def _series(cells: Sequence[Cell]) -> List[plots.Series]:
    """The lines of one scaling plot: a series per backend (/start method, per task)."""
    series: Dict[Tuple[str, Optional[str], bool], plots.Series] = {}
    for c in sorted(cells, key=lambda c: (c.backend, c.start_method or "", c.workers)):
        s = series.setdefault((c.backend, c.start_method, c.per_task),
                              plots.Series(c.series, c.backend, c.start_method, c.per_task))
        lo, hi = _ci(c.speedup_ci95)
        sp = c.speedup if c.speedup is not None else 0.0
        s.points.append(plots.Point(c.workers, sp, lo, hi, bool(c.warnings)))
    for s in series.values():
        many = [(p.workers, p.speedup) for p in s.points if p.workers > 1]
        if len(many) >= 2:
            s.amdahl_p = amdahl_fit(many)
    return list(series.values())


def _scaling(cells: Sequence[Cell], figs: _Figures) -> List[Figure]:
    groups: Dict[Group, List[Cell]] = {}
    for c in cells:
        if c.ok:
            groups.setdefault(_group(c), []).append(c)
    out = []
    for (interp, wl, scaling, tag), cs in groups.items():
        series = _series([c for c in cs if c.backend != "serial" and _plottable(c)])
        if not series:
            continue
        serial = next((c for c in cs if c.backend == "serial"), None)
        extra = ", ".join(x for x in (scaling + " scaling" if scaling != "strong" else "", tag) if x)
        title = "%s \u00b7 %s" % (interp, wl) + (" (%s)" % extra if extra else "")
        note = ("serial median %s for %s task%s" % (fmt_s(serial.wall_median), _plain(serial.tasks),
                                                   _s(serial.tasks or 0))
                if serial else "no serial cell: the speedups are as recorded")
        draw = functools.partial(plots.speedup_plot, title, series, ideal=True,
                                 serial=serial is not None)
        out.append(figs.add("scaling", title, draw, note=note, workload=cs[0].workload,
                            interpreter=interp, tag=tag))
    return out


# --------------------------------------------------------------------------
# interpreters
# --------------------------------------------------------------------------
def _yes_no(v: Optional[bool], yes: str = "yes", no: str = "no") -> str:
    return "?" if v is None else (yes if v else no)


def _interpreter_rows(doc: ResultsDocument, order: Sequence[str]) -> List[InterpreterRow]:
    rows = []
    for label in order:
        f = doc.interpreters.get(label)
        if f is None:                       # cells of an interpreter the file does not describe
            rows.append(InterpreterRow(label, "?", "?", "?", "?", "?", "?", "?", "?", "?", ""))
            continue
        rows.append(InterpreterRow(
            label=label, implementation=_plain(f.implementation), version=_plain(f.version),
            gil=_yes_no(f.gil_enabled, "on", "off"), free_threaded=_yes_no(f.free_threaded),
            switch=fmt_s(f.switch_interval_s), start_methods=_plain(f.start_methods),
            default_start=_plain(f.default_start_method),
            subinterpreters=_yes_no(f.subinterpreters),
            command=_plain(f.command or f.executable),
            details=_json({k: v for k, v in f.to_json().items() if v not in (None, {}, [])})))
    return rows


def _pick(cs: Sequence[Cell]) -> Optional[Cell]:
    """The cell with the most workers."""
    return max(cs, key=lambda c: c.workers) if cs else None


def _comparison(cells: Sequence[Cell], order: Sequence[str],
                figs: _Figures) -> Tuple[Optional[Figure], Optional[str]]:
    """One workload (cpu-python if measured) on every interpreter: each backend's speedup at
    its most workers, and each interpreter's serial time per task relative to the fastest."""
    plottable = [c for c in cells if _plottable(c) and c.backend != "serial"
                 and c.scaling == "strong" and not c.tag and not c.per_task]
    workloads = [c.label for c in plottable]
    wl = "cpu-python" if "cpu-python" in workloads else (workloads[0] if workloads else None)
    if wl is None:
        return None, None
    bars: List[plots.Bar] = []
    for interp in order:
        mine = [c for c in plottable if c.interpreter == interp and c.label == wl]
        for be in dict.fromkeys(c.backend for c in mine):
            of = [c for c in mine if c.backend == be]
            best = _pick([c for c in of if c.start_method is None]) or _pick(of)
            if best is not None and best.speedup is not None:
                lo, hi = _ci(best.speedup_ci95)
                bars.append(plots.Bar(interp, best.series, best.workers, best.speedup, lo, hi))
    per_unit: Dict[str, float] = {}
    for interp in order:
        s = next((c for c in cells if c.ok and c.interpreter == interp and c.label == wl
                  and c.backend == "serial" and c.scaling == "strong" and not c.tag), None)
        if s is not None and s.task_s:
            per_unit[interp] = s.task_s / (s.size if s.size and s.size > 0 else 1.0)
    best_t = min(per_unit.values()) if per_unit else 0.0
    rel = [(k, v / best_t) for k, v in per_unit.items()] if best_t > 0 else []
    if not bars:
        return None, wl
    title = "%s: speedup by interpreter" % wl
    fig = figs.add("interp", title,
                   functools.partial(plots.backend_bars, title, bars, relative_serial=rel),
                   workload=wl)
    return fig, wl


def _interpreters(doc: ResultsDocument, figs: _Figures) -> InterpreterSection:
    order = doc.interpreter_order()
    order += [k for k in doc.interpreters if k not in order]
    fig, wl = _comparison(doc.cells, order, figs)
    return InterpreterSection(_interpreter_rows(doc, order), fig, wl)


# --------------------------------------------------------------------------
# the claims run's experiments
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvoySetting:
    """What one convoy run measured.  Records that failed early may carry it only in
    their ``config``; ``swept``: the run set the switch interval (the sweep's runs)."""
    pinned: Optional[bool]
    cpu_threads: Optional[int]
    burner: str
    swept: bool

    @property
    def where(self) -> str:
        return "?" if self.pinned is None else ("one core" if self.pinned else "all cores")


def convoy_setting(r: ConvoyRun) -> ConvoySetting:
    # the config is the experiment's free-form JSON: read it type-checked, here only
    cfg = r.config
    pin, k, burner = cfg.get("pin"), cfg.get("cpu_threads"), cfg.get("burner")
    return ConvoySetting(
        pinned=r.pinned if r.pinned is not None else (pin if isinstance(pin, bool) else None),
        cpu_threads=r.cpu_threads if r.cpu_threads is not None else (
            k if isinstance(k, int) and not isinstance(k, bool) else None),
        burner=r.burner or (burner if isinstance(burner, str) and burner else "threads"),
        swept=cfg.get("switch_interval") is not None)


def convoy_run_number(r: ConvoyRun) -> str:
    """Which of the repeated runs of its configuration."""
    return _plain(r.run)


Point3 = Tuple[int, float, float]


def _merge_runs(points: Sequence[Point3]) -> List[Point3]:
    """(k, median, p99) points, one per run -> one per k: median of medians, worst p99."""
    by: Dict[int, List[Tuple[float, float]]] = {}
    for k, med, p99 in points:
        by.setdefault(k, []).append((med, p99))
    out = []
    for k in sorted(by):
        meds = sorted(m for m, _ in by[k])
        out.append((k, meds[len(meds) // 2], max(p for _, p in by[k])))
    return out


def _convoy_block(interp: str, runs: Sequence[ConvoyRun], figs: _Figures) -> ExperimentBlock:
    rows, problems = [], []
    lines: Dict[bool, List[Point3]] = {True: [], False: []}
    controls: Dict[Tuple[str, int], List[Point3]] = {}
    for r in runs:
        st = convoy_setting(r)
        k, med, p99 = st.cpu_threads, r.median_s, r.p99_s
        if r.error is not None or r.unsupported is not None or med is None or p99 is None or k is None:
            problems.append(Problem("%s, %s CPU-bound %s, %s" % (interp, _plain(k), st.burner, st.where),
                                    r.error or r.unsupported
                                    or "the record has no median_s/p99_s numbers"))
            continue
        rows.append(ConvoyRow(st.where, st.burner, str(k),
                              fmt_s(r.switch_interval_s) + (" (set)" if st.swept else ""),
                              fmt_s(med), fmt_s(p99), fmt_s(r.max_s), _plain(r.round_trips),
                              convoy_run_number(r)))
        if med <= 0 or p99 <= 0 or st.swept:     # the switch-interval sweep: the table shows it
            continue
        if st.burner == "threads" and st.pinned is not None:
            lines[st.pinned].append((k, med, p99))
        else:
            what = {"processes": "process", "threads": "thread"}.get(st.burner, st.burner) \
                if k == 1 else st.burner
            controls.setdefault(("%d CPU-bound %s, %s" % (k, what, st.where), k), []).append((k, med, p99))
    # several runs of one configuration: the median of their medians, the worst p99
    series = [plots.ConvoyLine(label, _merge_runs(lines[pin]), color)
              for pin, label, color in ((True, "one core", "#c0392b"), (False, "all cores", "#1f77b4"))
              if lines[pin]]
    ctl = [(label, k, m, p) for (label, k), pts in controls.items() for (_, m, p) in _merge_runs(pts)]
    fig = None
    if series or ctl:
        title = "%s: echo round-trip latency" % interp
        fig = figs.add("convoy", title, functools.partial(plots.convoy_plot, title, series,
                                                          controls=ctl), interpreter=interp)
    return ExperimentBlock(interp, fig, rows, problems)


R = TypeVar("R", ConvoyRun, GilCheck)


def _by_interpreter(runs: Sequence[R]) -> Dict[str, List[R]]:
    by: Dict[str, List[R]] = {}
    for r in runs:
        by.setdefault(r.interpreter if r.interpreter is not None else "?", []).append(r)
    return by


def _convoy(doc: ResultsDocument, figs: _Figures) -> List[ExperimentBlock]:
    return [_convoy_block(interp, runs, figs)
            for interp, runs in _by_interpreter(doc.experiments.convoy).items()]


_THRESHOLD = re.compile(r"threshold ([0-9]+(?:\.[0-9]+)?)")


def _gil_row(g: GilCheck, share: float) -> GilRow:
    return GilRow(label=g.label or _plain(g.workload), lib=_plain(g.lib),
                  holds="?" if g.holds is None else ("holds the GIL" if g.holds else "releases it"),
                  holds_class="untestable" if g.holds is None else ("fails" if g.holds else "holds"),
                  share=fmt_num(share), call=fmt_s(g.call_s), stall=fmt_s(g.longest_stall_s),
                  method=_plain(g.method))


def _gilcheck_block(interp: str, checks: Sequence[GilCheck], figs: _Figures) -> ExperimentBlock:
    rows, problems = [], []
    bars: List[Tuple[str, float, Optional[bool], str]] = []
    threshold: Optional[float] = None
    for g in checks:
        label = g.label or _plain(g.workload)
        if g.error is not None or g.unsupported is not None or g.ticker_share is None:
            problems.append(Problem("%s: %s" % (interp, label), g.error or g.unsupported
                                    or "the record has no ticker_share"))
            continue
        method = g.method or ""
        m = _THRESHOLD.search(method)
        if m and threshold is None:
            threshold = float(m.group(1))
        note = "by stall" if method.startswith("longest stall") else (
            "one core" if "one core" in method else "")
        bars.append((label, g.ticker_share, g.holds, note))
        rows.append(_gil_row(g, g.ticker_share))
    fig = None
    if bars:
        title = "%s: which calls hold the GIL" % interp
        note = ("red: holds the GIL, green: releases it. Calls shorter than two switch "
                "intervals are judged by the ticker's share%s; longer ones \u201cby "
                "stall\u201d: held, the ticker would stall for the whole call"
                % (" (dashed line: %.2f)" % threshold if threshold is not None else ""))
        fig = figs.add("gilcheck", title,
                       functools.partial(plots.gilcheck_plot, title, bars, threshold=threshold),
                       note=note, interpreter=interp)
    return ExperimentBlock(interp, fig, rows, problems)


def _gilcheck(doc: ResultsDocument, figs: _Figures) -> List[ExperimentBlock]:
    return [_gilcheck_block(interp, checks, figs)
            for interp, checks in _by_interpreter(doc.experiments.gilcheck).items()]


# --------------------------------------------------------------------------
# claims, problems, warnings
# --------------------------------------------------------------------------
def _claim_row(v: Claim, figs: Sequence[Figure]) -> ClaimRow:
    verdict = v.verdict.lower()
    kinds, workloads = CLAIM_FIGURES.get(v.id.upper(), ((), ()))
    links = tuple(Link(f.id, f.caption) for f in figs
                  if f.kind in kinds or (f.kind == "scaling" and f.workload in workloads))
    return ClaimRow(id=v.id, claim=v.claim, verdict=verdict,
                    verdict_class=verdict if verdict in VERDICTS else "unknown",
                    summary=v.summary, links=links,
                    evidence=json.dumps(v.evidence, indent=1, default=str) if v.evidence else "")


def _problems(cells: Sequence[Cell], blocks: Sequence[ExperimentBlock]) -> List[Problem]:
    out = [Problem(cell_title(c), c.error or "no message was recorded", c.status,
                   _status_class(c.status), c.traceback or "")
           for c in cells if not c.ok]
    return out + [p for b in blocks for p in b.problems]


# --------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------
_CORE_KEYS = ("usable", "logical", "physical", "affinity", "quota", "derivation")
#: the environment's fields this model does not name, shown first when present
_EXTRA_FIRST = ("host_executable", "threadwise", "started")


def environment_rows(env: Environment) -> List[EnvRow]:
    """The host, one row per fact, in a reading order."""
    rows = [EnvRow(k, v) for k, v in (("hostname", env.hostname), ("os", env.os),
                                      ("machine", env.machine), ("cpu_model", env.cpu_model))
            if v is not None]
    if env.usable_cores is not None and "usable" not in env.cores:
        rows.append(EnvRow("usable_cores", str(env.usable_cores)))
    for ck in [k for k in _CORE_KEYS if k in env.cores] + sorted(k for k in env.cores
                                                                 if k not in _CORE_KEYS):
        rows.append(EnvRow("cores: " + ck, _plain(env.cores[ck])))
    if env.load_avg is not None:
        rows.append(EnvRow("load average at start",
                           ", ".join("%.2f" % x for x in env.load_avg) + " (1, 5, 15 min)"))
    if env.memory_bytes is not None:
        rows.append(EnvRow("memory", fmt_bytes(env.memory_bytes)))
    if env.host_python is not None:
        rows.append(EnvRow("host_python", env.host_python))
    for k in [k for k in _EXTRA_FIRST if k in env.extra] + sorted(k for k in env.extra
                                                                  if k not in _EXTRA_FIRST):
        rows.append(EnvRow(k, _plain(env.extra[k])))
    return rows


def usable_cores(env: Environment) -> Optional[int]:
    u = env.cores.get("usable")
    return env.usable_cores if env.usable_cores is not None else (
        u if isinstance(u, int) and not isinstance(u, bool) else None)


def environment_warnings(env: Environment) -> List[str]:
    out = []
    usable = usable_cores(env)
    first = env.load_avg[0] if env.load_avg else None
    if first is not None and usable and first > usable:
        out.append("the load average was %.2f when the run started, above the %d usable cores: "
                   "other work shared the CPUs" % (first, usable))
    if usable is not None and usable < 2:
        out.append("only %d usable core: nothing can run in parallel on this machine" % usable)
    return out


def _environments(docs: Sequence[ResultsDocument],
                  names: Sequence[str]) -> Tuple[List[EnvColumn], List[EnvTableRow]]:
    """One column per results file (files with the same environment share one)."""
    cols: List[EnvColumn] = []
    for n, d in zip(names, docs):
        rows = environment_rows(d.environment)
        written = d.created + (" to " + d.updated if d.created and d.updated
                               and d.updated != d.created else "")
        same = next((e for e in cols if e.rows == rows), None)
        if same is not None:
            same.sources.append(n)
            same.written.append(written)
        else:
            cols.append(EnvColumn([n], rows, environment_warnings(d.environment), [written],
                                  json.dumps(d.config, indent=1, default=str) if d.config else ""))
    keys = list(dict.fromkeys(r.key for e in cols for r in e.rows))
    table = [EnvTableRow(k, tuple(next((r.value for r in e.rows if r.key == k), "") for e in cols))
             for k in keys]
    when = tuple("; ".join(x for x in e.written if x) for e in cols)
    if any(when):
        table.append(EnvTableRow("results written", when))
    return cols, table


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------
def _names(docs: Sequence[ResultsDocument], sources: Optional[Sequence[str]]) -> List[str]:
    names = list(sources or [])
    if len(docs) == 1 and not names:
        names = ["this run"]                       # bench/claims --html: the document in memory
    return names + ["run %d" % (i + 1) for i in range(len(names), len(docs))]


def build(docs: Sequence[ResultsDocument], sources: Optional[Sequence[str]] = None) -> Page:
    """The page's data from ``docs`` (merged, later cells win): the view model."""
    if not docs:
        raise ThreadwiseError("no results to report", "no results file was given",
                              "threadwise report results.json -o report.html")
    names = _names(docs, sources)
    doc = model.merge(docs)
    figs = _Figures()
    interp = _interpreters(doc, figs)
    scaling = _scaling(doc.cells, figs)
    convoy = _convoy(doc, figs)
    gil = _gilcheck(doc, figs)
    claims = [_claim_row(v, figs.all) for v in doc.claims]
    warned = [Warned(cell_title(c), c.warnings) for c in doc.cells if c.warnings]
    envs, env_table = _environments(docs, names)
    status = [_status_class(c.status) for c in doc.cells]
    verdicts = dict.fromkeys(VERDICTS, 0)
    for v in claims:
        verdicts[v.verdict] = verdicts.get(v.verdict, 0) + 1
    return Page(
        version=__version__, sources=names, from_files=bool(sources),
        empty=not doc.cells and not claims and not convoy and not gil,
        host=doc.environment.hostname or "", created=doc.created, updated=doc.updated,
        counts=Counts(*(status.count(s) for s in STATUSES)), interpreter_count=len(interp.rows),
        verdict_counts=[(k, n) for k, n in verdicts.items() if n], claims=claims,
        scaling=scaling, interp=interp, convoy=convoy, gilcheck=gil,
        problems=_problems(doc.cells, convoy + gil), warned=warned,
        warning_count=sum(len(w.warnings) for w in warned), environments=envs,
        env_table=env_table, cells=[cell_row(c) for c in doc.cells], figures=figs.all)


def _resource(name: str) -> str:
    """A file of templates/ (package data; found in the source tree too)."""
    return (resources.files("threadwise.report") / "templates" / name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _jinja() -> Any:
    try:
        import jinja2
    except ImportError as e:  # pragma: no cover - jinja2 is a dependency
        raise ThreadwiseError("the HTML report needs Jinja2, which is not installed (%s)" % e,
                              "threadwise was installed without its dependencies",
                              "pip install jinja2") from None
    # autoescape=True, not select_autoescape(): that one goes by file extension, and ".j2"
    # would turn it off
    return jinja2.Environment(loader=jinja2.FunctionLoader(_resource), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def render(docs: Sequence[ResultsDocument], sources: Optional[Sequence[str]] = None) -> str:
    """The report page as a string."""
    page = build(docs, sources)
    # the CSS is a file of this package (never from a results file): trusted, not escaped
    css = Markup(_resource(STYLESHEET))
    return str(_jinja().get_template(TEMPLATE).render(m=page, css=css, csp=CSP))


def check_writable(path: str) -> Path:
    """Fail before drawing anything if the report can't be written at ``path``."""
    return results.check_writable(path, "the HTML report", "-o ./report.html")


def write_report(docs: Sequence[ResultsDocument], path: str,
                 sources: Optional[Sequence[str]] = None) -> None:
    """Render ``docs`` (merged, later cells win) into one self-contained HTML file at ``path``.

    Written atomically (temp file + rename): a crash leaves the previous report."""
    p = check_writable(path)
    page = render(docs, sources)
    _io.write_atomic(p, page, "the HTML report", "-o ./report.html")
