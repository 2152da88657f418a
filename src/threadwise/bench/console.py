"""Terminal views: progress while measuring, tables of speedups and verdicts after.

Reads results documents (``results.py``) and claims (``claims.py``); writes to
a rich Console (stderr for progress, stdout for tables).  Nothing here
measures or computes a verdict.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

VERDICT_STYLE = {"holds": "bold green", "fails": "bold red", "partly": "bold yellow",
                 "untestable": "dim"}


def progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[cell]}"), console=console,
                    transient=False)


def _fmt_speedup(cell: Dict[str, Any]) -> str:
    if cell.get("status") == "unsupported":
        return "[dim]n/a[/]"
    if cell.get("status") != "ok":
        return "[red]error[/]"
    sp = cell.get("speedup")
    if sp is None:
        return "?"
    lo, hi = cell.get("speedup_ci95") or (sp, sp)
    warn = " [yellow]![/]" if any("standard deviation" in w for w in cell.get("warnings", [])) else ""
    style = "green" if sp >= 1.3 else ("red" if sp < 0.9 else "")
    text = "%.2fx" % sp
    return ("[%s]%s[/]" % (style, text) if style else text) + " [dim]%.2f-%.2f[/]" % (lo, hi) + warn


def bench_tables(doc: Dict[str, Any], console: Console) -> None:
    """One table per interpreter: a row per (workload, backend), a column per worker count."""
    cells = doc.get("cells", [])
    by_interp: "OrderedDict[str, List[Dict[str, Any]]]" = OrderedDict()
    for c in cells:
        by_interp.setdefault(c["interpreter"], []).append(c)
    for interp, cs in by_interp.items():
        info = doc.get("interpreters", {}).get(interp, {})
        workers = sorted({c["workers"] for c in cs if c["backend"] != "serial"})
        title = "%s  (%s %s, GIL %s)" % (interp, info.get("implementation", "?"),
                                         info.get("version", "?"),
                                         {True: "on", False: "off"}.get(info.get("gil_enabled"), "?"))
        t = Table(title="speedup against serial: " + escape(title), title_justify="left",
                  caption="median speedup over serial (same total work), 95% interval in grey; "
                          "! = unstable (spread >= 10%); CPU/wall at the most workers",
                  caption_justify="left")
        t.add_column("workload")
        t.add_column("backend")
        t.add_column("serial", justify="right")
        for w in workers:
            t.add_column("x%d" % w, justify="right")
        t.add_column("CPU/wall", justify="right")
        rows: "OrderedDict[tuple, Dict[Any, Dict[str, Any]]]" = OrderedDict()
        serial: Dict[str, Dict[str, Any]] = {}
        for c in cs:
            label = c.get("workload_label", c["workload"])
            if c.get("tag"):
                label += " (%s)" % c["tag"]
            if c["backend"] == "serial":
                serial[label] = c
                rows.setdefault((label, None), {})
                continue
            b = c["backend"] + ("/" + c["start_method"] if c.get("start_method") else "")
            rows.setdefault((label, b), {})[c["workers"]] = c
        last = None
        for (label, b), r in rows.items():
            if b is None and any(k[0] == label and k[1] for k in rows):
                continue
            base = serial.get(label)
            base_txt = ""
            if label != last:
                base_txt = ("%.1f ms" % (1000 * base["wall_s"]["median"])
                            if base and base.get("status") == "ok" else "[red]error[/]")
            top = r[max(r)] if r else base
            par = "%.2f" % top["parallelism"] if top and top.get("parallelism") is not None else ""
            t.add_row(escape(label) if label != last else "", b or "serial", base_txt,
                      *[_fmt_speedup(r[w]) if w in r else "" for w in workers], par)
            last = label
        console.print(t)
    if len(by_interp) > 1:
        compare_interpreters(doc, console)
    errors = [c for c in cells if c.get("status") == "error"]
    for c in errors[:10]:
        console.print("[red]error[/] %s %s %s x%d: %s" % (c["interpreter"], c["workload"],
                                                      c["backend"], c["workers"],
                                                      escape((c.get("error") or "?").splitlines()[0])))
    if len(errors) > 10:
        console.print("[red]... and %d more errors (see the results file)[/]" % (len(errors) - 10))
    unstable = sum(1 for c in cells if c.get("warnings"))
    if unstable:
        console.print("[yellow]%d of %d cells carry instability warnings (see \"warnings\" in the "
                      "results file)[/]" % (unstable, len(cells)))
    env = doc.get("environment", {})
    console.print("[dim]%s; %s; load average at start %s[/]" % (
        env.get("cpu_model", "?"), (env.get("cores") or {}).get("derivation", "?"),
        ", ".join("%.2f" % x for x in env.get("load_avg") or [])))


def compare_interpreters(doc: Dict[str, Any], console: Console) -> None:
    """Interpreters side by side: serial time and the speedup at the most workers."""
    cells = [c for c in doc.get("cells", []) if not c.get("tag")]
    interps = list(OrderedDict((c["interpreter"], None) for c in cells))
    top = max((c["workers"] for c in cells), default=1)
    t = Table(title="interpreters side by side: serial time for the same work (first = 1.00x), "
              "and speedup with %d workers" % top, title_justify="left")
    t.add_column("workload")
    t.add_column("backend")
    for i in interps:
        info = doc.get("interpreters", {}).get(i, {})
        gil = {True: "GIL", False: "no GIL"}.get(info.get("gil_enabled"), "?")
        t.add_column("%s\n%s" % (escape(i), gil), justify="right")
    rows: "OrderedDict[tuple, Dict[str, Dict[str, Any]]]" = OrderedDict()
    for c in cells:
        b = c["backend"] + ("/" + c["start_method"] if c.get("start_method") else "")
        if c["backend"] == "serial" or c["workers"] == top:
            rows.setdefault((c.get("workload_label", c["workload"]), b), {})[c["interpreter"]] = c
    def per_unit(c: Dict[str, Any]) -> Optional[float]:
        if c.get("status") != "ok" or not c.get("size"):
            return None
        return c["wall_s"]["median"] / (c["tasks"] * c["size"])

    for (w, b), r in rows.items():
        vals = []
        ref = next((per_unit(r[i]) for i in interps if i in r and per_unit(r[i])), None)
        for i in interps:
            c = r.get(i)
            if c is None:
                vals.append("")
            elif b == "serial":
                u = per_unit(c)
                vals.append("[red]error[/]" if u is None else "time %.2fx" % (u / ref) if ref else "")
            else:
                vals.append(_fmt_speedup(c))
        t.add_row(escape(w), b, *vals)
    console.print(t)


def claims_table(claims: List[Dict[str, Any]], console: Console, doc: Optional[Dict[str, Any]] = None) -> None:
    t = Table(title="The blog post's claims, tested on this machine", title_justify="left",
              show_lines=True)
    t.add_column("id")
    t.add_column("claim", max_width=34)
    t.add_column("verdict")
    t.add_column("what this run measured", max_width=70)
    for c in claims:
        v = c["verdict"]
        t.add_row(c["id"], c["claim"], "[%s]%s[/]" % (VERDICT_STYLE.get(v, ""), v), c["summary"])
    console.print(t)
    if doc is not None:
        env = doc.get("environment", {})
        console.print("[dim]%s; %s; load average at start %s. Thresholds: docs/claims.md[/]" % (
            env.get("cpu_model", "?"), (env.get("cores") or {}).get("derivation", "?"),
            ", ".join("%.2f" % x for x in env.get("load_avg") or [])))


def interpreters_table(rows: List[Dict[str, Any]], console: Console) -> None:
    t = Table(title="Interpreters found", title_justify="left",
              caption="parallel = CPU time / wall time of 2 pure-Python threads spinning for 1 s "
                      "(2.0: both ran at once; 1.0: one at a time)", caption_justify="left")
    for col in ("label", "command", "implementation", "free-threaded", "GIL", "sub-interp.",
                "start methods", "parallel"):
        t.add_column(col, overflow="fold")
    for r in rows:
        if r.get("error"):
            t.add_row(escape(r["label"]), escape(r["command"]), "[red]error[/]", "", "", "", "",
                      escape((r["error"].splitlines() or [""])[0][:80]))
            continue
        par = r.get("parallel_probe") or {}
        t.add_row(escape(r["label"]), escape(r["command"]),
                  "%s %s" % (r.get("implementation") or "?", r.get("version") or "?"),
                  "yes" if r.get("free_threaded") else "no",
                  {True: "on", False: "[green]off[/]", None: "?"}[r.get("gil_enabled")],
                  "yes" if r.get("subinterpreters") else "no",
                  "/".join(r.get("start_methods") or []) or "none",
                  "%.2f" % par["parallelism"] if "parallelism" in par else "")
    console.print(t)
