"""Terminal views: progress while measuring, tables of speedups and verdicts after.

Reads the results model (``model.py``: ResultsDocument, Cell, Claim, InterpreterFacts);
writes to a rich Console (stderr for progress, stdout for tables).  Nothing here
measures or computes a verdict.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from .model import Cell, Claim, Environment, InterpreterFacts, ResultsDocument

VERDICT_STYLE = {"holds": "bold green", "fails": "bold red", "partly": "bold yellow",
                 "untestable": "dim", "inconclusive": "bold magenta"}
GIL_WORD = {True: "on", False: "off", None: "?"}


class LineProgress:
    """Progress for a log (CI, a pipe, a file): one line per step, ``[3/40] 12 s  what``.

    The subset of rich's Progress API the commands use (add_task, update, advance, a
    context manager), so a run without a terminal still shows where it is."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total: Dict[int, Optional[int]] = {}
        self.done: Dict[int, int] = {}
        self.names: Dict[int, str] = {}
        self.t0 = time.monotonic()

    def add_task(self, description: str, total: Optional[int] = None, **fields: str) -> int:
        task = len(self.total)
        self.total[task], self.done[task], self.names[task] = total, 0, description
        return task

    def update(self, task: int, cell: str = "", **_: object) -> None:
        if cell:
            self.console.print("[%d/%s] %3.0f s  %s: %s" % (
                self.done[task] + 1, self.total[task] or "?", time.monotonic() - self.t0,
                self.names[task], escape(cell)), highlight=False, soft_wrap=True)

    def advance(self, task: int, steps: int = 1) -> None:
        self.done[task] += steps

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.console.print("%s: %s steps in %.0f s" % (
            ", ".join(self.names.values()), ", ".join(str(d) for d in self.done.values()),
            time.monotonic() - self.t0), highlight=False, soft_wrap=True)


def progress(console: Console) -> Any:
    """A live bar in a terminal; a line per step in a log."""
    if not console.is_terminal:
        return LineProgress(console)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[cell]}"), console=console,
                    transient=False)


def _fmt_speedup(cell: Cell) -> str:
    if cell.status == "unsupported":
        return "[dim]n/a[/]"
    if not cell.ok:
        return "[red]error[/]"
    sp = cell.speedup
    if sp is None:
        return "?"
    lo, hi = cell.speedup_ci95 or (sp, sp)
    warn = " [yellow]![/]" if any("standard deviation" in w for w in cell.warnings) else ""
    style = "green" if sp >= 1.3 else ("red" if sp < 0.9 else "")
    text = "%.2fx" % sp
    return ("[%s]%s[/]" % (style, text) if style else text) + " [dim]%.2f-%.2f[/]" % (lo, hi) + warn


def _machine_line(env: Environment) -> str:
    return "%s; %s; load average at start %s" % (
        escape(env.cpu_model or "?"), escape(str(env.cores.get("derivation", "?"))),
        ", ".join("%.2f" % x for x in env.load_avg or ()))


def _interp_table(interp: str, cs: Sequence[Cell], info: InterpreterFacts) -> Table:
    workers = sorted({c.workers for c in cs if c.backend != "serial"})
    title = "%s  (%s %s, GIL %s)" % (interp, info.implementation or "?", info.version or "?",
                                     GIL_WORD[info.gil_enabled])
    t = Table(title="speedup against serial: " + escape(title), title_justify="left",
              caption="median speedup over serial (same total work), 95% interval in grey; "
                      "! = unstable (spread >= 10%); CPU/wall at the most workers",
              caption_justify="left")
    for col in ["workload", "backend", "serial"] + ["x%d" % w for w in workers] + ["CPU/wall"]:
        t.add_column(col, justify="left" if col in ("workload", "backend") else "right")
    rows: "OrderedDict[Tuple[str, Optional[str]], Dict[int, Cell]]" = OrderedDict()
    serial: Dict[str, Cell] = {}
    b: Optional[str]
    for c in cs:
        label = c.label + (" (%s)" % c.tag if c.tag else "")
        if c.backend == "serial":
            serial[label] = c
            rows.setdefault((label, None), {})
            continue
        b = c.backend + ("/" + c.start_method if c.start_method else "")
        rows.setdefault((label, b), {})[c.workers] = c
    last = None
    for (label, b), r in rows.items():
        if b is None and any(k[0] == label and k[1] for k in rows):
            continue
        base = serial.get(label)
        base_txt = ""
        if label != last:
            base_txt = ("%.1f ms" % (1000 * base.wall_median)
                        if base is not None and base.wall_median is not None else "[red]error[/]")
        top = r[max(r)] if r else base
        par = "%.2f" % top.parallelism if top is not None and top.parallelism is not None else ""
        t.add_row(escape(label) if label != last else "", b or "serial", base_txt,
                  *[_fmt_speedup(r[w]) if w in r else "" for w in workers], par)
        last = label
    return t


def bench_tables(doc: ResultsDocument, console: Console) -> None:
    """One table per interpreter: a row per (workload, backend), a column per worker count."""
    by_interp: "OrderedDict[str, List[Cell]]" = OrderedDict()
    for c in doc.cells:
        by_interp.setdefault(c.interpreter, []).append(c)
    for interp, cs in by_interp.items():
        console.print(_interp_table(interp, cs, doc.facts(interp)))
    if len(by_interp) > 1:
        compare_interpreters(doc, console)
    errors = [c for c in doc.cells if c.status == "error"]
    for c in errors[:10]:
        console.print("[red]error[/] %s %s %s x%d: %s" % (
            escape(c.interpreter), escape(c.workload), c.backend, c.workers,
            escape((c.error or "?").splitlines()[0] if (c.error or "?").strip() else "?")))
    if len(errors) > 10:
        console.print("[red]... and %d more errors (see the results file)[/]" % (len(errors) - 10))
    unstable = sum(1 for c in doc.cells if c.warnings)
    if unstable:
        console.print("[yellow]%d of %d cells carry instability warnings (see \"warnings\" in the "
                      "results file)[/]" % (unstable, len(doc.cells)))
    console.print("[dim]%s[/]" % _machine_line(doc.environment))


def _per_unit(c: Cell) -> Optional[float]:
    """Serial seconds per unit of work (comparable across interpreters)."""
    if not c.ok or not c.size or not c.tasks or c.wall_median is None:
        return None
    return c.wall_median / (c.tasks * c.size)


def compare_interpreters(doc: ResultsDocument, console: Console) -> None:
    """Interpreters side by side: serial time and the speedup at the most workers."""
    cells = [c for c in doc.cells if not c.tag]
    interps = list(OrderedDict((c.interpreter, None) for c in cells))
    top = max((c.workers for c in cells), default=1)
    t = Table(title="interpreters side by side: serial time for the same work (first = 1.00x), "
              "and speedup with %d workers" % top, title_justify="left")
    t.add_column("workload")
    t.add_column("backend")
    for i in interps:
        gil = {True: "GIL", False: "no GIL", None: "?"}[doc.facts(i).gil_enabled]
        t.add_column("%s\n%s" % (escape(i), gil), justify="right")
    rows: "OrderedDict[Tuple[str, str], Dict[str, Cell]]" = OrderedDict()
    for c in cells:
        b = c.backend + ("/" + c.start_method if c.start_method else "")
        if c.backend == "serial" or c.workers == top:
            rows.setdefault((c.label, b), {})[c.interpreter] = c
    for (w, b), r in rows.items():
        vals = []
        ref = next((u for u in (_per_unit(r[i]) for i in interps if i in r) if u), None)
        for i in interps:
            cell = r.get(i)
            if cell is None:
                vals.append("")
            elif b == "serial":
                u = _per_unit(cell)
                vals.append("[red]error[/]" if u is None else "time %.2fx" % (u / ref) if ref else "")
            else:
                vals.append(_fmt_speedup(cell))
        t.add_row(escape(w), b, *vals)
    console.print(t)


def claims_table(claims: Sequence[Claim], console: Console, doc: Optional[ResultsDocument] = None) -> None:
    t = Table(title="The blog post's claims, tested on this machine", title_justify="left",
              show_lines=True)
    t.add_column("id")
    t.add_column("claim", max_width=34)
    t.add_column("verdict")
    t.add_column("what this run measured", max_width=70)
    for c in claims:
        t.add_row(c.id, escape(c.claim), "[%s]%s[/]" % (VERDICT_STYLE.get(c.verdict, ""), c.verdict),
                  escape(c.summary))
    console.print(t)
    if doc is not None:
        console.print("[dim]%s. Thresholds: docs/claims.md[/]" % _machine_line(doc.environment))


def interpreters_table(rows: Sequence[InterpreterFacts], console: Console) -> None:
    t = Table(title="Interpreters found", title_justify="left",
              caption="parallel = CPU time / wall time of 2 pure-Python threads spinning for 1 s "
                      "(2.0: both ran at once; 1.0: one at a time)", caption_justify="left")
    for col in ("label", "command", "implementation", "free-threaded", "GIL", "sub-interp.",
                "start methods", "parallel"):
        t.add_column(col, overflow="fold")
    for r in rows:
        if r.error:
            t.add_row(escape(r.label), escape(r.command), "[red]error[/]", "", "", "", "",
                      escape((r.error.splitlines() or [""])[0][:80]))
            continue
        par = (r.parallel_probe or {}).get("parallelism")
        t.add_row(escape(r.label), escape(r.command),
                  "%s %s" % (r.implementation or "?", r.version or "?"),
                  "yes" if r.free_threaded else "no",
                  {True: "on", False: "[green]off[/]", None: "?"}[r.gil_enabled],
                  "yes" if r.subinterpreters else "no",
                  "/".join(r.start_methods) or "none",
                  "%.2f" % par if isinstance(par, (int, float)) else "")
    console.print(t)


# --------------------------------------------------------------------------
# Markdown (--markdown FILE: a CI step summary, e.g. $GITHUB_STEP_SUMMARY)
# --------------------------------------------------------------------------
def _md(text: object) -> str:
    """A table cell: no pipes or line breaks from the data."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _md_speedup(c: Optional[Cell]) -> str:
    if c is None:
        return ""
    if not c.ok:
        return "n/a" if c.status == "unsupported" else "error"
    lo, hi = c.speedup_ci95 or (c.speedup, c.speedup)
    return "%.2fx (%.2f-%.2f)%s" % (c.speedup or 0, lo or 0, hi or 0, " busy" if c.busy else "")


def bench_markdown(doc: ResultsDocument) -> str:
    """The speedup tables as GitHub-flavoured Markdown."""
    out = ["## threadwise bench", ""]
    by_interp: "OrderedDict[str, List[Cell]]" = OrderedDict()
    for c in doc.cells:
        by_interp.setdefault(c.interpreter, []).append(c)
    for interp, cs in by_interp.items():
        f = doc.facts(interp)
        workers = sorted({c.workers for c in cs if c.backend != "serial"})
        out += ["### %s (%s %s, GIL %s)" % (_md(interp), _md(f.implementation or "?"),
                                            _md(f.version or "?"), GIL_WORD[f.gil_enabled]), "",
                "| workload | backend | " + " | ".join("x%d" % w for w in workers) + " |",
                "|---|---|" + "---:|" * len(workers)]
        rows: "OrderedDict[Tuple[str, str], Dict[int, Cell]]" = OrderedDict()
        for c in cs:
            if c.backend != "serial":
                rows.setdefault((c.label, c.series), {})[c.workers] = c
        for (label, series), r in rows.items():
            out.append("| %s | %s | %s |" % (_md(label), _md(series),
                                            " | ".join(_md_speedup(r.get(w)) for w in workers)))
        out.append("")
    out.append("Median speedup over serial (95%% interval); %s" % _md(
        _machine_line(doc.environment).replace("[", "(").replace("]", ")")))
    return "\n".join(out) + "\n"


def claims_markdown(claims: Sequence[Claim], doc: Optional[ResultsDocument] = None) -> str:
    out = ["## threadwise claims", "", "| id | claim | verdict | what this run measured |",
           "|---|---|---|---|"]
    for c in claims:
        out.append("| %s | %s | **%s** | %s |" % (c.id, _md(c.claim), c.verdict, _md(c.summary)))
    if doc is not None:
        out += ["", _md(_machine_line(doc.environment))]
    return "\n".join(out) + "\n"

