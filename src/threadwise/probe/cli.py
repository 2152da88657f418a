"""``threadwise probe``: run a program and report how much it held and waited for the GIL.

    threadwise probe [--interval MS] [--every SECONDS] [--json] [--output FILE] -- python script.py ARGS
    threadwise probe -- python -m module ARGS
    threadwise probe -m module ARGS         (with the Python that runs threadwise)
    threadwise probe --pid PID [--duration SECONDS]     (a CPython 3.7+ already running)

The program's own output and exit status are kept; the probe's summary goes to
stderr at exit (or to ``--output``).  Exit status: the program's (128+N when a
signal N ended it, 130 for Ctrl-C); 2 for bad probe usage.  With ``--pid`` the
probe samples until ``--duration`` passes, Ctrl-C, or the process ends, and
exits 0 (2 when it can't read the process: permissions, not a CPython, an
unknown version; the message says which and what to do).

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
  threadwise probe --pid 12345 --duration 10      (a running CPython 3.7+, same user)
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
    p.add_argument("--pid", type=int, default=None, metavar="PID",
                   help="measure a CPython 3.7+ process that is already running (no restart, no "
                        "hook: its GIL is found from outside); needs the right to read its memory "
                        "(same user and kernel.yama.ptrace_scope=0, or root)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="with --pid: stop after SECONDS (default: until Ctrl-C or the process ends)")
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


def _check_numbers(args: argparse.Namespace) -> None:
    interval = args.interval
    if interval is not None and (not (interval == interval) or interval <= 0 or interval > 10000):
        raise UsageError("--interval must be > 0 and <= 10000 milliseconds, got %r" % interval,
                         fix="use e.g. --interval 1 (the default) or --interval 5 for long runs")
    if args.every is not None and not (args.every > 0):
        raise UsageError("--every must be a positive number of seconds, got %r" % args.every,
                         fix="use e.g. --every 10")
    duration = getattr(args, "duration", None)
    if duration is not None and not (0 < duration < float("inf")):
        raise UsageError("--duration must be a positive number of seconds, got %r" % duration,
                         fix="use e.g. --duration 10, or leave it out and stop with Ctrl-C")


def _check(args: argparse.Namespace) -> List[str]:
    """The command to run (empty with --pid); raises UsageError."""
    _check_numbers(args)
    cmd = list(args.command or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    module = getattr(args, "module", None)
    if getattr(args, "pid", None) is not None:
        if cmd or module is not None:
            raise UsageError("--pid measures a running process; a command to run was given too (%s)"
                             % " ".join(cmd or ["-m", str(module)]),
                             fix="use either threadwise probe --pid PID, or threadwise probe -- COMMAND")
        return []
    if getattr(args, "duration", None) is not None:
        raise UsageError("--duration goes with --pid (a wrapped program is measured until it exits)",
                         fix="threadwise probe --pid PID --duration 10")
    if module is not None:
        if not module or module.startswith("-"):
            raise UsageError("-m needs a module name, got %r" % module,
                             fix="threadwise probe -m package.module ARGS")
        cmd = [sys.executable, "-m", module] + cmd
    if not cmd:
        raise UsageError("no program to run was given",
                         fix="put the command after --: threadwise probe -- python script.py ARGS, "
                             "or measure a running one: threadwise probe --pid PID")
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
    """Run the program described by ``args`` (or attach to ``--pid``); returns the exit status.

    Extra positional arguments (``threadwise.cli`` passes its rich consoles)
    are ignored: the summary goes to stderr or ``--output`` as plain text, so
    that it never mixes with the program's own stdout."""
    def every(stats: Any) -> None:
        if args.json:
            sys.stderr.write(json.dumps(dict(stats.to_dict(), partial=True)) + "\n")
        else:
            sys.stderr.write(stats.report().replace("threadwise probe", "threadwise probe (so far)", 1)
                             + "\n")
        sys.stderr.flush()

    interval = None if args.interval is None else args.interval / 1000.0
    try:
        cmd = _check(args)
        if getattr(args, "pid", None) is not None:
            from .attach import attach
            stats = attach(args.pid, duration=args.duration, interval=interval, every=args.every,
                           on_every=every if args.every else None)
        else:
            from .wrap import run_program
            stats = run_program(cmd, interval=interval, every=args.every,
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
