"""The command line: one subcommand per user verb.

    threadwise bench         the matrix: workloads x backends x workers x interpreters
    threadwise claims        the blog post's claims C1-C8, verdicts from this run
    threadwise interpreters  what Pythons are here and what they can do
    threadwise probe         how much a running program holds and waits on the GIL
    threadwise advise        which backend wins for your function
    threadwise report        a self-contained HTML report;  threadwise export: pyperf JSON

Every error a user can cause ends in a three-part message (what happened, the
likely cause, the fix) and exit status 2; Ctrl-C ends with 130 after saying
what was kept.  Subcommands that live in their own packages (probe, advise,
report, export) plug in through ``add_parser(subparsers)``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

if TYPE_CHECKING:  # rich is imported when a subcommand prints, not at start-up
    from rich.console import Console

from . import __version__
from .errors import ThreadwiseError, UsageError

PLUGINS = ("threadwise.probe.cli", "threadwise.executor.cli", "threadwise.report.cli")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in threadwise's three parts (and still exit 2)."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        err = UsageError("bad command line: %s" % message,
                         "an option is misspelled, missing its value, or not valid for %s" % self.prog,
                         "see: %s --help" % self.prog)
        sys.stderr.write("threadwise: error: " + err.message() + "\n")
        raise SystemExit(2)


def _csv(text: str) -> List[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _ints(text: str) -> List[int]:
    out = []
    for x in _csv(text):
        try:
            out.append(int(x))
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not a whole number" % x)
    return out


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--python", action="append", metavar="CMD", default=[],
                   help="interpreter to measure, any command that runs Python (repeatable), "
                        "e.g. pypy3, jython, 'PYTHON_GIL=1 python3.13t', "
                        "'chroot /srv/threadwise-sid python3.14'. Default: this Python")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 5)")
    p.add_argument("--warmups", type=int, default=None, help="untimed warm-ups per cell (default 1)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds before a cell's agent is killed as hung (default 300)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE in the target before measuring (repeatable); on a "
                        "free-threaded build, an import that turns the GIL back on is named")
    p.add_argument("-o", "--output", metavar="FILE", help="write the results (JSON) to FILE, cell by cell")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="threadwise", description="Will threads make my Python code faster? "
                     "Measured on this machine, these interpreters, your code.")
    parser.add_argument("--version", action="version", version="threadwise " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    b = sub.add_parser("bench", help="measure workloads x backends x workers x interpreters")
    b.add_argument("-w", "--workload", action="append", default=[], metavar="NAMES",
                   help="workloads, comma separated (repeatable); NAME:key=value for parameters, "
                        "e.g. duty-cycle:duty=0.25. --list shows them")
    b.add_argument("-b", "--backend", action="append", default=[], metavar="NAMES",
                   help="backends, comma separated: serial, threads, processes, interpreters, asyncio")
    b.add_argument("--workers", type=_ints, default=None, metavar="N,N",
                   help="worker counts (default 1,2,4 and the usable core count)")
    b.add_argument("--start-method", type=_csv, default=None, metavar="M,M",
                   help="multiprocessing start methods for the processes backend: fork, "
                        "forkserver, spawn (default: the interpreter's default)")
    b.add_argument("--quick", action="store_true",
                   help="a small matrix that finishes in about a minute on 2 cores")
    b.add_argument("--task-ms", type=float, default=None,
                   help="calibrate CPU workloads so one task takes this long (default 100, quick 40)")
    b.add_argument("--tasks", type=int, default=None,
                   help="tasks per cell (strong scaling; default: lcm of the worker counts)")
    b.add_argument("--size", action="append", default=[], metavar="WORKLOAD=N",
                   help="fix a workload's size instead of calibrating it")
    b.add_argument("--scaling", choices=("strong", "weak"), default="strong",
                   help="strong: same total work for every worker count (default); "
                        "weak: the same work per worker")
    b.add_argument("--switch-interval", type=float, default=None, metavar="SECONDS",
                   help="sys.setswitchinterval in the target (default: leave it)")
    b.add_argument("--resume", metavar="FILE", help="continue a stopped run: skip the cells FILE has")
    b.add_argument("--json", action="store_true", help="print the results document as JSON")
    b.add_argument("--list", action="store_true", help="list the workloads and exit")
    _add_common(b)
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("claims", help="test the blog post's eight claims, with verdicts from this run")
    c.add_argument("--json", action="store_true", help="print {\"claims\": [...]} as JSON")
    c.add_argument("--only", type=_csv, default=None, metavar="C1,C2",
                   help="run only these claims' experiments")
    c.add_argument("--quick", action="store_true", help="fewer repeats and round trips")
    _add_common(c)
    c.set_defaults(func=cmd_claims)

    i = sub.add_parser("interpreters", help="find the interpreters here and describe them")
    i.add_argument("--json", action="store_true", help="print a JSON list")
    i.add_argument("--python", action="append", metavar="CMD", default=[],
                   help="describe these commands instead of discovering")
    i.add_argument("--no-probe", action="store_true", help="skip the 1-second parallel-threads probe")
    i.add_argument("--timeout", type=float, default=60.0, help="seconds per interpreter (default 60)")
    i.set_defaults(func=cmd_interpreters)

    for mod in PLUGINS:
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        m.add_parser(sub)  # type: ignore[attr-defined]
    return parser


# --------------------------------------------------------------------------
def _interpreters(args: argparse.Namespace) -> List[Any]:
    from .bench.interpreters import Interpreter
    if not args.python:
        return [Interpreter.current()]
    seen, out = set(), []
    for text in args.python:
        it = Interpreter.parse(text)
        if it.label in seen:
            raise UsageError("interpreter %r is given twice" % text, "--python repeats it",
                             "give each interpreter once")
        seen.add(it.label)
        out.append(it)
    return out


def _bench_config(args: argparse.Namespace) -> Any:
    from .environment import cores
    from .bench.runner import (DEFAULT_BACKENDS, DEFAULT_WORKLOADS, QUICK_BACKENDS, QUICK_WORKLOADS,
                         BenchConfig, WorkloadSpec)
    n = cores().usable
    names = [x for w in args.workload for x in _csv(w)] or list(
        QUICK_WORKLOADS if args.quick else DEFAULT_WORKLOADS)
    backends = [x for b in args.backend for x in _csv(b)] or list(
        QUICK_BACKENDS if args.quick else DEFAULT_BACKENDS)
    workers = args.workers if args.workers is not None else (
        sorted({1, 2, n}) if args.quick else sorted({1, 2, 4, n}))
    if args.workers is not None and not workers:
        raise UsageError("--workers is empty", "", "e.g. --workers 1,2,4")
    sizes: Dict[str, int] = {}
    for item in args.size:
        k, eq, v = item.partition("=")
        if not eq or not v.strip().isdigit() or int(v) < 1:
            raise UsageError("bad --size %r" % item, "it must be WORKLOAD=N with N >= 1",
                             "e.g. --size cpu-python=200000")
        sizes[k.strip()] = int(v)
    cfg = BenchConfig(
        interpreters=_interpreters(args), workloads=[WorkloadSpec.parse(x) for x in names],
        backends=backends, workers=workers,
        start_methods=list(args.start_method) if args.start_method else [None],
        repeats=args.repeats if args.repeats is not None else 5,
        warmups=args.warmups if args.warmups is not None else 1,
        task_s=(args.task_ms if args.task_ms is not None else (40.0 if args.quick else 100.0)) / 1000.0,
        tasks=args.tasks, scaling=args.scaling, timeout=args.timeout,
        switch_interval=args.switch_interval, sizes=sizes, imports=list(args.imports))
    for k in sizes:
        if k not in {w.name for w in cfg.workloads}:
            raise UsageError("--size names workload %r, which this run does not measure" % k,
                             "a typo, or the workload is missing from --workload",
                             "choose among: %s" % ", ".join(w.name for w in cfg.workloads))
    if cfg.task_s <= 0:
        raise UsageError("--task-ms must be > 0, got %g" % (cfg.task_s * 1000), "", "e.g. --task-ms 50")
    cfg.validate()
    return cfg


def cmd_bench(args: argparse.Namespace, console: Console, err: Console) -> int:
    from .bench import console as views
    from . import environment
    from .bench import results
    from .bench.runner import Runner, plan
    from .bench.inside.workloads import CATALOG
    if args.list:
        for name, w in sorted(CATALOG.items()):
            console.print("[bold]%-14s[/] %-15s %s" % (name, w.kind, w.doc))
        return 0
    cfg = _bench_config(args)
    output = args.output or args.resume
    if args.resume:
        doc = results.load(args.resume)
        skip = results.finished_keys(doc)
    else:
        doc = results.new_document(environment.host(), cfg.to_json())
        skip = set()
    if output:
        results.check_writable(output)
    if args.html:
        results.check_writable(args.html)
    specs = plan(cfg)
    todo = [s for s in specs if s.key not in skip]
    if args.resume:
        err.print("resuming %s: %d of %d cells already measured, %d to go"
                  % (args.resume, len(specs) - len(todo), len(specs), len(todo)))
    prog = views.progress(err)
    task = prog.add_task("bench", total=len(todo), cell="")
    runner = Runner(cfg, doc, output,
                    on_start=lambda s: prog.update(task, cell=s.title),
                    on_cell=lambda s, c: prog.advance(task))
    try:
        with prog:
            runner.run(todo, skip)
    except KeyboardInterrupt:
        done = len([c for c in doc["cells"] if c["key"] in {s.key for s in specs}])
        err.print("\n[bold]Interrupted.[/] %d finished cells kept%s." % (
            done, " in %s; continue with: threadwise bench ... --resume %s" % (output, output)
            if output else " (no --output file was given, so they are printed below)"))
        if not output:
            views.bench_tables(doc, console)
        return 130
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        views.bench_tables(doc, console)
    if output:
        err.print("results written to %s" % output)
    if args.html:
        _html(doc, args.html, err, output)
    return 0


def _html(doc: Dict[str, Any], path: str, err: Console, source: Optional[str] = None) -> None:
    from .report import html as report_html
    report_html.write_report([doc], path, sources=[source] if source else None)
    err.print("HTML report written to %s" % path)


def cmd_claims(args: argparse.Namespace, console: Console, err: Console) -> int:
    from rich.markup import escape
    from .bench import claims as claims_mod
    from .bench import console as views
    from . import environment
    from .bench import results
    interps = _interpreters(args)
    only = [x.upper() for x in args.only] if args.only else None
    if only:
        bad = [x for x in only if x not in claims_mod.CLAIM_IDS]
        if bad:
            raise UsageError("unknown claim %s" % ", ".join(bad), "claims are C1 to C8",
                             "e.g. --only C1,C8")
    if args.output:
        results.check_writable(args.output)
    if args.html:
        results.check_writable(args.html)
    doc = results.new_document(environment.host(), {"command": "claims",
                                                    "interpreters": [i.command for i in interps]})
    exp = claims_mod.Experiments(interps, doc, output=args.output, quick=args.quick,
                                 repeats=args.repeats, warmups=args.warmups, timeout=args.timeout,
                                 imports=args.imports)
    prog = views.progress(err)
    task = prog.add_task("claims", total=exp.total(only), cell="")
    exp.on_step = lambda title: prog.update(task, cell=title)
    exp.on_done = lambda: prog.advance(task)
    try:
        with prog:
            exp.run(only)
    except KeyboardInterrupt:
        err.print("\n[bold]Interrupted.[/] %d measured cells kept%s." % (
            len(doc["cells"]), " in " + args.output if args.output else ""))
        return 130
    for label, info in doc["interpreters"].items():
        if info.get("error"):
            err.print("[red]interpreter %s was not measured:[/] %s" % (escape(label), escape(info["error"])))
    verdicts = claims_mod.judge(doc, only)
    doc["claims"] = verdicts
    if args.output:
        results.save(doc, args.output)
    if args.json:
        sys.stdout.write(json.dumps({"claims": verdicts, "environment": doc["environment"],
                                     "interpreters": doc["interpreters"]}, indent=1) + "\n")
    else:
        views.claims_table(verdicts, console, doc)
    if args.output:
        err.print("results written to %s" % args.output)
    if args.html:
        _html(doc, args.html, err, args.output)
    return 0


def cmd_interpreters(args: argparse.Namespace, console: Console, err: Console) -> int:
    from .bench import console as views
    from .bench.interpreters import _describe_row, discover
    if args.python:
        rows = []
        for text in args.python:
            from .bench.interpreters import Interpreter
            rows.extend(_describe_row(Interpreter.parse(text), not args.no_probe, args.timeout))
    else:
        with err.status("looking for interpreters and probing each for one second..."):
            rows = discover(parallel_probe=not args.no_probe, timeout=args.timeout)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    else:
        views.interpreters_table(rows, console)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["probe"]:
        # the probe starts the user's program: as soon as possible, without loading the
        # other subcommands (the executor, rich), so a wrapped run costs ~40 ms, not ~150
        from .probe import cli as probe_cli
        return probe_cli.main(argv[1:], parser_class=_Parser)
    from rich.console import Console
    from rich.markup import escape
    # piped output (CI logs, `| less`) gets a readable width instead of rich's 80 columns
    console = Console() if sys.stdout.isatty() else Console(width=120)
    err = Console(stderr=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args, console, err) or 0)
    except ThreadwiseError as e:
        err.print("[bold red]threadwise: error:[/] " + escape(e.message()), highlight=False)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("\nInterrupted.")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
