"""``threadwise probe``: run a program and report how much it held and waited for the GIL.

    threadwise probe [--interval MS] [--every SECONDS] [--json] [--output FILE] -- python script.py ARGS
    threadwise probe -- python -m module ARGS
    threadwise probe -m module ARGS         (with the Python that runs threadwise)

The program's own output and exit status are kept; the probe's summary goes to
stderr at exit (or to ``--output``).  Exit status: the program's (128+N when a
signal N ended it, 130 for Ctrl-C); 2 for bad probe usage.

``add_parser(subparsers)`` plugs this into ``threadwise``'s CLI; ``main(argv)``
runs it alone (``python -m threadwise.probe.cli``).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional, Sequence

from ..errors import ThreadwiseError, UsageError

__all__ = ["add_parser", "run", "main"]

DESCRIPTION = """\
Run a Python program and measure how much of its wall time the GIL was held,
how much some thread waited for it, and how much CPU each thread used.  The
GIL is read from outside the program (through /proc), so the probe neither
takes the GIL nor slows the program down.

examples:
  threadwise probe -- python script.py ARGS
  threadwise probe --json --output gil.json -- python -m mypackage.worker
  threadwise probe --every 10 -- python server.py
"""


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--interval", type=float, default=None, metavar="MS",
                   help="mean gap between two samples in milliseconds, fixed for the whole run "
                        "(default: 1 ms for the first second, then sparser as the run goes on, "
                        "up to 20 ms, so that long runs cost little)")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="also print the figures so far every SECONDS (to stderr)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object instead of text (keys: gil_held, gil_wait, parallelism, "
                        "samples, threads, exit_code, ...)")
    p.add_argument("--output", "-o", metavar="FILE", default=None,
                   help="write the summary to FILE instead of stderr")
    p.add_argument("-m", dest="module", metavar="MODULE", default=None,
                   help="run a module as a script with the Python that runs threadwise "
                        "(%(prog)s -m pkg.worker ARGS); for another interpreter use "
                        "-- python3.13 -m pkg.worker ARGS")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="the program to run, e.g. -- python script.py ARGS (or -- python -m module)")
    return p


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``probe`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser("probe", help="measure a program's GIL hold and wait times",
                              description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(p)
    p.set_defaults(func=run)
    return p


def _check(args: argparse.Namespace) -> List[str]:
    interval = args.interval
    if interval is not None and (not (interval == interval) or interval <= 0 or interval > 10000):
        raise UsageError("--interval must be > 0 and <= 10000 milliseconds, got %r" % interval,
                         fix="use e.g. --interval 1 (the default) or --interval 5 for long runs")
    if args.every is not None and not (args.every > 0):
        raise UsageError("--every must be a positive number of seconds, got %r" % args.every,
                         fix="use e.g. --every 10")
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    module = getattr(args, "module", None)
    if module is not None:
        if not module or module.startswith("-"):
            raise UsageError("-m needs a module name, got %r" % module,
                             fix="threadwise probe -m package.module ARGS")
        cmd = [sys.executable, "-m", module] + cmd
    if not cmd:
        raise UsageError("no program to run was given",
                         fix="put the command after --: threadwise probe -- python script.py ARGS")
    return cmd


def _emit(text: str, path: Optional[str]) -> None:
    if path:
        try:
            with open(path, "w") as f:
                f.write(text + "\n")
            return
        except OSError as exc:
            sys.stderr.write("threadwise probe: could not write %s (%s); the summary follows\n"
                             % (path, exc.strerror or exc))
    sys.stderr.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run(args: argparse.Namespace, *_console: Any) -> int:
    """Run the program described by ``args``; returns the exit status to use.

    Extra positional arguments (``threadwise.cli`` passes its rich consoles)
    are ignored: the summary goes to stderr or ``--output`` as plain text, so
    that it never mixes with the program's own stdout."""
    from .wrap import run_program

    try:
        cmd = _check(args)

        def every(stats: Any) -> None:
            if args.json:
                sys.stderr.write(json.dumps(dict(stats.to_dict(), partial=True)) + "\n")
            else:
                sys.stderr.write(stats.report().replace("threadwise probe", "threadwise probe (so far)", 1)
                                 + "\n")
            sys.stderr.flush()

        stats = run_program(cmd, interval=None if args.interval is None else args.interval / 1000.0,
                            every=args.every,
                            on_every=every if args.every else None)
    except ThreadwiseError as exc:
        sys.stderr.write("threadwise probe: " + exc.message() + "\n")
        return exc.exit_code
    if args.json:
        _emit(json.dumps(stats.to_dict(), indent=2), args.output)
    else:
        _emit(stats.report(), args.output)
    return stats.exit_code if stats.exit_code is not None else 0


def main(argv: Optional[Sequence[str]] = None,
         parser_class: Any = argparse.ArgumentParser) -> int:
    p = _configure(parser_class(
        prog="threadwise probe", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    args = p.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
