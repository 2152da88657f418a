"""The ``report`` and ``export`` subcommands, plugged into threadwise's CLI.

    threadwise report RESULTS.json [MORE.json ...] -o report.html
    threadwise export --format pyperf RESULTS.json -o pyperf.json

Both load every file with ``results.load`` first (a typed
:class:`~threadwise.bench.model.ResultsDocument` each) and merge them with
``model.merge`` (later cells win), so a missing, empty, truncated, foreign or
hand-broken file fails with a three-part ResultsFileError naming it and the
field (exit 2) before anything is written.  matplotlib and Jinja2 are imported only when a
command runs, so other subcommands start as fast as before.
"""
from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape


def add_parser(subparsers: Any) -> None:
    r = subparsers.add_parser(
        "report", help="write a self-contained HTML report (plots, verdicts) from results files",
        description="One HTML file with the claims and their verdicts, speedup plots, the "
                    "interpreter comparison, convoy latency, the environment and every "
                    "instability warning. It needs no network and runs no scripts.")
    r.add_argument("results", nargs="+", metavar="RESULTS.json",
                   help="results files written by threadwise bench/claims --output; several "
                        "are merged (later cells win)")
    r.add_argument("-o", "--output", metavar="FILE", default="report.html",
                   help="the HTML file to write (default: report.html)")
    r.set_defaults(func=cmd_report)

    e = subparsers.add_parser(
        "export", help="convert results to another tool's format (pyperf JSON)",
        description="Write threadwise's measurements in pyperf's JSON format, one benchmark per "
                    "measured cell, so that `python -m pyperf stats` and `compare_to` work on them.")
    e.add_argument("results", nargs="+", metavar="RESULTS.json",
                   help="results files written by threadwise bench/claims --output (merged)")
    e.add_argument("--format", choices=("pyperf",), default="pyperf",
                   help="the output format (default and only: pyperf)")
    e.add_argument("-o", "--output", metavar="FILE", default="pyperf.json",
                   help="the file to write (default: pyperf.json)")
    e.set_defaults(func=cmd_export)


def cmd_report(args: argparse.Namespace, console: Any, err: Any) -> int:
    from ..bench import model, results
    from . import require_report_extra
    require_report_extra()
    from . import html
    docs = [results.load(p) for p in args.results]
    html.check_writable(args.output)
    with err.status("drawing the report..."):
        html.write_report(docs, args.output, sources=[str(p) for p in args.results])
    merged = model.merge(docs)
    cells, claims = len(merged.cells), len(merged.claims)
    err.print("HTML report written to %s (%d cell%s%s)" % (
        escape(args.output), cells, "" if cells == 1 else "s",
        ", %d claim%s" % (claims, "" if claims == 1 else "s") if claims else ""),
        highlight=False, soft_wrap=True)
    return 0


def cmd_export(args: argparse.Namespace, console: Any, err: Any) -> int:
    from . import export
    n, skipped = export.export(args.results, args.output, args.format)
    for s in skipped:
        err.print("[yellow]left out[/] " + escape(s), highlight=False, soft_wrap=True)
    err.print("%d benchmark%s written to %s in pyperf format; try: python -m pyperf stats %s" % (
        n, "" if n == 1 else "s", escape(args.output), escape(args.output)), highlight=False, soft_wrap=True)
    return 0
