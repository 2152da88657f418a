"""The report's figures: matplotlib, rendered to SVG text that is inlined in the page.

    plain data (built by html.py from a results document)
        │  speedup_plot / backend_bars / convoy_plot / gilcheck_plot
        ▼
    matplotlib Figure (object API, Agg-free: no pyplot, no global backend switch)
        │  FigureCanvasSVG.print_svg, svg.fonttype "none" (labels stay <text>)
        ▼
    inline_svg(): XML prologue, DOCTYPE and RDF metadata stripped, every id
    prefixed so that several figures can share one HTML document

Every label here may come from a results file a user edited, so:

* matplotlib escapes text (``&``, ``<``, ``>``) when it writes ``<text>``
  elements; :func:`inline_svg` refuses SVG that contains a ``<script`` or
  ``<foreignObject`` tag anyway, as a second line of defence;
* ``text.parse_math`` is off, so a label with ``$`` signs is shown as typed
  instead of being parsed (and failing) as mathtext;
* labels longer than :data:`MAX_LABEL` characters are shortened in the figure
  (the tables in the page carry the full text).
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

MAX_LABEL = 48

RC: Dict[str, Any] = {
    "svg.fonttype": "none",          # text as <text>: selectable, searchable, small
    "svg.hashsalt": "threadwise",    # stable ids: the same results give the same page
    "text.parse_math": False,        # "$x$" in a label is text, not mathtext
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9,
    "legend.framealpha": 0.85,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dde1e6",
    "grid.linewidth": 0.7,
    "axes.edgecolor": "#8a9099",
    "axes.axisbelow": True,
    "figure.dpi": 100,
}

#: one colour per backend, the same in every figure
BACKEND_COLORS = {
    "serial": "#222222",
    "threads": "#1f77b4",
    "processes": "#e4780c",
    "interpreters": "#2a9d3f",
    "asyncio": "#8e44ad",
}
_EXTRA_COLORS = ["#c0392b", "#16a085", "#7f8c8d", "#d35400", "#2c3e50", "#b8860b"]
_START_STYLES = {None: "-", "fork": "-", "forkserver": "--", "spawn": ":"}


def _style() -> Any:
    """Our rcParams, for the duration of one figure (matplotlib's global state is restored)."""
    return matplotlib.rc_context(RC)  # type: ignore[arg-type]  # str keys, checked at run time


def short(text: Any, limit: int = MAX_LABEL) -> str:
    """A label as a figure shows it: a string, one line, at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"


def color_for(backend: str, _extra: Dict[str, str] = {}) -> str:  # noqa: B006 (a cache, on purpose)
    if backend in BACKEND_COLORS:
        return BACKEND_COLORS[backend]
    if backend not in _extra:
        _extra[backend] = _EXTRA_COLORS[len(_extra) % len(_EXTRA_COLORS)]
    return _extra[backend]


# --------------------------------------------------------------------------
# SVG out
# --------------------------------------------------------------------------
_PROLOGUE = re.compile(r"\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_TAG = re.compile(r"<[^>]*>")
_FORBIDDEN = re.compile(r"<\s*(script|foreignObject|iframe|object|embed)\b", re.I)
_SIZE_ATTRS = re.compile(r'\s(width|height)="[^"]*"')


class UnsafeSVGError(RuntimeError):
    """The SVG a figure produced holds markup that must never reach the page."""


def inline_svg(svg: str, prefix: str, title: str = "") -> str:
    """SVG text from matplotlib, made fit to sit inside an HTML page.

    Strips the XML prologue, DOCTYPE and RDF metadata; prefixes every ``id`` and
    every reference to one (``#id``, ``url(#id)``) with ``prefix`` -- only inside
    tags, so a label that contains ``id="x"`` as text is left alone; drops the
    fixed width/height so CSS can size the figure (the viewBox keeps its shape);
    adds ``role="img"`` and an escaped ``aria-label``."""
    from html import escape
    svg = _METADATA.sub("", _PROLOGUE.sub("", svg, count=1), count=1)
    if _FORBIDDEN.search(svg):
        raise UnsafeSVGError("a figure's SVG contains an active element; refusing to inline it")

    def fix(m: "re.Match[str]") -> str:
        tag = m.group(0)
        tag = re.sub(r'\bid="', 'id="' + prefix, tag)
        tag = tag.replace('href="#', 'href="#' + prefix).replace("url(#", "url(#" + prefix)
        return tag

    svg = _TAG.sub(fix, svg)
    head_end = svg.index(">", svg.index("<svg")) + 1
    head = svg[:head_end]
    m = re.search(r'\swidth="([0-9.]+)pt"', head)
    # CSS px = 4/3 pt; let a figure grow to 1.3x its natural size, no more (text stays sane)
    style = ' style="max-width:%dpx"' % round(float(m.group(1)) * 4 / 3 * 1.3) if m else ""
    head = _SIZE_ATTRS.sub("", head)
    head = head[:-1] + ' role="img" aria-label="%s" preserveAspectRatio="xMidYMid meet"%s>' % (
        escape(title, quote=True), style)
    return head + svg[head_end:].strip()


def _render(fig: Figure, prefix: str, title: str) -> str:
    buf = io.StringIO()
    FigureCanvasSVG(fig).print_svg(buf, metadata={"Date": None})
    return inline_svg(buf.getvalue(), prefix, title)


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------
# speedup against workers
# --------------------------------------------------------------------------
@dataclass
class Point:
    workers: int
    speedup: float
    lo: Optional[float] = None
    hi: Optional[float] = None
    unstable: bool = False


@dataclass
class Series:
    """One line in a speedup plot: a backend (and start method) across worker counts."""
    label: str
    backend: str
    start_method: Optional[str] = None
    per_task: bool = False
    points: List[Point] = field(default_factory=list)
    amdahl_p: Optional[float] = None


def _worker_axis(ax: Any, workers: Sequence[int]) -> None:
    ws = sorted(set(int(w) for w in workers if w >= 1)) or [1]
    if ws[-1] / ws[0] > 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ws))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    lo, hi = ws[0], ws[-1]
    if ax.get_xscale() == "log":
        ax.set_xlim(lo / 1.25, hi * 1.25)
    else:
        pad = max(0.25, (hi - lo) * 0.06)
        ax.set_xlim(lo - pad, hi + pad)


def _dodge(n: int, i: int, span: float, log: bool) -> float:
    """A small sideways shift for series ``i`` of ``n``, so points at the same x stay visible."""
    if n < 2:
        return 0.0
    return (i - (n - 1) / 2.0) * (0.035 if log else 0.018 * span)


def speedup_plot(title: str, series: Sequence[Series], prefix: str, ideal: bool = True,
                 serial: bool = True) -> str:
    """Speedup (y) against workers (x): a line per series, its 95% CI as a band (error
    bars where a series has one point), the ideal y = x, the serial baseline at (1, 1).
    Open markers: points whose cell carries instability warnings.  Series are dodged
    sideways a little so that points at the same worker count don't hide each other."""
    with _style():
        fig = _figure(4.7, 3.95)
        ax = fig.add_subplot()
        workers = [1] + [p.workers for s in series for p in s.points]
        wmax = max(workers)
        log = wmax / 1 > 8
        span = max(1, wmax - 1)
        if ideal and wmax > 1:
            ax.plot([1, wmax], [1, wmax], linestyle=(0, (4, 3)), color="#9aa0a6", linewidth=1.1,
                    label="ideal: speedup = workers", zorder=1)
        ax.axhline(1.0, color="#5f6368", linewidth=0.8, zorder=1)
        any_unstable = False
        drawn = [s for s in series if s.points]
        for i, s in enumerate(drawn):
            pts = sorted(s.points, key=lambda p: p.workers)
            col = color_for(s.backend)
            ls = _START_STYLES.get(s.start_method, "-.")
            d = _dodge(len(drawn), i, span, log)
            xs = [p.workers * (2 ** d) if log else p.workers + d for p in pts]
            ys = [p.speedup for p in pts]
            los = [p.lo if p.lo is not None else p.speedup for p in pts]
            his = [p.hi if p.hi is not None else p.speedup for p in pts]
            label = short(s.label, 36)
            if s.amdahl_p is not None:
                label += " (Amdahl p=%.2f)" % s.amdahl_p
            marker = "s" if s.per_task else "o"
            ax.plot(xs, ys, linestyle=ls, color=col, linewidth=1.8, marker=marker, markersize=5,
                    label=label, zorder=3)
            if len(pts) > 1:
                ax.fill_between(xs, los, his, color=col, alpha=0.16, linewidth=0, zorder=2)
            else:
                ax.errorbar(xs, ys, yerr=[[max(0.0, y - lo) for y, lo in zip(ys, los)],
                                          [max(0.0, hi - y) for y, hi in zip(ys, his)]],
                            fmt="none", ecolor=col, elinewidth=1.2, capsize=3, zorder=2)
            bad = [(x, p) for x, p in zip(xs, pts) if p.unstable]
            if bad:
                any_unstable = True
                ax.plot([x for x, _ in bad], [p.speedup for _, p in bad], linestyle="none",
                        marker=marker, markersize=6.5, markerfacecolor="white",
                        markeredgecolor=col, markeredgewidth=1.5, zorder=4)
        if serial:
            ax.plot([1], [1], marker="D", color=BACKEND_COLORS["serial"], markersize=5,
                    linestyle="none", label="serial: the baseline", zorder=5)
        if any_unstable:
            ax.plot([], [], linestyle="none", marker="o", markersize=6.5, markerfacecolor="white",
                    markeredgecolor="#5f6368", markeredgewidth=1.5, label="open: unstable (warnings)")
        _worker_axis(ax, workers)
        ymax = max([1.0] + [p.hi if p.hi is not None else p.speedup
                            for s in series for p in s.points])
        ymax = max(ymax, wmax if ideal else 1.0)
        ax.set_ylim(0, ymax * 1.06 + 0.05)
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup over serial (\u00d7)")
        ax.set_title(short(title, 52), loc="left")
        fig.legend(loc="outside lower center", ncol=2, frameon=False, handlelength=2.2,
                   columnspacing=1.2)
        return _render(fig, prefix, title)


# --------------------------------------------------------------------------
# interpreter comparison
# --------------------------------------------------------------------------
@dataclass
class Bar:
    group: str            # the interpreter
    backend: str
    workers: int
    speedup: float
    lo: Optional[float] = None
    hi: Optional[float] = None


def backend_bars(title: str, bars: Sequence[Bar], prefix: str,
                 relative_serial: Optional[Sequence[Tuple[str, float]]] = None) -> str:
    """Grouped bars: per interpreter, the speedup of each backend at its most workers,
    with the 95% CI as error bars.  With ``relative_serial`` (interpreter, time relative
    to the fastest) for two or more interpreters, a second panel shows single-thread speed."""
    groups: List[str] = []
    backends: List[str] = []
    for b in bars:
        if b.group not in groups:
            groups.append(b.group)
        if b.backend not in backends:
            backends.append(b.backend)
    two = bool(relative_serial) and len(relative_serial or ()) > 1
    with _style():
        per_group = 0.28 * max(1, len(backends)) + 0.25
        height = 1.9 + per_group * len(groups)
        fig = _figure(6.2 if two else 5.2, min(height, 9.0))
        if two:
            ax, ax2 = fig.subplots(1, 2, width_ratios=[2.1, 1], sharey=True)
        else:
            ax, ax2 = fig.add_subplot(), None
        n = max(1, len(backends))
        h = 0.8 / n
        ys = list(range(len(groups)))
        top = 1.0
        for j, be in enumerate(backends):
            sel = [(i, b) for i, g in enumerate(groups) for b in bars if b.group == g and b.backend == be]
            if not sel:
                continue
            pos = [i - 0.4 + h * (j + 0.5) for i, _ in sel]
            vals = [b.speedup for _, b in sel]
            err = [[max(0.0, b.speedup - (b.lo if b.lo is not None else b.speedup)) for _, b in sel],
                   [max(0.0, (b.hi if b.hi is not None else b.speedup) - b.speedup) for _, b in sel]]
            ax.barh(pos, vals, height=h * 0.86, color=color_for(be.split("/")[0]), alpha=0.9,
                    xerr=err, error_kw={"elinewidth": 1, "capsize": 2.5, "ecolor": "#333333"},
                    label=short(be, 24))
            for (_, b), y in zip(sel, pos):
                hi = b.hi if b.hi is not None else b.speedup
                top = max(top, hi)
                ax.annotate("%.2f\u00d7 at %d" % (b.speedup, b.workers), xy=(hi, y), xytext=(4, 0),
                            textcoords="offset points", va="center", ha="left", fontsize=8.5,
                            color="#333333")
        ax.axvline(1.0, color="#5f6368", linewidth=0.9)
        ax.set_xlim(0, top * 1.4 + 0.1)
        ax.set_yticks(ys)
        ax.set_yticklabels([short(g, 24) for g in groups])
        ax.set_ylim(len(groups) - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("speedup over serial (\u00d7)")
        fig.suptitle(short(title, 60), x=0.01, ha="left", fontsize=RC["axes.titlesize"],
                     fontweight="bold")
        if ax2 is not None and relative_serial:
            rel = dict(relative_serial)
            vals = [rel.get(g, float("nan")) for g in groups]
            ax2.barh(ys, vals, height=0.5, color="#6c757d", alpha=0.85)
            for y, v in zip(ys, vals):
                if not math.isnan(v):
                    ax2.annotate("%.2f" % v, xy=(v, y), xytext=(3, 0), textcoords="offset points",
                                 va="center", ha="left", fontsize=8.5)
            finite = [v for v in vals if not math.isnan(v)] or [1.0]
            ax2.set_xlim(0, max(finite) * 1.45)
            ax2.axvline(1.0, color="#5f6368", linewidth=0.9)
            ax2.grid(axis="y", visible=False)
            ax2.set_xlabel("serial time per unit\n(1 = fastest)")
            ax2.set_title("one thread", loc="left", fontsize=9.5)
        fig.legend(loc="outside lower center", ncol=min(4, n), frameon=False)
        return _render(fig, prefix, title)


# --------------------------------------------------------------------------
# convoy latency
# --------------------------------------------------------------------------
@dataclass
class ConvoyLine:
    label: str                  # "one core" / "all cores"
    points: List[Tuple[int, float, float]]   # (cpu_threads, median_s, p99_s)
    color: str = "#1f77b4"


def _ms(v: float, _pos: Any = None) -> str:
    return "%g" % float("%.3g" % v)


def convoy_plot(title: str, lines: Sequence[ConvoyLine], prefix: str,
                controls: Sequence[Tuple[str, int, float, float]] = ()) -> str:
    """Echo round-trip latency (median: solid, p99: dashed) against the number of
    CPU-bound threads beside the I/O thread, one line pair per core setting; log y.
    ``controls``: extra single points (label, cpu_threads, median_s, p99_s), e.g. a
    CPU-bound *process* instead of a thread."""
    from matplotlib.ticker import FuncFormatter, LogLocator
    with _style():
        fig = _figure(5.2, 4.3)
        ax = fig.add_subplot()
        xs_all: List[int] = []
        for ln in lines:
            pts = sorted(ln.points)
            xs = [p[0] for p in pts]
            xs_all += xs
            ax.plot(xs, [1000 * p[1] for p in pts], color=ln.color, marker="o", markersize=5,
                    linewidth=1.8, label="%s, median" % short(ln.label, 30))
            ax.plot(xs, [1000 * p[2] for p in pts], color=ln.color, marker="^", markersize=5,
                    linewidth=1.4, linestyle=(0, (4, 2.5)), label="%s, p99" % short(ln.label, 30))
        marks = ["D", "P", "X", "*"]
        for i, (label, k, med, p99) in enumerate(controls):
            xs_all.append(k)
            m = marks[i % len(marks)]
            ax.plot([k], [1000 * med], marker=m, color="#2a9d3f", linestyle="none", markersize=7,
                    label="%s, median" % short(label, 40))
            ax.plot([k], [1000 * p99], marker=m, color="#2a9d3f", linestyle="none", markersize=7,
                    markerfacecolor="white", label="%s, p99" % short(label, 40))
        ax.set_yscale("log")
        # plain numbers on the log axis: the default formatter writes mathtext, which
        # parse_math=False (our defence against "$" in labels) would show raw
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.yaxis.set_major_formatter(FuncFormatter(_ms))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))
        ks = sorted(set(xs_all)) or [0]
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(ks[0] - 0.3, ks[-1] + 0.3)
        ax.set_xlabel("CPU-bound threads beside the I/O thread")
        ax.set_ylabel("round-trip latency (ms, log scale)")
        ax.set_title(short(title, 52), loc="left")
        fig.legend(loc="outside lower center", ncol=2, frameon=False)
        return _render(fig, prefix, title)


# --------------------------------------------------------------------------
# which calls hold the GIL
# --------------------------------------------------------------------------
def gilcheck_plot(title: str, rows: Sequence[Tuple[str, float, Optional[bool], str]], prefix: str,
                  threshold: Optional[float] = None) -> str:
    """Horizontal bars: per call, the ticker thread's speed beside it as a share of its
    speed alone (low = the call holds the GIL), coloured by the verdict; the fourth
    item of a row is a short note on how the verdict was reached (e.g. "by stall")."""
    with _style():
        fig = _figure(5.2, 1.5 + 0.36 * max(1, len(rows)))
        ax = fig.add_subplot()
        ys = list(range(len(rows)))
        colors = ["#c0392b" if r[2] else ("#2a9d3f" if r[2] is False else "#7f8c8d") for r in rows]
        vals = [r[1] for r in rows]
        ax.barh(ys, vals, color=colors, height=0.62)
        for y, v, (_, _, holds, note) in zip(ys, vals, rows):
            verdict = "undecided" if holds is None else ("holds" if holds else "releases")
            ax.annotate("%.2f %s%s" % (v, verdict, " (%s)" % note if note else ""),
                        xy=(v, y), xytext=(3, 0), textcoords="offset points", va="center",
                        fontsize=8.5)
        if threshold is not None:
            ax.axvline(threshold, color="#5f6368", linestyle=(0, (4, 3)), linewidth=1)
        ax.set_yticks(ys)
        ax.set_yticklabels([short(r[0], 28) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, max([1.0] + vals) * (1.75 if any(r[3] for r in rows) else 1.4))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("ticker thread's speed beside the call,\nas a share of its speed alone")
        ax.set_title(short(title, 52), loc="left")
        return _render(fig, prefix, title)


def iter_ids(prefix: str) -> Iterator[str]:
    """fig1-, fig2-, ...: id prefixes for the figures of one page."""
    i = 0
    while True:
        i += 1
        yield "%s%d-" % (prefix, i)
