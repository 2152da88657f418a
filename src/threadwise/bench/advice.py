"""``threadwise advise FN --python CMD ...``: your function, measured in each interpreter.

    FN + items --> a user workload (config.UserFunction: a .py file is shipped to the
    target as source, a module is imported there by name)
        --> per interpreter, a small bench matrix (plan/runner): serial, then threads,
            processes and sub-interpreters x the usable cores, REPEATS timed runs each,
            in a fresh agent inside that interpreter (nothing is installed there)
        --> per interpreter: the backend whose whole 95% speedup interval beats serial by
            10% (the same GAIN as auto), else serial; "inconclusive" when the best one's
            interval straddles that line or the machine was busy while it ran
        --> one table, interpreters side by side, and a recommendation per interpreter
            ("on 3.13t: threads x2, 1.9x; on 3.11: processes x2, 1.8x")

The function's module is imported by the target interpreter: when that fails (a missing
dependency there), the interpreter's row says which module and why, in one line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .. import environment
from .config import BenchConfig, WorkloadSpec
from .interpreters import Interpreter
from .model import Cell, ResultsDocument
from .plan import plan
from .runner import Runner
from . import results

BACKENDS = ("threads", "processes", "interpreters")
#: a parallel backend must beat serial by this factor over its whole interval (auto's GAIN)
WIN = 1.0 / 0.9
REPEATS = 3
MAX_ITEMS = 64


@dataclass
class InterpreterAdvice:
    """The recommendation for one interpreter, and the cells behind it."""
    interpreter: str
    version: str = ""
    gil: Optional[bool] = None
    backend: Optional[str] = None       # None: inconclusive or failed
    workers: int = 1
    speedup: Optional[float] = None
    verdict: str = ""                   # "recommended", "inconclusive", "error"
    sentence: str = ""
    cells: Dict[str, Cell] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"interpreter": self.interpreter, "version": self.version, "gil_enabled": self.gil,
                "backend": self.backend, "workers": self.workers, "speedup": self.speedup,
                "verdict": self.verdict, "sentence": self.sentence,
                "cells": {b: c.to_json() for b, c in self.cells.items()}}


def advise_across(function: str, items: Sequence[Any], pythons: Sequence[str],
                  workers: Optional[int] = None, backends: Optional[Sequence[str]] = None,
                  repeats: int = REPEATS, max_items: Optional[int] = None,
                  on_step: Any = None) -> List[InterpreterAdvice]:
    """Measure ``function`` (``file.py:fn`` or ``pkg.mod:fn``) on ``items`` in every interpreter."""
    sample = list(items)[:max_items or MAX_ITEMS]
    n = workers or max(2, environment.cores().usable)
    interps = [Interpreter.parse(p) for p in pythons]
    cfg = BenchConfig(interpreters=interps, workloads=[WorkloadSpec.parse(function, sample)],
                      backends=list(backends or BACKENDS), workers=[n], repeats=repeats, warmups=1)
    doc: ResultsDocument = results.new_document(environment.host(), cfg.to_json())
    runner = Runner(cfg, doc, None, on_start=(lambda s: on_step(s.title)) if on_step else None)
    doc = runner.run(plan(cfg))
    return [_advice(doc, i.label) for i in interps]


def _advice(doc: ResultsDocument, label: str) -> InterpreterAdvice:
    facts = doc.facts(label)
    a = InterpreterAdvice(label, facts.version or "?", facts.gil_enabled)
    cells = [c for c in doc.cells if c.interpreter == label]
    a.cells = {c.backend: c for c in cells}
    serial = a.cells.get("serial")
    if serial is None or not serial.ok:
        why = (serial.error if serial is not None else facts.error) or "it could not be measured"
        a.verdict, a.sentence = "error", "on %s: not measured: %s" % (label, _first_line(why))
        return a
    busy = [c for c in cells if c.busy]
    ok = [c for c in cells if c.ok and c.backend != "serial" and c.speedup is not None]
    best = max(ok, key=lambda c: c.speedup or 0.0, default=None)
    if busy:
        share = max((c.others_share or 0) for c in busy)
        a.verdict = "inconclusive"
        a.sentence = ("on %s: inconclusive: other processes used %.0f%% of the CPUs while it was "
                      "measured; rerun on a quiet machine" % (label, 100 * share))
        return a
    if best is None or (best.speedup_ci95 or (0, 0))[1] < WIN:
        a.backend, a.verdict = "serial", "recommended"
        a.sentence = "on %s: serial (%s)" % (label, _others(ok) or "no parallel backend ran")
        return a
    lo = (best.speedup_ci95 or (0, 0))[0]
    a.workers, a.speedup = best.workers, best.speedup
    if lo < WIN:
        a.verdict = "inconclusive"
        a.sentence = ("on %s: inconclusive: %s x%d %.2fx, but its interval [%.2f-%.2f] reaches "
                      "below %.2fx; rerun with more repeats" % (
                          label, best.backend, best.workers, best.speedup or 0, lo,
                          (best.speedup_ci95 or (0, 0))[1], WIN))
        return a
    a.backend, a.verdict = best.backend, "recommended"
    a.sentence = "on %s: %s x%d, %.2fx [%.2f-%.2f]" % (
        label, best.backend, best.workers, best.speedup or 0, lo, (best.speedup_ci95 or (0, 0))[1])
    return a


def _others(ok: Sequence[Cell]) -> str:
    return ", ".join("%s %.2fx" % (c.backend, c.speedup or 0) for c in ok)


def _first_line(text: str) -> str:
    """The line of an error that names the cause (e.g. the module that failed to import)."""
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    for x in lines:
        if "Error" in x or "error" in x:
            return x[:300]
    return (lines[0] if lines else text)[:300]


def print_table(advice: Sequence[InterpreterAdvice], function: str, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .._format import fmt_s
    t = Table(title="threadwise advise %s, in every interpreter" % escape(function),
              title_justify="left", caption="speedup over serial with its 95% interval; "
              "recommended: beats serial by 10% over its whole interval", caption_justify="left")
    for col in ("interpreter", "GIL", "serial per item") + BACKENDS + ("recommendation",):
        t.add_column(col, justify="right" if col in BACKENDS else "left", overflow="fold")
    for a in advice:
        serial = a.cells.get("serial")
        per_item = (fmt_s(serial.wall_median / max(1, int(serial.size or 1)))
                    if serial is not None and serial.wall_median is not None else "-")
        cols = []
        for b in BACKENDS:
            c = a.cells.get(b)
            if c is None:
                cols.append("")
            elif not c.ok:
                cols.append("n/a" if c.status == "unsupported" else "error")
            else:
                lo, hi = c.speedup_ci95 or (c.speedup, c.speedup)
                cols.append("x%d %.2fx [dim]%.2f-%.2f[/]" % (c.workers, c.speedup or 0, lo or 0, hi or 0))
        gil = {True: "on", False: "off", None: "?"}[a.gil]
        short = ("%s x%d" % (a.backend, a.workers) if a.backend not in (None, "serial")
                 else a.backend or a.verdict)
        t.add_row(escape(a.interpreter), gil, per_item, *cols, escape(short))
    console.print(t)
    for a in advice:
        console.print("[bold]%s[/]" % escape(a.sentence), highlight=False)
