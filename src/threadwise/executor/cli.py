"""``threadwise advise module:function --items FILE | --range N``: the advise verb.

``add_parser(subparsers)`` adds the subcommand to threadwise's CLI (``run`` is its
handler); ``main(argv)`` runs it alone (``python -m threadwise.executor.cli``).

``module:function`` names a function in an importable module (the current
directory is importable) or in a file (``path/to/file.py:function``);
``--items FILE`` holds one JSON value per line (``-`` reads stdin), ``--range N``
passes 0..N-1.  Output: a table of backends (speedup, cost per item, start-up,
transfer, GIL-held share) and the recommendation sentence; ``--json`` prints
the :class:`Advice` as JSON.  Errors print their three parts and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Callable, List, Optional, Sequence

from ..errors import ThreadwiseError, UsageError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "advise", help="measure a function on every backend and recommend one",
        description="Run a sample of the work serially, in threads, in processes (and "
                    "sub-interpreters, free threads where available), measure, recommend.")
    p.add_argument("function", metavar="module:function",
                   help="the function to measure: mypkg.mod:fn or path/to/file.py:fn")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--items", metavar="FILE", help="one JSON value per line ('-': stdin)")
    src.add_argument("--range", metavar="N", type=int, help="the items are 0, 1, ..., N-1")
    p.add_argument("--workers", type=int, default=None, help="workers (default: one per CPU)")
    p.add_argument("--sample-seconds", type=float, default=1.0, dest="sample_s",
                   help="seconds of serial work to sample (default 1.0)")
    p.add_argument("--max-items", type=int, default=None, help="at most this many sample items")
    p.add_argument("-b", "--backend", "--backends", dest="backends", default=None,
                   metavar="NAMES", help="comma-separated subset of threads,processes,interpreters")
    p.add_argument("--python", action="append", default=[], metavar="CMD",
                   help="measure the function in this interpreter instead (repeatable), e.g. "
                        "--python /opt/threadwise/py313t/bin/python3.13t --python python3: one table, "
                        "a recommendation per interpreter (the function's module is imported there)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON (stdout)")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the advice as JSON to FILE")
    p.add_argument("--markdown", metavar="FILE", help="also write the advice as Markdown (a CI step summary)")
    p.set_defaults(func=run)
    return p


def load_function(spec: str) -> Callable[..., Any]:
    """``module:function`` or ``path/file.py:function`` (dotted attributes allowed)."""
    if ":" not in spec:
        raise UsageError("expected module:function, got %r" % spec,
                         "the function name is missing",
                         "write it as mypkg.mod:fn or path/to/file.py:fn")
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr:
        raise UsageError("expected module:function, got %r" % spec, "an empty module or function name",
                         "write it as mypkg.mod:fn or path/to/file.py:fn")
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = os.path.abspath(mod_name)
        if not os.path.isfile(path):
            raise UsageError("no such file: %s" % mod_name, "a wrong path",
                             "give the path of the .py file that defines the function")
        name = "threadwise_advise_" + os.path.splitext(os.path.basename(path))[0]
        sys.path.insert(0, os.path.dirname(path))
        spec_obj = importlib.util.spec_from_file_location(name, path)
        assert spec_obj is not None and spec_obj.loader is not None
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[name] = module
        try:
            spec_obj.loader.exec_module(module)
        except SystemExit as e:
            raise UsageError("importing %s called sys.exit(%s)" % (mod_name, e.code),
                             "the file runs its script part when imported",
                             "guard it with if __name__ == '__main__':") from None
        except Exception as e:
            raise UsageError("importing %s failed: %s: %s" % (mod_name, type(e).__name__, e),
                             "the file raises when imported", "fix the file, or guard its script "
                             "part with if __name__ == '__main__'") from e
        try:  # worker processes can't import it by this made-up name: send it by value
            import cloudpickle
            cloudpickle.register_pickle_by_value(module)
        except (ImportError, ValueError, AttributeError):
            pass
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(mod_name)
        except SystemExit as e:
            raise UsageError("importing %s called sys.exit(%s)" % (mod_name, e.code),
                             "the module runs its script part when imported",
                             "guard it with if __name__ == '__main__':") from None
        except ImportError as e:
            raise UsageError("can't import module %r: %s" % (mod_name, e),
                             "the module is not on the Python path (the current directory is)",
                             "run from the directory that holds it, set PYTHONPATH, or pass "
                             "path/to/file.py:%s" % attr) from e
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError("%s has no attribute %r" % (mod_name, attr), "a misspelt function name",
                             "check the name: defined at module level in %s" % mod_name) from None
    if not callable(obj):
        raise UsageError("%s:%s is not callable (a %s)" % (mod_name, attr, type(obj).__name__),
                         "the name is not a function", "name a function")
    return obj


def read_items(path: str) -> List[Any]:
    """One JSON value per line; blank lines are skipped."""
    try:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as e:
        raise UsageError("can't read the items file %s: %s" % (path, e.strerror or e),
                         "a wrong path or no permission", "pass a file with one JSON value per line") from None
    items: List[Any] = []
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as e:
                raise UsageError("%s line %d is not JSON: %s" % (path, lineno, e),
                                 "the items file must hold one JSON value per line",
                                 "quote strings (\"text\"), or fix line %d" % lineno) from None
    return items


def _items(args: argparse.Namespace) -> Sequence[Any]:
    if args.range is not None:
        if args.range < 1:
            raise UsageError("--range must be >= 1, got %d" % args.range, "no items",
                             "pass --range N with N >= 1")
        return range(args.range)
    return read_items(args.items)


class _Exited(Exception):
    """The user's code called os._exit() while threadwise measured it."""


def _guard_exit(code: Any = 0) -> None:
    raise _Exited(code)


def run(args: argparse.Namespace, *_consoles: Any) -> int:
    from .. import _io
    for path in (args.output, args.markdown):
        if path:
            _io.check_writable(path, "the advice", "-o ./advice.json")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
    real_exit = os._exit
    os._exit = _guard_exit   # type: ignore[assignment]  # the measured function must not end us
    try:
        items = _items(args)
        if args.python:
            return _run_across(args, items, backends)
        from .advise import advise
        fn = load_function(args.function)
        advice = advise(fn, items, workers=args.workers, sample_s=args.sample_s,
                        max_items=args.max_items, backends=backends)
    except ThreadwiseError as e:
        print("threadwise advise: " + e.message(), file=sys.stderr)
        return e.exit_code
    except (SystemExit, _Exited) as e:
        how = "os._exit" if isinstance(e, _Exited) else "sys.exit"
        print("threadwise advise: %s called %s(%s) while it was measured.\nLikely cause: its code "
              "ends the program (a script part run at import, or an error path).\nFix: guard the "
              "script part with if __name__ == '__main__', or measure a function that returns."
              % (args.function, how, e.args[0] if e.args else ""), file=sys.stderr)
        return 2
    finally:
        os._exit = real_exit
    data = advice.to_dict()
    _write_outputs(args, data, lambda: _advice_markdown(advice, args.function))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print_advice(advice, args.function)
    return 0


def _write_outputs(args: argparse.Namespace, data: Any, markdown: Callable[[], str]) -> None:
    from .. import _io
    if args.output:
        _io.write_atomic(args.output, json.dumps(data, indent=2, default=str) + "\n",
                         "the advice", "-o ./advice.json")
    if args.markdown:
        _io.write_atomic(args.markdown, markdown(), "the Markdown summary", "--markdown summary.md")


def _run_across(args: argparse.Namespace, items: Sequence[Any], backends: Optional[List[str]]) -> int:
    """--python: the function measured in each interpreter (bench/advice.py)."""
    from rich.console import Console

    from ..bench.advice import advise_across, print_table
    err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())
    advice = advise_across(args.function, items, args.python, workers=args.workers,
                           backends=backends, max_items=args.max_items,
                           on_step=lambda title: err.print("measuring %s" % title, highlight=False))
    data = {"function": args.function, "interpreters": [a.to_dict() for a in advice]}
    _write_outputs(args, data, lambda: "## threadwise advise %s\n\n" % args.function + "".join(
        "- %s\n" % a.sentence for a in advice))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print_table(advice, args.function, Console() if sys.stdout.isatty() else Console(width=140))
    return 0 if all(a.verdict != "error" for a in advice) else 1


def _advice_markdown(advice: Any, name: str) -> str:
    rows = ["## threadwise advise %s" % name, "", "| backend | workers | speedup | per item |",
            "|---|---:|---:|---:|"]
    for r in advice.results:
        rows.append("| %s | %s | %s | %s |" % (r.backend, r.workers,
                                              "%.2fx" % r.speedup if r.speedup else "-",
                                              "%.3g s" % r.per_item_s if r.per_item_s else "-"))
    return "\n".join(rows + ["", "**recommendation:** %s" % advice.sentence]) + "\n"


def print_advice(advice: Any, name: str = "fn", console: Any = None) -> None:
    """Print the advice table and sentence on ``console`` (a rich Console; default stdout)."""
    from rich.console import Console
    from rich.table import Table

    from .._format import fmt_s, pct
    console = Console() if console is None else console
    env = advice.environment
    t = Table(title="threadwise advise %s: %d items sampled%s" % (
        name, advice.sampled, "" if advice.total is None else " of %d" % advice.total))
    from rich import box
    t.box = box.SIMPLE_HEAD
    t.show_edge = False
    t.pad_edge = False
    # "total": predicted for all the items, start-up included
    for col in ("backend", "W", "speedup", "per item", "start-up", "transfer", "GIL", "total"):
        t.add_column(col, justify="left" if col == "backend" else "right", no_wrap=True,
                     min_width=len(col))
    notes = []
    for r in advice.results:
        name = r.backend
        if r.note:
            notes.append(r.note)
            name += "[%d]" % len(notes)
        if not r.available and r.wall_s is None:
            t.add_row(name, str(r.workers), "-", "-", "-", "-", "-", "-")
            continue
        t.add_row(name, str(r.workers), "%.2fx" % r.speedup if r.speedup else "-",
                  fmt_s(r.per_item_s), fmt_s(r.startup_s) if r.backend != "serial" else "-",
                  fmt_s(r.transfer_s) if r.transfer_s is not None else "-",
                  pct(r.gil_held) if r.gil_held is not None else "-",
                  fmt_s(r.predicted_s))
    console.print(t)
    for k, note in enumerate(notes, 1):
        console.print("[%d] %s" % (k, note), highlight=False)
    gc = advice.gil_check
    console.print("per item %s, CPU busy %s of the time, GIL held %s (%s: %s); %s; "
                  "load %s" % (fmt_s(advice.item_s), pct(advice.cpu_share), pct(advice.gil_held),
                               str(gc.get("method", "gil check")).split(" (")[0],
                               "holds" if gc.get("holds") else ("releases" if gc.get("holds") is False
                                                                else "n/a"),
                               "%s, %s CPUs (%s)" % (env.get("python"), env.get("cpus"),
                                                     env.get("cpus_how")),
                               " ".join("%.2f" % x for x in env.get("loadavg") or [])),
                  highlight=False)
    console.print("[bold]recommendation:[/bold] %s" % advice.sentence, highlight=False)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``threadwise advise ...`` alone; the word ``advise`` is optional here."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] != ["advise"]:
        words = ["advise"] + words
    parser = argparse.ArgumentParser(prog="threadwise")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(words)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
