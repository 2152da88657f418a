"""The bench product's subcommands: ``bench``, ``claims``, ``interpreters``.

    argv --argparse--> Namespace --config.from_args--> BenchConfig (checked once)
         --plan--> CellSpecs --Runner--> ResultsDocument --console / report / --json

Exit status: 0 every cell measured (or unsupported), 1 some cells failed, 2 bad input
(a three-part message), 130 interrupted (what was measured is kept in --output).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..errors import UsageError

if TYPE_CHECKING:  # rich is imported when a subcommand prints, not at start-up
    from rich.console import Console

    from .model import ResultsDocument


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
                        "'chroot /srv/threadwise-sid python3.14'; 'all': every interpreter "
                        "scripts/install-interpreters installed. Default: this Python (claims: all)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 5)")
    p.add_argument("--warmups", type=int, default=None, help="untimed warm-ups per cell (default 1)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds before a cell's agent is killed as hung (default 300)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE in the target before measuring (repeatable); on a "
                        "free-threaded build, an import that turns the GIL back on is named")
    p.add_argument("-o", "--output", metavar="FILE", help="write the results (JSON) to FILE, cell by cell")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the tables as Markdown (a CI step summary, e.g. "
                        "--markdown \"$GITHUB_STEP_SUMMARY\")")


def add_parser(subparsers: Any) -> None:
    b = subparsers.add_parser("bench", help="measure workloads x backends x workers x interpreters")
    b.add_argument("-w", "--workload", action="append", default=[], metavar="NAMES",
                   help="workloads, comma separated (repeatable); NAME:key=value for parameters, "
                        "e.g. duty-cycle:duty=0.25. --list shows them")
    b.add_argument("--items", metavar="FILE",
                   help="for -w FILE.py:FUNCTION or MODULE:FUNCTION (your own function): the items "
                        "to map it over, one JSON value per line ('-': stdin)")
    b.add_argument("--range", metavar="N", type=int,
                   help="for your own function: the items are 0, 1, ..., N-1")
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
    b.add_argument("--sizes-from", metavar="FILE",
                   help="reuse the sizes an earlier run calibrated (its serial cells), so two runs "
                        "measure the same work and compare like with like")
    b.add_argument("--scaling", choices=("strong", "weak"), default=None,
                   help="strong: same total work for every worker count (default); "
                        "weak: the same work per worker")
    b.add_argument("--switch-interval", type=float, default=None, metavar="SECONDS",
                   help="sys.setswitchinterval in the target (default: leave it)")
    b.add_argument("--resume", metavar="FILE",
                   help="continue a stopped run: the matrix and sizes stored in FILE, skipping the "
                        "cells it has (options that contradict FILE are refused)")
    b.add_argument("--json", action="store_true", help="print the results document as JSON")
    b.add_argument("--list", action="store_true", help="list the workloads and exit")
    _add_common(b)
    b.set_defaults(func=cmd_bench)

    c = subparsers.add_parser("claims", help="test the blog post's eight claims, with verdicts from this run")
    c.add_argument("--json", action="store_true", help="print {\"claims\": [...]} as JSON")
    c.add_argument("--only", type=_csv, default=None, metavar="C1,C2",
                   help="run only these claims' experiments")
    c.add_argument("--quick", action="store_true", help="fewer repeats and round trips")
    _add_common(c)
    c.set_defaults(func=cmd_claims)

    i = subparsers.add_parser("interpreters", help="find the interpreters here and describe them")
    i.add_argument("--json", action="store_true", help="print a JSON list")
    i.add_argument("--python", action="append", metavar="CMD", default=[],
                   help="describe these commands instead of discovering")
    i.add_argument("--no-probe", action="store_true", help="skip the 1-second parallel-threads probe")
    i.add_argument("--timeout", type=float, default=60.0, help="seconds per interpreter (default 60)")
    i.set_defaults(func=cmd_interpreters)

# --------------------------------------------------------------------------
def _interpreters(args: argparse.Namespace) -> List[Any]:
    from .interpreters import Interpreter
    if not args.python:
        return [Interpreter.current()]
    if args.python == ["all"]:
        return installed_interpreters()
    seen, out = set(), []
    for text in args.python:
        it = Interpreter.parse(text)
        if it.label in seen:
            raise UsageError("interpreter %r is given twice" % text, "--python repeats it",
                             "give each interpreter once")
        seen.add(it.label)
        out.append(it)
    return out


def installed_interpreters() -> List[Any]:
    """The host CPython first, then every interpreter scripts/install-interpreters put in
    place (its manifest), that still runs; the newest free-threaded build also with
    PYTHON_GIL=1 (the same binary with its GIL: C5's control)."""
    import os
    import shlex

    from .interpreters import MANIFEST, Interpreter
    out = [Interpreter.current()]
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return out
    if not isinstance(manifest, dict):
        return out
    newest_ft = None
    for name, argv in manifest.items():
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            continue
        chroot = os.path.basename(argv[0]) == "chroot" and len(argv) >= 3
        exe = os.path.join(argv[1], "usr/bin", argv[2]) if chroot else argv[0]
        if not os.path.exists(exe):
            continue
        out.append(Interpreter(tuple(argv), (), name))
        if name.endswith("t") and name[:2] == "py" and (newest_ft is None or name > newest_ft[0]):
            newest_ft = (name, argv)
    if newest_ft is not None:
        name, argv = newest_ft
        out.append(Interpreter.parse("PYTHON_GIL=1 " + " ".join(shlex.quote(a) for a in argv),
                                     name + " PYTHON_GIL=1"))
    return out


def _bench_config(args: argparse.Namespace) -> Any:
    from ..environment import cores
    from .config import (DEFAULT_BACKENDS, DEFAULT_WORKLOADS, QUICK_BACKENDS, QUICK_WORKLOADS,
                         BenchConfig, WorkloadSpec, parse_sizes)
    n = cores().usable
    names = [x for w in args.workload for x in _csv(w)] or list(
        QUICK_WORKLOADS if args.quick else DEFAULT_WORKLOADS)
    backends = [x for b in args.backend for x in _csv(b)] or list(
        QUICK_BACKENDS if args.quick else DEFAULT_BACKENDS)
    workers = args.workers if args.workers is not None else (
        sorted({1, 2, n}) if args.quick else sorted({1, 2, 4, n}))
    if args.workers is not None and not workers:
        raise UsageError("--workers is empty", "", "e.g. --workers 1,2,4")
    items = _user_items(args)
    return BenchConfig(
        interpreters=_interpreters(args), workloads=[WorkloadSpec.parse(x, items) for x in names],
        backends=backends, workers=workers,
        start_methods=list(args.start_method) if args.start_method else [None],
        repeats=args.repeats if args.repeats is not None else 5,
        warmups=args.warmups if args.warmups is not None else 1,
        task_s=(args.task_ms if args.task_ms is not None else (40.0 if args.quick else 100.0)) / 1000.0,
        tasks=args.tasks, scaling=args.scaling or "strong",
        timeout=args.timeout if args.timeout is not None else 300.0,
        switch_interval=args.switch_interval, sizes=parse_sizes(args.size), imports=list(args.imports),
        calibrated_sizes=_sizes_from(args.sizes_from) if args.sizes_from else {})


def _user_items(args: argparse.Namespace) -> Optional[List[Any]]:
    """--items FILE / --range N (for a user function in -w)."""
    if args.range is not None:
        if not 1 <= args.range <= 10 ** 7:
            raise UsageError("--range must be between 1 and 10000000, got %d" % args.range,
                             "it is the number of items", "e.g. --range 16")
        return list(range(args.range))
    if args.items:
        from ..executor.cli import read_items
        return read_items(args.items)
    return None


def _sizes_from(path: str) -> Dict[str, Dict[str, int]]:
    """The sizes an earlier run's serial cells calibrated: label -> workload -> size."""
    from . import results
    doc = results.load(path)
    out: Dict[str, Dict[str, int]] = {}
    for c in doc.cells:
        if c.ok and c.backend == "serial" and isinstance(c.size, int) and not c.tag:
            out.setdefault(c.interpreter, {})[c.workload] = c.size
    if not out:
        raise UsageError("%s has no measured serial cell to take sizes from" % path,
                         "its serial cells failed, or it is not a bench results file",
                         "pass the results file of a finished threadwise bench run")
    return out


#: bench options that define what is measured -> the config key they set (--resume compares them)
_MATRIX_OPTIONS = {"python": ("interpreters",), "workload": ("workloads",), "backend": ("backends",),
                   "workers": ("workers",), "start_method": ("start_methods",),
                   "task_ms": ("task_s",), "tasks": ("tasks",), "size": ("sizes",),
                   "scaling": ("scaling",), "switch_interval": ("switch_interval",),
                   "repeats": ("repeats",), "warmups": ("warmups",), "imports": ("imports",),
                   "sizes_from": ("calibrated_sizes",), "items": ("workloads",), "range": ("workloads",),
                   "quick": ("workloads", "backends", "workers", "task_s")}


def _resumed_config(args: argparse.Namespace, doc: "ResultsDocument") -> Any:
    """The config stored in the file being resumed; a given option that contradicts it is an
    error (exit 2): a resumed run must measure the same work as the cells it keeps."""
    from .config import BenchConfig
    if doc.config.get("command") == "claims":
        raise UsageError("%s was written by threadwise claims" % args.resume,
                         "--resume continues a threadwise bench run",
                         "rerun the claims, or resume a file written by threadwise bench -o")
    labels = {f.command: label for label, f in doc.interpreters.items()}
    stored = BenchConfig.from_json(doc.config, labels)
    if args.timeout is not None:
        stored.timeout = args.timeout   # how long to wait is not part of what is measured
        stored.validate()
    given = [name for name in _MATRIX_OPTIONS if getattr(args, name) not in (None, [], False)]
    if not given:
        return stored
    fresh, old = _bench_config(args).to_json(), stored.to_json()
    for name in given:
        for key in _MATRIX_OPTIONS[name]:
            if fresh[key] != old[key]:
                raise UsageError(
                    "--%s contradicts the run being resumed: %s is %s here, %s in %s"
                    % (name.replace("_", "-"), key, _short(fresh[key]), _short(old[key]), args.resume),
                    "--resume continues the matrix and sizes stored in the file, so that every "
                    "speedup divides the same work",
                    "drop --%s to resume, or start a new run with -o NEW.json" % name.replace("_", "-"))
    return stored


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _check_not_foreign(path: str) -> None:
    """Refuse to overwrite a file that is not a threadwise results file (``-o notes.txt``)."""
    import os

    from . import results
    from ..errors import ResultsFileError
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    try:
        results.load(path)
    except ResultsFileError:
        raise UsageError("%s exists and is not a threadwise results file" % path,
                         "--output would overwrite it", "choose another -o path, or delete it first") from None


def _exit_status(doc: "ResultsDocument", keys: set) -> int:
    """0 when every cell of this run was measured (or is unsupported there), 1 when some failed."""
    return 1 if any(c.status == "error" for c in doc.cells if c.key in keys) else 0


def cmd_bench(args: argparse.Namespace, console: Console, err: Console) -> int:
    from .. import environment
    from . import console as views
    from . import results
    from .inside.workloads import CATALOG
    from .plan import plan
    from .runner import Runner
    if args.list:
        for name, w in sorted(CATALOG.items()):
            console.print("[bold]%-14s[/] %-15s %s" % (name, w.kind, w.doc))
        return 0
    output = args.output or args.resume
    if args.resume:
        doc = results.load(args.resume)
        cfg = _resumed_config(args, doc)
        skip = doc.finished_keys()
    else:
        cfg = _bench_config(args)
        if output:
            _check_not_foreign(output)
        doc = results.new_document(environment.host(), cfg.to_json())
        skip = set()
    if output:
        results.check_writable(output)
    if args.html:
        from ..report import require_report_extra
        require_report_extra()          # before measuring, not after
        results.check_writable(args.html, "the HTML report", "--html ./report.html")
    if args.markdown:
        results.check_writable(args.markdown, "the Markdown summary", "--markdown summary.md")
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
    keys = {s.key for s in specs}
    try:
        with prog:
            runner.run(todo, skip)
    except KeyboardInterrupt:
        doc = runner.doc
        done = len([c for c in doc.cells if c.key in keys])
        err.print("\n[bold]Interrupted.[/] %d finished cells kept%s." % (
            done, " in %s; continue with: threadwise bench ... --resume %s" % (output, output)
            if output else " (no --output file was given, so they are printed below)"))
        if not output:
            views.bench_tables(doc, console)
        return 130
    doc = runner.doc
    if args.json:
        sys.stdout.write(json.dumps(doc.to_json(), indent=1) + "\n")
    else:
        views.bench_tables(doc, console)
    if output:
        err.print("results written to %s" % output)
    if args.html:
        _html(doc, args.html, err, output)
    if args.markdown:
        _write_markdown(args.markdown, views.bench_markdown(doc), err)
    return _exit_status(doc, keys)


def _write_markdown(path: str, text: str, err: "Console") -> None:
    from .. import _io
    _io.write_atomic(path, text, "the Markdown summary", "--markdown summary.md")
    err.print("Markdown summary written to %s" % path, highlight=False, soft_wrap=True)


def _html(doc: "ResultsDocument", path: str, err: Console, source: Optional[str] = None) -> None:
    from ..report import html as report_html
    report_html.write_report([doc], path, sources=[source] if source else None)
    err.print("HTML report written to %s" % path)


def cmd_claims(args: argparse.Namespace, console: Console, err: Console) -> int:
    from rich.markup import escape
    from dataclasses import replace

    from .. import environment
    from . import claims as claims_mod
    from . import console as views
    from . import results
    # no --python: every interpreter installed here, so that every claim that can be tested is
    interps = _interpreters(args) if args.python else installed_interpreters()
    if not args.python and len(interps) == 1:
        err.print("[yellow]only this Python was found: C3, C4, C5 and C9 need other interpreters "
                  "(as root: bash scripts/install-interpreters, about 10 minutes, cached)[/]")
    only = [x.upper() for x in args.only] if args.only else None
    if only:
        bad = [x for x in only if x not in claims_mod.CLAIM_IDS]
        if bad:
            raise UsageError("unknown claim %s" % ", ".join(bad), "claims are C1 to C9",
                             "e.g. --only C1,C8")
    if args.output:
        results.check_writable(args.output)
    if args.html:
        from ..report import require_report_extra
        require_report_extra()          # before measuring, not after
        results.check_writable(args.html, "the HTML report", "--html ./report.html")
    if args.markdown:
        results.check_writable(args.markdown, "the Markdown summary", "--markdown summary.md")
    doc = results.new_document(environment.host(), {"command": "claims",
                                                    "interpreters": [i.command for i in interps]})
    exp = claims_mod.Experiments(interps, doc, output=args.output, quick=args.quick,
                                 repeats=args.repeats, warmups=args.warmups,
                                 timeout=args.timeout if args.timeout is not None else 300.0,
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
            len(exp.doc.cells), " in " + args.output if args.output else ""))
        return 130
    doc = exp.doc
    for label, info in doc.interpreters.items():
        if info.error:
            err.print("[red]interpreter %s was not measured:[/] %s" % (escape(label), escape(info.error)))
    verdicts = claims_mod.judge(doc, only)
    doc = replace(doc, claims=tuple(verdicts))
    if args.output:
        doc = results.save(doc, args.output)
    if args.json:
        out = doc.to_json()
        sys.stdout.write(json.dumps({k: out[k] for k in ("claims", "environment", "interpreters")},
                                    indent=1) + "\n")
    else:
        views.claims_table(verdicts, console, doc)
    if args.output:
        err.print("results written to %s" % args.output)
    if args.html:
        _html(doc, args.html, err, args.output)
    if args.markdown:
        _write_markdown(args.markdown, views.claims_markdown(verdicts, doc), err)
    return 0


def cmd_interpreters(args: argparse.Namespace, console: Console, err: Console) -> int:
    from . import console as views
    from .interpreters import Interpreter, _describe_row, discover
    from .model import InterpreterFacts
    if args.python:
        rows = []
        for text in args.python:
            rows.extend(_describe_row(Interpreter.parse(text), not args.no_probe, args.timeout))
    else:
        with err.status("looking for interpreters and probing each for one second..."):
            rows = discover(parallel_probe=not args.no_probe, timeout=args.timeout)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    else:
        views.interpreters_table([InterpreterFacts.from_json(r, "interpreter") for r in rows], console)
    return 0


