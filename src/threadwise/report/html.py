"""The HTML report: one self-contained page from one or more results documents.

    results documents ──► results.validate each, results.merge them
        │
        ▼  build(): a plain "view model" (dicts of strings and numbers)
    claims · speedup plots per (interpreter, workload) · interpreter comparison ·
    convoy latency · GIL check · problems · instability warnings · environment
        │   figures: plots.py (matplotlib -> inline SVG)
        ▼
    Jinja2 template, autoescape on  ──►  report.html (written atomically)

The constraints, and where they are kept:

* **No network to view it**: no external CSS, JS, fonts or images; figures are
  inline SVG, styles one inline ``<style>``.
* **No script at all**: the page needs none, and a Content-Security-Policy
  meta forbids any (``default-src 'none'``), so even a label that escaped
  escaping could not run.
* **Every label is untrusted**: results files are JSON a user may edit.  Text
  reaches the page only through Jinja2's autoescape; the only ``Markup`` is the
  SVG from plots.inline_svg, where matplotlib escaped the text and
  inline_svg refuses active elements.  Ids and anchors are counters, never labels.
* **Hand-edited numbers**: a field of the wrong type is shown as "?" and the
  cell left out of the figures, never a traceback.
* **Phone width**: figures scale to the column (viewBox, no fixed size); wide
  tables scroll inside their own box.
"""
from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import __version__
from ..bench import results
from .. import _io
from ..errors import ThreadwiseError
from . import plots

VERDICTS = ("holds", "fails", "partly", "untestable")

#: which figures stand behind which claim: figure kinds, and workloads for the scaling plots
CLAIM_FIGURES: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "C1": (("interp",), ("cpu-python",)),
    "C2": ((), ("sleep", "socket", "file-io", "hashlib", "zlib")),
    "C3": (("interp",), ("cpu-python",)),
    "C4": (("interp",), ("cpu-python",)),
    "C5": (("interp",), ("cpu-python",)),
    "C6": (("gilcheck",), ("hashlib", "hashlib-small", "zlib", "json")),
    "C7": ((), ("cpu-python",)),
    "C8": (("convoy",), ()),
}


# --------------------------------------------------------------------------
# small, forgiving readers of hand-editable JSON
# --------------------------------------------------------------------------
def _num(x: Any) -> Optional[float]:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _int(x: Any) -> Optional[int]:
    v = _num(x)
    return int(v) if v is not None and v == int(v) else None


def _str(x: Any, default: str = "?") -> str:
    if x is None:
        return default
    return x if isinstance(x, str) else json.dumps(x, default=str)


def _list(x: Any) -> List[Any]:
    return x if isinstance(x, list) else []


def _dict(x: Any) -> Dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _ci(x: Any) -> Tuple[Optional[float], Optional[float]]:
    if isinstance(x, (list, tuple)) and len(x) == 2:
        return _num(x[0]), _num(x[1])
    return None, None


def fmt_s(x: Any) -> str:
    """Seconds as a short human string: 12.3 ms, 45.6 us, 1.23 s."""
    v = _num(x)
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


def fmt_x(x: Any, digits: int = 2) -> str:
    v = _num(x)
    return "?" if v is None else "%.*f\u00d7" % (digits, v)


def fmt_bytes(x: Any) -> str:
    v = _num(x)
    if v is None:
        return _str(x)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return ("%d %s" % (v, unit)) if unit == "B" else ("%.1f %s" % (v, unit))
        v /= 1024
    return "?"  # pragma: no cover


def _plain(x: Any) -> str:
    """Any JSON value as one line of text for a table cell."""
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if x is None:
        return "\u2013"
    if isinstance(x, float):
        return "%.4g" % x
    if isinstance(x, list) and all(not isinstance(i, (list, dict)) for i in x):
        return ", ".join(_plain(i) for i in x) if x else "\u2013"
    return json.dumps(x, default=str, sort_keys=True)


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------
class Cell:
    """A cell as the report reads it: every field checked, nothing trusted."""

    def __init__(self, raw: Dict[str, Any]) -> None:
        self.raw = raw
        self.interpreter = _str(raw.get("interpreter"))
        self.workload = _str(raw.get("workload"))
        self.workload_label = _str(raw.get("workload_label") or raw.get("workload"))
        self.backend = _str(raw.get("backend"))
        self.workers = _int(raw.get("workers"))
        sm = raw.get("start_method")
        self.start_method = sm if isinstance(sm, str) and sm else None
        self.scaling = _str(raw.get("scaling"), "strong")
        tag = raw.get("tag")
        self.tag = tag if isinstance(tag, str) else ""
        self.per_task = raw.get("per_task") is True
        self.status = _str(raw.get("status"))
        wall = _dict(raw.get("wall_s"))
        self.wall_median = _num(wall.get("median"))
        self.wall_ci = _ci(wall.get("ci95"))
        self.samples = [v for v in _list(wall.get("samples")) if _num(v) is not None]
        self.speedup = _num(raw.get("speedup"))
        self.speedup_ci = _ci(raw.get("speedup_ci95"))
        self.parallelism = _num(raw.get("parallelism"))
        self.tasks = _int(raw.get("tasks"))
        self.size = _num(raw.get("size"))
        self.warnings = [_str(w) for w in _list(raw.get("warnings"))]
        self.error = raw.get("error")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def plottable(self) -> bool:
        return self.ok and self.speedup is not None and self.workers is not None and self.workers >= 1

    @property
    def group(self) -> Tuple[str, str, str, str]:
        return (self.interpreter, self.workload_label, self.scaling, self.tag)

    @property
    def series_label(self) -> str:
        s = self.backend
        if self.start_method:
            s += "/" + self.start_method
        if self.per_task:
            s += ", a message per task"
        return s

    @property
    def label(self) -> str:
        w = "\u00d7%s" % (self.workers if self.workers is not None else "?")
        out = "%s \u00b7 %s \u00b7 %s %s" % (self.interpreter, self.workload_label, self.series_label, w)
        if self.scaling != "strong":
            out += " (%s scaling)" % self.scaling
        if self.tag:
            out += " [%s]" % self.tag
        return out

    def row(self) -> Dict[str, str]:
        lo, hi = self.speedup_ci
        wlo, whi = self.wall_ci
        return {"interpreter": self.interpreter, "workload": self.workload_label,
                "backend": self.backend, "start_method": self.start_method or "",
                "workers": _plain(self.workers), "scaling": self.scaling + (" [%s]" % self.tag if self.tag else ""),
                "tasks": _plain(self.tasks), "status": self.status,
                "status_class": self.status if self.status in ("ok", "error", "unsupported") else "error",
                "wall": fmt_s(self.wall_median),
                "wall_ci": "%s \u2013 %s" % (fmt_s(wlo), fmt_s(whi)) if wlo is not None else "",
                "speedup": fmt_x(self.speedup) if self.speedup is not None else "",
                "speedup_ci": "%.2f \u2013 %.2f" % (lo, hi) if lo is not None and hi is not None else "",
                "parallelism": "%.2f" % self.parallelism if self.parallelism is not None else "",
                "n": str(len(self.samples)), "warnings": str(len(self.warnings))}


# --------------------------------------------------------------------------
# the view model
# --------------------------------------------------------------------------
class _Figures:
    def __init__(self) -> None:
        self.ids = plots.iter_ids("f")
        self.all: List[Dict[str, Any]] = []

    def add(self, kind: str, caption: str, render: Any, **meta: Any) -> Dict[str, Any]:
        prefix = next(self.ids)
        fig = {"id": prefix + "fig", "kind": kind, "caption": caption, "svg": None, "error": None,
               "note": ""}
        fig.update(meta)
        try:
            from markupsafe import Markup
            fig["svg"] = Markup(render(prefix))
        except plots.UnsafeSVGError:
            raise
        except Exception as e:  # a figure that can't be drawn must not cost the whole page
            fig["error"] = "%s: %s" % (type(e).__name__, e)
        self.all.append(fig)
        return fig


def _scaling(cells: List[Cell], figs: _Figures) -> List[Dict[str, Any]]:
    groups: "OrderedDict[Tuple[str, str, str, str], List[Cell]]" = OrderedDict()
    for c in cells:
        if c.ok:
            groups.setdefault(c.group, []).append(c)
    out = []
    for (interp, wl, scaling, tag), cs in groups.items():
        moving = [c for c in cs if c.backend != "serial" and c.plottable]
        if not moving:
            continue
        series: "OrderedDict[Tuple[str, Optional[str], bool], plots.Series]" = OrderedDict()
        for c in sorted(moving, key=lambda c: (c.backend, c.start_method or "", c.workers or 0)):
            k = (c.backend, c.start_method, c.per_task)
            s = series.setdefault(k, plots.Series(c.series_label, c.backend, c.start_method, c.per_task))
            lo, hi = c.speedup_ci
            s.points.append(plots.Point(c.workers or 1, c.speedup or 0.0, lo, hi, bool(c.warnings)))
        for s in series.values():
            many = [(p.workers, p.speedup) for p in s.points if p.workers > 1]
            if len(many) >= 2:
                from ..bench.stats import amdahl_fit
                s.amdahl_p = amdahl_fit(many)
        has_serial = any(c.backend == "serial" for c in cs)
        extra = ", ".join(x for x in (scaling + " scaling" if scaling != "strong" else "", tag) if x)
        title = "%s \u00b7 %s" % (interp, wl) + (" (%s)" % extra if extra else "")
        base = cs[0].workload
        fig = figs.add("scaling", title,
                       lambda p, t=title, s=list(series.values()), hs=has_serial:
                       plots.speedup_plot(t, s, p, ideal=True, serial=hs),
                       workload=base, interpreter=interp, tag=tag)
        serial = next((c for c in cs if c.backend == "serial"), None)
        fig["note"] = ("serial median %s for %s task%s" % (
            fmt_s(serial.wall_median), _plain(serial.tasks), "" if serial.tasks == 1 else "s")
            if serial else "no serial cell: the speedups are as recorded")
        out.append(fig)
    return out


def _pick(cs: Iterable[Cell]) -> Optional[Cell]:
    cs = [c for c in cs if c.plottable]
    return max(cs, key=lambda c: c.workers or 0) if cs else None


def _interpreters(doc: Dict[str, Any], cells: List[Cell], figs: _Figures) -> Dict[str, Any]:
    facts = _dict(doc.get("interpreters"))
    order: List[str] = []
    for c in cells:
        if c.interpreter not in order:
            order.append(c.interpreter)
    for k in facts:
        if k not in order:
            order.append(k)
    rows = []
    for label in order:
        f = _dict(facts.get(label))
        gil = f.get("gil_enabled")
        rows.append({
            "label": label,
            "implementation": _plain(f.get("implementation")) if f else "?",
            "version": _plain(f.get("version")) if f else "?",
            "gil": {True: "on", False: "off"}.get(gil, "?") if isinstance(gil, bool) else "?",
            "free_threaded": _plain(f.get("free_threaded")) if "free_threaded" in f else "?",
            "switch": fmt_s(f.get("switch_interval_s")) if "switch_interval_s" in f else "?",
            "start_methods": _plain(f.get("start_methods")) if "start_methods" in f else "?",
            "default_start": _plain(f.get("default_start_method")) if f else "?",
            "subinterpreters": _plain(f.get("subinterpreters")) if "subinterpreters" in f else "?",
            "command": _plain(f.get("command") or f.get("executable")) if f else "?",
            "details": json.dumps(f, indent=1, default=str, sort_keys=True) if f else "",
        })
    # the comparison: cpu-python if measured, else the first workload with a parallel cell
    plottable = [c for c in cells if c.plottable and c.backend != "serial" and c.scaling == "strong"
                 and not c.tag and not c.per_task]
    workloads = [c.workload_label for c in plottable]
    wl = "cpu-python" if "cpu-python" in workloads else (workloads[0] if workloads else None)
    fig = None
    if wl is not None:
        bars: List[plots.Bar] = []
        for interp in order:
            mine = [c for c in plottable if c.interpreter == interp and c.workload_label == wl]
            for be in OrderedDict((c.backend, None) for c in mine):
                of = [c for c in mine if c.backend == be]
                best = _pick([c for c in of if c.start_method is None]) or _pick(of)
                if best:
                    lo, hi = best.speedup_ci
                    bars.append(plots.Bar(interp, best.series_label, best.workers or 1,
                                          best.speedup or 0.0, lo, hi))
        rel: List[Tuple[str, float]] = []
        per_unit = {}
        for interp in order:
            s = next((c for c in cells if c.ok and c.interpreter == interp and c.workload_label == wl
                      and c.backend == "serial" and c.scaling == "strong" and not c.tag), None)
            if s and s.wall_median and s.tasks:
                per_unit[interp] = s.wall_median / s.tasks / (s.size if s.size and s.size > 0 else 1.0)
        if per_unit:
            best_t = min(per_unit.values())
            rel = [(k, v / best_t) for k, v in per_unit.items()] if best_t > 0 else []
        if bars:
            title = "%s: speedup by interpreter" % wl
            fig = figs.add("interp", title,
                           lambda p, t=title, b=bars, r=rel: plots.backend_bars(t, b, p, relative_serial=r),
                           workload=wl)
    return {"rows": rows, "figure": fig, "workload": wl}


def _convoy(doc: Dict[str, Any], figs: _Figures) -> List[Dict[str, Any]]:
    recs = [r for r in _list(_dict(doc.get("experiments")).get("convoy")) if isinstance(r, dict)]
    by: "OrderedDict[str, List[Dict[str, Any]]]" = OrderedDict()
    for r in recs:
        by.setdefault(_str(r.get("interpreter")), []).append(r)
    out = []
    for interp, rs in by.items():
        rows, problems = [], []
        lines: Dict[bool, List[Tuple[int, float, float]]] = {True: [], False: []}
        controls: List[Tuple[str, int, float, float]] = []
        for r in rs:
            cfg = _dict(r.get("config"))
            pinned = r.get("pinned") if isinstance(r.get("pinned"), bool) else cfg.get("pin")
            k = _int(r.get("cpu_threads") if "cpu_threads" in r else cfg.get("cpu_threads"))
            burner = _str(r.get("burner") or cfg.get("burner"), "threads")
            si_cfg = cfg.get("switch_interval")
            med, p99 = _num(r.get("median_s")), _num(r.get("p99_s"))
            where = "one core" if pinned is True else ("all cores" if pinned is False else "?")
            if "error" in r or "unsupported" in r or med is None or p99 is None or k is None:
                problems.append({"what": "%s, %s CPU-bound %s, %s" % (interp, _plain(k), burner, where),
                                 "message": _str(r.get("error") or r.get("unsupported")
                                                 or "the record has no median_s/p99_s numbers")})
                continue
            rows.append({"where": where, "burner": burner, "k": str(k), "run": _plain(r.get("run")),
                         "switch": fmt_s(r.get("switch_interval_s")) + (" (set)" if si_cfg is not None else ""),
                         "median": fmt_s(med), "p99": fmt_s(p99), "max": fmt_s(r.get("max_s")),
                         "n": _plain(r.get("round_trips"))})
            if med <= 0 or p99 <= 0:
                continue
            if si_cfg is not None:
                continue                      # the switch-interval sweep: the table shows it
            if burner == "threads" and isinstance(pinned, bool):
                lines[pinned].append((k, med, p99))
            else:
                what = {"processes": "process", "threads": "thread"}.get(burner, burner) if k == 1 else burner
                controls.append(("%d CPU-bound %s, %s" % (k, what, where), k, med, p99))
        # several runs of one configuration: the median of their medians, the worst p99
        lines = {pin: _merge_runs(pts) for pin, pts in lines.items()}
        merged_ctl: "OrderedDict[Tuple[str, int], List[Tuple[int, float, float]]]" = OrderedDict()
        for label, k, med, p99 in controls:
            merged_ctl.setdefault((label, k), []).append((k, med, p99))
        controls = [(label, k, m, p) for (label, k), pts in merged_ctl.items()
                    for (_, m, p) in _merge_runs(pts)]
        series = []
        if lines[True]:
            series.append(plots.ConvoyLine("one core", lines[True], "#c0392b"))
        if lines[False]:
            series.append(plots.ConvoyLine("all cores", lines[False], "#1f77b4"))
        fig = None
        if series or controls:
            title = "%s: echo round-trip latency" % interp
            fig = figs.add("convoy", title,
                           lambda p, t=title, s=series, c=controls: plots.convoy_plot(t, s, p, c),
                           interpreter=interp)
        out.append({"interpreter": interp, "figure": fig, "rows": rows, "problems": problems})
    return out


def _merge_runs(points: List[Tuple[int, float, float]]) -> List[Tuple[int, float, float]]:
    """(k, median, p99) points, one per run -> one per k: median of medians, worst p99."""
    by: Dict[int, List[Tuple[float, float]]] = {}
    for k, med, p99 in points:
        by.setdefault(k, []).append((med, p99))
    out = []
    for k in sorted(by):
        meds = sorted(m for m, _ in by[k])
        out.append((k, meds[len(meds) // 2], max(p for _, p in by[k])))
    return out


def _gilcheck(doc: Dict[str, Any], figs: _Figures) -> List[Dict[str, Any]]:
    recs = [r for r in _list(_dict(doc.get("experiments")).get("gilcheck")) if isinstance(r, dict)]
    by: "OrderedDict[str, List[Dict[str, Any]]]" = OrderedDict()
    for r in recs:
        by.setdefault(_str(r.get("interpreter")), []).append(r)
    out = []
    for interp, rs in by.items():
        rows, bars, problems = [], [], []
        threshold = None
        for r in rs:
            share = _num(r.get("ticker_share"))
            holds = r.get("holds") if isinstance(r.get("holds"), bool) else None
            label = _str(r.get("label") or r.get("workload"))
            if "error" in r or "unsupported" in r or share is None:
                problems.append({"what": "%s: %s" % (interp, label),
                                 "message": _str(r.get("error") or r.get("unsupported")
                                                 or "the record has no ticker_share")})
                continue
            m = re.search(r"threshold ([0-9.]+)", _str(r.get("method"), ""))
            if m and threshold is None:
                try:
                    threshold = float(m.group(1))
                except ValueError:
                    pass
            method = _str(r.get("method"), "")
            note = "by stall" if method.startswith("longest stall") else (
                "one core" if "one core" in method else "")
            bars.append((label, share, holds, note))
            rows.append({"label": label, "lib": _plain(r.get("lib")),
                         "holds": "?" if holds is None else ("holds the GIL" if holds else "releases it"),
                         "holds_class": "untestable" if holds is None else ("fails" if holds else "holds"),
                         "share": "%.2f" % share, "call": fmt_s(r.get("call_s")),
                         "stall": fmt_s(r.get("longest_stall_s")), "method": _plain(r.get("method"))})
        fig = None
        if bars:
            title = "%s: which calls hold the GIL" % interp
            fig = figs.add("gilcheck", title,
                           lambda p, t=title, b=bars, th=threshold: plots.gilcheck_plot(t, b, p, th),
                           interpreter=interp)
            fig["note"] = ("red: holds the GIL, green: releases it. Calls shorter than two switch "
                           "intervals are judged by the ticker's share%s; longer ones \u201cby "
                           "stall\u201d: held, the ticker would stall for the whole call"
                           % (" (dashed line: %.2f)" % threshold if threshold is not None else ""))
        out.append({"interpreter": interp, "figure": fig, "rows": rows, "problems": problems})
    return out


def _claims(doc: Dict[str, Any], figs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out = []
    for v in _list(doc.get("claims")):
        if not isinstance(v, dict):
            continue
        cid = _str(v.get("id"))
        verdict = _str(v.get("verdict")).lower()
        kinds, workloads = CLAIM_FIGURES.get(cid.upper(), ((), ()))
        links = [{"id": f["id"], "caption": f["caption"]} for f in figs
                 if f["kind"] in kinds or (f["kind"] == "scaling" and f.get("workload") in workloads)]
        ev = v.get("evidence")
        out.append({"id": cid, "claim": _str(v.get("claim"), ""), "verdict": verdict,
                    "verdict_class": verdict if verdict in VERDICTS else "unknown",
                    "summary": _str(v.get("summary"), ""), "links": links,
                    "evidence": json.dumps(ev, indent=1, default=str) if ev not in (None, {}, []) else ""})
    return out


_ENV_ORDER = ("hostname", "os", "machine", "cpu_model", "usable_cores", "cores", "load_avg",
              "memory_bytes", "host_python", "host_executable", "threadwise", "started")


def _environment(doc: Dict[str, Any]) -> List[Dict[str, str]]:
    env = _dict(doc.get("environment"))
    keys = [k for k in _ENV_ORDER if k in env] + sorted(k for k in env if k not in _ENV_ORDER)
    if isinstance(env.get("cores"), dict) and "usable" in env["cores"]:
        keys.remove("usable_cores") if "usable_cores" in keys else None
    rows = []
    for k in keys:
        v = env[k]
        if k == "cores" and isinstance(v, dict):
            for ck in ("usable", "logical", "physical", "affinity", "quota", "derivation"):
                if ck in v:
                    rows.append({"key": "cores: " + ck, "value": _plain(v[ck])})
            for ck in sorted(x for x in v if x not in ("usable", "logical", "physical", "affinity",
                                                        "quota", "derivation")):
                rows.append({"key": "cores: " + str(ck), "value": _plain(v[ck])})
        elif k == "load_avg" and isinstance(v, list):
            nums = [_num(x) for x in v]
            txt = ", ".join("%.2f" % x if x is not None else "?" for x in nums)
            rows.append({"key": "load average at start", "value": txt + " (1, 5, 15 min)"})
        elif k == "memory_bytes":
            rows.append({"key": "memory", "value": fmt_bytes(v)})
        else:
            rows.append({"key": str(k), "value": _plain(v)})
    return rows


def _env_warnings(doc: Dict[str, Any]) -> List[str]:
    env = _dict(doc.get("environment"))
    out = []
    la = _list(env.get("load_avg"))
    usable = _num(env.get("usable_cores")) or _num(_dict(env.get("cores")).get("usable"))
    first = _num(la[0]) if la else None
    if first is not None and usable and first > usable:
        out.append("the load average was %.2f when the run started, above the %d usable cores: "
                   "other work shared the CPUs" % (first, usable))
    if usable is not None and usable < 2:
        out.append("only %d usable core: nothing can run in parallel on this machine" % usable)
    return out


def build(docs: Sequence[Dict[str, Any]], sources: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The page's data: plain strings and numbers, and the figures' SVG."""
    if not docs:
        raise ThreadwiseError("no results to report", "no results file was given",
                              "threadwise report results.json -o report.html")
    names = list(sources or [])
    if len(docs) == 1 and not names:
        names = ["this run"]                       # bench/claims --html: the document in memory
    names += ["run %d" % (i + 1) for i in range(len(names), len(docs))]
    docs = [results.validate(d, n) for d, n in zip(docs, names)]
    doc = results.merge(docs)
    cells = [Cell(c) for c in _list(doc.get("cells")) if isinstance(c, dict)]
    figs = _Figures()
    interp = _interpreters(doc, cells, figs)
    scaling = _scaling(cells, figs)
    convoy = _convoy(doc, figs)
    gil = _gilcheck(doc, figs)
    claims = _claims(doc, figs.all)
    problems = [{"what": c.label, "status": c.status,
                 "status_class": c.status if c.status in ("error", "unsupported") else "error",
                 "message": _str(c.error, "no message was recorded"),
                 "traceback": _str(c.raw.get("traceback"), "")}
                for c in cells if not c.ok]
    problems += [dict({"status": "error", "status_class": "error", "traceback": ""}, **p)
                 for block in convoy + gil for p in block["problems"]]
    warned = [{"what": c.label, "warnings": c.warnings} for c in cells if c.warnings]
    for name, r in ((n, r) for n in ("convoy", "gilcheck")
                    for r in _list(_dict(doc.get("experiments")).get(n)) if isinstance(r, dict)):
        ws = [_str(w) for w in _list(r.get("warnings"))]
        if ws:
            warned.append({"what": "%s experiment: %s" % (name, _str(r.get("interpreter"))), "warnings": ws})
    # one column per results file (files with the same environment share one)
    envs: List[Dict[str, Any]] = []
    for n, d in zip(names, docs):
        rows = _environment(d)
        written = _str(d.get("created"), "")
        if written and d.get("updated") and d.get("updated") != d.get("created"):
            written += " to " + _str(d.get("updated"))
        same = next((e for e in envs if e["rows"] == rows), None)
        if same is not None:
            same["sources"].append(n)
            same["written"].append(written)
        else:
            envs.append({"sources": [n], "rows": rows, "warnings": _env_warnings(d), "written": [written],
                         "config": json.dumps(d.get("config"), indent=1, default=str)
                         if d.get("config") else ""})
    env_keys: List[str] = []
    for e in envs:
        for r in e["rows"]:
            if r["key"] not in env_keys:
                env_keys.append(r["key"])
    env_table = [{"key": k, "values": [next((r["value"] for r in e["rows"] if r["key"] == k), "")
                                       for e in envs]} for k in env_keys]
    written = ["; ".join(x for x in e["written"] if x) for e in envs]
    if any(written):
        env_table.append({"key": "results written", "values": written})
    counts = OrderedDict((s, 0) for s in ("ok", "error", "unsupported"))
    for c in cells:
        counts[c.status if c.status in counts else "error"] += 1
    verdicts = OrderedDict((v, 0) for v in VERDICTS)
    for v in claims:
        verdicts[v["verdict"]] = verdicts.get(v["verdict"], 0) + 1
    empty = not cells and not claims and not convoy and not gil
    env0 = _dict(doc.get("environment"))
    return {
        "version": __version__, "sources": names, "from_files": bool(sources), "empty": empty,
        "host": _str(env0.get("hostname"), ""),
        "created": _str(doc.get("created"), ""), "updated": _str(doc.get("updated"), ""),
        "claims": claims, "verdict_counts": [(k, v) for k, v in verdicts.items() if v],
        "scaling": scaling, "interp": interp, "convoy": convoy, "gilcheck": gil,
        "problems": problems, "warned": warned, "warning_count": sum(len(w["warnings"]) for w in warned),
        "environments": envs, "env_table": env_table, "cells": [c.row() for c in cells], "counts": counts,
        "interpreter_count": len(interp["rows"]), "figures": figs.all,
    }


# --------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
       "script-src 'none'; base-uri 'none'; form-action 'none'")

CSS = """
:root{--fg:#1d2125;--muted:#5f6368;--line:#e1e4e8;--bg:#ffffff;--soft:#f6f8fa;--accent:#1f5fa8;
--holds:#1e7e34;--holds-bg:#e3f4e6;--fails:#b3261e;--fails-bg:#fbe7e6;--partly:#8a5a00;
--partly-bg:#fdf1d6;--untestable:#555b61;--untestable-bg:#eceef1}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,"Helvetica Neue","DejaVu Sans",Arial,sans-serif;overflow-wrap:break-word}
main{max-width:1180px;margin:0 auto;padding:1.25rem 1rem 3rem}
header.top{background:#13233a;color:#f1f4f8;padding:1.4rem 0 1.1rem}
header.top>div{max-width:1180px;margin:0 auto;padding:0 1rem}
header.top h1{margin:0 0 .2rem;font-size:1.55rem;letter-spacing:-.01em}
header.top p{margin:.15rem 0;color:#c3cedb;font-size:.92rem}
header.top code{color:#f1f4f8;background:rgba(255,255,255,.08);padding:0 .25em;border-radius:3px}
.chips{display:flex;flex-wrap:wrap;gap:.4rem;margin-top:.7rem}
.chip{font-size:.8rem;padding:.12rem .55rem;border-radius:999px;background:rgba(255,255,255,.12);color:#f1f4f8}
nav.toc{position:sticky;top:0;z-index:2;background:rgba(255,255,255,.96);border-bottom:1px solid var(--line)}
nav.toc ul{max-width:1180px;margin:0 auto;padding:.45rem 1rem;list-style:none;display:flex;gap:.3rem 1.1rem;
flex-wrap:wrap;font-size:.88rem}
nav.toc a{color:var(--accent);text-decoration:none}
nav.toc a:hover{text-decoration:underline}
h2{font-size:1.3rem;margin:2.2rem 0 .6rem;padding-bottom:.3rem;border-bottom:2px solid var(--line)}
h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
p.lead{color:var(--muted);margin:.2rem 0 .8rem;max-width:75ch}
a{color:var(--accent)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:8px;margin:.5rem 0 1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.key{color:var(--muted);white-space:nowrap}
.badge{display:inline-block;font-size:.78rem;font-weight:700;text-transform:uppercase;letter-spacing:.03em;
padding:.12rem .5rem;border-radius:4px;white-space:nowrap}
.v-holds{color:var(--holds);background:var(--holds-bg)}
.v-fails{color:var(--fails);background:var(--fails-bg)}
.v-partly{color:var(--partly);background:var(--partly-bg)}
.v-untestable,.v-unknown{color:var(--untestable);background:var(--untestable-bg)}
.s-ok{color:var(--holds)}.s-error{color:var(--fails)}.s-unsupported{color:var(--untestable)}
table.claims td.id{font-weight:700;white-space:nowrap;width:2.5rem}
table.claims th:nth-child(3){width:7.5rem}
table.claims td.claim{font-weight:600;min-width:12rem;width:30%}
table.claims td.summary{min-width:16rem}
ul.links{list-style:none;padding:0;margin:.35rem 0 0;display:flex;flex-wrap:wrap;gap:.25rem .5rem;font-size:.82rem}
details{margin:.35rem 0}
details>summary{cursor:pointer;color:var(--accent);font-size:.86rem}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.6rem .7rem;font-size:.78rem;
line-height:1.4;overflow:auto;max-height:28rem;white-space:pre-wrap;word-break:break-word}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,480px),1fr));gap:1rem}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:.5rem .5rem .4rem;background:#fff;
min-width:0}
figure.wide{grid-column:1/-1;max-width:700px}
figure svg{display:block;width:100%;height:auto;margin:0 auto}
td.cmd{min-width:14rem}td.cmd code{word-break:break-all}
table.env td.key{width:14rem}
figure svg text{font-family:"DejaVu Sans",Verdana,Arial,sans-serif!important}
figcaption{font-size:.8rem;color:var(--muted);padding:.3rem .2rem 0}
figcaption b{color:var(--fg);font-weight:600}
.notice{border:1px solid var(--line);border-left:4px solid var(--accent);background:var(--soft);
border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
.notice.empty{border-left-color:#8a5a00;background:#fff8e6}
.warn{border-left-color:#d08c00}
ul.warnings{margin:.1rem 0;padding-left:1.1rem}
ul.warnings li{margin:.1rem 0}
.muted{color:var(--muted)}
.nowrap{white-space:nowrap}
.figerror{color:var(--fails);font-size:.85rem}
footer{margin-top:3rem;color:var(--muted);font-size:.82rem;border-top:1px solid var(--line);padding-top:.8rem}
@media (max-width:640px){
body{font-size:14px}
main{padding:.8rem .6rem 2rem}
header.top{padding:1rem 0 .8rem}
header.top>div{padding:0 .6rem}
header.top h1{font-size:1.3rem}
nav.toc{position:static}
nav.toc ul{padding:.4rem .7rem;gap:.2rem .8rem}
th,td{padding:.35rem .45rem}
table{font-size:.84rem}
table.claims td.claim,table.claims td.summary{min-width:0}
table.claims thead{display:none}
table.claims tr{display:block;border-bottom:1px solid var(--line);padding:.35rem 0}
table.claims td,table.claims td.claim,table.claims td.id{display:block;width:auto;border:0;padding:.15rem .6rem}
figure{padding:.3rem}
}
@media print{nav.toc{position:static}figure{break-inside:avoid}}
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="threadwise {{ m.version }}">
<title>threadwise report{% if m.host %} – {{ m.host }}{% endif %}</title>
<style>{{ css }}</style>
</head>
<body>
<header class="top"><div>
<h1>threadwise report</h1>
<p>Will threads make this Python code faster? Measured{% if m.host %} on <code>{{ m.host }}</code>{% endif %}{% if m.updated %}, {{ m.updated }}{% endif %}.</p>
{% if m.from_files %}<p>From {% for s in m.sources %}<code>{{ s }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
<div class="chips">
<span class="chip">{{ m.counts.ok }} cells measured</span>
{% if m.counts.error %}<span class="chip">{{ m.counts.error }} failed</span>{% endif %}
{% if m.counts.unsupported %}<span class="chip">{{ m.counts.unsupported }} unsupported</span>{% endif %}
<span class="chip">{{ m.interpreter_count }} interpreter{{ "" if m.interpreter_count == 1 else "s" }}</span>
{% for v, n in m.verdict_counts %}<span class="chip">{{ n }} {{ v }}</span>{% endfor %}
{% if m.warning_count %}<span class="chip">{{ m.warning_count }} instability warning{{ "" if m.warning_count == 1 else "s" }}</span>{% endif %}
</div>
</div></header>
<nav class="toc" aria-label="contents"><ul>
{% if m.claims %}<li><a href="#claims">Claims</a></li>{% endif %}
{% if m.scaling %}<li><a href="#scaling">Speedup</a></li>{% endif %}
{% if m.interp.rows %}<li><a href="#interpreters">Interpreters</a></li>{% endif %}
{% if m.convoy %}<li><a href="#convoy">Convoy latency</a></li>{% endif %}
{% if m.gilcheck %}<li><a href="#gilcheck">GIL check</a></li>{% endif %}
{% if m.problems %}<li><a href="#problems">Problems ({{ m.problems|length }})</a></li>{% endif %}
{% if m.warned %}<li><a href="#warnings">Warnings ({{ m.warning_count }})</a></li>{% endif %}
<li><a href="#environment">Environment</a></li>
{% if m.cells %}<li><a href="#cells">All cells</a></li>{% endif %}
</ul></nav>
<main>
{% if m.empty %}
<div class="notice empty" id="nothing" role="status">
<strong>Nothing to show.</strong> {% if m.from_files %}{% for s in m.sources %}<code>{{ s }}</code>{% if not loop.last %}, {% endif %}{% endfor %} {{ "is a valid results file" if m.sources|length == 1 else "are valid results files" }} with no measured cells, claims or experiments in {{ "it" if m.sources|length == 1 else "them" }}.{% else %}This run measured no cells, claims or experiments.{% endif %} Measure first, e.g. <code>threadwise bench --quick -o results.json</code> or <code>threadwise claims -o results.json</code>, then <code>threadwise report results.json -o report.html</code>.
</div>
{% endif %}

{% if m.claims %}
<section id="claims">
<h2>Claims and verdicts</h2>
<p class="lead">Each claim tested on this machine. The figures behind a verdict are linked under it; the numbers it used are in its evidence.</p>
<div class="scroll"><table class="claims" id="verdicts">
<thead><tr><th>#</th><th>Claim</th><th>Verdict</th><th>What was measured</th></tr></thead>
<tbody>
{% for c in m.claims %}
<tr id="claim-{{ loop.index }}" data-claim="{{ c.id }}">
<td class="id">{{ c.id }}</td>
<td class="claim">{{ c.claim }}</td>
<td><span class="badge v-{{ c.verdict_class }}">{{ c.verdict }}</span></td>
<td class="summary">{{ c.summary }}
{% if c.links %}<ul class="links">{% for l in c.links %}<li><a href="#{{ l.id }}">{{ l.caption }}</a></li>{% endfor %}</ul>{% endif %}
{% if c.evidence %}<details><summary>evidence</summary><pre>{{ c.evidence }}</pre></details>{% endif %}
</td>
</tr>
{% endfor %}
</tbody></table></div>
</section>
{% endif %}

{% macro fig(f, wide=False) -%}
<figure id="{{ f.id }}" class="{{ 'wide' if wide else '' }}" data-kind="{{ f.kind }}">
{% if f.svg %}{{ f.svg }}{% else %}<p class="figerror">This figure could not be drawn: {{ f.error }}</p>{% endif %}
<figcaption><b>{{ f.caption }}</b>{% if f.note %}. {{ f.note }}{% endif %}</figcaption>
</figure>
{%- endmacro %}

{% if m.scaling %}
<section id="scaling">
<h2>Speedup against workers</h2>
<p class="lead">One plot per interpreter and workload: the median speedup over the serial run, a line per backend, its 95% confidence interval as a band, and the ideal (speedup = workers) dashed. Above 1 the backend helps; on the dashed line it uses every worker fully.</p>
<div class="grid">
{% for f in m.scaling %}{{ fig(f) }}
{% endfor %}
</div>
</section>
{% endif %}

{% if m.interp.rows %}
<section id="interpreters">
<h2>Interpreters</h2>
{% if m.interp.figure %}
<p class="lead">The same workload ({{ m.interp.workload }}) on every interpreter: the speedup of each backend at the most workers measured, with 95% confidence intervals{% if m.interp.rows|length > 1 %}, and how fast each runs it on one thread{% endif %}.</p>
<div class="grid">{{ fig(m.interp.figure, True) }}</div>
{% endif %}
<div class="scroll"><table id="interpreter-facts">
<thead><tr><th>Interpreter</th><th>Implementation</th><th>Version</th><th>GIL</th><th>Free-threaded build</th><th>Switch interval</th><th>Start methods</th><th>Subinterpreters</th><th>Command</th></tr></thead>
<tbody>
{% for r in m.interp.rows %}
<tr><td class="nowrap"><strong>{{ r.label }}</strong></td><td>{{ r.implementation }}</td><td>{{ r.version }}</td><td>{{ r.gil }}</td><td>{{ r.free_threaded }}</td><td class="num">{{ r.switch }}</td><td>{{ r.start_methods }}{% if r.default_start not in ("?", "–") %} (default {{ r.default_start }}){% endif %}</td><td>{{ r.subinterpreters }}</td><td class="cmd"><code>{{ r.command }}</code>{% if r.details %}<details><summary>all facts</summary><pre>{{ r.details }}</pre></details>{% endif %}</td></tr>
{% endfor %}
</tbody></table></div>
</section>
{% endif %}

{% if m.convoy %}
<section id="convoy">
<h2>Convoy: I/O latency beside CPU-bound threads</h2>
<p class="lead">An echo round trip, timed from a thread while 0, 1, 2 other threads burn CPU in pure Python. With a GIL the I/O thread waits up to a switch interval for the GIL each time it wakes; pinned to one core it also waits for the CPU. Median solid, 99th percentile dashed; a CPU-bound process instead of a thread is the control (no GIL shared).</p>
{% for b in m.convoy %}
{% if b.figure %}<div class="grid">{{ fig(b.figure, True) }}</div>{% endif %}
{% if b.rows %}
<div class="scroll"><table>
<thead><tr><th>Interpreter</th><th>Cores</th><th>Burner</th><th class="num">CPU-bound</th><th class="num">Switch interval</th><th class="num">Median</th><th class="num">p99</th><th class="num">Max</th><th class="num">Round trips</th><th class="num">Run</th></tr></thead>
<tbody>{% for r in b.rows %}<tr><td>{{ b.interpreter }}</td><td>{{ r.where }}</td><td>{{ r.burner }}</td><td class="num">{{ r.k }}</td><td class="num">{{ r.switch }}</td><td class="num">{{ r.median }}</td><td class="num">{{ r.p99 }}</td><td class="num">{{ r.max }}</td><td class="num">{{ r.n }}</td><td class="num">{{ r.run }}</td></tr>{% endfor %}</tbody>
</table></div>
{% endif %}
{% endfor %}
</section>
{% endif %}

{% if m.gilcheck %}
<section id="gilcheck">
<h2>Which calls hold the GIL</h2>
<p class="lead">Each call runs in a loop beside a pure-Python ticker thread. If the call releases the GIL, the ticker keeps its speed on another core and never stalls for long; if it holds it, the ticker slows down and stalls.</p>
{% for b in m.gilcheck %}
{% if b.figure %}<div class="grid">{{ fig(b.figure, True) }}</div>{% endif %}
{% if b.rows %}
<div class="scroll"><table>
<thead><tr><th>Call</th><th>Library</th><th>Verdict</th><th class="num">Ticker share</th><th class="num">One call</th><th class="num">Longest stall</th><th>Decided by</th></tr></thead>
<tbody>{% for r in b.rows %}<tr><td>{{ r.label }}</td><td>{{ r.lib }}</td><td><span class="badge v-{{ r.holds_class }}">{{ r.holds }}</span></td><td class="num">{{ r.share }}</td><td class="num">{{ r.call }}</td><td class="num">{{ r.stall }}</td><td class="muted">{{ r.method }}</td></tr>{% endfor %}</tbody>
</table></div>
{% endif %}
{% endfor %}
</section>
{% endif %}

{% if m.problems %}
<section id="problems">
<h2>Problems</h2>
<p class="lead">Cells and experiments that did not produce numbers, with what they said.</p>
<div class="scroll"><table>
<thead><tr><th>What</th><th>Status</th><th>Message</th></tr></thead>
<tbody>{% for p in m.problems %}<tr><td>{{ p.what }}</td><td class="s-{{ p.status_class or 'error' }}">{{ p.status or "error" }}</td><td>{{ p.message }}{% if p.traceback %}<details><summary>traceback</summary><pre>{{ p.traceback }}</pre></details>{% endif %}</td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% endif %}

{% if m.warned %}
<section id="warnings">
<h2>Instability warnings</h2>
<p class="lead">{{ m.warned|length }} measurement{{ "" if m.warned|length == 1 else "s" }} carry {{ m.warning_count }} warning{{ "" if m.warning_count == 1 else "s" }}: their numbers are less trustworthy than the rest. In the plots they have open markers.</p>
<div class="scroll"><table>
<thead><tr><th>Measurement</th><th>Warnings</th></tr></thead>
<tbody>{% for w in m.warned %}<tr><td>{{ w.what }}</td><td><ul class="warnings">{% for x in w.warnings %}<li>{{ x }}</li>{% endfor %}</ul></td></tr>{% endfor %}</tbody>
</table></div>
</section>
{% endif %}

<section id="environment">
<h2>Environment</h2>
<p class="lead">Where the numbers come from{% if m.environments|length > 1 %}: one column per results file{% endif %}. Every measurement carries it; a busy or small machine makes speedups smaller and noisier.</p>
{% for e in m.environments %}{% for w in e.warnings %}<div class="notice warn">{% if m.environments|length > 1 %}<code>{{ e.sources|join(", ") }}</code>: {% endif %}{{ w }}</div>{% endfor %}{% endfor %}
{% if m.env_table %}
<div class="scroll"><table class="env" id="environment-table">
{% if m.environments|length > 1 %}<thead><tr><th></th>{% for e in m.environments %}<th><code>{{ e.sources|join(", ") }}</code></th>{% endfor %}</tr></thead>{% endif %}
<tbody>{% for r in m.env_table %}<tr><td class="key">{{ r.key }}</td>{% for v in r["values"] %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
{% else %}<p class="muted">No environment was recorded in {{ "this file" if m.sources|length == 1 else "these files" }}.</p>
{% endif %}
{% for e in m.environments %}{% if e.config %}<details><summary>run configuration{% if m.environments|length > 1 %} of {{ e.sources|join(", ") }}{% endif %}</summary><pre>{{ e.config }}</pre></details>{% endif %}{% endfor %}
</section>

{% if m.cells %}
<section id="cells">
<h2>All cells</h2>
<details><summary>{{ m.cells|length }} cells: the numbers behind the plots</summary>
<div class="scroll"><table>
<thead><tr><th>Interpreter</th><th>Workload</th><th>Backend</th><th class="num">Workers</th><th>Scaling</th><th>Status</th><th class="num">Wall median</th><th class="num">95% CI</th><th class="num">Speedup</th><th class="num">95% CI</th><th class="num">CPU/wall</th><th class="num">n</th><th class="num">Warnings</th></tr></thead>
<tbody>{% for c in m.cells %}<tr><td>{{ c.interpreter }}</td><td>{{ c.workload }}</td><td>{{ c.backend }}{% if c.start_method %}/{{ c.start_method }}{% endif %}</td><td class="num">{{ c.workers }}</td><td>{{ c.scaling }}</td><td class="s-{{ c.status_class }}">{{ c.status }}</td><td class="num">{{ c.wall }}</td><td class="num">{{ c.wall_ci }}</td><td class="num">{{ c.speedup }}</td><td class="num">{{ c.speedup_ci }}</td><td class="num">{{ c.parallelism }}</td><td class="num">{{ c.n }}</td><td class="num">{{ c.warnings }}</td></tr>{% endfor %}</tbody>
</table></div>
</details>
</section>
{% endif %}

<footer>Made by threadwise {{ m.version }}. This page is self-contained: no scripts, no network.</footer>
</main>
</body>
</html>
"""


def _template() -> Any:
    try:
        import jinja2
    except ImportError as e:  # pragma: no cover - jinja2 is a dependency
        raise ThreadwiseError("the HTML report needs Jinja2, which is not installed (%s)" % e,
                              "threadwise was installed without its dependencies",
                              "pip install jinja2")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.from_string(TEMPLATE)


def render(docs: Sequence[Dict[str, Any]], sources: Optional[Sequence[str]] = None) -> str:
    """The report page as a string."""
    from markupsafe import Markup
    model = build(docs, sources)
    # CSS is a constant of this module (never from a results file): trusted, not escaped
    return str(_template().render(m=model, css=Markup(CSS), csp=CSP))


def _check_writable(path: str) -> Path:
    return results.check_writable(path, "the HTML report", "-o ./report.html")


def write_report(docs: List[Dict[str, Any]], path: str, sources: Optional[Sequence[str]] = None) -> None:
    """Render ``docs`` (merged, later cells win) into one self-contained HTML file at ``path``.

    Written atomically (temp file + rename): a crash leaves the previous report."""
    p = _check_writable(path)
    page = render(docs, sources)
    _io.write_atomic(p, page, "the HTML report", "-o ./report.html")
